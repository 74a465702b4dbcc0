"""The ``alignscope`` command: every job the app can start, scriptable.

Exit codes: 0 success; 2 bad input (one line on stderr naming file, row and column); 1 an
unexpected internal error (one line; set ``ALIGNSCOPE_DEBUG=1`` for the traceback).
"""
from __future__ import annotations

import argparse
import ipaddress
import json
import os
import sys
from pathlib import Path
from typing import Sequence

from alignscope.cli_common import (EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_OK, Parser, UsageError, add_load_options,
                                   add_source_options, check_output, load_data)


# ------------------------------------------------------------------------------------------ data
def cmd_data_info(args: argparse.Namespace) -> int:
    data = load_data(args)
    info = data.info()
    if args.json:
        print(json.dumps(info, ensure_ascii=False, default=str))
        return EXIT_OK
    fmt = info["format"] + (" (prompt extracted from the shared prefix)" if info["prompt_extracted"] else "")
    rows = [("source", info["source"] + ("  [DEMO DATA]" if info["is_demo"] else "")),
            ("pairs", f"{info['n_pairs']:,}"), ("format", fmt),
            ("metadata", ", ".join(info["metadata_columns"]) or "(none)"),
            ("fingerprint", info["fingerprint"]), ("validation", data.report.summary())]
    for key, value in rows:
        print(f"{key:<12} {value}")
    return EXIT_OK


def cmd_data_validate(args: argparse.Namespace) -> int:
    from alignscope.data import DataError

    try:
        data = load_data(args)
    except DataError as err:
        if args.json:
            print(json.dumps({"valid": False, **err.to_dict()}, ensure_ascii=False))
        raise
    result = {"valid": True, "n_pairs": data.n_pairs, "format": data.format,
              "summary": data.report.summary(), **data.report.to_dict()}
    if args.json:
        print(json.dumps(result, ensure_ascii=False, default=str))
    else:
        print(f"OK {args.path}: {data.n_pairs:,} pairs ({data.format}); {data.report.summary()}")
    return EXIT_OK


def cmd_data_demo(args: argparse.Namespace) -> int:
    from alignscope.data import demo_preferences
    from alignscope.readers import split_compression

    out = Path(args.out)
    fmt, gz = split_compression(out)
    if fmt not in (".jsonl", ".json", ".parquet", ".csv") or (gz and fmt == ".parquet"):
        raise UsageError(f"{out.name}: cannot write this type; use .jsonl, .json, .csv (optionally .gz) "
                         "or .parquet")
    if out.exists() and not args.force:
        raise UsageError(f"{out}: already exists (pass --force to overwrite)")
    if args.n < 20:
        raise UsageError("--n must be at least 20")
    data = demo_preferences(n=args.n, seed=args.seed)
    data.save(out)
    if args.json:
        print(json.dumps({"out": str(out), "n_pairs": data.n_pairs, "fingerprint": data.fingerprint}))
    else:
        print(f"wrote {data.n_pairs:,} demo pairs to {out} (fingerprint {data.fingerprint})")
    return EXIT_OK


# -------------------------------------------------------------------------- embed/select/export
def _encoder_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--encoder", default="minilm",
                        help="minilm (default), static (Model2Vec distilled from MiniLM: ~30x faster, "
                             "order-blind) or lm-last-token:MODEL (tiny, smollm2-135m, an HF folder)")
    parser.add_argument("--unit", default=None, choices=["completion", "pair"],
                        help="completion (default): chosen and rejected are two points, as in the paper; "
                             "pair: one point per pair")
    parser.add_argument("--layer", type=int, default=None, help="hidden layer for lm-last-token (default last)")
    parser.add_argument("--batch-size", type=int, default=None)


def cmd_embed(args: argparse.Namespace) -> int:
    import time

    from alignscope.embed import embed, save_embeddings
    from alignscope.files import write_json

    out = Path(args.out)
    check_output(out, args.force, (".npy",))
    if args.workers is not None and args.workers < 1:
        raise UsageError("--workers must be at least 1")
    if args.executor != "ray" and (args.address or args.workers is not None):
        raise UsageError("--address and --workers apply to --executor ray")
    data = load_data(args)
    started = time.perf_counter()
    unit = args.unit or "completion"
    if args.executor == "ray":
        from alignscope.embed_ray import embed_ray

        embeddings = embed_ray(data, args.encoder, unit, args.layer, batch_size=args.batch_size,
                               address=args.address, workers=args.workers, progress=not args.json)
    else:
        embeddings = embed(data, args.encoder, unit, args.layer, batch_size=args.batch_size, progress=not args.json)
    save_embeddings(out, embeddings)
    info = {"out": str(out), **embeddings.info(), "seconds": round(time.perf_counter() - started, 3),
            "executor": args.executor}
    write_json(out.with_name(out.name + ".json"), {**info, "data": data.spec()})
    if args.json:
        print(json.dumps(info))
    else:
        print(f"wrote {info['n']:,} × {info['dim']} float32 embeddings ({unit} unit, {args.encoder}) to {out}"
              + (" [from cache]" if embeddings.from_cache else ""))
    return EXIT_OK


def _parse_options(items: list[str]) -> dict[str, object]:
    options: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--option {item!r}: use NAME=VALUE")
        try:
            options[key.replace("-", "_")] = json.loads(value)
        except ValueError:
            options[key.replace("-", "_")] = value  # a bare string such as diag
    return options


def cmd_select(args: argparse.Namespace) -> int:
    import numpy as np

    from alignscope.select import select, write_selection

    if (args.k is None) == (args.fraction is None):
        raise UsageError("give exactly one of --k or --fraction")
    if args.fraction is not None and not 0 < args.fraction <= 1:
        raise UsageError(f"--fraction must be in (0, 1], got {args.fraction}")
    if args.k is not None and args.k < 1:
        raise UsageError(f"--k must be at least 1, got {args.k}")
    out = Path(args.out)
    check_output(out, args.force, (".parquet",))
    options = _parse_options(args.option)
    if args.method == "isa":
        options.update({k: v for k, v in (("covariance_type", args.covariance_type), ("pca_dim", args.pca_dim),
                                          ("n_init", args.n_init), ("variant", args.variant)) if v is not None})
    elif any(v is not None for v in (args.covariance_type, args.pca_dim, args.n_init, args.variant)):
        raise UsageError("--covariance-type/--pca-dim/--n-init/--variant apply to --method isa only")
    common = {"k": args.k, "fraction": args.fraction, "seed": args.seed}
    data = None
    if args.embeddings:
        from alignscope.embed import load_embeddings

        if args.data:
            raise UsageError("give DATA or --embeddings, not both")
        if args.method == "llm":
            raise UsageError("--method llm reads the texts: give DATA, not --embeddings")
        matrix = load_embeddings(args.embeddings)
        # `alignscope embed` leaves EMB.npy.json beside the matrix: it says what the rows are.
        meta_path = Path(args.embeddings).with_name(Path(args.embeddings).name + ".json")
        meta = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.exists() else {}
        table = select(matrix, args.method, unit=args.unit or meta.get("unit"), encoder=meta.get("encoder"),
                       data_fingerprint=meta.get("fingerprint"), **common, **options)
    else:
        if not args.data:
            raise UsageError("give DATA (or --embeddings EMB.npy)")
        args.path = args.data
        args.unit = args.unit or "completion"
        data = load_data(args)
        if args.method == "llm":
            from alignscope.select import ask_llm_texts

            texts = ask_llm_texts(data, unit=args.unit)
            pair_index = np.tile(np.arange(data.n_pairs), 2) if args.unit == "completion" else None
            label = (np.repeat(np.array([1, 0], np.int8), data.n_pairs) if args.unit == "completion" else None)
            table = select(texts, "llm", unit=args.unit, pair_index=pair_index, label=label,
                           data_fingerprint=data.fingerprint, **common, **options)
        elif args.method == "random":
            n = 2 * data.n_pairs if args.unit == "completion" else data.n_pairs
            table = select(np.zeros((n, 1), np.float32), "random", unit=args.unit,
                           data_fingerprint=data.fingerprint, **common, **options)
        else:
            from alignscope.embed import embed

            embeddings = embed(data, args.encoder, args.unit, args.layer, batch_size=args.batch_size,
                               progress=not args.json)
            table = select(embeddings, args.method, **common, **options)
    write_selection(table, out)
    config = table.attrs.get("alignscope_selection", {})
    summary = {"out": str(out), "method": args.method, "unit": config.get("unit"),
               "n_points": int(len(table)), "n_selected": int(table["selected"].sum()),
               "k": config.get("k"), "seed": args.seed, "data_fingerprint": config.get("data_fingerprint")}
    if "pair_index" in table.columns:
        from alignscope.select import pairs_from_completions

        summary["n_pairs_selected"] = int(pairs_from_completions(table)["selected"].sum())
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        extra = (f" ({summary['n_pairs_selected']:,} pairs contain one)" if "n_pairs_selected" in summary else "")
        print(f"selected {summary['n_selected']:,} of {summary['n_points']:,} {summary['unit'] or 'point'}s "
              f"with {args.method}{extra} → {out}")
    return EXIT_OK


def cmd_export(args: argparse.Namespace) -> int:
    from alignscope.export import export_selection

    data = load_data(args)
    out = export_selection(data, args.selection, args.out, format=args.format, kind=args.kind,
                           pair_rule=args.pair_rule, overwrite=args.force, keep_metadata=args.keep_metadata)
    if args.json:
        print(json.dumps({"out": str(out), "format": args.format, "kind": args.kind}))
    else:
        print(f"exported the selected {'completions (KTO)' if args.kind == 'kto' else 'pairs'} to {out}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------- train
def _train_fields(args: argparse.Namespace) -> dict[str, object]:
    names = ("model", "epochs", "batch_size", "grad_accum", "lr", "beta", "max_length", "test_fraction", "seed",
             "max_steps", "save_model", "eval_max_pairs", "label_noise", "label_noise_seed", "sams_ratio",
             "sams_exploration", "sams_gamma", "sams_selection", "sams_warmup_steps", "sams_width", "sams_depth",
             "sams_context", "sams_reward", "lora", "lora_r", "lora_alpha", "lora_dropout", "lora_target_modules",
             "report_to")
    lora_options = [f"--{n.replace('_', '-')}" for n in names
                    if n.startswith("lora_") and getattr(args, n, None) is not None]
    if lora_options and not args.lora:
        raise UsageError(f"{', '.join(lora_options)} only apply with --lora")
    if args.method != "dpo-sams":
        used = [f"--{n.replace('_', '-')}" for n in names if n.startswith("sams_") and getattr(args, n) is not None]
        if used:
            raise UsageError(f"{', '.join(used)} only apply to --method dpo-sams")
    fields = {name: getattr(args, name) for name in names if getattr(args, name, None) is not None}
    if isinstance(fields.get("lora_target_modules"), str) and fields["lora_target_modules"] != "all-linear":
        fields["lora_target_modules"] = [m.strip() for m in fields["lora_target_modules"].split(",") if m.strip()]
    if "report_to" in fields:
        from alignscope.train_config import report_to_names

        fields["report_to"] = report_to_names(fields["report_to"]) or "none"
    if args.split_seed is not None:
        fields["split_seed"] = args.split_seed
    return fields


def cmd_train(args: argparse.Namespace) -> int:
    """Validate everything here (exit 2 on bad input), then run the training as a job so that it
    shows on the app's Runs page; follow it until it ends (Ctrl-C cancels it unless --detach)."""
    import time

    from alignscope.jobs import JobStore
    from alignscope.train_config import train_config
    from alignscope.trainset import training_set

    from alignscope.models import check_model_spec

    config = train_config(args.method, **_train_fields(args))
    config.validate()
    check_model_spec(config.model)
    out = Path(args.out).expanduser().resolve()
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: is a file; give a run folder")
    data = load_data(args)
    selection = str(Path(args.selection).resolve()) if args.selection else None
    training_set(data, selection, method=args.method, test_fraction=config.test_fraction,
                 split_seed=config.split_seed)  # raises on an empty/mismatched selection, before any job
    if out.exists() and any(out.iterdir()) and not args.force:
        raise UsageError(f"{out}: exists and is not empty (pass --force to reuse it)")
    store = JobStore()
    job_config = {"data": data.spec(), "selection": selection, "method": args.method, **_train_fields(args)}
    job_id = store.submit("train", job_config, run_dir=out, overwrite=args.force)
    if not args.json:
        print(f"job {job_id}: {args.method} on {data.n_pairs:,} pairs"
              f"{' (selection ' + Path(selection).name + ')' if selection else ''} → {out}", file=sys.stderr)
    if args.detach:
        print(json.dumps({"job_id": job_id, "run_dir": str(out)}) if args.json else job_id)
        return EXIT_OK
    last = ""
    try:
        while True:
            job = store.get(job_id)
            line = f"[{job.progress:4.0%}] {job.message or job.status}"
            if line != last and not args.json:
                print(line, file=sys.stderr, flush=True)
                last = line
            if job.is_terminal:
                break
            time.sleep(1.0)
    except KeyboardInterrupt:
        store.cancel(job_id)
        print(f"cancelled job {job_id}", file=sys.stderr)
        return 130
    if job.status != "succeeded":
        print(f"alignscope: error: training {job.status}: {job.error or ''} (log: {job.log_path})", file=sys.stderr)
        return EXIT_INTERNAL
    return _print_eval(out, args.json, job_id=job_id)


def _print_eval(run_dir: Path, as_json: bool, job_id: str | None = None) -> int:
    from alignscope.metrics import describe_scores

    evaluation = json.loads((run_dir / "eval.json").read_text(encoding="utf-8"))
    if as_json:
        print(json.dumps({"run_dir": str(run_dir), **({"job_id": job_id} if job_id else {}), **evaluation},
                         default=str))
        return EXIT_OK
    print(f"held-out {describe_scores(evaluation)}  [{run_dir}]")
    if "beats_length_baseline" in evaluation and not evaluation["beats_length_baseline"]:
        print("the accuracy interval does not lie above the length rule: this run does not show it learned more "
              "than 'which answer is longer'", file=sys.stderr)
    return EXIT_OK


def cmd_eval(args: argparse.Namespace) -> int:
    from alignscope.evaluate import evaluate_run

    run_dir = Path(args.run_dir)
    if not (run_dir / "config.json").exists():
        raise UsageError(f"{run_dir}: not a run directory (no config.json)")
    evaluate_run(run_dir, recompute=args.recompute, max_pairs=args.max_pairs)
    return _print_eval(run_dir, args.json)


def cmd_eval_probe(args: argparse.Namespace) -> int:
    from alignscope.evaluate import eval_probe
    from alignscope.metrics import describe_scores

    data = load_data(args)
    result = eval_probe(data, args.selection, encoder=args.eval_encoder, test_fraction=args.test_fraction,
                        seed=args.seed)
    if args.json:
        print(json.dumps(result, default=str))
    else:
        print(f"probe ({result['eval_encoder']} features) {describe_scores(result)} — a Bradley–Terry linear "
              "reward model on frozen embeddings: a fast proxy, not a trained policy")
        if result.get("circular_note"):
            print(f"note: {result['circular_note']}", file=sys.stderr)
    return EXIT_OK


# ------------------------------------------------------------------------------------------ jobs
def cmd_jobs_list(args: argparse.Namespace) -> int:
    from alignscope.jobs import JobStore, format_job_table

    jobs = JobStore().list_jobs(status=args.status, kind=args.kind, limit=args.limit)
    if args.json:
        print(json.dumps([job.to_dict() for job in jobs], default=str))
    else:
        print(format_job_table(jobs))
    return EXIT_OK


def cmd_jobs_show(args: argparse.Namespace) -> int:
    from alignscope.jobs import JobStore, format_job_details

    job = JobStore().get(args.job_id)
    print(json.dumps(job.to_dict(), default=str) if args.json else format_job_details(job))
    return EXIT_OK


def cmd_jobs_cancel(args: argparse.Namespace) -> int:
    from alignscope.jobs import JobStore

    job = JobStore().cancel(args.job_id)
    print(f"{job.id}: {job.status}")
    return EXIT_OK


def cmd_jobs_logs(args: argparse.Namespace) -> int:
    import time

    from alignscope.jobs import JobStore

    store = JobStore()
    text = store.logs(args.job_id, tail=args.tail)
    print(text, end="" if text.endswith("\n") or not text else "\n")
    if args.follow:
        job = store.get(args.job_id)
        seen = len(store.logs(args.job_id, tail=None))
        while job.is_active:
            time.sleep(1)
            full = store.logs(args.job_id, tail=None)
            print(full[seen:], end="", flush=True)
            seen = len(full)
            job = store.get(args.job_id)
        print(f"[{job.id} {job.status}{': ' + job.error if job.error else ''}]")
    return EXIT_OK


# ------------------------------------------------------------------------------------------- app
def app_command(host: str, port: int, extra: Sequence[str] = ()) -> list[str]:
    """The ``streamlit run`` argument list for the app (no shell: a list, never a string)."""
    main = Path(__file__).resolve().parent.parent / "app" / "main.py"
    if not main.exists():  # installed (non-editable) layout: app/ is the alignscope.app package
        import alignscope.app

        main = Path(alignscope.app.__file__).resolve().parent / "main.py"
    return [sys.executable, "-m", "streamlit", "run", str(main),
            "--server.address", host, "--server.port", str(port), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--client.showErrorDetails", "none",
            "--client.toolbarMode", "minimal", "--server.fileWatcherType", "none",
            # Streamlit's default full gc.collect() after every script run cost 0.5-0.8 s per page
            # switch with a 62k-pair data set and its caches in memory (py-spy, benchmarks/bench_pages);
            # Python's own generational collector still runs (server memory: benchmarks/bench_load).
            "--runner.postScriptGC", "false", *extra]


def cmd_app(args: argparse.Namespace) -> int:
    root = Path(args.data_root).expanduser().resolve()
    if not root.is_dir():
        raise UsageError(f"--data-root {args.data_root}: not a folder")
    if not 0 < args.port < 65536:
        raise UsageError("--port must be between 1 and 65535")
    try:
        loopback = ipaddress.ip_address(args.host).is_loopback
    except ValueError:
        loopback = args.host == "localhost"
    if not loopback:
        print(f"alignscope: listening on {args.host}: anyone who can reach this machine can use the app",
              file=sys.stderr)
    env = {**os.environ, "ALIGNSCOPE_DATA_ROOT": str(root), "ALIGNSCOPE_INITIAL_DATA": args.data or "demo"}
    if args.home:
        env["ALIGNSCOPE_HOME"] = str(Path(args.home).expanduser().resolve())
    command = app_command(args.host, args.port,
                          ["--server.maxUploadSize", str(args.max_upload_mb)])
    print(f"alignscope: serving http://{args.host}:{args.port} (data root {root})", file=sys.stderr)
    sys.stdout.flush()
    os.execve(command[0], command, env)  # replaces this process: signals go straight to Streamlit
    return EXIT_OK  # pragma: no cover


# ---------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from alignscope import __version__

    parser = Parser(prog="alignscope", description="Preference-data selection, training and "
                                                   "diagnostics for LLM alignment.")
    parser.add_argument("--version", action="version", version=f"alignscope {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    data = commands.add_parser("data", help="inspect, validate and generate preference data")
    data_commands = data.add_subparsers(dest="data_command", required=True, parser_class=Parser)
    info = data_commands.add_parser("info", help="summary of a data set (pairs, format, fingerprint)")
    add_load_options(info)
    info.set_defaults(func=cmd_data_info)
    validate = data_commands.add_parser("validate", help="exit 0 when valid, 2 with the error line")
    add_load_options(validate)
    validate.set_defaults(func=cmd_data_validate)
    demo = data_commands.add_parser("demo", help="write the seeded synthetic demo set")
    demo.add_argument("--out", required=True, help="output file (.jsonl/.json/.csv[.gz] or .parquet)")
    demo.add_argument("--n", type=int, default=3000, help="number of pairs (default 3000)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--force", action="store_true", help="overwrite an existing file")
    demo.add_argument("--json", action="store_true")
    demo.set_defaults(func=cmd_data_demo)

    embed_cmd = commands.add_parser("embed", help="embed every completion (or pair) of a data set")
    embed_cmd.add_argument("path", metavar="DATA", help="data set (as for `data info`)")
    add_source_options(embed_cmd)
    _encoder_options(embed_cmd)
    embed_cmd.add_argument("--out", required=True, help="output .npy (float32 matrix); meta in OUT.json")
    embed_cmd.add_argument("--force", action="store_true", help="overwrite an existing file")
    embed_cmd.add_argument("--json", action="store_true")
    embed_cmd.add_argument("--executor", default="local", choices=["local", "ray"],
                           help="ray: the distinct texts in shards as Ray tasks (same result and cache entry)")
    embed_cmd.add_argument("--address", default=None,
                           help="Ray cluster to join (auto, ray://host:10001); default a local Ray instance")
    embed_cmd.add_argument("--workers", type=int, default=None,
                           help="Ray shards run at once (CPUs of the local Ray instance; default all cores)")
    embed_cmd.set_defaults(func=cmd_embed)

    select_cmd = commands.add_parser("select", help="score every point and keep the best k (ISA or a baseline)")
    select_cmd.add_argument("data", metavar="DATA", nargs="?", help="data set (or use --embeddings)")
    select_cmd.add_argument("--embeddings", help="a raw float32 .npy matrix embedded elsewhere (no text)")
    select_cmd.add_argument("--method", default="isa", choices=["isa", "random", "density", "kcenter", "llm"])
    size = select_cmd.add_mutually_exclusive_group()
    size.add_argument("--k", type=int, help="number of points to keep")
    size.add_argument("--fraction", type=float, help="share of points to keep, in (0, 1]")
    select_cmd.add_argument("--seed", type=int, default=0)
    add_source_options(select_cmd)
    _encoder_options(select_cmd)
    select_cmd.add_argument("--covariance-type", choices=["full", "diag", "tied", "spherical"],
                            help="ISA: GMM covariance (default full)")
    select_cmd.add_argument("--pca-dim", type=int, help="ISA: PCA dimension before the GMM (default none)")
    select_cmd.add_argument("--n-init", type=int, help="ISA: GMM initialisations (default 1)")
    select_cmd.add_argument("--variant", choices=["published", "renormalised"],
                            help="ISA: published rule (default) or renormalised p (flips the ranking)")
    select_cmd.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                            help="any other selector option, e.g. --option model=tiny")
    select_cmd.add_argument("--out", required=True, help="output selection .parquet")
    select_cmd.add_argument("--force", action="store_true")
    select_cmd.add_argument("--json", action="store_true")
    select_cmd.set_defaults(func=cmd_select)

    export_cmd = commands.add_parser("export", help="write the selected rows in TRL's format")
    export_cmd.add_argument("path", metavar="DATA")
    export_cmd.add_argument("selection", metavar="SEL.parquet")
    add_source_options(export_cmd)
    export_cmd.add_argument("--format", choices=["hf", "parquet", "jsonl"], default=None,
                            help="hf (datasets save_to_disk folder), parquet or jsonl (default: from --out)")
    export_cmd.add_argument("--kind", choices=["pairs", "kto"], default="pairs",
                            help="pairs (DPO: prompt/chosen/rejected) or kto (prompt/completion/label)")
    export_cmd.add_argument("--pair-rule", default="any", help="completion → pair rule: any, both, mean, chosen, rejected")
    export_cmd.add_argument("--keep-metadata", action="store_true")
    export_cmd.add_argument("--out", required=True)
    export_cmd.add_argument("--force", action="store_true")
    export_cmd.add_argument("--json", action="store_true")
    export_cmd.set_defaults(func=cmd_export)

    train_cmd = commands.add_parser("train", help="DPO or KTO with TRL on a selection (or all data), as a job")
    train_cmd.add_argument("path", metavar="DATA")
    add_source_options(train_cmd)
    train_cmd.add_argument("--selection", help="selection .parquet from `alignscope select` (default: all pairs)")
    train_cmd.add_argument("--method", choices=["dpo", "kto", "dpo-sams"], default="dpo",
                           help="dpo, kto, or dpo-sams (DPO with SamS batch scheduling)")
    train_cmd.add_argument("--model", default=None, help="tiny (default), smollm2-135m, or an HF folder / hub id")
    train_cmd.add_argument("--out", required=True, help="run directory")
    train_cmd.add_argument("--epochs", type=float)
    train_cmd.add_argument("--batch-size", type=int)
    train_cmd.add_argument("--grad-accum", type=int, help="gradient accumulation steps (default 1)")
    train_cmd.add_argument("--lr", type=float)
    train_cmd.add_argument("--beta", type=float)
    train_cmd.add_argument("--max-length", type=int)
    train_cmd.add_argument("--max-steps", type=int)
    train_cmd.add_argument("--test-fraction", type=float, help="held-out share of ALL pairs (default 0.2)")
    train_cmd.add_argument("--seed", type=int, help="training seed")
    train_cmd.add_argument("--split-seed", type=int, help="seed of the train/test split (default 0)")
    train_cmd.add_argument("--eval-max-pairs", type=int, help="evaluate on at most this many held-out pairs")
    train_cmd.add_argument("--save-model", action="store_true", default=None, help="keep model/ (safetensors)")
    train_cmd.add_argument("--label-noise", type=float,
                           help="swap chosen/rejected of this share of the training pairs (test pairs untouched)")
    train_cmd.add_argument("--label-noise-seed", type=int)
    sams = train_cmd.add_argument_group("SamS (--method dpo-sams)")
    sams.add_argument("--sams-ratio", type=float, help="share of each batch that gets gradient, rho (default 0.5)")
    sams.add_argument("--sams-selection", choices=["topk", "softmax", "random"],
                      help="topk (paper, default), softmax sampling, or random (the random-subset baseline)")
    sams.add_argument("--sams-exploration", type=float, help="lambda, weight of the exploration network (default 0.05)")
    sams.add_argument("--sams-gamma", type=float, help="weight of the batch reward (default 0.5)")
    sams.add_argument("--sams-warmup-steps", type=int, help="first steps on full batches (default 0)")
    sams.add_argument("--sams-width", type=int, help="scheduler MLP width (default 128)")
    sams.add_argument("--sams-depth", type=int, help="scheduler MLP depth (default 2)")
    sams.add_argument("--sams-context", choices=["mean", "pair", "diff"],
                      help="what the scheduler sees of a pair: pair = chosen and rejected states side by side "
                           "(default), diff = chosen - rejected, mean = their average (the reference code's; it "
                           "cannot tell a pair from its flipped copy)")
    sams.add_argument("--sams-reward", choices=["ranked", "published"],
                      help="scheduler reward: ranked = sample reward z-scored within the batch plus the batch "
                           "reward credited to selected pairs (default); published = the paper's formula")
    real = train_cmd.add_argument_group("real models (LoRA, experiment tracking)")
    real.add_argument("--lora", action="store_true", default=None,
                      help="train a LoRA adapter (needs peft: pip install 'alignscope[gpu]'); merged into model/")
    real.add_argument("--lora-r", type=int, help="LoRA rank (default 16)")
    real.add_argument("--lora-alpha", type=int, help="LoRA scale alpha (default 32)")
    real.add_argument("--lora-dropout", type=float, help="LoRA dropout (default 0.05)")
    real.add_argument("--lora-target-modules", metavar="NAMES",
                      help="all-linear (default) or comma-separated module names, e.g. q_proj,v_proj")
    real.add_argument("--report-to", metavar="TRACKERS",
                      help="none (default) or comma-separated: tensorboard (logs in OUT/tensorboard), trackio, "
                           "wandb, mlflow (each needs its package)")
    train_cmd.add_argument("--detach", action="store_true", help="submit the job and return")
    train_cmd.add_argument("--force", action="store_true", help="reuse a non-empty run directory")
    train_cmd.add_argument("--json", action="store_true")
    train_cmd.set_defaults(func=cmd_train)

    eval_cmd = commands.add_parser("eval", help="held-out preference accuracy of a training run")
    eval_cmd.add_argument("run_dir", metavar="RUN_DIR")
    eval_cmd.add_argument("--recompute", action="store_true", help="evaluate again (needs model/)")
    eval_cmd.add_argument("--max-pairs", type=int)
    eval_cmd.add_argument("--json", action="store_true")
    eval_cmd.set_defaults(func=cmd_eval)

    probe_cmd = commands.add_parser("eval-probe", help="fast proxy: Bradley–Terry probe on frozen embeddings")
    probe_cmd.add_argument("path", metavar="DATA")
    add_source_options(probe_cmd)
    probe_cmd.add_argument("--selection", help="selection .parquet (default: all training pairs)")
    probe_cmd.add_argument("--eval-encoder", "--encoder", dest="eval_encoder", default="minilm",
                           help="the probe's own features (default minilm); choose one the selection did not use, "
                                "or the score is circular")
    probe_cmd.add_argument("--test-fraction", type=float, default=0.2)
    probe_cmd.add_argument("--seed", type=int, default=0)
    probe_cmd.add_argument("--json", action="store_true")
    probe_cmd.set_defaults(func=cmd_eval_probe)

    from alignscope.spectra_cli import add_spectra_command

    add_spectra_command(commands)
    from alignscope.audit_cli import add_audit_command
    add_audit_command(commands)
    from alignscope.scaling_cli import add_scaling_command, add_sweep_command

    add_sweep_command(commands)
    add_scaling_command(commands)

    jobs = commands.add_parser("jobs", help="list, inspect, cancel and read the logs of jobs")
    jobs_commands = jobs.add_subparsers(dest="jobs_command", required=True, parser_class=Parser)
    jobs_list = jobs_commands.add_parser("list", help="jobs, newest first")
    jobs_list.add_argument("--status", choices=["queued", "running", "succeeded", "failed", "cancelled"])
    jobs_list.add_argument("--kind")
    jobs_list.add_argument("--limit", type=int, default=50)
    jobs_list.add_argument("--json", action="store_true")
    jobs_list.set_defaults(func=cmd_jobs_list)
    jobs_show = jobs_commands.add_parser("show", help="every field of one job")
    jobs_show.add_argument("job_id")
    jobs_show.add_argument("--json", action="store_true")
    jobs_show.set_defaults(func=cmd_jobs_show)
    jobs_cancel = jobs_commands.add_parser("cancel", help="cancel a job (kills its whole process group)")
    jobs_cancel.add_argument("job_id")
    jobs_cancel.set_defaults(func=cmd_jobs_cancel)
    jobs_logs = jobs_commands.add_parser("logs", help="the job's log.txt")
    jobs_logs.add_argument("job_id")
    jobs_logs.add_argument("--tail", type=int, default=200, help="last N lines (default 200)")
    jobs_logs.add_argument("--follow", "-f", action="store_true", help="keep printing until the job ends")
    jobs_logs.set_defaults(func=cmd_jobs_logs)

    app = commands.add_parser("app", help="start the web app (Streamlit)")
    app.add_argument("--host", default="127.0.0.1",
                     help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes the app)")
    app.add_argument("--port", type=int, default=8501)
    app.add_argument("--data-root", default=".", help="the only folder the app opens typed paths in")
    app.add_argument("--data", help="data set to open first (default: the built-in demo)")
    app.add_argument("--home", help="folder for caches, jobs and runs (default ~/.cache/alignscope)")
    app.add_argument("--max-upload-mb", type=int, default=200, help="upload size cap in MB")
    app.set_defaults(func=cmd_app)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Idle OpenMP workers spinning (the default) cost the other core its time on a 2-core machine;
    # it must be set before torch loads, so the entry point sets it, never a library import.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from alignscope.files import PathOutsideRootError
    from alignscope.jobs import JobError
    from alignscope.readers import DataError

    try:
        args = build_parser().parse_args(argv)
        return int(args.func(args) or 0)
    except (UsageError, DataError, PathOutsideRootError, JobError, ValueError) as err:
        # ValueError covers the library's own one-line input errors (ModelError, JobError,
        # selection errors...): they all subclass it.
        print(f"alignscope: error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except BrokenPipeError:  # `alignscope ... | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as err:  # the machine, not the input: disk full, read-only, permissions
        where = f": {err.filename}" if err.filename else ""
        print(f"alignscope: error: {err.strerror or err}{where} (nothing was overwritten)", file=sys.stderr)
        return EXIT_INTERNAL
    except KeyboardInterrupt:
        print("alignscope: interrupted", file=sys.stderr)
        return 130
    except Exception as err:  # noqa: BLE001 - the CLI's promise is one line, not a traceback
        if os.environ.get("ALIGNSCOPE_DEBUG"):
            raise
        print(f"alignscope: internal error: {type(err).__name__}: {err} "
              "(set ALIGNSCOPE_DEBUG=1 for the traceback)", file=sys.stderr)
        return EXIT_INTERNAL


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

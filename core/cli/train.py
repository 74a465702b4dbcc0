"""``alignscope train`` (a TRL run as a job, followed until it ends), ``alignscope eval`` and
``alignscope eval-probe``. The train flags are generated from the config dataclasses
(:mod:`alignscope.cli.config_flags`)."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from alignscope.cli.common import (EXIT_CANCELLED, EXIT_INTERNAL, EXIT_OK, UsageError, add_source_options, follow_jobs,
                                   load_data)
from alignscope.cli.config_flags import add_config_arguments, config_fields_from_args
from alignscope.evaluate.probe import PROBE_ENCODER
from alignscope.evaluate.metrics import describe_scores
from alignscope.jobs import JobStore
from alignscope.run_files import CONFIG_FILE, EVAL_FILE
from alignscope.train.config import CONFIG_CLASSES, METHODS, TrainConfig, TrainError, train_config

__all__ = ["add_train_commands", "train_fields", "cmd_train", "cmd_eval", "cmd_eval_probe"]


def add_train_commands(commands: Any) -> None:
    train_cmd = commands.add_parser("train", help="DPO or KTO with TRL on a selection (or all data), as a job")
    train_cmd.add_argument("path", metavar="DATA")
    add_source_options(train_cmd)
    train_cmd.add_argument("--selection", help="selection .parquet from `alignscope select` (default: all pairs)")
    train_cmd.add_argument("--method", choices=list(METHODS), default="dpo",
                           help="dpo, kto, or dpo-sams (DPO with SamS batch scheduling)")
    train_cmd.add_argument("--out", required=True, help="run directory")
    # Every training option, generated from the config dataclasses (help, type, choices, default).
    add_config_arguments(train_cmd, [TrainConfig, *CONFIG_CLASSES.values()])
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
    probe_cmd.add_argument("--eval-encoder", "--encoder", dest="eval_encoder", default=PROBE_ENCODER,
                           help=f"the probe's own features (default {PROBE_ENCODER}: the data's own words); choose one "
                                "the selection did not use, or the score is circular")
    probe_cmd.add_argument("--test-fraction", type=float, default=0.2)
    probe_cmd.add_argument("--seed", type=int, default=0)
    probe_cmd.add_argument("--json", action="store_true")
    probe_cmd.set_defaults(func=cmd_eval_probe)



def train_fields(args: argparse.Namespace) -> dict[str, object]:
    """The config fields set on the command line (the flags are generated from the config
    dataclasses: alignscope.cli.config_flags); unset flags keep the config's defaults."""
    try:
        return config_fields_from_args(args, args.method)
    except TrainError as err:
        raise UsageError(str(err)) from None


def cmd_train(args: argparse.Namespace) -> int:
    """Validate everything here (exit 2 on bad input), then run the training as a job so that it
    shows on the app's Runs page; follow it until it ends (Ctrl-C cancels it unless --detach)."""
    from alignscope.train.submit import submit_training

    config = train_config(args.method, **train_fields(args))  # a bad value fails before the data loads
    out = Path(args.out).expanduser().resolve()
    data = load_data(args)
    store = JobStore()
    job_id = submit_training(data, config, selection=args.selection, out=out, store=store, overwrite=args.force)
    selection = args.selection
    if not args.json:
        print(f"job {job_id}: {args.method} on {data.n_pairs:,} pairs"
              f"{' (selection ' + Path(selection).name + ')' if selection else ''} → {out}", file=sys.stderr)
    if args.detach:
        print(json.dumps({"job_id": job_id, "run_dir": str(out)}) if args.json else job_id)
        return EXIT_OK
    last = [""]

    def show(jobs: list) -> None:
        line = f"[{jobs[0].progress:4.0%}] {jobs[0].message or jobs[0].status}"
        if line != last[0] and not args.json:
            print(line, file=sys.stderr, flush=True)
            last[0] = line

    followed = follow_jobs(store, [job_id], show)
    if followed is None:
        print(f"cancelled job {job_id}", file=sys.stderr)
        return EXIT_CANCELLED
    job = followed[0]
    if job.status != "succeeded":
        print(f"alignscope: error: training {job.status}: {job.error or ''} (log: {job.log_path})", file=sys.stderr)
        return EXIT_INTERNAL
    return _print_eval(out, args.json, job_id=job_id)


def _print_eval(run_dir: Path, as_json: bool, job_id: str | None = None) -> int:
    evaluation = json.loads((run_dir / EVAL_FILE).read_text(encoding="utf-8"))
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
    from alignscope.evaluate.evaluators import evaluate_run

    run_dir = Path(args.run_dir)
    if not (run_dir / CONFIG_FILE).exists():
        raise UsageError(f"{run_dir}: not a run directory (no config.json)")
    evaluate_run(run_dir, recompute=args.recompute, max_pairs=args.max_pairs)
    return _print_eval(run_dir, args.json)


def cmd_eval_probe(args: argparse.Namespace) -> int:
    from alignscope.evaluate.probe import eval_probe
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

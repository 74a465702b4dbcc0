"""``alignscope select`` (score every point, keep the best k) and ``alignscope export`` (the kept rows in TRL's format)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from alignscope.cli.common import EXIT_OK, UsageError, add_source_options, check_output, load_data
from alignscope.cli.config_flags import flag_help
from alignscope.cli.embed import add_encoder_options
from alignscope.embed.embeddings import Embeddings
from alignscope.options import field_kind, flag_name, parse_list
from alignscope.select.pair_options import PAIR_METHODS, method_options
from alignscope.select.selection import PAIR_RULES

# Every method of alignscope.select.selectors.METHODS (a test checks they agree; that module imports
# scikit-learn, too slow for building the parser).
METHOD_CHOICES = ("isa", "random", "density", "kcenter", "llm", *PAIR_METHODS)
# Flags the select command already has for the encoder; a pair method's option of the same name
# shares it (lm-margin's batch_size: sequences per forward pass, like an encoder's).
_SHARED_FLAGS = {"batch_size"}

__all__ = ["add_select_commands", "cmd_select", "cmd_export"]


def add_select_commands(commands: Any) -> None:
    select_cmd = commands.add_parser("select", help="score every point and keep the best k (ISA or a baseline)")
    select_cmd.add_argument("data", metavar="DATA", nargs="?", help="data set (or use --embeddings)")
    select_cmd.add_argument("--embeddings", help="a raw float32 .npy matrix embedded elsewhere (no text)")
    select_cmd.add_argument("--method", default="isa", choices=METHOD_CHOICES,
                            help="isa (default), random, density, kcenter, llm (Ask-LLM), or a pair method: "
                                 "length, margin, rds, lm-margin (they rank pairs)")
    size = select_cmd.add_mutually_exclusive_group()
    size.add_argument("--k", type=int, help="number of points to keep")
    size.add_argument("--fraction", type=float, help="share of points to keep, in (0, 1]")
    select_cmd.add_argument("--seed", type=int, default=0)
    select_cmd.add_argument("--check-seeds", metavar="S1,S2,...",
                            help="also select with these seeds and report how much of the subset they keep too "
                                 "(ISA's EM ends in different, equally good mixtures from different starts); "
                                 "the file written is --seed's")
    add_source_options(select_cmd)
    add_encoder_options(select_cmd)
    select_cmd.add_argument("--covariance-type", choices=["full", "diag", "tied", "spherical"],
                            help="ISA: GMM covariance (default full)")
    select_cmd.add_argument("--pca-dim", type=int, help="ISA: PCA dimension before the GMM (default none)")
    select_cmd.add_argument("--n-init", type=int, help="ISA: GMM initialisations (default 1)")
    select_cmd.add_argument("--variant", choices=["published", "renormalised"],
                            help="ISA: published rule (default) or renormalised p (flips the ranking)")
    add_pair_method_options(select_cmd)
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
    export_cmd.add_argument("--pair-rule", choices=PAIR_RULES, default="any",
                            help="completion → pair rule (alignscope.select.selection.PAIR_RULES)")
    export_cmd.add_argument("--keep-metadata", action="store_true")
    export_cmd.add_argument("--out", required=True)
    export_cmd.add_argument("--force", action="store_true")
    export_cmd.add_argument("--json", action="store_true")
    export_cmd.set_defaults(func=cmd_export)



def add_pair_method_options(parser: argparse.ArgumentParser) -> None:
    """One flag per option of the pair methods (alignscope.select.pair_options), in one group; an
    option several methods share gets one flag (its help names them all). Unset flags are None, so
    the method's own default applies."""
    group = parser.add_argument_group("options of the pair methods (length, margin, rds, lm-margin)")
    owners: dict[str, list[str]] = {}
    fields: dict[str, Any] = {}
    for method in PAIR_METHODS:
        for f in method_options(method):
            owners.setdefault(f.name, []).append(method)
            fields.setdefault(f.name, f)
    for name, f in fields.items():
        if name in _SHARED_FLAGS:
            continue
        kind, _ = field_kind(f)
        options: dict[str, Any] = {"dest": name, "default": None,
                                   "help": f"{', '.join(owners[name])}: {flag_help(f)}"}
        if kind == "bool":
            options["action"] = argparse.BooleanOptionalAction
        else:
            options["type"] = {"int": int, "float": float, "str": str}[kind]
            if "choices" in f.metadata:
                options["choices"] = list(f.metadata["choices"])
        group.add_argument(flag_name(name), **options)


def pair_method_fields(args: argparse.Namespace, method: str) -> dict[str, Any]:
    """The pair-method options set on the command line for ``method``; a flag of another method is
    a one-line UsageError naming the methods it applies to."""
    own = {f.name for f in method_options(method)}
    every = {f.name: m for m in PAIR_METHODS for f in method_options(m)}
    given = {name: getattr(args, name) for name in every if name not in _SHARED_FLAGS
             and getattr(args, name, None) is not None}
    foreign = [name for name in given if name not in own]
    if foreign:
        methods = [m for m in PAIR_METHODS if foreign[0] in {f.name for f in method_options(m)}]
        raise UsageError(f"{flag_name(foreign[0])} applies to --method {', '.join(methods)}, not {method}")
    if "batch_size" in own and args.batch_size is not None:
        given["batch_size"] = args.batch_size
    return given


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
    from alignscope.select.selectors import select, select_data

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
    options.update(pair_method_fields(args, args.method))
    check_seeds = _parse_seeds(args.check_seeds, args.seed) if args.check_seeds else []
    common = {"k": args.k, "fraction": args.fraction, "seed": args.seed}
    if args.embeddings:
        if args.data:
            raise UsageError("give DATA or --embeddings, not both")
        if args.method == "llm":
            raise UsageError("--method llm reads the texts: give DATA, not --embeddings")
        # `alignscope embed` leaves EMB.npy.json beside the matrix: it says what the rows are; a
        # .npy made elsewhere has rows of the unit --unit says (or plain points without it).
        embeddings = Embeddings.load(args.embeddings, unit=args.unit)

        def run(seed: int):
            return select(embeddings, args.method, **{**common, "seed": seed}, **options)
    else:
        if not args.data:
            raise UsageError("give DATA (or --embeddings EMB.npy)")
        args.path = args.data
        data = load_data(args)

        def run(seed: int):
            return select_data(data, args.method, encoder=args.encoder, unit=args.unit, layer=args.layer,
                               batch_size=args.batch_size, progress=not args.json, **{**common, "seed": seed},
                               **options)
    table = run(args.seed)
    agreement = None
    if check_seeds:  # kept in the file's config: the report and later readers see it
        agreement = _seed_agreement({args.seed: table, **{seed: run(seed) for seed in check_seeds}})
        table = table.replace(config={**table.config, "seed_agreement": agreement})
    table.write(out)
    summary = {"out": str(out), "method": args.method, "unit": table.unit,
               "n_points": int(len(table)), "n_selected": table.n_selected,
               "k": table.config.get("k"), "seed": args.seed, "data_fingerprint": table.fingerprint}
    if table.unit == "completion":
        summary["n_pairs_selected"] = int(len(table.pairs("any")))
    if "circular" in table.config:
        summary["circular"] = table.config["circular"]
    if agreement is not None:
        summary["seed_agreement"] = agreement
    if args.json:
        print(json.dumps(summary, default=str))
    else:
        extra = (f" ({summary['n_pairs_selected']:,} pairs contain one)" if "n_pairs_selected" in summary else "")
        print(f"selected {summary['n_selected']:,} of {summary['n_points']:,} {summary['unit'] or 'point'}s "
              f"with {args.method}{extra} → {out}")
        if table.config.get("circular_note"):
            print(f"note: {table.config['circular_note']}")
        if agreement is not None:
            from alignscope.select.stats import seed_agreement_text

            print(f"seeds: {seed_agreement_text(agreement)}")
    return EXIT_OK


def _parse_seeds(text: str, seed: int) -> list[int]:
    try:
        seeds = parse_list(text, int)
    except ValueError as err:
        raise UsageError(f"--check-seeds: {err} (e.g. 1,2)") from None
    seeds = [s for s in dict.fromkeys(seeds) if s != seed]
    if not seeds:
        raise UsageError(f"--check-seeds needs at least one seed other than --seed ({seed})")
    return seeds


def _seed_agreement(tables: dict) -> dict[str, Any]:
    """The share of the first selection's kept pairs (points, without pairs) that the selections of
    the other seeds keep too, at the same number kept (:func:`alignscope.select.stats.seed_agreement`)."""
    import numpy as np

    from alignscope.select.stats import pair_first_rank, seed_agreement_at

    table = next(iter(tables.values()))
    by_pair = "pair_index" in table.table.columns
    n = int(table.table["pair_index"].max()) + 1 if by_pair else len(table)
    ranks = {seed: pair_first_rank(t.table, n) for seed, t in tables.items()}
    present = np.isfinite(next(iter(ranks.values())))  # pairs with a point (a subset's embeddings may skip some)
    ranks = {seed: r[present] for seed, r in ranks.items()}
    kept = int(np.sum(next(iter(ranks.values())) <= table.n_selected))
    return seed_agreement_at(ranks, kept, counted="pairs" if by_pair or table.unit == "pair" else "points")


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

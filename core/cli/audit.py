"""``alignscope audit``: flag suspected flipped labels, near-duplicates, outliers and length bias.

``alignscope audit DATA [--encoder E] [--embeddings EMB.npy] [--folds 5] [--seed 0] --out AUDIT.parquet
[--json] [--force] [--clean-out SEL.parquet [--drop suspect_flip,is_duplicate,is_outlier,identical]]``

Writes the per-pair audit table (:func:`alignscope.audit.audit`) to ``AUDIT.parquet`` and, with
``--clean-out``, the pairs without the ``--drop`` flags as an ordinary pair-level selection (method
``clean``) that ``alignscope train --selection``, ``export`` and ``eval-probe`` read unchanged.
Prints the summary (:func:`alignscope.audit.audit_summary`). Bad input — fewer pairs than folds, an
output that exists without ``--force``, an unknown flag in ``--drop``, embeddings of the wrong
length — is one line and exit 2, and nothing is written; both files are written atomically, and only
after everything was computed.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from alignscope.cli.common import add_source_options, load_data
from alignscope.embed.embeddings import Embeddings
from alignscope.options import parse_list

__all__ = ["add_audit_command", "cmd_audit"]


def add_audit_command(commands: Any) -> argparse.ArgumentParser:
    """Add the ``audit`` subcommand to an argparse subparsers object; returns its parser."""
    from alignscope.audit import FLAGS

    parser = commands.add_parser("audit", help="suspected flipped labels, near-duplicates, outliers, length bias")
    parser.add_argument("path", metavar="DATA", help="data: file, datasets folder, hub id or demo[:N[:SEED]]")
    add_source_options(parser)
    parser.add_argument("--encoder", default="minilm", help="encoder of the completion embeddings (default minilm)")
    parser.add_argument("--embeddings", metavar="EMB.npy",
                        help="precomputed completion embeddings (2N rows: chosen then rejected) instead of --encoder")
    parser.add_argument("--folds", type=int, default=5, help="folds of the cross-fitted reward probe (default 5)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, metavar="AUDIT.parquet", help="the per-pair audit table")
    parser.add_argument("--clean-out", metavar="SEL.parquet", help="also write the clean subset as a selection")
    parser.add_argument("--drop", default=None,
                        help=f"flags that drop a pair from the clean subset (default {','.join(FLAGS)})")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=cmd_audit)
    return parser


def _check_output(out: Path, force: bool) -> None:
    from alignscope.audit import AuditError

    if not out.name.endswith(".parquet"):
        raise AuditError(f"{out.name}: the output must end with .parquet")
    if out.exists() and not force:
        raise AuditError(f"{out}: already exists (pass --force to overwrite)")


def cmd_audit(args: argparse.Namespace) -> int:
    """Run the ``audit`` subcommand (see the module docstring). Returns the exit code 0."""
    from alignscope.audit import FLAGS, AuditError, audit, audit_summary, clean_selection, write_audit

    if args.folds < 2:
        raise AuditError(f"--folds must be at least 2, got {args.folds}")
    if args.seed < 0:
        raise AuditError(f"--seed must be >= 0, got {args.seed}")
    if args.drop is not None and not args.clean_out:
        raise AuditError("--drop applies to the clean subset: give --clean-out SEL.parquet too")
    drop = FLAGS if args.drop is None else tuple(parse_list(args.drop))
    unknown = [d for d in drop if d not in FLAGS]
    if unknown:
        raise AuditError(f"--drop: unknown flag {unknown[0]!r}; choose from {', '.join(FLAGS)}")
    if not drop:
        raise AuditError("--drop is empty; name at least one of " + ", ".join(FLAGS))
    out = Path(args.out)
    _check_output(out, args.force)
    clean_out = Path(args.clean_out) if args.clean_out else None
    if clean_out is not None:
        _check_output(clean_out, args.force)
        if clean_out.resolve() == out.resolve():
            raise AuditError("--out and --clean-out name the same file")
    data = load_data(args)
    if data.n_pairs < args.folds:
        raise AuditError(f"the data has {data.n_pairs} pairs, fewer than --folds {args.folds}")
    embeddings = None
    encoder = args.encoder
    if args.embeddings:
        loaded = Embeddings.load(args.embeddings, unit="completion")  # refuses pair-unit files
        if loaded.fingerprint and loaded.fingerprint != data.fingerprint:
            raise AuditError(f"{args.embeddings}: made on data with fingerprint {loaded.fingerprint}, but this data "
                             f"has {data.fingerprint}")
        embeddings = loaded.matrix
        if len(embeddings) != 2 * data.n_pairs:
            raise AuditError(f"{args.embeddings}: {len(embeddings):,} rows, but {data.n_pairs:,} pairs need "
                             f"{2 * data.n_pairs:,} (chosen then rejected completions)")
        encoder = loaded.encoder or "precomputed"
    table = audit(data, embeddings, encoder=args.encoder, folds=args.folds, seed=args.seed,
                  progress=not args.json)
    table.attrs["alignscope_audit"]["encoder"] = encoder
    summary = audit_summary(data, table)
    selection = clean_selection(data, table, drop) if clean_out is not None else None
    write_audit(table, out)
    result: dict[str, Any] = {"out": str(out), **{k: v for k, v in summary.items() if k != "config"}}
    if selection is not None:
        selection.write(clean_out)
        result.update(clean_out=str(clean_out), drop=list(drop), n_clean=selection.n_selected)
    result["seconds"] = table.attrs["alignscope_audit"]["timings"]["total_s"]
    if args.json:
        print(json.dumps(result, default=str))
        return 0
    n = summary["n_pairs"]
    print(f"audited {n:,} pairs ({encoder}, {args.folds}-fold probe) in {result['seconds']:.1f} s → {out}")
    for label, key in (("suspected flips", "suspect_flip"), ("near-duplicates", "duplicates"),
                       ("outliers", "outliers"), ("chosen = rejected", "identical")):
        print(f"  {label:<18} {summary[key]:>8,}  ({summary[key] / n:.1%})")
    print(f"  {'chosen longer':<18} {summary['chosen_longer_share']:>8.1%}  (length rule accuracy "
          f"{summary['length_baseline']:.1%}, {summary['length_baseline_direction']})")
    print(f"  the flip probe agrees with {summary['probe_oof_accuracy']:.1%} of the labels out of fold")
    if selection is not None:
        print(f"clean subset: {result['n_clean']:,} of {n:,} pairs (dropping {', '.join(drop)}) → {clean_out}")
    return 0

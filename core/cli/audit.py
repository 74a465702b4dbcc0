"""``alignscope audit``: flag suspected flipped labels, near-duplicates, outliers and length bias,
and, with ``--calibrate``, say how often the flags are right on this data.

``alignscope audit DATA --out AUDIT.parquet [--embeddings EMB.npy] [audit options] [--calibrate
[--planted-rate 0.05] [--repeats 3] [--target-precision 0.8]] [--clean-out SEL.parquet [--drop
FLAGS]] [--fix-out FIXED.jsonl|.parquet [--fix-threshold 0.5]] [--json] [--force]``

Every audit option is a flag generated from :class:`alignscope.audit.AuditConfig` and
:class:`alignscope.audit.CalibrationConfig` (:mod:`alignscope.cli.config_flags`). Writes the
per-pair audit table (:func:`alignscope.audit.audit`; with ``--calibrate`` also
``flip_probability``) to ``AUDIT.parquet``; ``--clean-out`` the pairs without the ``--drop`` flags
as an ordinary pair-level selection (method ``clean``); ``--fix-out`` the whole data with the
labels of the flagged pairs whose flip probability reaches ``--fix-threshold`` swapped back (a
data file with a bool column ``audit_swapped``; needs ``--calibrate``). Bad input — fewer pairs
than folds, an output that exists without ``--force``, an unknown flag in ``--drop``, embeddings of
the wrong length, a calibration flag without ``--calibrate`` — is one line and exit 2, and nothing is
written; every file is written atomically, and only after everything was computed.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from alignscope.audit import (
    audit,
    audit_cached,
    audit_summary,
    calibrate_audit,
    clean_selection,
    write_audit,
    write_fixed,
)
from alignscope.audit.config import (
    AuditConfig,
    AuditError,
    CalibrationConfig,
    audit_option_fields,
    requirement_problem,
)
from alignscope.cli.common import add_source_options, load_data
from alignscope.cli.config_flags import add_config_arguments
from alignscope.embed.embeddings import Embeddings
from alignscope.embed.encoders import embed
from alignscope.options import parse_list

__all__ = ["add_audit_command", "cmd_audit", "audit_configs_from_args"]

FLAG_NAMES = ("suspect_flip", "is_duplicate", "is_outlier", "identical")  # alignscope.audit.FLAGS, without sklearn


def add_audit_command(commands: Any) -> argparse.ArgumentParser:
    """Add the ``audit`` subcommand to an argparse subparsers object; returns its parser."""
    parser = commands.add_parser("audit", help="suspected flipped labels, near-duplicates, outliers, length bias")
    parser.add_argument("path", metavar="DATA", help="data: file, datasets folder, hub id or demo[:N[:SEED]]")
    add_source_options(parser)
    parser.add_argument("--embeddings", metavar="EMB.npy",
                        help="precomputed completion embeddings (2N rows: chosen then rejected) instead of --encoder")
    parser.add_argument("--out", required=True, metavar="AUDIT.parquet", help="the per-pair audit table")
    parser.add_argument("--clean-out", metavar="SEL.parquet", help="also write the clean subset as a selection")
    parser.add_argument("--drop", default=None,
                        help=f"flags that drop a pair from the clean subset (default {','.join(FLAG_NAMES)})")
    parser.add_argument("--fix-out", metavar="FIXED.jsonl",
                        help="also write the data with the labels of likely flips swapped back (.jsonl or .parquet; "
                             "needs --calibrate)")
    parser.add_argument("--force", action="store_true", help="overwrite existing outputs")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    # Every audit option, generated from the config dataclasses (help, type, bounds, default).
    add_config_arguments(parser, [AuditConfig, CalibrationConfig])
    parser.set_defaults(func=cmd_audit)
    return parser


def audit_configs_from_args(args: argparse.Namespace) -> tuple[AuditConfig, CalibrationConfig]:
    """The two configs from the parsed flags (an unset flag keeps the dataclass default);
    a bad value or a calibration flag without ``--calibrate`` is a one-line :class:`AuditError`."""
    fields = audit_option_fields()
    given = {name: getattr(args, name) for name in fields if getattr(args, name, None) is not None}
    problem = requirement_problem(given)
    if problem:
        raise AuditError(problem)
    audit_names = set(audit_option_fields(AuditConfig))
    config = AuditConfig(**{k: v for k, v in given.items() if k in audit_names}).validate()
    calibration = CalibrationConfig(**{k: v for k, v in given.items() if k not in audit_names}).validate()
    return config, calibration


def _check_output(out: Path, force: bool, suffixes: tuple[str, ...] = (".parquet",)) -> None:
    if not out.name.endswith(suffixes):
        raise AuditError(f"{out.name}: the output must end with {' or '.join(suffixes)}")
    if out.exists() and not force:
        raise AuditError(f"{out}: already exists (pass --force to overwrite)")


def cmd_audit(args: argparse.Namespace) -> int:
    """Run the ``audit`` subcommand (see the module docstring). Returns the exit code 0."""
    config, calibration = audit_configs_from_args(args)
    if args.drop is not None and not args.clean_out:
        raise AuditError("--drop applies to the clean subset: give --clean-out SEL.parquet too")
    if args.fix_out and not calibration.calibrate:
        raise AuditError("--fix-out needs --calibrate: a label is swapped back only where its calibrated flip "
                         "probability says so")
    drop = FLAG_NAMES if args.drop is None else tuple(parse_list(args.drop))
    unknown = [d for d in drop if d not in FLAG_NAMES]
    if unknown:
        raise AuditError(f"--drop: unknown flag {unknown[0]!r}; choose from {', '.join(FLAG_NAMES)}")
    if not drop:
        raise AuditError("--drop is empty; name at least one of " + ", ".join(FLAG_NAMES))
    outputs = {"--out": Path(args.out)}
    _check_output(outputs["--out"], args.force)
    if args.clean_out:
        outputs["--clean-out"] = Path(args.clean_out)
        _check_output(outputs["--clean-out"], args.force)
    if args.fix_out:
        outputs["--fix-out"] = Path(args.fix_out)
        _check_output(outputs["--fix-out"], args.force, (".jsonl", ".parquet"))
    resolved = [p.resolve() for p in outputs.values()]
    if len(set(resolved)) < len(resolved):
        raise AuditError(f"{', '.join(outputs)} must name different files")
    data = load_data(args)
    if data.n_pairs < config.folds:
        raise AuditError(f"the data has {data.n_pairs} pairs, fewer than --folds {config.folds}")
    embeddings, encoder = None, config.encoder
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
    result = _run(data, embeddings, encoder, config, calibration, drop, outputs, show_progress=not args.json)
    if args.json:
        print(json.dumps(result, default=str))
    else:
        _print(result, config, drop)
    return 0


def _run(data, embeddings, encoder, config, calibration, drop, outputs, *, show_progress) -> dict[str, Any]:
    """Audit (and calibrate), then write every output; returns the result to print."""

    bar = _progress_bar(show_progress, total=1 + (calibration.repeats if calibration.calibrate else 0))
    done = [0]

    def report(offset: int):
        def tell(fraction: float, message: str) -> None:
            if bar is not None:
                bar.n = round(offset + fraction, 3)
                bar.set_postfix_str(message)
                bar.refresh()
        return tell

    given = embeddings is not None
    if embeddings is None:
        embeddings = embed(data, config.encoder, "completion", progress=show_progress)
    second = embed(data, config.second_encoder, "completion", progress=show_progress) if config.second_encoder else None
    if given:  # a file of the user's: audited as given
        table = audit(data, embeddings, config=config, second_embeddings=second, report=report(0))
    else:  # the shared cache: an audit the Audit page, a sweep or an earlier command made is reused
        table = audit_cached(data, config, report=report(0))
    table.attrs["alignscope_audit"]["encoder"] = encoder
    done[0] = 1
    if calibration.calibrate:
        def tell(fraction: float, message: str) -> None:
            report(1)(fraction * calibration.repeats, message)
        table = calibrate_audit(data, table, embeddings, config=config, calibration=calibration,
                                second_embeddings=second, report=tell)
    if bar is not None:
        bar.n = bar.total
        bar.close()
    summary = audit_summary(data, table)
    selection = clean_selection(data, table, drop) if "--clean-out" in outputs else None
    write_audit(table, outputs["--out"])
    result: dict[str, Any] = {"out": str(outputs["--out"]), **{k: v for k, v in summary.items() if k != "config"}}
    if selection is not None:
        selection.write(outputs["--clean-out"])
        result.update(clean_out=str(outputs["--clean-out"]), drop=list(drop), n_clean=selection.n_selected)
    if "--fix-out" in outputs:
        write_fixed(data, table, outputs["--fix-out"], calibration.fix_threshold)
        result.update(fix_out=str(outputs["--fix-out"]), fix_threshold=calibration.fix_threshold,
                      n_fixed=int(summary["calibration"]["n_fix"]))
    result["encoder"] = encoder
    result["signal_weights"] = table.attrs["alignscope_audit"].get("signal_weights")
    result["seconds"] = table.attrs["alignscope_audit"]["timings"]["total_s"]
    return result


def _progress_bar(show: bool, total: int):
    if not show:
        return None
    from tqdm import tqdm

    return tqdm(total=total, unit="audit", desc="audit", bar_format="{l_bar}{bar}| {n:.1f}/{total} audits "
                                                                     "[{elapsed}<{remaining}{postfix}]")


def _print(result: dict[str, Any], config: AuditConfig, drop: tuple[str, ...]) -> None:
    n = result["n_pairs"]
    print(f"audited {n:,} pairs ({result['encoder']}, {config.folds}-fold flip model) in {result['seconds']:.1f} s "
          f"→ {result['out']}")
    for label, key in (("suspected flips", "suspect_flip"), ("near-duplicates", "duplicates"),
                       ("outliers", "outliers"), ("chosen = rejected", "identical")):
        print(f"  {label:<18} {result[key]:>8,}  ({result[key] / n:.1%})")
    print(f"  {'chosen longer':<18} {result['chosen_longer_share']:>8.1%}  (length rule accuracy "
          f"{result['length_baseline']:.1%}, {result['length_baseline_direction']})")
    agreement = ", ".join(f"{name} {share:.1%}" for name, share in result["signal_agreement"].items())
    print(f"  the flip model agrees with {result['probe_oof_accuracy']:.1%} of the labels out of fold "
          f"(each signal alone: {agreement})")
    calibration = result.get("calibration")
    if calibration:
        print(f"self-calibration ({calibration['repeats']} planted copies, "
              f"{calibration['planted_rate']:.0%} flips each):")
        for sentence in calibration["sentences"]:
            print(f"  {sentence}")
    if "clean_out" in result:
        print(f"clean subset: {result['n_clean']:,} of {n:,} pairs (dropping {', '.join(drop)}) → {result['clean_out']}")
    if "fix_out" in result:
        print(f"fixed labels: {result['n_fixed']:,} pairs swapped back (flagged, flip probability ≥ "
              f"{result['fix_threshold']:g}) → {result['fix_out']}")

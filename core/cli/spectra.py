"""``alignscope spectra``: spectral imbalance diagnostics of one or more encoders on a data set.

``alignscope spectra DATA --encoders minilm,lm-last-token:tiny --groups label|source|component|COLUMN
--out DIR [--json]`` writes into ``DIR``:

* ``metrics.csv`` / ``metrics.json``: one row per (encoder, group) — the spectral metrics with
  bootstrap intervals, the probe's observed per-group error and the Gaussian plug-in prediction;
* ``encoders.csv`` / ``encoders.json``: one row per encoder — imbalance scores and the probe gap;
* ``spectra.npz``: per encoder and group the eigenvalues (``<encoder>/<group>/eigenvalues``) and the
  band (``…/band_low``, ``…/band_high``);
* plots: ``scree-<encoder>.*``, ``error-<encoder>.*``, ``encoders.*`` — PNG when ``kaleido`` is
  importable, else the Plotly figure JSON (``.plotly.json``; open with ``plotly.io.read_json``),
  which needs no network (an HTML page would fetch plotly.js from a CDN). The figures are the
  Spectra page's own (:mod:`alignscope.app.charts`, plotly only, no Streamlit), imported when the
  plots are drawn; :mod:`alignscope.spectra` computes numbers only.

Every file is written atomically (:mod:`alignscope.files`).

Bad input (unknown grouping, one group, too few rows, NaN embeddings) raises :class:`SpectraError`
(a ``ValueError``) with a one-line message; the CLI's ``main()`` prints it and exits 2.
Method: Kaushik et al., ICML 2024 (arXiv:2402.11742); see :mod:`alignscope.spectra`.
"""
from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

from alignscope.embed.encoders import DEFAULT_ENCODER, embed, parse_encoder
from alignscope.files import atomic_write, write_json
from alignscope.options import parse_list

__all__ = ["add_spectra_command", "cmd_spectra", "run_spectra"]


def add_spectra_command(commands: Any) -> argparse.ArgumentParser:
    """Add the ``spectra`` subcommand to an argparse subparsers object; returns its parser."""
    parser = commands.add_parser("spectra", help="spectral imbalance of encoders across groups (Kaushik et al. 2024)")
    parser.add_argument("path", help="data: file, datasets folder, hub id or demo[:N[:SEED]]")
    parser.add_argument("--encoders", default=DEFAULT_ENCODER,
                        help=f"comma-separated encoders, e.g. static,minilm,lm-last-token:tiny (default {DEFAULT_ENCODER})")
    parser.add_argument("--groups", default="label",
                        help="label (chosen vs rejected), component (ISA's GMM), or a metadata column such as source")
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--sample", type=int, default=None, metavar="N",
                        help="embed a seeded sample first: N pairs per value of a metadata column "
                             "(N pairs in all for label/component)")
    parser.add_argument("--n-per-group", type=int, default=None,
                        help="balanced size per group (default: the smallest group, at most 5,000)")
    parser.add_argument("--n-boot", type=int, default=100, help="bootstrap replicates (default 100)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--score", default="trace_ratio",
                        help="imbalance score on the encoder plot's x axis (trace_ratio, lambda1_ratio, "
                             "alpha_diff, log_spectrum_distance)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(func=cmd_spectra)
    return parser


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-") or "x"


def run_spectra(data: Any, encoders: list[str], grouping: str, out: Path, *, n_per_group: int | None = None,
                n_boot: int = 100, seed: int = 0, score: str = "trace_ratio", progress: bool = False) -> dict:
    """Embed ``data`` with each encoder, run :func:`alignscope.spectra.spectral_imbalance` over
    ``grouping`` and write the files listed in the module docstring. Returns a summary dict."""
    import numpy as np
    import pandas as pd

    from alignscope.spectra import IMBALANCE_SCORES, SpectraError, compare_encoders, embeddings_report, spectrum_band

    if score not in IMBALANCE_SCORES:
        raise SpectraError(f"--score must be one of {', '.join(IMBALANCE_SCORES)}; got {score!r}")
    if not encoders:
        raise SpectraError("--encoders is empty")
    for name in encoders:
        parse_encoder(name)  # one-line error for an unknown encoder, before any work
    if grouping not in ("label", "component") and grouping not in data.metadata_columns:
        raise SpectraError(f"unknown grouping {grouping!r}; use label, component or a metadata column "
                           f"({', '.join(data.metadata_columns) or 'none'})")
    # The figures are presentation, kept with the app's other charts (plotly only, no Streamlit).
    from alignscope.app.charts import encoder_figure, error_figure, scree_figure

    out.mkdir(parents=True, exist_ok=True)
    reports, rows, arrays, plots = {}, [], {}, []
    for name in encoders:
        emb = embed(data, name, "completion", progress=progress)
        report = embeddings_report(emb, data, grouping, n_per_group=n_per_group, n_boot=n_boot, seed=seed)
        reports[name] = report
        table = report.table()
        table.insert(0, "encoder", name)
        rows.append(table)
        for group, spec in report.spectra.items():
            low, high = spectrum_band(spec, report.config["ci"])
            key = f"{_safe(name)}/{_safe(group)}"
            arrays[f"{key}/eigenvalues"] = spec.eigenvalues
            arrays[f"{key}/band_low"], arrays[f"{key}/band_high"] = low, high
        plots.append((f"scree-{_safe(name)}", scree_figure(report, title=f"Eigen-spectra per {grouping} ({name})")))
        plots.append((f"error-{_safe(name)}", error_figure(report, title=f"Predicted vs observed error ({name})")))
    metrics = pd.concat(rows, ignore_index=True)
    encoders_table = compare_encoders(reports)
    plots.append(("encoders", encoder_figure(encoders_table, score)))
    for name, table in (("metrics.csv", metrics), ("encoders.csv", encoders_table)):
        with atomic_write(out / name, "w") as handle:
            table.to_csv(handle, index=False)
    write_json(out / "metrics.json", json.loads(metrics.to_json(orient="records")))
    write_json(out / "encoders.json", json.loads(encoders_table.to_json(orient="records")))
    with atomic_write(out / "spectra.npz") as handle:
        np.savez_compressed(handle, **arrays)
    written = [str(out / f) for f in ("metrics.csv", "metrics.json", "encoders.csv", "encoders.json", "spectra.npz")]
    try:
        import kaleido  # noqa: F401

        png = True
    except ImportError:
        png = False
    for stem, fig in plots:
        path = out / (f"{stem}.png" if png else f"{stem}.plotly.json")
        with atomic_write(path, "wb" if png else "w") as handle:
            handle.write(fig.to_image(format="png") if png else fig.to_json())
        written.append(str(path))
    return {"out": str(out), "grouping": grouping, "encoders": encoders, "n_pairs": data.n_pairs,
            "summary": json.loads(encoders_table.to_json(orient="records")), "files": written}


def cmd_spectra(args: argparse.Namespace) -> int:
    """Run the ``spectra`` subcommand (see the module docstring). Returns the exit code 0."""
    from alignscope.data.preferences import load_preferences
    from alignscope.spectra import SpectraError, sample_pairs

    encoders = parse_list(args.encoders)
    data = load_preferences(args.path)
    if args.sample is not None:
        data = sample_pairs(data, args.groups, args.sample, seed=args.seed)
    if args.n_boot < 0:
        raise SpectraError("--n-boot must be >= 0")
    result = run_spectra(data, encoders, args.groups, Path(args.out), n_per_group=args.n_per_group,
                         n_boot=args.n_boot, seed=args.seed, score=args.score, progress=not args.json)
    if args.json:
        print(json.dumps(result, default=str))
    else:
        for row in result["summary"]:
            print(f"{row['encoder']:<28} trace ratio {row['trace_ratio']:.3f}  λ1 ratio {row['lambda1_ratio']:.3f}  "
                  f"Δα {row['alpha_diff']:.3f}  probe gap {row['probe_gap']:.3f} "
                  f"(predicted {row['predicted_gap']:.3f})")
        print(f"wrote {len(result['files'])} files to {result['out']}")
    return 0

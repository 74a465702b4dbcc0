"""One self-contained HTML report of a preference data set: what it is, what the audit found, which
pairs were selected, how many pairs are enough (the scaling answer) and what training on them did,
each number beside the rule it must beat, and the commands that reproduce it.

* :func:`report_content` ``(data, *, audit=None, selection=None, sweep=None, runs=(), n_boot=500)
  -> ReportContent`` gathers the numbers (plain dicts and lists; the sweep's curves and fits kept
  for the figures). Inputs made on other data are refused with a :class:`ReportError`.
* :func:`render_html` ``(content) -> str`` writes ONE HTML document: plotly.js inlined once from the
  installed plotly package, every figure embedded as data, every text of the data set HTML-escaped,
  and a Content-Security-Policy that forbids the page any request, so it opens offline and shows
  the same thing everywhere. The figures are the pages' own (:mod:`alignscope.app.charts`, plotly
  only, no Streamlit), imported when the document is drawn, as ``alignscope spectra`` does.
* :func:`write_report` writes it atomically (:func:`alignscope.files.atomic_write`).

``alignscope report`` (:mod:`alignscope.cli.report`) and the app's "Download report" button call these.

Why one module of ~640 lines: gathering the numbers and writing the one document that shows them
change together (a number added here is a paragraph there); about half of it is the HTML itself.
"""
from __future__ import annotations

import datetime
import html
import json
import math
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from alignscope import __version__
from alignscope.audit import AuditError, audit_summary
from alignscope.errors import AlignscopeError
from alignscope.files import atomic_write
from alignscope.scaling.recommend import size_text
from alignscope.select.stats import seed_agreement_text

__all__ = ["ReportError", "ReportContent", "length_pattern", "scaling_answer", "report_content", "render_html",
           "build_report", "write_report", "reproduce_commands"]

EXAMPLE_CHARS = 600    # dataset text per example field in the report (the rest is cut, with a mark)
N_EXAMPLES = 5         # examples per audit flag


class ReportError(AlignscopeError):
    """A report that cannot be made as asked (inputs of other data, an unreadable folder); one line."""


@dataclass
class ReportContent:
    """Everything a report shows. ``scaling`` keeps the sweep's ``curves`` (DataFrame) and ``fits``
    (PlateauFit objects) for the figures; every other field is plain JSON-like data."""

    data: dict[str, Any]
    audit: dict[str, Any] | None = None
    selection: dict[str, Any] | None = None
    scaling: dict[str, Any] | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    commands: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    generated_at: str = ""
    version: str = ""


# ============================================================================== the numbers
def length_pattern(data: Any) -> dict[str, Any]:
    """How often the longer answer is the chosen one (whitespace words; ties apart) and the accuracy
    of the length rule on these labels, its direction by majority (ties count ½): the score that any
    reward model must beat on this data."""
    from alignscope.data.preferences import length_table

    lengths = length_table(data)
    chosen, rejected = lengths["chosen"].to_numpy(), lengths["rejected"].to_numpy()
    n = len(lengths)
    longer, shorter, ties = (float(np.mean(v)) if n else math.nan
                             for v in (chosen > rejected, chosen < rejected, chosen == rejected))
    acc_longer = longer + 0.5 * ties
    return {"n_pairs": int(n), "chosen_longer_share": longer, "chosen_shorter_share": shorter, "tie_share": ties,
            "length_rule_accuracy": max(acc_longer, 1 - acc_longer) if n else math.nan,
            "length_rule_direction": "longer wins" if acc_longer >= 0.5 else "shorter wins",
            "median_words": {c: float(lengths[c].median()) for c in lengths.columns},
            "lengths": lengths}


def _data_section(data: Any) -> dict[str, Any]:
    report = data.report
    return {"source": str(data.source), "n_pairs": int(data.n_pairs), "format": data.format,
            "fingerprint": data.fingerprint, "metadata_columns": list(data.metadata_columns),
            "is_demo": bool(data.is_demo), "load_options": dict(data.load_options),
            "validation": {"n_read": int(report.n_read), "n_dropped": int(report.n_dropped),
                           "reasons": report.reasons(), "warnings": dict(report.warnings)},
            "length": length_pattern(data)}


def _texts_of(data: Any, pair: int) -> dict[str, str]:
    from alignscope.data.preferences import render_text

    return {c: render_text(data.frame.at[pair, c]) for c in ("prompt", "chosen", "rejected")}


def _audit_section(data: Any, table: pd.DataFrame) -> dict[str, Any]:

    try:
        summary = audit_summary(data, table)
    except AuditError as err:
        raise ReportError(f"the audit does not fit this data: {err}") from None
    made_on = table.attrs.get("alignscope_audit", {}).get("data_fingerprint")
    if made_on and made_on != data.fingerprint:
        raise ReportError(f"the audit was made on data with fingerprint {made_on}, this data has {data.fingerprint}")
    n = summary["n_pairs"]
    counts = [{"flag": label, "pairs": int(summary[key]), "share": summary[key] / n if n else math.nan}
              for label, key in (("suspected flipped label", "suspect_flip"), ("near-duplicate (a copy)", "duplicates"),
                                 ("outlier", "outliers"), ("chosen = rejected", "identical"))]
    section: dict[str, Any] = {"summary": {k: v for k, v in summary.items() if k != "by_column"}, "counts": counts,
                               "by_column": summary.get("by_column", {}), "config": summary.get("config", {})}
    # Calibration, where the audit table has it (a flip probability per pair: P(the label is wrong)).
    suspect = table["suspect_flip"].to_numpy(dtype=bool)
    if "flip_probability" in table.columns:
        probability = table["flip_probability"].to_numpy(dtype=float)
        section["calibration"] = {
            "precision": float(np.nanmean(probability[suspect])) if suspect.any() else None,
            "expected_flips": float(np.nansum(probability)),
            "details": {k: v for k, v in (summary.get("calibration") or table.attrs.get("alignscope_audit", {})
                                          .get("calibration") or {}).items() if not isinstance(v, (list, dict))}}
    else:
        section["calibration"] = None
    examples: dict[str, list[dict[str, Any]]] = {}
    flips = table[suspect].sort_values("flip_score", ascending=False, kind="stable").head(N_EXAMPLES)
    examples["suspected flips"] = [{"pair": int(i), "why": str(table.at[i, "reasons"]), **_texts_of(data, int(i))}
                                   for i in flips["index"]]
    copies = table[table["is_duplicate"].to_numpy(dtype=bool)].head(N_EXAMPLES)
    examples["near-duplicates"] = [{"pair": int(i), "why": str(table.at[i, "reasons"]), "copy_of": int(g),
                                    **_texts_of(data, int(i))} for i, g in zip(copies["index"], copies["dup_group"])]
    outliers = table[table["is_outlier"].to_numpy(dtype=bool)].sort_values("outlier_score", ascending=False,
                                                                          kind="stable").head(N_EXAMPLES)
    examples["outliers"] = [{"pair": int(i), "why": str(table.at[i, "reasons"]), **_texts_of(data, int(i))}
                            for i in outliers["index"]]
    section["examples"] = examples
    return section


def _selection_section(data: Any, selection: Any) -> dict[str, Any]:
    from alignscope.select.selection import Selection

    selection = Selection.coerce(selection)
    selection.check_against(data, error=ReportError, name="the selection")
    pairs = selection.pairs("any")
    config = dict(selection.config)
    return {"method": selection.method or "?", "unit": selection.unit, "n_points": int(len(selection)),
            "n_selected": int(selection.n_selected), "pairs_kept": int(len(np.unique(pairs))),
            "share_of_pairs": len(np.unique(pairs)) / data.n_pairs if data.n_pairs else math.nan,
            "seed": config.get("seed"), "encoder": config.get("encoder"), "fraction": config.get("fraction"),
            "name": config.get("name"), "seed_agreement": config.get("seed_agreement"), "config": config}


def scaling_answer(recommendation: Mapping[str, Any]) -> dict[str, Any]:
    """The sweep's headline as the report shows it: the lines of
    :func:`alignscope.scaling.recommend.recommend` (the CLI and the Scaling page print the same),
    and ``kind``: ``recommend`` (a size to act on, one method ahead), ``tie`` (a size to act on, read
    from the tied methods' neutral curve) or ``cannot tell`` (no size to act on)."""
    if recommendation.get("status") != "size":
        kind = "cannot tell"
    else:
        kind = "tie" if recommendation.get("tie") else "recommend"
    return {"kind": kind, "lines": list(recommendation.get("lines") or [recommendation.get("headline", "")])}


def _scaling_section(data: Any, sweep_dir: Path, n_boot: int, seed: int) -> dict[str, Any]:
    from alignscope.scaling.results import sweep_fits
    from alignscope.scaling.sweep import SWEEP_FILE, SweepConfig

    try:
        recorded = json.loads((sweep_dir / SWEEP_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise ReportError(f"{sweep_dir}: not a sweep folder (no readable {SWEEP_FILE})") from None
    made_on = recorded.get("data", {}).get("fingerprint")
    if made_on and made_on != data.fingerprint:
        raise ReportError(f"the sweep {sweep_dir.name} was run on data with fingerprint {made_on}, this data has "
                          f"{data.fingerprint}")
    config = SweepConfig.from_dict(recorded["config"])
    found = sweep_fits(sweep_dir, n_boot=n_boot, seed=seed)
    summary, curves, fits = found["summary"], found["curves"], found["fits"]
    points = curves.drop_duplicates(["method", "fraction", "seed"]) if len(curves) else curves
    pool = None
    if len(curves) and "n_train_pairs" in curves.columns:
        full = curves.loc[curves["fraction"] == 1.0, "n_train_pairs"].dropna()
        pool = int(full.max()) if len(full) else None
    metric, q = summary["metric"], float(summary["q"])
    rows = []
    for method, fit in fits.items():
        if isinstance(fit, str):
            rows.append({"method": method, "note": fit})
            continue
        row = {"method": method, "plateau r": f"{fit.r:.4f} {_ci(fit.r_ci95, '.4f')}",
               "no-data a": f"{fit.a:.4f} {_ci(fit.a_ci95, '.4f')}",
               "beats baseline": {True: "yes", False: "no", None: "cannot tell"}[fit.beats_baseline]}
        for name, target in fit.targets.items():
            x = target.get("recommended_fraction")
            row[f"{q:.0%} of the {name}"] = ("—" if x is None or fit.beats_baseline is False else
                                            size_text(x, target.get("recommended_fraction_ci95"), pool))
        row["note"] = "; ".join(fit.warnings)
        rows.append(row)
    answer = scaling_answer(summary["recommendation"])
    return {"folder": str(sweep_dir), "name": sweep_dir.name, "config": config.to_dict(),
            "n_points": int(summary.get("n_points", len(points))), "pool_pairs": pool, "metric": metric, "q": q,
            "baseline": summary.get("baseline"), "baseline_rule": summary.get("baseline_rule"),
            "verdicts": list(summary.get("verdicts") or []), "vs_random": summary.get("vs_random") or {},
            "circular": bool(summary.get("circular")),
            "table": rows, "answer": answer, "curves": curves, "fits": fits}


def _run_section(run_dir: Path) -> dict[str, Any]:
    def read(name: str) -> dict:
        try:
            return json.loads((run_dir / name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    config, evaluation = read("config.json"), read("eval.json")
    if not config and not evaluation:
        raise ReportError(f"{run_dir}: not a training run folder (no config.json or eval.json)")
    training = evaluation.get("training") or {}
    selection = config.get("selection") or {}
    sel_config = selection.get("config") or {}
    return {"name": run_dir.name, "folder": str(run_dir), "method": config.get("method") or training.get("method"),
            "model": (config.get("model") or {}).get("spec") or training.get("model"),
            "data_fingerprint": (config.get("data") or {}).get("fingerprint"),
            "selection": selection.get("path"), "selection_method": sel_config.get("method"),
            "n_train_pairs": training.get("n_train_pairs") or (config.get("training_set") or {}).get("n_pairs"),
            "steps": training.get("steps"), "train_config": config.get("train_config") or {},
            "job_config": config.get("config") or {}, "eval": evaluation or None}


def report_content(data: Any, *, audit: pd.DataFrame | None = None, selection: Any = None,
                   sweep: str | Path | None = None, runs: Iterable[str | Path] = (), n_boot: int = 500,
                   seed: int = 0, paths: Mapping[str, Any] | None = None) -> ReportContent:
    """Gather the report of ``data`` (a PreferenceData). ``audit``: the audit table
    (:func:`alignscope.audit.audit` or :func:`~alignscope.audit.read_audit`); ``selection``: a
    Selection (or a path); ``sweep``: a sweep folder; ``runs``: training run folders; ``paths``:
    where the inputs live (``audit``, ``selection``, ``sweep``, ``runs``), for the commands.
    Raises :class:`ReportError` when an input was made on other data."""

    paths = dict(paths or {})
    content = ReportContent(data=_data_section(data), version=__version__,
                            generated_at=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"))
    if audit is not None:
        content.audit = _audit_section(data, audit)
    if selection is not None:
        if isinstance(selection, (str, Path)):
            from alignscope.select.selection import Selection

            paths.setdefault("selection", str(selection))
            try:
                selection = Selection.read(selection)
            except (OSError, ValueError) as err:
                raise ReportError(f"{selection}: not a selection file ({err})") from None
        content.selection = _selection_section(data, selection)
    if sweep is not None:
        paths.setdefault("sweep", str(sweep))
        content.scaling = _scaling_section(data, Path(sweep), n_boot, seed)
    for run_dir in runs:
        run = _run_section(Path(run_dir))
        if run["data_fingerprint"] and run["data_fingerprint"] != data.fingerprint:
            raise ReportError(f"the run {run['name']} trained on data with fingerprint {run['data_fingerprint']}, "
                              f"this data has {data.fingerprint}")
        content.runs.append(run)
    paths.setdefault("runs", [r["folder"] for r in content.runs])
    content.commands = reproduce_commands(content, paths)
    return content


# ============================================================================== commands
def _load_flags(options: Mapping[str, Any]) -> list[str]:
    flags: list[str] = []
    if options.get("split"):
        flags += ["--split", str(options["split"])]
    for canonical, name in (options.get("columns") or {}).items():
        flags += ["--column", f"{canonical}={name}"]
    if options.get("drop_invalid"):
        flags.append("--drop-invalid")
    if options.get("max_row_chars"):
        flags += ["--max-row-chars", str(options["max_row_chars"])]
    return flags


def _join(values: Sequence[Any]) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values)


def _train_flags(run: Mapping[str, Any]) -> list[str]:
    """The training flags that differ from the method's defaults (``--`` + the field name with dashes)."""
    from alignscope.train.config import option_defaults

    method = run.get("method") or "dpo"
    try:
        defaults = option_defaults(method)
    except Exception:  # noqa: BLE001 - a run of an older version: the flags we can name are enough
        defaults = {}
    used = {**run.get("train_config", {}), **{k: v for k, v in run.get("job_config", {}).items() if k in defaults}}
    flags: list[str] = []
    for name, value in sorted(used.items()):
        if name not in defaults or value == defaults[name] or value is None or name in ("method",):
            continue
        flag = "--" + name.replace("_", "-")
        if isinstance(value, bool):
            flags.append(flag if value else "--no-" + name.replace("_", "-"))
        elif isinstance(value, (list, tuple)):
            flags += [flag, _join(value)]
        else:
            flags += [flag, f"{value:g}" if isinstance(value, float) else str(value)]
    return flags


def reproduce_commands(content: ReportContent, paths: Mapping[str, Any]) -> list[tuple[str, str]]:
    """``(what, command)`` for every part of the report, in the order to run them."""
    source = content.data["source"]
    load = _load_flags(content.data["load_options"])
    out: list[tuple[str, str]] = [("Describe and validate the data", shlex.join(["alignscope", "data", "info", source, *load]))]
    audit_path = str(paths.get("audit") or "audit.parquet")
    clean = content.selection is not None and content.selection["method"] == "clean"
    if content.audit is not None and not clean:  # the clean selection's command writes the audit too
        cfg = content.audit["config"]
        parts = ["alignscope", "audit", source, *load]
        parts += ["--encoder", str(cfg["encoder"])] if cfg.get("encoder") else ["--embeddings", "EMB.npy"]
        parts += ["--folds", str(cfg.get("folds", 5)), "--seed", str(cfg.get("seed", 0)), "--out", audit_path]
        out.append(("Audit every pair", shlex.join(parts)))
    if content.selection is not None:
        sel, cfg = content.selection, content.selection["config"]
        sel_path = str(paths.get("selection") or "selection.parquet")
        method = sel["method"]
        if method == "clean":
            audit_cfg = cfg.get("audit") or {}
            parts = ["alignscope", "audit", source, *load]
            parts += ["--encoder", str(audit_cfg["encoder"])] if audit_cfg.get("encoder") else ["--embeddings", "EMB.npy"]
            parts += ["--folds", str(audit_cfg.get("folds", 5)), "--seed", str(audit_cfg.get("seed", 0)),
                      "--out", audit_path, "--clean-out", sel_path,
                      "--drop", ",".join((cfg.get("options") or {}).get("drop") or [])]
            what = "The clean selection (pairs without the dropped flags)"
            if cfg.get("kept_copies"):
                what += "; the copies kept by hand on the Audit page are recorded in its config"
            out.append((what, shlex.join(parts)))
        elif method in ("isa", "random", "density", "kcenter", "llm"):
            parts = ["alignscope", "select", source, *load, "--method", method]
            parts += ["--fraction", f"{cfg['fraction']:g}"] if cfg.get("fraction") else ["--k", str(cfg.get("k"))]
            parts += ["--seed", str(cfg.get("seed") or 0), "--unit", str(sel["unit"])]
            if cfg.get("encoder"):
                parts += ["--encoder", str(cfg["encoder"])]
            options = cfg.get("options") or {}
            for name in ("covariance_type", "pca_dim", "n_init", "variant"):
                if method == "isa" and options.get(name) not in (None, "full", 1, "published"):
                    parts += ["--" + name.replace("_", "-"), str(options[name])]
            parts += ["--out", sel_path]
            out.append((f"The {method} selection", shlex.join(parts)))
        else:
            out.append((f"The {method} selection was made by hand (e.g. a lasso on the Map page): its file is the "
                        "record", f"# {sel_path}"))
    if content.scaling is not None:
        cfg = content.scaling["config"]
        parts = ["alignscope", "sweep", source, *load, "--mode", cfg["mode"], "--evaluator", cfg["evaluator"],
                 "--encoder", cfg["encoder"], "--metric", cfg["metric"], "--q", f"{cfg['q']:g}", "--target",
                 cfg["target"], "--seeds", _join(cfg["seeds"])]
        parts += ["--methods", _join(cfg["methods"]), "--fractions", _join(cfg["fractions"])] \
            if cfg["mode"] == "subsets" else ["--checkpoints", _join(cfg["checkpoints"])]
        if cfg.get("eval_encoder"):
            parts += ["--eval-encoder", cfg["eval_encoder"]]
        if cfg["evaluator"] != "probe":
            parts += ["--model", cfg["model"]] + (["--max-steps", str(cfg["max_steps"])] if cfg.get("max_steps") else [])
        parts += ["--out", str(paths.get("sweep") or "sweep")]
        out.append(("The scaling sweep (points, then the plateau fits)", shlex.join(parts)))
    for run, run_path in zip(content.runs, paths.get("runs") or []):
        parts = ["alignscope", "train", source, *load, "--method", str(run.get("method") or "dpo")]
        if run.get("selection"):
            given = paths.get("selection")  # the report's own selection, by the name it was given
            same = given and Path(str(given)).resolve() == Path(str(run["selection"])).resolve()
            parts += ["--selection", str(given if same else run["selection"])]
        parts += [*_train_flags(run), "--out", str(run_path)]
        out.append((f"Training run {run['name']}", shlex.join(parts)))
    parts = ["alignscope", "report", source, *load]
    if content.audit is not None:
        parts += ["--audit", audit_path]
    if content.selection is not None:
        parts += ["--selection", str(paths.get("selection") or "selection.parquet")]
    if content.scaling is not None:
        parts += ["--sweep", str(paths.get("sweep") or "sweep")]
    for run_path in paths.get("runs") or []:
        parts += ["--run", str(run_path)]
    out.append(("This report", shlex.join([*parts, "--out", "report.html"])))
    return out


# ============================================================================== HTML
def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _num(value: Any, fmt: str) -> str:
    return "—" if value is None or (isinstance(value, float) and not math.isfinite(value)) else format(value, fmt)


def _ci(values: Sequence[float] | None, fmt: str = ".1%") -> str:
    return "[no interval]" if not values else f"[{format(values[0], fmt)}, {format(values[1], fmt)}]"


def _table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "<p class='muted'>(none)</p>"
    columns = list(columns or dict.fromkeys(k for row in rows for k in row))
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{_e(_cell(row.get(c)))}</td>" for c in columns) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return "—" if not math.isfinite(value) else f"{value:.4g}"
    if isinstance(value, (list, dict)):
        return json.dumps(value, default=str)
    return str(value)


def _dl(items: Iterable[tuple[str, Any]]) -> str:
    return "<dl>" + "".join(f"<dt>{_e(k)}</dt><dd>{_e(_cell(v))}</dd>" for k, v in items) + "</dl>"


def _cut(text: str, limit: int = EXAMPLE_CHARS) -> str:
    return text if len(text) <= limit else text[:limit] + f" … [{len(text) - limit:,} more characters]"


def _example(example: Mapping[str, Any]) -> str:
    # Pair numbers as in the audit table and its reasons (from 0); the row of the file beside them.
    head = f"pair #{example['pair']} (row {example['pair'] + 1})" + (
        f", a copy of pair #{example['copy_of']}" if "copy_of" in example else "")
    fields = "".join(f"<div class='field'><span class='label {c}'>{c}</span><pre>{_e(_cut(example[c]))}</pre></div>"
                      for c in ("prompt", "chosen", "rejected"))
    return f"<div class='example'><p><b>{_e(head)}</b> {_e(example.get('why', ''))}</p>{fields}</div>"


class _Figures:
    """Plotly figures as ``<div>``s that share the one inlined plotly.js."""

    def __init__(self, charts: Any) -> None:
        self.charts, self.count = charts, 0

    def __call__(self, figure: Any) -> str:
        self.count += 1
        return self.charts.figure_div(figure, f"figure-{self.count}")


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1f2430;line-height:1.45}
h1{font-size:1.7em;margin-bottom:.2em}h2{border-bottom:2px solid #e3e6ee;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0;font-size:.92em}th,td{border:1px solid #d8dbe3;padding:.3em .55em;
text-align:left;vertical-align:top}th{background:#f3f5f9}
pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f7f8fa;padding:.5em .7em;border-radius:4px;margin:.2em 0}
dl{display:grid;grid-template-columns:max-content auto;gap:.15em 1em}dt{color:#555}dd{margin:0;overflow-wrap:anywhere}
.muted{color:#666}.answer{border-left:4px solid #1f77b4;background:#f2f7fc;padding:.6em 1em;margin:1em 0}
.answer.cannot{border-color:#d62728;background:#fdf3f3}.example{border:1px solid #e3e6ee;border-radius:6px;
padding:.4em .8em;margin:.6em 0}.label{font-size:.8em;text-transform:uppercase;color:#555}.chosen{color:#2ca02c}
.rejected{color:#d62728}code{background:#f3f5f9;padding:0 .2em}.cmd{font-family:ui-monospace,monospace}
nav a{margin-right:1em}
"""


def render_html(content: ReportContent) -> str:
    """The report as one HTML document (see the module docstring)."""
    import alignscope.app.charts as charts

    figure = _Figures(charts)
    data = content.data
    name = Path(data["source"]).name if not data["is_demo"] else data["source"]
    sections = [_render_data(content, figure, charts), _render_audit(content), _render_selection(content),
                _render_scaling(content, figure, charts), _render_runs(content, figure, charts),
                _render_commands(content)]
    nav = "".join(f"<a href='#{anchor}'>{label}</a>" for anchor, label in (
        ("data", "Data"), ("audit", "Audit"), ("selection", "Selection"), ("scaling", "How many pairs"),
        ("runs", "Training runs"), ("reproduce", "Reproduce")))
    # No request may leave the page: every figure and the library are inline, and the policy says so.
    policy = ("default-src 'none'; script-src 'unsafe-inline' 'unsafe-eval'; style-src 'unsafe-inline'; "
              "img-src data: blob:; font-src data:; connect-src 'none'")
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{policy}\">"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>alignscope report: {_e(name)}</title><style>{_CSS}</style>"
        f"<script type='text/javascript'>{charts.plotly_js()}</script></head><body>"
        f"<h1>alignscope report: {_e(name)}</h1>"
        f"<p class='muted'>{_e(data['n_pairs']):s} pairs · fingerprint <code>{_e(data['fingerprint'])}</code> · "
        f"generated {_e(content.generated_at)} by alignscope {_e(content.version)}. Self-contained: it makes no "
        f"request and opens offline.</p><nav>{nav}</nav>"
        + "".join(sections) + "</body></html>\n")


def _render_data(content: ReportContent, figure: _Figures, charts: Any) -> str:
    data, length = content.data, content.data["length"]
    validation = data["validation"]
    items = [("source", data["source"]), ("pairs", f"{data['n_pairs']:,}"), ("format", data["format"]),
             ("fingerprint", data["fingerprint"] + " (hash of the canonical rows)"),
             ("metadata columns", ", ".join(data["metadata_columns"]) or "none"),
             ("validation", f"{validation['n_read']:,} rows read, {validation['n_dropped']:,} dropped"
                            + (f" ({json.dumps(validation['reasons'])})" if validation["reasons"] else ""))]
    items += [("note", f"{count:,} {what}") for what, count in validation["warnings"].items()]
    demo = ("<p>Synthetic demo data generated by alignscope, with planted label flips, near-duplicates and "
            "low-quality pairs.</p>" if data["is_demo"] else "")
    medians = length["median_words"]
    pattern = (f"<p><b>Length pattern.</b> The chosen answer is the longer one in {length['chosen_longer_share']:.1%} "
               f"of the pairs, the shorter in {length['chosen_shorter_share']:.1%}, of equal length in "
               f"{length['tie_share']:.1%}. The length rule ({_e(length['length_rule_direction'])}) is right on "
               f"{length['length_rule_accuracy']:.1%} of these labels (ties count ½; fitted on all pairs): every "
               f"reward model must beat it. Median words: prompt {medians['prompt']:g}, chosen {medians['chosen']:g}, "
               f"rejected {medians['rejected']:g}.</p>")
    chart = figure(charts.length_histogram(length["lengths"], log_x=True))
    return f"<h2 id='data'>Data</h2>{demo}{_dl(items)}{pattern}{chart}"


def _render_audit(content: ReportContent) -> str:
    audit = content.audit
    if audit is None:
        return ("<h2 id='audit'>Audit</h2><p class='muted'>Not audited for this report (run <code>alignscope audit DATA "
                "--out audit.parquet</code> and pass <code>--audit audit.parquet</code>).</p>")
    summary = audit["summary"]
    counts = _table([{"flag": c["flag"], "pairs": f"{c['pairs']:,}", "share of pairs": f"{c['share']:.1%}"}
                     for c in audit["counts"]])
    calibration = audit["calibration"]
    if calibration is None:
        precision = ("<p><b>Not calibrated.</b> The flip scores are a probe's out-of-fold probabilities, not calibrated "
                     "probabilities that a label is wrong: how many of the suspected flips are real is not "
                     "estimated.</p>")
    else:
        details = "".join(f"; {_e(k)} {_e(_cell(v))}" for k, v in calibration["details"].items())
        precision = (f"<p><b>Estimated precision</b> of the suspected flips: {_num(calibration['precision'], '.1%')} "
                     f"of them are expected to be real flips (mean calibrated flip probability); "
                     f"{_num(calibration['expected_flips'], ',.0f')} flipped labels expected in the whole set{details}.</p>")
    probe = (f"<p>The probe behind the flip scores agrees with {summary['probe_oof_accuracy']:.1%} of the labels out of "
             f"fold; the length rule ({_e(summary['length_baseline_direction'])}) with "
             f"{summary['length_baseline']:.1%}. The weaker the probe, the more suspected flips are its own errors. "
             f"{summary['dup_groups']:,} near-duplicate groups (the first pair of each is kept).</p>")
    config = audit["config"]
    settings = _dl([(k, config.get(k)) for k in ("encoder", "folds", "seed", "dup_embed_threshold",
                                                 "dup_text_threshold", "outlier_z") if k in config])
    examples = "".join(f"<h3>Examples: {_e(kind)}</h3>" + ("".join(_example(x) for x in rows) or
                                                          "<p class='muted'>(none)</p>")
                       for kind, rows in audit["examples"].items())
    return f"<h2 id='audit'>Audit</h2>{counts}{precision}{probe}{settings}{examples}"


def _render_selection(content: ReportContent) -> str:
    sel = content.selection
    if sel is None:
        return "<h2 id='selection'>Selection</h2><p class='muted'>No selection given: every pair.</p>"
    items = [("method", sel["method"]), ("pairs kept", f"{sel['pairs_kept']:,} ({sel['share_of_pairs']:.1%} of the pairs)"),
             ("points selected", f"{sel['n_selected']:,} of {sel['n_points']:,} {sel['unit']}s"),
             ("seed", sel["seed"]), ("encoder", sel["encoder"])]
    if sel.get("seed_agreement"):
        items.append(("other seeds", seed_agreement_text(sel["seed_agreement"])))
    provenance = json.dumps(sel["config"], indent=1, default=str, ensure_ascii=False)
    return (f"<h2 id='selection'>Selection</h2>{_dl(items)}<details><summary>Provenance (the selection's recorded "
            f"config)</summary><pre>{_e(_cut(provenance, 6000))}</pre></details>")


def _render_scaling(content: ReportContent, figure: _Figures, charts: Any) -> str:
    scaling = content.scaling
    if scaling is None:
        return ("<h2 id='scaling'>How many pairs are enough</h2><p class='muted'>No sweep given (run <code>alignscope "
                "sweep DATA --out SWEEP</code> and pass <code>--sweep SWEEP</code>).</p>")
    cfg, answer = scaling["config"], scaling["answer"]
    items = [("sweep", scaling["name"]), ("mode", cfg["mode"]), ("methods", ", ".join(cfg["methods"])),
             ("fractions", _join(cfg["fractions"])), ("seeds", _join(cfg["seeds"])), ("evaluator", cfg["evaluator"]),
             ("selector features", cfg["encoder"]), ("evaluation features", cfg.get("eval_encoder") or cfg["encoder"]),
             ("metric", scaling["metric"]), ("points measured", scaling["n_points"]),
             ("training pool", f"{scaling['pool_pairs']:,} pairs" if scaling["pool_pairs"] else "—"),
             ("baseline", f"{_num(scaling['baseline'], '.4f')}: "
                          + str(scaling["baseline_rule"] or "").removeprefix(f"{_num(scaling['baseline'], 'g')}: "))]
    box = ("<div class='answer" + (" cannot" if answer["kind"] == "cannot tell" else "") + "'>"
           + "".join(f"<p>{_e(line)}</p>" for line in answer["lines"]) + "</div>")
    circular = ("<p><b>Circular:</b> the selectors and the probe use the same features, so the score may favour "
                "what the selector saw.</p>" if scaling["circular"] else "")
    parts = [f"<h2 id='scaling'>How many pairs are enough</h2>{box}{circular}{_dl(items)}"]
    curves = scaling["curves"]
    if len(curves):
        parts.append(figure(charts.scaling_chart(curves, scaling["fits"], q=scaling["q"], metric=scaling["metric"],
                                                 baseline=scaling["baseline"],
                                                 baseline_label="length rule" if scaling["metric"] !=
                                                 "length_controlled_accuracy" else "length rule / coin")))
    parts.append(_table(scaling["table"]))
    if scaling["vs_random"]:
        parts.append(figure(charts.vs_random_chart(scaling["vs_random"], scaling["metric"])))
    if scaling["verdicts"]:
        parts.append("<p><b>Each method against random</b> (paired, at the same number of training pairs):</p><ul>"
                     + "".join(f"<li>{_e(v)}</li>" for v in scaling["verdicts"]) + "</ul>")
    return "".join(parts)


def _render_runs(content: ReportContent, figure: _Figures, charts: Any) -> str:
    if not content.runs:
        return ("<h2 id='runs'>Training runs</h2><p class='muted'>No training run given (pass <code>--run RUN_DIR</code>"
                ").</p>")
    rows, notes = [], []
    for run in content.runs:
        ev = run["eval"] or {}
        rows.append({"run": run["name"], "method": run["method"], "model": run["model"],
                     "selection": run.get("selection_method") or ("all pairs" if not run.get("selection") else "?"),
                     "training pairs": run["n_train_pairs"], "steps": run["steps"],
                     "accuracy": f"{_num(ev.get('accuracy'), '.1%')} {_ci(ev.get('accuracy_ci95'))}" if ev else "—",
                     "length rule": (f"{_num(ev.get('length_baseline'), '.1%')} ({ev.get('length_baseline_direction', '?')} "
                                     "wins)") if ev else "—",
                     "length-controlled": f"{_num(ev.get('length_controlled_accuracy'), '.1%')} "
                                          f"{_ci(ev.get('length_controlled_ci95'))}" if ev else "—",
                     "log loss": _num(ev.get("log_loss"), ".3f") if ev else "—",
                     "held-out pairs": ev.get("n_heldout") or ev.get("n_pairs")})
        if run["model"] == "tiny":
            notes.append(f"{run['name']}: the tiny model is a randomly initialised 2M-parameter network that checks "
                         "the plumbing only; its scores say nothing about the data.")
        if ev and ev.get("length_baseline") is not None:
            verdict = ("its accuracy interval lies above the length rule" if ev.get("beats_length_baseline")
                       else "its accuracy does not beat the length rule")
            lc = ev.get("length_controlled_ci95")
            verdict += ("; the length-controlled accuracy is above 50 %" if lc and lc[0] > 0.5 else
                        "; the length-controlled accuracy is not clear of 50 % (no content signal resolved)" if lc else "")
            notes.append(f"{run['name']}: {verdict}.")
    chart = figure(charts.run_scores_chart(content.runs)) if any(r["eval"] for r in content.runs) else ""
    return (f"<h2 id='runs'>Training runs</h2>{_table(rows)}{chart}<ul>"
            + "".join(f"<li>{_e(n)}</li>" for n in notes) + "</ul>")


def _render_commands(content: ReportContent) -> str:
    items = "".join(f"<li>{_e(what)}<pre class='cmd'>{_e(cmd)}</pre></li>" for what, cmd in content.commands)
    return f"<h2 id='reproduce'>Reproduce</h2><ol>{items}</ol>"


def build_report(data: Any, **inputs: Any) -> str:
    """:func:`render_html` of :func:`report_content` (same arguments)."""
    return render_html(report_content(data, **inputs))


def write_report(path: str | Path, document: str) -> Path:
    """Write the HTML atomically (a reader never sees half a report)."""
    path = Path(path)
    with atomic_write(path, "w") as handle:
        handle.write(document)
    return path

"""A sweep's results: its points read back, the paired bootstrap over seeds and held-out pairs,
the plateau fit of every method and the paired difference of every method to random.

Nothing here runs a job: :mod:`alignscope.scaling.sweep` measures the points and appends them to
``points.jsonl``; this module reads that file (and each point's ``heldout.npz``) at any moment, so
the Scaling page and ``alignscope sweep`` draw and fit the curve while the sweep still runs.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from alignscope.evaluate.metrics import LOWER_IS_BETTER, METRICS, metric_baseline, resampled_metric
from alignscope.files import atomic_path, read_jsonl, write_json
from alignscope.scaling.fit import ScalingError, fit_plateau
from alignscope.scaling.recommend import (BETTER, UNRESOLVED, WORSE, bootstrap_p_value, comparison_verdicts,
                                          percent_text, rank_against_random, recommend)
from alignscope.scaling.sweep import (ALL_METHOD, FIT_FILE, HELDOUT_FILE, POINTS_FILE, SWEEP_FILE, SweepConfig,
                                      SweepError, point_dir_name)

__all__ = ["POINT_COLUMNS", "read_points_jsonl", "curve_points", "point_scores", "compare_with_random",
           "verdict_lines", "sweep_fits", "fit_sweep", "baseline_label", "split_sweep_jobs", "sweep_overview"]


POINT_COLUMNS = ["method", "fraction", "seed", "score", "score_ci95", "metric", "baseline", "evaluator",
                 "n_train_pairs", "job_id", "wall_s"]


def read_points_jsonl(sweep_dir: str | os.PathLike) -> pd.DataFrame:
    """The finished points of a sweep (empty frame with the columns when none yet)."""
    rows = read_jsonl(Path(sweep_dir) / POINTS_FILE)
    if not rows:
        return pd.DataFrame(columns=POINT_COLUMNS)
    frame = pd.DataFrame(rows)
    for column in POINT_COLUMNS:
        if column not in frame.columns:
            frame[column] = None
    return frame


def curve_points(points: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Each method's curve: its own points plus the shared all-data points (method ``all``)."""
    if points.empty:
        return points
    full = points[points["method"] == ALL_METHOD]
    return pd.concat([pd.concat([points[points["method"] == m], full.assign(method=m)]) for m in methods],
                     ignore_index=True)


def point_scores(points: pd.DataFrame, metric: str) -> pd.Series:
    """Each point's score in ``metric`` (a sweep records every metric; older sweeps only ``score``)."""
    if metric in points.columns and points[metric].notna().all():
        return points[metric].astype(float)
    return points["score"].astype(float)


class _PairedBootstrap:
    """Replicates of every point's score that resample the seeds and the held-out pairs TOGETHER
    (the same pairs and seeds for every method and fraction in a replicate), from the margins each
    point saved. ``score(replicate, method, fraction)`` is the seed-mean on resampled pairs."""

    def __init__(self, sweep_dir: Path, curves: pd.DataFrame, metric: str, n_boot: int, seed: int):
        held = np.load(sweep_dir / HELDOUT_FILE, allow_pickle=False)
        pairs = held["pairs"]
        diff = held["chosen_words"].astype(np.float64) - held["rejected_words"].astype(np.float64)
        self.metric, self.seeds = metric, sorted(curves["seed"].unique().tolist())
        values: dict[tuple, np.ndarray] = {}
        keep = None
        for row in curves.drop_duplicates(["method", "fraction", "seed"]).itertuples():
            folder = ALL_METHOD if row.fraction == 1.0 else row.method
            stored = np.load(sweep_dir / "points" / point_dir_name({"method": folder, "fraction": row.fraction,
                                                                    "seed": row.seed}) / HELDOUT_FILE,
                             allow_pickle=False)
            position = np.searchsorted(pairs, stored["pairs"])
            if keep is None:
                keep = position
            elif not np.array_equal(keep, position):
                raise SweepError("the points were scored on different held-out pairs")
            values[(row.method, float(row.fraction), int(row.seed))] = stored["margin"]
        self.diff = diff[keep]
        rng = np.random.default_rng(seed)
        n = len(self.diff)
        # Resampled pairs as counts (n_boot, n): a metric of a replicate is then a weighted mean.
        self.weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)]).astype(float)
        self.seed_draws = [rng.choice(self.seeds, size=len(self.seeds), replace=True) for _ in range(n_boot)]
        self.table = {key: self._replicates(margin) for key, margin in values.items()}

    def _replicates(self, margin: np.ndarray) -> np.ndarray:
        """The metric on every replicate's resampled pairs, (n_boot,)."""
        return resampled_metric(margin, self.diff, self.metric, self.weights)

    def score(self, b: int, method: str, fraction: float) -> float | None:
        found = [self.table[(method, fraction, int(s))][b] for s in self.seed_draws[b]
                 if (method, fraction, int(s)) in self.table]
        return float(np.mean(found)) if found else None

    def curve(self, b: int, method: str, fractions: list[float]) -> tuple[np.ndarray, np.ndarray]:
        pairs = [(f, self.score(b, method, f)) for f in fractions]
        pairs = [(f, y) for f, y in pairs if y is not None]
        return np.array([f for f, _ in pairs]), np.array([y for _, y in pairs])


def compare_with_random(curves: pd.DataFrame, metric: str, boot: _PairedBootstrap | None,
                        n_boot: int = 500, seed: int = 0) -> dict[str, list[dict[str, Any]]]:
    """For every method and every fraction below 1 measured for it and for ``random``: the paired
    difference method − random (seed means), its 95 % interval (paired bootstrap over seeds and
    held-out pairs, else over seeds), its two-sided p (:func:`~alignscope.scaling.recommend.bootstrap_p_value`)
    and a verdict corrected for ALL the method × fraction comparisons at once (Holm, see
    :func:`~alignscope.scaling.recommend.comparison_verdicts`); ``verdict_uncorrected`` is what the
    interval alone says. ``n_train_pairs``: the pairs each side trained on at that fraction."""
    if "random" not in set(curves["method"]):
        return {}
    scores = curves.assign(value=point_scores(curves, metric))
    means = scores.groupby(["method", "fraction"])["value"].mean()
    sizes = (pd.to_numeric(scores["n_train_pairs"], errors="coerce").groupby(scores["fraction"]).max()
             if "n_train_pairs" in scores.columns else pd.Series(dtype=float))
    out: dict[str, list[dict[str, Any]]] = {}
    rng = np.random.default_rng(seed)
    for method in sorted(set(curves["method"]) - {"random", ALL_METHOD}):
        rows = []
        for fraction in sorted(set(scores.loc[scores["method"] == method, "fraction"])):
            if fraction >= 1.0 or (("random", fraction) not in means.index):
                continue
            diff = float(means[(method, fraction)] - means[("random", fraction)])
            if boot is not None:
                pairs = [(boot.score(b, method, fraction), boot.score(b, "random", fraction))
                         for b in range(len(boot.seed_draws))]
                # A replicate whose seed draw misses one side (a failed point) says nothing about it.
                draws = [mine - theirs for mine, theirs in pairs if mine is not None and theirs is not None]
            else:
                mine = scores[(scores["method"] == method) & (scores["fraction"] == fraction)].set_index("seed")["value"]
                theirs = scores[(scores["method"] == "random") & (scores["fraction"] == fraction)].set_index("seed")["value"]
                paired = (mine - theirs).dropna().to_numpy()
                draws = ([float(rng.choice(paired, size=len(paired)).mean()) for _ in range(n_boot)]
                         if len(paired) >= 2 else [])
            interval = [float(np.percentile(draws, 2.5)), float(np.percentile(draws, 97.5))] if draws else None
            size = sizes.get(fraction) if len(sizes) else None
            rows.append({"fraction": float(fraction), "difference": diff, "ci95": interval,
                         "p_value": bootstrap_p_value(diff, draws) if interval is not None else None,
                         "n_train_pairs": None if size is None or pd.isna(size) else int(size)})
        out[method] = rows
    comparison_verdicts([row for rows in out.values() for row in rows], metric)
    return out


def verdict_lines(vs_random: Mapping[str, list[dict[str, Any]]], metric: str) -> list[str]:
    """One line per method: at how many fractions it is better / worse than random after the Holm
    correction over every comparison, and its most clearly resolved difference (else the largest
    fraction's), e.g. ``isa − random (length-controlled accuracy): better than random at 2 of 6
    fractions, worse at 0, unresolved at 4 (Holm over 12 comparisons); at 10 % ≈ 24 pairs: +0.040
    [+0.020, +0.060]``."""
    lines = []
    for method, rows in vs_random.items():
        if not rows:
            continue
        better = sum(r["verdict"] == BETTER for r in rows)
        worse = sum(r["verdict"] == WORSE for r in rows)
        resolved = [r for r in rows if r["verdict"] in (BETTER, WORSE)]
        row = min(resolved, key=lambda r: r["p_holm"]) if resolved else rows[-1]
        interval = "" if row["ci95"] is None else f" [{row['ci95'][0]:+.3f}, {row['ci95'][1]:+.3f}]"
        size = f" ≈ {row['n_train_pairs']:,} pairs" if row.get("n_train_pairs") else ""
        n = row.get("n_comparisons") or 0
        lines.append(f"{method} − random ({metric}): better than random at {better} of {len(rows)} fractions, worse at "
                     f"{worse}, unresolved at {len(rows) - better - worse}"
                     + (f" (Holm-corrected over {n} comparisons)" if n > 1 else "")
                     + f"; at {percent_text(row['fraction'])}{size}: {row['difference']:+.3f}{interval}"
                     + (f", {row['verdict']}" if row["verdict"] not in (BETTER, WORSE, UNRESOLVED) else ""))
    return lines


def sweep_fits(sweep_dir: str | os.PathLike, *, q: float | None = None, n_boot: int = 500, metric: str | None = None,
               seed: int = 0) -> dict[str, Any]:
    """The fits of a sweep in ``metric`` (default: the sweep's), without writing anything: ``curves``
    (the points per curve, ``score`` in that metric, ``baseline``), ``fits`` (method →
    :class:`~alignscope.scaling.fit.PlateauFit` or the reason it could not be fitted) and ``summary``
    (what :func:`fit_sweep` writes to fit.json: besides the fits, ``vs_random`` with Holm-corrected
    verdicts, ``ranking`` and the ``recommendation`` of :mod:`alignscope.scaling.recommend`). The
    ``all`` points (fraction 1.0) belong to every method's curve. Intervals come from a paired bootstrap over seeds and held-out pairs when the
    points kept their margins (see :func:`alignscope.scaling.fit.fit_plateau` for the other cases)."""
    sweep_dir = Path(sweep_dir)
    recorded = json.loads((sweep_dir / SWEEP_FILE).read_text(encoding="utf-8"))
    config = SweepConfig.from_dict(recorded["config"])
    q = float(q if q is not None else config.q)
    metric = metric or config.metric
    if metric not in METRICS:
        raise SweepError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    higher = metric not in LOWER_IS_BETTER
    target = config.target if higher else "gain"
    points = read_points_jsonl(sweep_dir)
    curves = curve_points(points, config.curve_methods())
    baseline = None
    if len(curves):
        curves = curves.assign(score=point_scores(curves, metric))
        # The length rule's score averaged over the points (they share the held-out pairs).
        baseline = metric_baseline({column: float(curves[column].dropna().mean())
                                    for column in ("length_baseline", "length_baseline_log_loss")
                                    if column in curves.columns and curves[column].notna().any()}, metric)
        curves = curves.assign(baseline=baseline)
    boot = None
    if len(curves) and (sweep_dir / HELDOUT_FILE).exists() and config.mode == "subsets" and n_boot:
        try:
            boot = _PairedBootstrap(sweep_dir, curves, metric, n_boot, seed)
        except (OSError, KeyError, ValueError, SweepError):
            boot = None  # an older sweep without per-point margins: the fit bootstraps the points
    fits: dict[str, Any] = {}
    for method, rows in (curves.groupby("method", sort=True) if len(curves) else []):
        fractions = sorted(set(rows["fraction"].astype(float)))
        resamples = None if boot is None else [boot.curve(b, method, fractions) for b in range(n_boot)]
        try:
            fits[str(method)] = fit_plateau(rows["fraction"], rows["score"], q=q, n_boot=n_boot, seed=seed,
                                            method=str(method), target=target, groups=rows["seed"].to_numpy(),
                                            resamples=resamples, higher_is_better=higher, baseline=baseline)
        except ScalingError as exc:
            fits[str(method)] = str(exc)
    vs_random = compare_with_random(curves, metric, boot, n_boot=n_boot, seed=seed) if len(curves) else {}
    ranking = rank_against_random(vs_random, metric)

    def pooled(methods: list[str]):
        """The tied curves as one: their points together, the same paired replicates."""
        rows = curves[curves["method"].isin(methods)]
        resamples = None
        if boot is not None:
            per_method = {m: sorted(set(rows.loc[rows["method"] == m, "fraction"].astype(float))) for m in methods}
            resamples = []
            for b in range(n_boot):
                parts = [boot.curve(b, m, per_method[m]) for m in methods]
                resamples.append((np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts])))
        try:
            return fit_plateau(rows["fraction"], rows["score"], q=q, n_boot=n_boot, seed=seed,
                               method="pooled: " + " + ".join(methods), target=target,
                               groups=(rows["method"].astype(str) + "/" + rows["seed"].astype(str)).to_numpy(),
                               resamples=resamples, higher_is_better=higher, baseline=baseline)
        except ScalingError as exc:
            return str(exc)

    n_pool = _pool_size(points)
    headline = recommend(fits, metric=metric, q=q, baseline=baseline, baseline_label=baseline_label(metric),
                         ranking=ranking, n_pool=n_pool, evaluator=config.evaluator, model=config.model, pool=pooled)
    summary = {"q": q, "target": target, "metric": metric, "higher_is_better": higher, "baseline": baseline,
               "baseline_rule": _baseline_rule(metric), "n_points": int(len(points)),
               "equal_pairs_per_fraction": _equal_pairs(points), "n_training_pairs": n_pool,
               "methods": {m: (f.to_dict() if not isinstance(f, str) else {"error": f}) for m, f in fits.items()},
               "vs_random": vs_random, "verdicts": verdict_lines(vs_random, metric), "ranking": ranking,
               "recommendation": headline.to_dict(), "evaluator": config.evaluator,
               "eval_encoder": config.probe_encoder if config.evaluator == "probe" else None,
               "selection_encoder": config.encoder,
               "circular": bool(config.evaluator == "probe" and config.probe_encoder == config.encoder)}
    return {"curves": curves, "fits": fits, "summary": summary}


def fit_sweep(sweep_dir: str | os.PathLike, *, q: float | None = None, n_boot: int = 500,
              metric: str | None = None, seed: int = 0) -> dict[str, Any]:
    """:func:`sweep_fits`, written down: ``points.csv`` (the curves' points with their baseline and
    training pairs) and ``fit.json`` (the summary: fits, baseline, ``vs_random``, ``verdicts``)."""
    sweep_dir = Path(sweep_dir)
    found = sweep_fits(sweep_dir, q=q, n_boot=n_boot, metric=metric, seed=seed)
    curves = found["curves"]
    columns = [c for c in ("method", "fraction", "seed", "score", "baseline", "n_train_pairs") if c in curves.columns]
    with atomic_path(sweep_dir / "points.csv") as tmp:
        (curves[columns] if len(curves) else pd.DataFrame(columns=columns)).to_csv(tmp, index=False)
    write_json(sweep_dir / FIT_FILE, found["summary"])
    return found["summary"]


def baseline_label(metric: str) -> str:
    """The baseline's short name (the chart's dashed line, the headline)."""
    return "the length rule, or a coin" if metric == "length_controlled_accuracy" else "the length rule"


def _baseline_rule(metric: str) -> str:
    if metric == "length_controlled_accuracy":
        return "0.5: what the length rule (and a coin) scores when length is controlled"
    if metric == "accuracy":
        return "the length rule (longer or shorter wins, direction from the training pairs) on the same pairs"
    return "the length rule's log loss (a one-parameter Bradley-Terry fit on the log length ratio)"


def _pool_size(points: pd.DataFrame) -> int | None:
    """The training pairs at fraction 1 (the all-data points; else the largest point scaled up)."""
    if points.empty or "n_train_pairs" not in points.columns or points["n_train_pairs"].isna().all():
        return None
    known = points.dropna(subset=["n_train_pairs"])
    full = known.loc[known["fraction"].astype(float) >= 1.0, "n_train_pairs"]
    if len(full):
        return int(full.max())
    row = known.loc[known["fraction"].astype(float).idxmax()]
    return int(round(float(row["n_train_pairs"]) / float(row["fraction"])))


def _equal_pairs(points: pd.DataFrame) -> bool | None:
    """True when every method trained on the same number of pairs at each fraction."""
    if points.empty or "n_train_pairs" not in points.columns:
        return None
    return bool((points.groupby("fraction")["n_train_pairs"].nunique() <= 1).all())


# --------------------------------------------------------------------------------- sweeps as jobs
def split_sweep_jobs(jobs: Sequence[Any]) -> tuple[list[Any], dict[str, list[Any]]]:
    """``(jobs of no sweep, {sweep_dir: its jobs})``, in the given order. A job belongs to a sweep
    when its config names a ``sweep_dir`` (one job per point, or a few workers that compute the
    points: both carry it), so a sweep reads as one entry however many jobs compute it."""
    others: list[Any] = []
    sweeps: dict[str, list[Any]] = {}
    for job in jobs:
        folder = (job.config or {}).get("sweep_dir")
        if folder:
            sweeps.setdefault(str(folder), []).append(job)
        else:
            others.append(job)
    return others, sweeps


def sweep_overview(sweep_dir: str | os.PathLike, jobs: Sequence[Any]) -> dict[str, Any]:
    """One sweep as one row: its name, methods, status (running while any job runs, then queued,
    failed, cancelled, else succeeded), points measured (from points.jsonl) of those planned
    (from sweep.json), failed jobs, progress and the time span of its jobs."""
    sweep_dir = Path(sweep_dir)
    try:
        config = SweepConfig.from_dict(json.loads((sweep_dir / SWEEP_FILE).read_text(encoding="utf-8"))["config"])
        planned = config.n_points()
        methods = config.curve_methods()
    except (OSError, ValueError, KeyError, TypeError):
        planned, methods = None, []
    measured = len(read_points_jsonl(sweep_dir)) if (sweep_dir / POINTS_FILE).exists() else 0
    statuses = [job.status for job in jobs]
    status = next((s for s in ("running", "queued", "failed", "cancelled") if s in statuses), "succeeded")
    failed = sum(s in ("failed", "cancelled") for s in statuses)
    started = [job.created_at for job in jobs if job.created_at]
    finished = [job.finished_at for job in jobs if job.finished_at]
    span = (max(finished) - min(started)) if started and finished and status not in ("running", "queued") else None
    progress = (min(1.0, measured / planned) if planned else
                sum(job.progress for job in jobs) / max(1, len(jobs)))
    return {"sweep_dir": str(sweep_dir), "name": sweep_dir.name, "methods": methods, "status": status,
            "n_jobs": len(jobs), "n_failed": failed, "n_measured": measured, "n_planned": planned,
            "progress": float(progress), "created_at": min(started) if started else None, "duration": span}

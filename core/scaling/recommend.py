"""What a scaling sweep says, decided once: the verdicts against random, the ranking of the methods
and the headline. ``alignscope sweep``, ``alignscope scaling fit`` and the Scaling page print the
same :class:`Recommendation` lines; nothing else turns a fit into "recommend / don't".

* :func:`holm`: Holm–Bonferroni step-down (Holm 1979, *Scand. J. Statist.* 6:65–70) over every
  method × fraction comparison with random, so the family-wise error stays at α however many
  comparisons a sweep makes.
* :func:`bootstrap_p_value`: the two-sided p of a paired bootstrap difference from its bootstrap
  standard error (a Wald test). A percentile p has a floor of 2/(B + 1): with B = 200 replicates
  Holm's first threshold α/m is out of reach from m = 10 comparisons on, whatever the data.
* :func:`comparison_verdicts`: the verdict of each comparison, corrected as many; the uncorrected
  one is kept beside it.
* :func:`rank_against_random`: every method ranked by its difference to random at each fraction, and
  one sentence: which beat random, which lost, which cannot be told apart at this sample size.
* :func:`recommend`: the headline. When the best plateaus' 95 % intervals overlap the methods tie and
  the size is read from the simplest tied curve (random) or the tied curves pooled, never from the
  highest plateau (picking the maximum of indistinguishable estimates is a winner's curse). Sizes
  are stated as a share and in pairs, every number with its interval; a probe's scores are called
  a proxy.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from alignscope.evaluate.metrics import LOWER_IS_BETTER
from alignscope.scaling.fit import MAX_DECISIVE_WIDTH, PlateauFit, ScalingError, fit_plateau

__all__ = ["ALPHA", "BETTER", "WORSE", "UNRESOLVED", "NO_INTERVAL", "Recommendation", "holm", "bootstrap_p_value",
           "comparison_verdicts", "rank_against_random", "recommend", "pooled_points_fit", "size_text",
           "percent_text", "proxy_note"]

ALPHA = 0.05
BETTER, WORSE = "better than random", "worse than random"
UNRESOLVED = "no resolved difference from random"
NO_INTERVAL = "cannot tell (one seed, no per-pair scores)"
RANDOM = "random"


# ------------------------------------------------------------------------------ many comparisons
def holm(p_values: Sequence[float], alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray]:
    """Holm–Bonferroni over ``p_values`` (m,): ``(rejected (m,) bool, adjusted p (m,))``. The adjusted
    p of the i-th smallest is max over j ≤ i of min(1, (m − j + 1)·p_(j)); reject where it is ≤ α."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    if m == 0:
        return np.zeros(0, dtype=bool), np.zeros(0)
    order = np.argsort(p, kind="stable")
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted = np.empty(m)
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted <= alpha, adjusted


def bootstrap_p_value(estimate: float, draws: Sequence[float]) -> float | None:
    """Two-sided p that the difference is 0, from the bootstrap standard error of ``draws`` (Wald):
    ``erfc(|estimate| / (se·√2))``. None with fewer than 2 draws; 1.0 when the draws do not vary
    (nothing resolved, e.g. two methods that rank every held-out pair alike)."""
    draws = np.asarray(draws, dtype=float)
    if len(draws) < 2:
        return None
    se = float(draws.std(ddof=1))
    if not math.isfinite(se) or se <= 1e-12 * max(1.0, abs(estimate)):
        return 1.0
    return float(math.erfc(abs(estimate) / (se * math.sqrt(2.0))))


def _direction(difference: float, lower_is_better: bool) -> str:
    return BETTER if (difference < 0 if lower_is_better else difference > 0) else WORSE


def comparison_verdicts(rows: Sequence[dict[str, Any]], metric: str, alpha: float = ALPHA) -> None:
    """Fill in, for every comparison row (``difference``, ``ci95``, ``p_value``), ``verdict`` (Holm-
    corrected over all rows that have a p), ``p_holm``, ``verdict_uncorrected`` (the 95 % interval
    alone) and ``n_comparisons``. Rows are changed in place."""
    lower = metric in LOWER_IS_BETTER
    tested = [row for row in rows if row.get("p_value") is not None]
    rejected, adjusted = holm([row["p_value"] for row in tested], alpha)
    for row, reject, p_adj in zip(tested, rejected, adjusted):
        row["p_holm"] = float(p_adj)
        row["verdict"] = _direction(row["difference"], lower) if reject else UNRESOLVED
    for row in rows:
        row["n_comparisons"] = len(tested)
        interval = row.get("ci95")
        if interval is None or row.get("p_value") is None:
            row.update(p_holm=None, verdict=NO_INTERVAL, verdict_uncorrected=NO_INTERVAL)
            continue
        clear = (interval[1] < 0 or interval[0] > 0)
        row["verdict_uncorrected"] = _direction(row["difference"], lower) if clear else UNRESOLVED


# -------------------------------------------------------------------------------------- words
def percent_text(fraction: float) -> str:
    """A share with three significant digits, so that small fractions stay apart: 0.5 %, 1 %, 1.25 %,
    14.5 %, 100 %."""
    return f"{100 * float(fraction):.3g} %"


def _pairs(fraction: float, n_pool: int) -> int:
    return int(round(float(fraction) * n_pool))


def size_text(fraction: float, interval: Sequence[float] | None, n_pool: int | None) -> str:
    """"5.6 % [1.8 %, 100 %] ≈ 134 [43, 2,400] of 2,400 training pairs" (pairs only when the pool is known)."""
    text = percent_text(fraction) + ("" if not interval else f" [{percent_text(interval[0])}, {percent_text(interval[1])}]")
    if not n_pool:
        return text + " of the training pairs"
    pairs = f"{_pairs(fraction, n_pool):,}" + ("" if not interval else
                                               f" [{_pairs(interval[0], n_pool):,}, {_pairs(interval[1], n_pool):,}]")
    return f"{text} ≈ {pairs} of {n_pool:,} training pairs"


def _score(value: float, interval: Sequence[float] | None, fmt: str = ".3f") -> str:
    return format(value, fmt) + ("" if not interval else f" [{format(interval[0], fmt)}, {format(interval[1], fmt)}]")


def _names(methods: Sequence[str]) -> str:
    methods = list(methods)
    return methods[0] if len(methods) == 1 else ", ".join(methods[:-1]) + " and " + methods[-1]


def proxy_note(evaluator: str | None, model: str | None = None) -> str | None:
    """What the scores are, when they are not a trained model's judgement on its own."""
    if evaluator == "probe":
        return ("Scores are a linear probe's (a Bradley–Terry model on frozen embeddings): a proxy, not a trained "
                "model's score.")
    if evaluator in ("dpo", "kto") and model == "tiny":
        return ("Scores come from the random-init tiny model: they show that the pipeline runs, not what a subset "
                "teaches.")
    return None


# --------------------------------------------------------------------------- ranking vs random
def rank_against_random(vs_random: Mapping[str, list[dict[str, Any]]], metric: str) -> dict[str, Any]:
    """Every method ranked by its difference to random at each fraction (best first, paired, with
    its interval and corrected verdict), each method's tally over fractions, and one sentence:
    which beat random, which lost, which cannot be told apart at this sample size."""
    lower = metric in LOWER_IS_BETTER
    fractions = sorted({row["fraction"] for rows in vs_random.values() for row in rows})
    by_fraction = []
    for fraction in fractions:
        entries = [{"method": method, **{k: row.get(k) for k in ("difference", "ci95", "p_holm", "verdict",
                                                                    "n_train_pairs")}}
                   for method, rows in vs_random.items() for row in rows if row["fraction"] == fraction]
        entries.sort(key=lambda e: e["difference"], reverse=not lower)
        for rank, entry in enumerate(entries, 1):
            entry["rank"] = rank
        by_fraction.append({"fraction": fraction, "methods": entries})
    tally, groups = {}, {"beat": [], "lost": [], "mixed": [], "cannot_tell": []}
    for method, rows in vs_random.items():
        counts = {"better": sum(r["verdict"] == BETTER for r in rows), "worse": sum(r["verdict"] == WORSE for r in rows),
                  "fractions": len(rows)}
        tally[method] = counts
        group = ("mixed" if counts["better"] and counts["worse"] else "beat" if counts["better"]
                 else "lost" if counts["worse"] else "cannot_tell")
        groups[group].append(method)
    n_comparisons = max((row.get("n_comparisons", 0) for rows in vs_random.values() for row in rows), default=0)
    return {"by_fraction": by_fraction, "tally": tally, **groups, "n_comparisons": n_comparisons,
            "sentence": _ranking_sentence(groups, tally, n_comparisons)}


def _ranking_sentence(groups: Mapping[str, list[str]], tally: Mapping[str, dict], n_comparisons: int) -> str:
    if not tally:
        return "No method is compared with random (the sweep has no random curve, or no fraction both measured)."

    def count(method: str, key: str) -> str:
        return f"{tally[method][key]} of {tally[method]['fractions']}"

    parts = []
    if groups["beat"]:
        parts.append(f"{_names(groups['beat'])} beat random (at " +
                     "; ".join(f"{count(m, 'better')} fractions" + (f" for {m}" if len(groups['beat']) > 1 else "")
                               for m in groups["beat"]) + ")")
    if groups["lost"]:
        parts.append(f"{_names(groups['lost'])} lost to random (at " +
                     "; ".join(f"{count(m, 'worse')} fractions" + (f" for {m}" if len(groups['lost']) > 1 else "")
                               for m in groups["lost"]) + ")")
    if groups["mixed"]:
        parts.append("; ".join(f"{m} beat random at {count(m, 'better')} fractions and lost at {count(m, 'worse')}"
                               for m in groups["mixed"]))
    if groups["cannot_tell"]:
        parts.append(f"{_names(groups['cannot_tell'])} cannot be told apart from random at this sample size")
    corrected = f"After correcting for {n_comparisons} comparisons (Holm): " if n_comparisons > 1 else ""
    text = "; ".join(parts)
    return corrected + (text[0].upper() + text[1:] if not corrected else text) + "."


# ------------------------------------------------------------------------------------ headline
@dataclass
class Recommendation:
    """The headline of a set of fitted curves. ``status``: ``size`` (a size to act on),
    ``no_size`` (a fit, but no size to act on: it does not beat the baseline, its interval is too
    wide, or it never reaches the target) or ``no_fit``. ``tie``: the best plateaus' intervals
    overlap (``tied`` lists them, best first; ``winner`` is None then). ``curve``: the curve the
    size is read from (a method, ``random``, or ``pooled: a + b``). ``lines``: what the CLI prints
    and the page shows, in this order, every number with its interval."""

    status: str
    headline: str
    lines: list[str]
    tie: bool = False
    tied: list[str] = field(default_factory=list)
    winner: str | None = None
    curve: str | None = None
    fraction: float | None = None
    fraction_ci95: list[float] | None = None
    pairs: int | None = None
    pairs_ci95: list[int] | None = None
    n_pool: int | None = None
    target: str | None = None
    q: float | None = None
    proxy: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def text(self) -> str:
        return "\n".join(self.lines)


def _overlap(a: Sequence[float] | None, b: Sequence[float] | None) -> bool:
    return a is not None and b is not None and a[0] <= b[1] and b[0] <= a[1]


def pooled_points_fit(points: pd.DataFrame, methods: Sequence[str], **fit_options: Any) -> PlateauFit | str:
    """One plateau through the points of ``methods`` together (``fraction``, ``score``, ``method``,
    optional ``seed``); intervals by whole (method, seed) curves. The reason as a string when it
    cannot be fitted."""
    rows = points[points["method"].isin(list(methods))]
    groups = (rows["method"].astype(str) + "/" + rows["seed"].astype(str)).to_numpy() if "seed" in rows else \
        rows["method"].astype(str).to_numpy()
    try:
        return fit_plateau(rows["fraction"], rows["score"], groups=groups, method="pooled: " + " + ".join(methods),
                           **fit_options)
    except ScalingError as exc:
        return str(exc)


def recommend(fits: Mapping[str, PlateauFit | str], *, metric: str, q: float, baseline: float | None = None,
              baseline_label: str = "the length rule", ranking: Mapping[str, Any] | None = None, n_pool: int | None = None,
              evaluator: str | None = None, model: str | None = None,
              pool: Callable[[list[str]], PlateauFit | str] | None = None) -> Recommendation:
    """The headline of ``fits`` (method → :class:`PlateauFit`, or the reason it failed); see the
    module docstring. ``ranking``: :func:`rank_against_random`'s result (its sentence is one line);
    ``n_pool``: training pairs at fraction 1 (sizes in pairs); ``evaluator``/``model``: to label a
    proxy; ``pool(methods)``: the pooled fit of tied methods when random is not among them."""
    lower = metric in LOWER_IS_BETTER
    proxy = proxy_note(evaluator, model)
    fitted = {m: f for m, f in fits.items() if isinstance(f, PlateauFit)}
    tail = ([ranking["sentence"]] if ranking and ranking.get("tally") else []) + ([proxy] if proxy else [])
    common = {"n_pool": n_pool, "q": q, "proxy": proxy}
    if not fitted:
        reasons = "; ".join(f"{m}: {reason}" for m, reason in fits.items()) or "no points yet"
        headline = f"No curve could be fitted ({reasons})."
        return Recommendation("no_fit", headline, [headline, *tail], **common)
    ordered = sorted(fitted, key=lambda m: fitted[m].r, reverse=not lower)
    best = ordered[0]
    plateaus = ("Plateaus r (95 % interval): " + "; ".join(f"{m} {_score(fitted[m].r, fitted[m].r_ci95)}" for m in ordered)
                + ("" if baseline is None else f"; baseline {baseline:.3f} ({baseline_label})") + ".")
    if any(fitted[m].r_ci95 is None for m in ordered):
        headline = ("No recommendation: without an interval for every plateau it cannot be told whether the methods "
                    "differ or whether they beat the baseline.")
        return Recommendation("no_size", headline, [headline, plateaus, *tail], **common)
    tied = [m for m in ordered if _overlap(fitted[m].r_ci95, fitted[best].r_ci95)]
    tie = len(tied) > 1
    if tie:
        headline = (f"These methods tie: {_names(tied)}: their plateaus' 95 % intervals overlap, so no method is shown "
                    "to be better than the others.")
        if RANDOM in tied:
            curve, source = RANDOM, fitted[RANDOM]
            why = "the random curve, the simplest of the tied ones, not the highest plateau"
        elif pool is not None:
            curve, source = "pooled: " + " + ".join(tied), pool(tied)
            why = "the tied curves pooled, not the highest plateau"
        else:
            curve, source, why = None, "the tied methods' points are not available to pool", ""
    elif len(fitted) == 1:
        headline = f"One curve, {best}: plateau {_score(fitted[best].r, fitted[best].r_ci95)}."
    else:
        headline = (f"{best} has the {'lowest' if lower else 'highest'} plateau, {_score(fitted[best].r, fitted[best].r_ci95)}, "
                    "and its 95 % interval is clear of every other method's.")
    if not tie:
        curve, source, why = best, fitted[best], f"the {best} curve"
    failed = [f"{m}: {reason}" for m, reason in fits.items() if isinstance(reason, str)]
    lines = [headline, plateaus] + (["Not fitted: " + "; ".join(failed)] if failed else [])
    out = Recommendation("no_size", headline, lines, tie=tie, tied=tied if tie else [], winner=None if tie else best,
                         curve=curve, **common)
    if isinstance(source, str):
        lines.append(f"No recommended size: {source}.")
    else:
        _size_lines(out, source, why, baseline)
    lines.extend(tail)
    return out


def _size_lines(out: Recommendation, fit: PlateauFit, why: str, baseline: float | None) -> None:
    """The recommended size of ``fit`` (or why there is none), then the other target for reference."""
    q, n_pool, lines = fit.q, out.n_pool, out.lines
    target = fit.target
    out.target = target
    name = f"{q * 100:.4g} % of the {target}"
    if fit.beats_baseline is False:
        lines.append(f"No recommended size: the plateau of {why}, {_score(fit.r, fit.r_ci95)}, does not beat the "
                     f"baseline {baseline:.3f}: this evaluator cannot say how much data is enough.")
        return
    if fit.beats_baseline is None and baseline is not None:
        lines.append(f"No recommended size: without an interval it cannot be told whether the plateau of {why} "
                     f"beats the baseline {baseline:.3f}.")
        return
    x, interval = fit.recommended_fraction, fit.recommended_fraction_ci95
    if x is None:
        lines.append(f"No recommended size: {why} never reaches {name} within the data.")
        return
    out.fraction, out.fraction_ci95 = x, interval
    if n_pool:
        out.pairs = _pairs(x, n_pool)
        out.pairs_ci95 = None if not interval else [_pairs(interval[0], n_pool), _pairs(interval[1], n_pool)]
    if interval is None or interval[1] - interval[0] > MAX_DECISIVE_WIDTH:
        lines.append(f"No recommended size: read from {why}, {name} is reached at {size_text(x, interval, n_pool)}; "
                     "an interval this wide cannot tell how much data is enough (measure more seeds or more "
                     "held-out pairs).")
    else:
        out.status = "size"
        lines.append(f"Recommended size, read from {why}: {name} at {size_text(x, interval, n_pool)}.")
    for other, values in fit.targets.items():
        if other != target and values.get("recommended_fraction") is not None:
            lines.append(f"For comparison, the other rule, {q * 100:.4g} % of the {other}: "
                         f"{size_text(values['recommended_fraction'], values['recommended_fraction_ci95'], n_pool)}.")

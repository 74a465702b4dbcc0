"""Self-calibration: how often the audit's flip flags are right on THIS data.

:func:`calibrate_audit` plants known defects in ``repeats`` copies of the data — flips (chosen ↔
rejected on a seeded sample of ``planted_rate``·N pairs, embeddings swapped with them) and as many
near-copies (a pair repeated with one small edit per answer: a word dropped or doubled or a
punctuation mark changed; a copy reuses its original's embeddings, so the copies measure the text
rule) — and runs the identical audit (:func:`~alignscope.audit.audit`, same options) on each.
From the planted copies and the real audit it estimates, with 95 % intervals:

* the share ``r`` of pairs that are already flipped (``estimated_flips``). In each copy, planted
  and non-planted pairs are scored by the same models. For a threshold ``t`` on ``flip_score`` let
  ``F(t)`` be the share of non-planted pairs scored ≥ t and ``a(t)`` the share of planted ones. A
  planted pair is a flip unless it was a real flip (then planting un-flipped it), so with TPR/FPR
  the rates at which flips / correct pairs reach ``t``: ``F = r·TPR + (1 − r)·FPR`` and
  ``a = (1 − r)·TPR + r·FPR``. FPR ≥ 0 gives ``r ≤ F(t) / (F(t) + a(t))`` at every ``t``, with
  equality where no correct pair reaches ``t`` (irreducibility) — mixture-proportion estimation
  (Blanchard, Lee & Scott, "Semi-supervised novelty detection", JMLR 2010; Scott, AISTATS 2015).
  The estimate is the median of that bound over the thresholds that catch 20–50 % of the planted
  flips (the minimum over thresholds is biased low by noise). It is an UPPER bound when the
  signals separate flips weakly (``bound_only``: the copies' AUC for "planted" below 0.85, or the
  flip AUC it implies, corrected for the real flips on both sides, below 0.97 or above 1; on
  synthetic data at AUC 0.94 the estimate was 1.1–1.4 × the true share, at AUC 0.997 within
  ±10 %; on HH with 10 % planted flips, AUC 0.73, it was 0.30).
* at the flag (``suspect_flip``): TPR and FPR solved from the two equations with that ``r``, so
  ``flag_recall`` = TPR and ``flag_precision`` = r·TPR / F (the share of flagged pairs that are
  real flips); ``flagged_real_flips`` = precision × the real audit's flagged count.
* a threshold for ``target_precision`` (the most pairs whose estimated precision reaches it,
  given as a count and as the real audit's flip score that flags that many), or None and the best
  precision any threshold reaches.
* ``flip_probability`` per pair = r·f_flip(s)/h(s), the density of flips over the density of all
  pairs at the pair's flip score s, from the same two equations:
  ``r·((1 − r)·ρ(s) − r)/(1 − 2r)`` with ρ = planted density / non-planted density, from
  Laplace-smoothed counts in score bins made monotone by isotonic regression, cross-fitted: a
  pair's probability comes from bins counted on the other folds' pairs only.

Flips are planted only on pairs without near-duplicates (see :func:`plant_defects`).
Intervals are percentiles of a bootstrap that resamples pairs (Poisson weights, shared by a pair's
rows in every copy) and copies together (``n_boot``, seeded). The assumption
behind all of it: real flips look like random swaps to the audit (what is planted).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd

from alignscope.audit.config import AuditConfig, AuditError, CalibrationConfig
from alignscope.audit.table import _texts, audit, fix_flips
from alignscope.audit.vectors import pair_matrices
from alignscope.data.preferences import swap_labels

__all__ = ["PlantedCopy", "plant_defects", "near_copy_text", "calibrate_audit", "estimate_from_scores",
           "flip_probabilities", "calibration_sentences", "MIN_PLANTED_RECALL"]

MIN_PLANTED_RECALL = 0.2   # r is read at thresholds catching 20-50 % of the planted flips
MAX_PLANTED_RECALL = 0.5
MIN_CURVE_PAIRS = 10       # a threshold flagging fewer real pairs says nothing about precision
N_GRID = 200               # thresholds (quantiles of every score) the curves are read at
N_BINS = 40                # score bins of the density ratio
MAX_SOLVABLE_RATE = 0.45   # r above this: planted and real scores look alike, nothing can be solved
BOUND_AUC = 0.97           # below this estimated flip AUC the estimates are reported as upper bounds
MIN_OBSERVED_AUC = 0.85    # ... and below this AUC of the copies' planted flips against the rest


# ============================================================================== planting
def near_copy_text(text: str, rng: np.random.Generator) -> str:
    """One small edit: drop a word, double a word, or change one punctuation mark."""
    words = text.split(" ")
    kind = int(rng.integers(3))
    if kind == 2 or len(words) < 3:
        for old, new in ((".", "!"), (",", ";"), ("?", "?!")):
            if old in text:
                return text.replace(old, new, 1)
        return text + "."
    i = int(rng.integers(len(words)))
    if kind == 0:
        return " ".join(words[:i] + words[i + 1:])
    return " ".join(words[:i + 1] + [words[i]] + words[i + 1:])


@dataclass
class PlantedCopy:
    """A copy of the data with known defects: rows ``0..N-1`` are the original pairs (``flipped``
    ones swapped), rows ``N..`` near-copies (``copy_of`` = the original's row, −1 elsewhere)."""

    frame: pd.DataFrame
    chosen: np.ndarray
    rejected: np.ndarray
    flipped: np.ndarray
    copy_of: np.ndarray
    second: tuple[np.ndarray, np.ndarray] | None = None


def plant_defects(frame: pd.DataFrame, chosen: np.ndarray, rejected: np.ndarray, *, rate: float, seed: int,
                  second: tuple[np.ndarray, np.ndarray] | None = None, copies: bool = True,
                  dup_group: np.ndarray | None = None) -> PlantedCopy:
    """Flip ``round(rate·N)`` seeded pairs (texts and embeddings) and append as many near-copies of
    other pairs (``copies=False``: none). ``frame`` holds plain-text prompt/chosen/rejected.

    ``dup_group`` (the real audit's): flips are planted only on pairs without near-duplicates. A
    flip that its own untouched copy contradicts is far easier to see than a real one, and one
    planted on the whole group (as if the label error came before the copying) is memorised by the
    other folds and cannot be seen at all; measured on HH with 10 % planted copies, either way the
    estimated number of flips moved by a factor 1.5–3 away from the truth.
    """
    n = len(frame)
    rng = np.random.default_rng(seed)
    eligible = np.arange(n) if dup_group is None else np.nonzero(np.asarray(dup_group) < 0)[0]
    if len(eligible) < 2:
        eligible = np.arange(n)
    n_flip = max(1, min(len(eligible), int(round(rate * len(eligible)))))
    flipped = np.zeros(n, dtype=bool)
    flipped[rng.choice(eligible, n_flip, replace=False)] = True
    out = swap_labels(frame[["prompt", "chosen", "rejected"]].reset_index(drop=True), flipped)
    swap = flipped[:, None]
    c, r = np.where(swap, rejected, chosen), np.where(swap, chosen, rejected)
    planted_second = None
    if second is not None:
        planted_second = (np.where(swap, second[1], second[0]), np.where(swap, second[0], second[1]))
    copy_of = np.full(n, -1, dtype=np.int64)
    if copies:
        n_copy = min(n_flip, int((~flipped).sum()))
        originals = np.sort(rng.choice(np.nonzero(~flipped)[0], n_copy, replace=False))
        dup = out.iloc[originals].copy()
        dup["chosen"] = [near_copy_text(t, rng) for t in dup["chosen"]]
        dup["rejected"] = [near_copy_text(t, rng) for t in dup["rejected"]]
        out = pd.concat([out, dup], ignore_index=True)
        c, r = np.vstack([c, c[originals]]), np.vstack([r, r[originals]])
        if planted_second is not None:
            planted_second = (np.vstack([planted_second[0], planted_second[0][originals]]),
                              np.vstack([planted_second[1], planted_second[1][originals]]))
        copy_of = np.concatenate([copy_of, originals])
        flipped = np.concatenate([flipped, np.zeros(n_copy, dtype=bool)])
    return PlantedCopy(out, c, r, flipped, copy_of, planted_second)


# ============================================================================== estimation
def _tail(bins: np.ndarray, weights: np.ndarray, size: int) -> np.ndarray:
    """Σ weights of the scores ≥ grid[j], for every threshold j (``bins``: thresholds ≤ score)."""
    counts = np.bincount(bins, weights=weights, minlength=size + 1)
    return counts[::-1].cumsum()[::-1][1:]


def _solve(F: np.ndarray, a: np.ndarray, r: float) -> tuple[np.ndarray, np.ndarray]:
    """TPR and FPR from F = r·TPR + (1−r)·FPR and a = (1−r)·TPR + r·FPR, clipped to [0, 1];
    NaN when r is so close to ½ that the two equations say nothing (planted ≈ real scores)."""
    if r > MAX_SOLVABLE_RATE:
        nan = np.full(np.shape(F), np.nan)
        return nan, nan
    denom = 1.0 - 2.0 * r
    tpr = np.clip(((1.0 - r) * a - r * F) / denom, 0.0, 1.0)
    fpr = np.clip(((1.0 - r) * F - r * a) / denom, 0.0, 1.0)
    return tpr, fpr


def _flip_rate(F: np.ndarray, a: np.ndarray, n_planted: float) -> float:
    """r from the bound F/(F + a): its median over the thresholds that catch 20–50 % of the planted
    flips (the minimum over thresholds is biased low by noise; one threshold alone is noisy)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        bound = F / (F + a)
    enough = (a * n_planted >= 10) & (F + a > 0)
    band = enough & (a >= MIN_PLANTED_RECALL) & (a <= MAX_PLANTED_RECALL)
    if band.any():
        return float(min(np.median(bound[band]), 0.5))
    wider = enough & (a >= MIN_PLANTED_RECALL)
    return float(min(bound[wider].min(), 0.5)) if wider.any() else 0.5


def _estimate(bins_np, flag_np, w_np, bins_p, flag_p, w_p, size):
    """One (bootstrap) estimate from the planted copies: r, F/a per threshold, the precision
    curve and the flag's recall and precision."""
    total_np, total_p = w_np.sum(), w_p.sum()
    F = _tail(bins_np, w_np, size) / total_np
    a = _tail(bins_p, w_p, size) / total_p
    r = _flip_rate(F, a, total_p)
    tpr, _ = _solve(F, a, r)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(F > 0, np.clip(r * tpr / F, 0.0, 1.0), np.nan)
    F_flag = float((w_np * flag_np).sum() / total_np)
    a_flag = float((w_p * flag_p).sum() / total_p)
    tpr_flag, fpr_flag = _solve(np.array([F_flag]), np.array([a_flag]), r)
    finite = F_flag > 0 and np.isfinite(tpr_flag[0])
    return {"r": r, "F": F, "a": a, "precision": precision, "F_flag": F_flag, "a_flag": a_flag,
            "flag_recall": float(tpr_flag[0]), "flag_fpr": float(fpr_flag[0]),
            "flag_precision": float(np.clip(r * tpr_flag[0] / F_flag, 0, 1)) if finite else float("nan")}


def estimate_from_scores(real_score: np.ndarray, real_flag: np.ndarray, planted_score: np.ndarray,
                         planted_flag: np.ndarray, planted: np.ndarray, *, target_precision: float = 0.8,
                         n_boot: int = 300, seed: int = 0) -> dict[str, Any]:
    """The estimates of the module docstring from scores alone.

    ``planted_score``/``planted_flag``/``planted`` (``(R, N)`` each): each planted copy's
    ``flip_score`` and ``suspect_flip`` of the original pairs and which of them were planted flips.
    Planted and non-planted pairs of one copy are scored by the same models, so every rate is read
    within the copies; ``real_score``/``real_flag`` (``(N,)``, the real audit) only turn rates into
    counts of real pairs and thresholds into the real audit's flip scores. Returns plain numbers
    and lists (JSON-ready; None where the data cannot tell): ``estimated_flip_rate`` (+ ``_ci95``),
    ``estimated_flips``, ``flag_precision``, ``flag_recall``, ``flagged``, ``flagged_real_flips``
    (each + ``_ci95``), ``threshold`` (for ``target_precision``, or None), ``best_precision``,
    ``curve`` and ``bound_only``.
    """
    real_score = np.asarray(real_score, np.float64)
    real_flag = np.asarray(real_flag, bool)
    planted_score = np.atleast_2d(np.asarray(planted_score, np.float64))
    planted_flag = np.atleast_2d(np.asarray(planted_flag, bool)).astype(np.float64)
    planted = np.atleast_2d(np.asarray(planted, bool))
    n, repeats = len(real_score), planted_score.shape[0]
    grid = np.unique(np.quantile(planted_score, np.linspace(0.0, 1.0, N_GRID)))
    size = len(grid)
    rows_p, cols_p = np.nonzero(planted)
    rows_np, cols_np = np.nonzero(~planted)
    bins_p = np.searchsorted(grid, planted_score[rows_p, cols_p], side="right")
    bins_np = np.searchsorted(grid, planted_score[rows_np, cols_np], side="right")
    flag_p, flag_np = planted_flag[rows_p, cols_p], planted_flag[rows_np, cols_np]
    point = _estimate(bins_np, flag_np, np.ones(len(rows_np)), bins_p, flag_p, np.ones(len(rows_p)), size)
    rng = np.random.default_rng(seed)
    boots = []
    for _ in range(n_boot):
        w_pair = rng.poisson(1.0, n).astype(np.float64)
        w_rep = rng.multinomial(repeats, np.full(repeats, 1.0 / repeats)).astype(np.float64)
        w_p, w_np = w_pair[cols_p] * w_rep[rows_p], w_pair[cols_np] * w_rep[rows_np]
        if w_p.sum() > 0 and w_np.sum() > 0:
            boots.append(_estimate(bins_np, flag_np, w_np, bins_p, flag_p, w_p, size))

    def ci(key: str) -> list[float]:
        values = np.array([b[key] for b in boots], dtype=np.float64)
        values = values[np.isfinite(values)]
        if not len(values):
            return [float("nan"), float("nan")]
        return [float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))]

    curve_boot = np.array([b["precision"] for b in boots]) if boots else np.full((1, size), np.nan)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns: thresholds nobody reaches
        low = np.nanpercentile(curve_boot, 2.5, axis=0)
        high = np.nanpercentile(curve_boot, 97.5, axis=0)
    n_flagged_at = np.rint(point["F"] * n).astype(np.int64)
    ranked = np.sort(real_score)[::-1]

    def real_threshold(count: int) -> float:
        """The real audit's flip score that flags ``count`` pairs (the same top of the ranking)."""
        return float(ranked[min(max(count, 1), n) - 1])

    valid = (n_flagged_at >= MIN_CURVE_PAIRS) & np.isfinite(point["precision"])
    reach = np.nonzero(valid & (point["precision"] >= target_precision))[0]
    threshold = None
    if len(reach):
        j = int(reach[0])  # the lowest threshold that reaches the target: the most pairs
        threshold = {"flip_score": real_threshold(int(n_flagged_at[j])), "n_flagged": int(n_flagged_at[j]),
                     "precision": float(point["precision"][j]), "precision_ci95": [float(low[j]), float(high[j])]}
    best = int(np.nanargmax(np.where(valid, point["precision"], -1.0))) if valid.any() else None
    picks = np.unique(np.linspace(0, size - 1, min(size, 30)).round().astype(int))
    curve = [{"flip_score": real_threshold(int(n_flagged_at[j])), "n_flagged": int(n_flagged_at[j]),
              "precision": float(point["precision"][j]), "precision_ci95": [float(low[j]), float(high[j])],
              "planted_recall": float(point["a"][j])} for j in picks if valid[j]]
    r, r_ci = point["r"], ci("r")
    # Irreducibility (the highest-scored correct pairs are rarer than flips) is believable only when
    # the signals separate flips well; otherwise r is an upper bound. The copies' AUC for "planted"
    # mixes real flips into both groups: observed = (1 − 2r)·AUC + r ≤ AUC. A low observed AUC, or
    # an r that would need a flip AUC above 1, or a corrected AUC below BOUND_AUC: only a bound.
    observed = _auc(planted_score, planted)
    corrected = (observed - r) / (1.0 - 2.0 * r) if np.isfinite(observed) and r <= MAX_SOLVABLE_RATE else float("nan")
    auc = float(np.clip(corrected, 0.0, 1.0)) if np.isfinite(corrected) else float("nan")
    bound_only = bool(not np.isfinite(corrected) or observed < MIN_OBSERVED_AUC or corrected > 1.0
                      or corrected < BOUND_AUC)
    flagged = int(real_flag.sum())
    precision_ci = ci("flag_precision")
    return _finite_or_none({
        "n_pairs": int(n), "repeats": int(repeats), "planted_per_repeat": int(round(planted.sum() / max(repeats, 1))),
        "estimated_flip_rate": r, "estimated_flip_rate_ci95": r_ci,
        "estimated_flips": int(round(r * n)), "estimated_flips_ci95": [int(round(v * n)) for v in r_ci],
        "flagged": flagged,
        "flag_precision": point["flag_precision"], "flag_precision_ci95": precision_ci,
        "flag_recall": point["flag_recall"], "flag_recall_ci95": ci("flag_recall"),
        "flagged_real_flips": int(round(point["flag_precision"] * flagged)) if np.isfinite(point["flag_precision"])
        else None,
        "flagged_real_flips_ci95": [int(round(v * flagged)) if np.isfinite(v) else None for v in precision_ci],
        "planted_flags_caught": point["a_flag"], "planted_flags_caught_ci95": ci("a_flag"),
        "target_precision": float(target_precision), "threshold": threshold,
        "best_precision": None if best is None else {"precision": float(point["precision"][best]),
                                                     "n_flagged": int(n_flagged_at[best]),
                                                     "flip_score": real_threshold(int(n_flagged_at[best]))},
        "bound_only": bound_only, "flip_auc_estimated": auc, "planted_flip_auc_observed": observed,
        "curve": curve, "n_boot": len(boots),
    })


def _auc(planted_score: np.ndarray, planted: np.ndarray) -> float:
    """AUC of the planted copies' scores for "was planted" (pooled over repeats)."""
    from sklearn.metrics import roc_auc_score

    truth = np.asarray(planted, bool).ravel()
    if truth.all() or not truth.any():
        return float("nan")
    return float(roc_auc_score(truth, np.asarray(planted_score).ravel()))


def _finite_or_none(value: Any) -> Any:
    """The result with every NaN or infinite float replaced by None (what JSON can carry)."""
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite_or_none(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def flip_probabilities(real_score: np.ndarray, planted_score: np.ndarray, planted: np.ndarray, r: float, *,
                       folds: int = 5, seed: int = 0) -> np.ndarray:
    """Calibrated P(the pair is a real flip | its flip score), float64 ``(N,)``: ``r·((1 − r)·ρ − r)/(1 − 2r)``
    with ρ(s) = planted density / non-planted density of the copies' scores at the real score s,
    from Laplace-smoothed counts in score bins made monotone by isotonic regression, cross-fitted:
    a pair's probability comes from bins counted on the other folds' pairs only."""
    from sklearn.isotonic import IsotonicRegression

    real_score = np.asarray(real_score, np.float64)
    planted_score = np.atleast_2d(np.asarray(planted_score, np.float64))
    planted = np.atleast_2d(np.asarray(planted, bool))
    n = len(real_score)
    if r <= 0 or r > MAX_SOLVABLE_RATE:
        return np.zeros(n) if r <= 0 else np.full(n, np.nan)
    edges = np.unique(np.quantile(planted_score, np.linspace(0, 1, N_BINS + 1)))[1:-1]
    fold_of = np.random.default_rng(seed).permutation(n) % max(2, min(folds, n))
    rows, cols = np.nonzero(np.ones_like(planted))
    bins = np.searchsorted(edges, planted_score[rows, cols], side="right")
    is_planted = planted[rows, cols]
    bin_real = np.searchsorted(edges, real_score, side="right")
    centres = np.arange(len(edges) + 1, dtype=np.float64)
    out = np.empty(n)
    for k in np.unique(fold_of):
        train = fold_of[cols] != k
        c1 = np.bincount(bins[train & is_planted], minlength=len(centres)).astype(np.float64)
        c0 = np.bincount(bins[train & ~is_planted], minlength=len(centres)).astype(np.float64)
        share = (c1 + 0.5) / (c1 + c0 + 1.0)                      # P(planted | bin), Laplace-smoothed
        iso = IsotonicRegression(increasing=True, y_min=1e-6, y_max=1 - 1e-6, out_of_bounds="clip")
        fitted = iso.fit(centres, share, sample_weight=c0 + c1 + 1.0).predict(centres)
        ratio = (c0.sum() / max(c1.sum(), 1.0)) * fitted / (1.0 - fitted)  # planted / non-planted density
        prob = r * ((1.0 - r) * ratio - r) / (1.0 - 2.0 * r)
        test = fold_of == k
        out[test] = np.clip(prob, 0.0, 1.0)[bin_real[test]]
    return out


# ============================================================================== the whole procedure
def calibrate_audit(data: Any, table: pd.DataFrame, embeddings: Any, *, config: AuditConfig | None = None,
                    calibration: CalibrationConfig | None = None, second_embeddings: Any = None,
                    n_boot: int = 300, report: Callable[[float, str], None] | None = None) -> pd.DataFrame:
    """Calibrate ``table`` (the audit of ``data`` with ``config`` on ``embeddings``): returns a copy
    with a ``flip_probability`` column and the estimates in ``attrs["alignscope_audit"]["calibration"]``
    (see the module docstring; :func:`calibration_sentences` puts them in words). Costs
    ``calibration.repeats`` more audits of (1 + 2·planted_rate)·N pairs."""
    config = (config or AuditConfig()).validate()
    calibration = (calibration or CalibrationConfig(calibrate=True)).validate()
    tell = report or (lambda fraction, message: None)
    n = len(table)
    frame = getattr(data, "frame", data)
    if len(frame) != n:
        raise AuditError(f"the audit has {n:,} rows but the data {len(frame):,} pairs")
    if round(calibration.planted_rate * n) < 2:
        raise AuditError(f"planting {calibration.planted_rate:g} of {n} pairs leaves fewer than 2 planted flips: "
                         "raise --planted-rate or audit more pairs")
    text = pd.DataFrame({c: _texts(data, c) for c in ("prompt", "chosen", "rejected")})
    chosen, rejected = pair_matrices(embeddings, n)
    second = pair_matrices(second_embeddings, n) if second_embeddings is not None else None
    if config.second_encoder and second is None:
        raise AuditError("the audit used a second encoder: pass its embeddings (second_embeddings) to calibrate")
    R = calibration.repeats
    scores, flags, planted = np.empty((R, n)), np.zeros((R, n), bool), np.zeros((R, n), bool)
    dup_found, dup_planted, dup_false = 0, 0, 0
    real_duplicate = table["is_duplicate"].to_numpy(dtype=bool)
    for k in range(R):
        tell(k / (R + 1), f"planted copy {k + 1} of {R}: auditing")
        copy = plant_defects(text, chosen, rejected, rate=calibration.planted_rate, seed=_plant_seed(config.seed, k),
                             second=second, dup_group=table["dup_group"].to_numpy())
        planted_table = audit(copy.frame, (copy.chosen, copy.rejected), config=config,
                              second_embeddings=copy.second)
        scores[k] = planted_table["flip_score"].to_numpy()[:n]
        flags[k] = planted_table["suspect_flip"].to_numpy(dtype=bool)[:n]
        planted[k] = copy.flipped[:n]
        groups = planted_table["dup_group"].to_numpy()
        copies = np.nonzero(copy.copy_of >= 0)[0]
        originals = copy.copy_of[copies]
        dup_planted += len(copies)
        dup_found += int(((groups[copies] >= 0) & (groups[copies] == groups[originals])).sum())
        dup_false += int((planted_table["is_duplicate"].to_numpy(dtype=bool)[:n] & ~real_duplicate).sum())
    tell(R / (R + 1), "estimating")
    real_score = table["flip_score"].to_numpy(dtype=np.float64)
    result = estimate_from_scores(real_score, table["suspect_flip"].to_numpy(dtype=bool), scores, flags, planted,
                                  target_precision=calibration.target_precision, n_boot=n_boot, seed=config.seed)
    result["duplicates"] = {"planted_copies": dup_planted, "recall": dup_found / dup_planted if dup_planted else None,
                            "precision": dup_found / (dup_found + dup_false) if dup_found + dup_false else None}
    out = table.copy()
    out.attrs = {key: dict(value) if isinstance(value, dict) else value for key, value in table.attrs.items()}
    out["flip_probability"] = flip_probabilities(real_score, scores, planted, result["estimated_flip_rate"],
                                                 folds=config.folds, seed=config.seed)
    result.update({"planted_rate": calibration.planted_rate, "fix_threshold": calibration.fix_threshold,
                   "n_fix": int(len(fix_flips(out, calibration.fix_threshold))),
                   "mean_flip_probability": float(out["flip_probability"].mean())})
    result["sentences"] = calibration_sentences(result)
    out.attrs.setdefault("alignscope_audit", {})["calibration"] = result
    tell(1.0, "calibrated")
    return out


def _plant_seed(seed: int, repeat: int) -> int:
    return int(np.random.SeedSequence([int(seed), 27, int(repeat)]).generate_state(1)[0])


# ============================================================================== in words
def _interval(values: list, percent: bool = False) -> str:
    if any(v is None for v in values):
        return "[cannot tell]"
    if isinstance(values[0], int):
        return f"[{values[0]:,}, {values[1]:,}]"
    return f"[{values[0]:.0%}, {values[1]:.0%}]" if percent else f"[{values[0]:.2f}, {values[1]:.2f}]"


def calibration_sentences(result: dict[str, Any]) -> list[str]:
    """The calibration in plain sentences (the CLI prints them, the Audit page shows them). When
    the signals separate flips weakly (``bound_only``) the numbers are said to be upper bounds."""
    out = []
    flagged = result["flagged"]
    bound = result["bound_only"]
    about = "about"
    if not flagged:
        out.append("No pair is flagged as a suspected flip.")
    elif result["flag_precision"] is None or result["flag_recall"] is None:
        out.append(f"Of the {flagged:,} flagged pairs the audit cannot tell how many are real flips: planted flips "
                   "score like the real pairs.")
    else:
        out.append(f"Of the {flagged:,} flagged pairs {about} {result['flagged_real_flips']:,} "
                   f"{_interval(result['flagged_real_flips_ci95'])} are likely real flips (precision "
                   f"{result['flag_precision']:.2f} {_interval(result['flag_precision_ci95'])}); the flag catches "
                   f"about {result['flag_recall']:.0%} {_interval(result['flag_recall_ci95'], True)} of flips.")
    out.append(f"The data holds {about} {result['estimated_flips']:,} {_interval(result['estimated_flips_ci95'])} "
               f"flipped pairs ({result['estimated_flip_rate']:.1%} of {result['n_pairs']:,}).")
    target = result["target_precision"]
    t = result["threshold"]
    if t is not None and not bound:
        out.append(f"At precision {target:g} you can flag {t['n_flagged']:,} pairs (flip score ≥ {t['flip_score']:.3f}; "
                   f"estimated precision {t['precision']:.2f} {_interval(t['precision_ci95'])}).")
    elif t is not None:
        out.append(f"Flagging the {t['n_flagged']:,} highest-scored pairs (flip score ≥ {t['flip_score']:.3f}) would "
                   f"reach precision {target:g} only if these bounds were tight: treat it as optimistic.")
    elif result["best_precision"] is not None:
        best = result["best_precision"]
        out.append(f"No threshold reaches precision {target:g} on this data: the best is {best['precision']:.2f}, "
                   f"at the {best['n_flagged']:,} highest-scored pairs.")
    else:
        out.append(f"No threshold reaches precision {target:g} on this data.")
    if bound:
        observed = result.get("planted_flip_auc_observed")
        out.append("The signals do not separate flips sharply enough here"
                   + (f" (planted flips against the rest: AUC {observed:.2f})" if observed is not None else "")
                   + ": if real flips look like random swaps these numbers are upper bounds, and many flagged pairs may "
                   "be the model's own errors.")
    return out

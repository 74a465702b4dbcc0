"""Preference metrics on held-out pairs, always beside the rule they must beat: "the longer answer wins".

Every evaluator of alignscope (the probe, DPO/KTO runs, checkpoint evaluations, sweep points) ends in
one vector: the Bradley–Terry margin of each held-out pair, ``margin = r(chosen) − r(rejected)``
(for a DPO/KTO policy the implicit reward β·log π/π_ref, for the probe w·(e_c − e_r)).
:func:`preference_metrics` turns it into the numbers users compare, with paired bootstrap intervals:

* ``accuracy``: share of pairs with margin > 0 (a tie counts ½), 95 % interval;
* ``log_loss``: mean −log σ(margin), the Bradley–Terry negative log-likelihood; ``mean_margin``.
  Continuous, so they resolve differences that accuracy hides (log 2 = 0.693 is "no information");
* ``length_baseline``: accuracy of the length rule on the same pairs. Its direction (longer or
  shorter wins, ``length_baseline_direction``) is learned from the TRAINING pairs only
  (:class:`LengthRule`), never from the held-out labels;
* ``length_controlled_accuracy``: accuracy where length cannot help. Pairs are split by which answer
  is longer; the two groups count equally (½·acc(chosen longer) + ½·acc(chosen shorter)) and the
  pairs of equal length keep their share t as a third group:
  ``LC = (1 − t)·½·(acc_longer + acc_shorter) + t·acc_ties``. Any scorer that reads only the
  length difference (any monotone function of it, in either direction) scores exactly 0.5, and so
  does a coin; a scorer that sees content scores above 0.5. Group sizes are reported;
* ``beats_length_baseline``: True only when the accuracy interval lies above the length baseline;
  ``vs_length_baseline``: the paired difference accuracy − length baseline with its interval.

Intervals are percentile bootstraps over held-out pairs (seeded); all metrics of one call share the
same resamples, so their differences are paired. This module is numpy only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["METRICS", "LOWER_IS_BETTER", "METRIC_CI_KEYS", "metric_baseline", "LengthRule", "word_count", "pair_word_lengths", "success",
           "bt_log_loss", "length_controlled", "preference_metrics", "metric_values", "describe_scores"]

# The scores a scaling curve can be drawn with (``--metric``); log_loss falls as quality rises.
METRICS = ("accuracy", "length_controlled_accuracy", "log_loss")
LOWER_IS_BETTER = frozenset({"log_loss"})
# The interval key of each metric in a result of preference_metrics.
METRIC_CI_KEYS = {"accuracy": "accuracy_ci95", "length_controlled_accuracy": "length_controlled_ci95",
                  "log_loss": "log_loss_ci95"}
DEFAULT_N_BOOT = 1000


def metric_baseline(result: dict[str, Any], metric: str) -> float | None:
    """What the length rule scores in ``metric`` on the same held-out pairs as ``result`` (0.5 for
    the length-controlled accuracy: length alone cannot do better there)."""
    if metric == "accuracy":
        return result.get("length_baseline")
    if metric == "length_controlled_accuracy":
        return 0.5
    return result.get("length_baseline_log_loss")
_LOG2 = math.log(2.0)


def word_count(text: Any) -> int:
    """Whitespace-separated words of a text (message lists: of their contents, not their role
    labels; a missing value, None or NaN, has none). The one word count of alignscope."""
    if isinstance(text, str):
        return len(text.split())
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return 0
    if hasattr(text, "tolist"):
        text = text.tolist()
    if isinstance(text, (list, tuple)):
        return sum(word_count(m.get("content", "") if isinstance(m, dict) else m) for m in text)
    return len(str(text).split())


def pair_word_lengths(data: Any, pairs: Sequence[int] | np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(chosen words, rejected words) of ``pairs`` (None: all) of a PreferenceData or DataFrame."""
    frame = getattr(data, "frame", data)
    rows = np.arange(len(frame)) if pairs is None else np.asarray(pairs, dtype=np.int64)
    chosen = frame["chosen"].to_numpy()[rows]
    rejected = frame["rejected"].to_numpy()[rows]
    return (np.fromiter((word_count(t) for t in chosen), dtype=np.int64, count=len(rows)),
            np.fromiter((word_count(t) for t in rejected), dtype=np.int64, count=len(rows)))


def success(margin: np.ndarray) -> np.ndarray:
    """1 where margin > 0, ½ on ties, 0 where margin < 0."""
    margin = np.asarray(margin, dtype=np.float64)
    return np.where(margin > 0, 1.0, np.where(margin == 0, 0.5, 0.0))


def bt_log_loss(margin: np.ndarray) -> np.ndarray:
    """−log σ(margin) per pair, computed stably (log(1 + e^{−m}))."""
    return np.logaddexp(0.0, -np.asarray(margin, dtype=np.float64))


@dataclass(frozen=True)
class LengthRule:
    """"The longer (or shorter) answer wins", learned from training pairs.

    ``direction``: ``"longer"`` when chosen answers are longer in at least half of the training pairs
    whose lengths differ, else ``"shorter"``. ``slope``: a one-parameter Bradley–Terry fit of the
    label on log(words_chosen + 1) − log(words_rejected + 1) (no intercept, symmetric), so the rule
    also has a log loss to compare with. ``share``: the training share behind the direction.
    """

    direction: str
    slope: float
    share: float
    n_train: int

    @classmethod
    def fit(cls, chosen_words: np.ndarray, rejected_words: np.ndarray) -> "LengthRule":
        diff = np.asarray(chosen_words, dtype=np.float64) - np.asarray(rejected_words, dtype=np.float64)
        decided = diff != 0
        share = float((diff[decided] > 0).mean()) if decided.any() else 0.5
        direction = "longer" if share >= 0.5 else "shorter"
        x = _log_ratio(chosen_words, rejected_words)
        return cls(direction=direction, slope=_fit_slope(x), share=share, n_train=int(len(diff)))

    def margin(self, chosen_words: np.ndarray, rejected_words: np.ndarray) -> np.ndarray:
        """The rule's Bradley–Terry margin: its sign says which answer it prefers (0 on ties)."""
        x = _log_ratio(chosen_words, rejected_words)
        sign = 1.0 if self.direction == "longer" else -1.0
        return sign * max(abs(self.slope), 1e-6) * x  # a slope of 0 still orders by length

    def to_dict(self) -> dict[str, Any]:
        return {"direction": self.direction, "slope": round(self.slope, 6), "train_share": round(self.share, 6),
                "n_train": self.n_train}


def _log_ratio(chosen_words: np.ndarray, rejected_words: np.ndarray) -> np.ndarray:
    return np.log1p(np.asarray(chosen_words, dtype=np.float64)) - np.log1p(np.asarray(rejected_words, dtype=np.float64))


def _fit_slope(x: np.ndarray, iterations: int = 50) -> float:
    """Maximum-likelihood slope w of P(chosen) = σ(w·x) over pairs (Newton's method, every label 1
    by construction of x); a small ridge keeps it finite when the classes separate."""
    x = np.asarray(x, dtype=np.float64)
    if not x.size or not np.any(x):
        return 0.0
    w, ridge = 0.0, 1e-3 * len(x)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-w * x))
        grad = np.sum((1.0 - p) * x) - ridge * w
        hess = np.sum(p * (1.0 - p) * x * x) + ridge
        step = grad / hess
        w += step
        if abs(step) < 1e-10:
            break
    return float(w)


def length_controlled(wins: np.ndarray, length_diff: np.ndarray) -> tuple[float, float, float, float]:
    """(LC accuracy, acc chosen-longer, acc chosen-shorter, acc ties) from per-pair successes and
    chosen − rejected lengths; a group without pairs counts as 0.5 (no evidence either way)."""
    wins = np.asarray(wins, dtype=np.float64)
    longer, shorter = length_diff > 0, length_diff < 0
    ties = ~(longer | shorter)
    acc = [float(wins[mask].mean()) if mask.any() else 0.5 for mask in (longer, shorter, ties)]
    t = float(ties.mean()) if len(wins) else 0.0
    return (1 - t) * 0.5 * (acc[0] + acc[1]) + t * acc[2], acc[0], acc[1], acc[2]


def resampled_metric(margin: np.ndarray, length_diff: np.ndarray, metric: str, weights: np.ndarray) -> np.ndarray:
    """One metric of :data:`METRICS` on many bootstrap resamples of the same pairs at once.

    ``margin``, ``length_diff``: (n,); ``weights``: (B, n), how often each pair is drawn in each
    resample. Returns (B,): the metric's value per resample, so that resamples shared between
    scorers give paired differences.
    """
    weights = np.asarray(weights, dtype=np.float64)
    total = weights.sum(axis=1)
    if metric == "log_loss":
        return weights @ bt_log_loss(margin) / total
    wins = success(margin)
    if metric == "accuracy":
        return weights @ wins / total
    if metric != "length_controlled_accuracy":
        raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    length_diff = np.asarray(length_diff)
    parts = []
    for mask in (length_diff > 0, length_diff < 0, length_diff == 0):
        count = weights @ mask
        parts.append((np.where(count > 0, weights @ (wins * mask) / np.maximum(count, 1e-12), 0.5), count))
    ties_share = parts[2][1] / total
    return (1 - ties_share) * 0.5 * (parts[0][0] + parts[1][0]) + ties_share * parts[2][0]


def metric_values(margin: np.ndarray, length_diff: np.ndarray, metric: str) -> float:
    """One metric of :data:`METRICS` from per-pair margins (and chosen − rejected lengths)."""
    if metric == "accuracy":
        return float(success(margin).mean())
    if metric == "length_controlled_accuracy":
        return length_controlled(success(margin), np.asarray(length_diff))[0]
    if metric == "log_loss":
        return float(bt_log_loss(margin).mean())
    raise ValueError(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")


def _interval(values: np.ndarray) -> list[float]:
    low, high = np.quantile(values, [0.025, 0.975])
    return [float(low), float(high)]


def preference_metrics(margin: Sequence[float] | np.ndarray, chosen_words: np.ndarray, rejected_words: np.ndarray,
                       rule: LengthRule, *, n_boot: int = DEFAULT_N_BOOT, seed: int = 0) -> dict[str, Any]:
    """The metrics of the module docstring for held-out pairs (arrays of shape (n,), one per pair).

    ``rule``: the length rule fitted on the training pairs. ``n_boot`` resamples of the pairs
    (seeded) give every interval; with fewer than 2 pairs there is no interval (None).
    """
    margin = np.asarray(margin, dtype=np.float64).ravel()
    chosen_words = np.asarray(chosen_words).ravel()
    rejected_words = np.asarray(rejected_words).ravel()
    n = len(margin)
    if n == 0:
        raise ValueError("no held-out pairs to score")
    if not (len(chosen_words) == len(rejected_words) == n):
        raise ValueError(f"{n} margins but {len(chosen_words)}/{len(rejected_words)} lengths")
    diff = chosen_words.astype(np.float64) - rejected_words.astype(np.float64)
    wins = success(margin)
    length_wins = success(rule.margin(chosen_words, rejected_words))
    losses = bt_log_loss(margin)
    lc, acc_longer, acc_shorter, acc_ties = length_controlled(wins, diff)
    out: dict[str, Any] = {
        "n_heldout": n,
        "accuracy": float(wins.mean()),
        "log_loss": float(losses.mean()),
        "mean_margin": float(margin.mean()),
        "length_baseline": float(length_wins.mean()),
        "length_baseline_direction": rule.direction,
        "length_controlled_accuracy": lc,
        "length_groups": {"chosen_longer": int((diff > 0).sum()), "chosen_shorter": int((diff < 0).sum()),
                          "ties": int((diff == 0).sum()), "accuracy_chosen_longer": acc_longer,
                          "accuracy_chosen_shorter": acc_shorter, "accuracy_ties": acc_ties},
        "length_rule": rule.to_dict(),
        "length_baseline_log_loss": float(bt_log_loss(rule.margin(chosen_words, rejected_words)).mean()),
        "n_boot": int(n_boot),
    }
    intervals = {"accuracy_ci95": None, "log_loss_ci95": None, "margin_ci95": None, "length_baseline_ci95": None,
                 "length_controlled_ci95": None, "vs_length_baseline_ci95": None}
    if n >= 2 and n_boot > 0:
        rng = np.random.default_rng(seed)
        boot = {key: np.empty(n_boot) for key in ("acc", "loss", "margin", "length", "lc", "vs")}
        chunk = max(1, min(n_boot, 4_000_000 // n))
        for start in range(0, n_boot, chunk):
            stop = min(n_boot, start + chunk)
            rows = rng.integers(0, n, size=(stop - start, n))
            boot["acc"][start:stop] = wins[rows].mean(axis=1)
            boot["loss"][start:stop] = losses[rows].mean(axis=1)
            boot["margin"][start:stop] = margin[rows].mean(axis=1)
            boot["length"][start:stop] = length_wins[rows].mean(axis=1)
            boot["vs"][start:stop] = boot["acc"][start:stop] - boot["length"][start:stop]
            counts = np.stack([np.bincount(row, minlength=n) for row in rows])
            boot["lc"][start:stop] = resampled_metric(margin, diff, "length_controlled_accuracy", counts)
        intervals = {"accuracy_ci95": _interval(boot["acc"]), "log_loss_ci95": _interval(boot["loss"]),
                     "margin_ci95": _interval(boot["margin"]), "length_baseline_ci95": _interval(boot["length"]),
                     "length_controlled_ci95": _interval(boot["lc"]), "vs_length_baseline_ci95": _interval(boot["vs"])}
    out.update(intervals)
    out["vs_length_baseline"] = out["accuracy"] - out["length_baseline"]
    out["beats_length_baseline"] = bool(out["accuracy_ci95"] is not None
                                        and out["accuracy_ci95"][0] > out["length_baseline"])
    out["content_signal"] = bool(out["length_controlled_ci95"] is not None and out["length_controlled_ci95"][0] > 0.5)
    return out


def describe_scores(result: dict[str, Any]) -> str:
    """One line for a terminal or a status: accuracy beside the length rule, and the two robust
    metrics, e.g. ``accuracy 0.612 [0.571, 0.650] vs length rule 0.560 (shorter wins) · length-controlled
    0.553 [0.51, 0.60] · log loss 0.681 on 462 pairs``."""
    def span(key: str, fmt: str = ".3f") -> str:
        interval = result.get(key)
        return f" [{format(interval[0], fmt)}, {format(interval[1], fmt)}]" if interval else ""

    parts = [f"accuracy {result['accuracy']:.3f}{span('accuracy_ci95')}"]
    if result.get("length_baseline") is not None:
        parts[0] += f" vs length rule {result['length_baseline']:.3f} ({result['length_baseline_direction']} wins)"
    if result.get("length_controlled_accuracy") is not None:
        parts.append(f"length-controlled {result['length_controlled_accuracy']:.3f}{span('length_controlled_ci95')}")
    if result.get("log_loss") is not None:
        parts.append(f"log loss {result['log_loss']:.3f}{span('log_loss_ci95')}")
    n = result.get("n_heldout") or result.get("n_pairs")
    return " · ".join(parts) + (f" on {n:,} held-out pairs" if n else "")

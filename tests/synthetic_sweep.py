"""A sweep directory written the way a finished sweep leaves it (sweep.json, points.jsonl, the held-out
pairs' lengths, each point's held-out margins), from known per-method skills, so that what the fit
and the headline say can be checked against the truth in seconds, without running a job.

A point's margin on held-out pair i is ``skill(fraction) + noise_i`` with standard normal noise, so
its accuracy is about Φ(skill); ``skill`` follows a plateau s(x) = r − (r − a)·e^(−b·x).
"""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Mapping

import numpy as np

from alignscope.evaluate.metrics import METRICS, metric_values
from alignscope.scaling.sweep import HELDOUT_FILE, POINTS_FILE, SWEEP_FILE, SweepConfig, point_dir_name

FRACTIONS = [0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0]


def skill(fraction: float, r: float, a: float = 0.0, b: float = 15.0) -> float:
    return r - (r - a) * np.exp(-b * fraction)


def write_sweep(out: Path, plateaus: Mapping[str, float], *, n_heldout: int = 400, n_pool: int = 2400,
                seeds=(0, 1, 2), fractions=FRACTIONS, full: float | None = None, fingerprint: str = "synthetic",
                evaluator: str = "probe", metric: str = "accuracy", seed: int = 0,
                skills: Mapping[tuple[str, float], float] | None = None) -> Path:
    """``plateaus``: method → r of its skill curve (``full``: the all-data skill, default the mean of
    the plateaus); ``skills`` overrides single (method, fraction) skills. Returns ``out``."""
    rng = np.random.default_rng(seed)
    out = Path(out)
    (out / "points").mkdir(parents=True, exist_ok=True)
    pairs = np.sort(rng.choice(10 * n_heldout, n_heldout, replace=False)).astype(np.int64)
    chosen, rejected = rng.integers(5, 80, n_heldout), rng.integers(5, 80, n_heldout)
    np.savez(out / HELDOUT_FILE, pairs=pairs, chosen_words=chosen, rejected_words=rejected)
    config = SweepConfig(methods=list(plateaus), fractions=list(fractions), seeds=list(seeds), evaluator=evaluator,
                         metric=metric)
    full_skill = float(np.mean(list(plateaus.values()))) if full is None else full
    lines = []
    for point in config.points():
        method, fraction = point["method"], point["fraction"]
        value = (full_skill if method == "all" else (skills or {}).get((method, fraction),
                                                                       skill(fraction, plateaus[method])))
        margin = value + rng.normal(size=n_heldout)
        folder = out / "points" / point_dir_name(point)
        folder.mkdir(parents=True, exist_ok=True)
        np.savez(folder / HELDOUT_FILE, pairs=pairs, margin=margin)
        scores = {name: metric_values(margin, chosen - rejected, name) for name in METRICS}
        lines.append({**point, "score": scores[metric], "metric": metric, "baseline": 0.5, **scores,
                      "length_baseline": 0.5, "length_baseline_log_loss": 0.693, "evaluator": evaluator,
                      "n_train_pairs": max(1, int(round(fraction * n_pool))), "job_id": None, "wall_s": 0.1})
    (out / POINTS_FILE).write_text("".join(json.dumps(line) + "\n" for line in lines))
    (out / SWEEP_FILE).write_text(json.dumps({"config": config.to_dict(), "data": {"fingerprint": fingerprint},
                                              "executor": "local", "workers": 1, "jobs": [],
                                              "created_at": time.time()}))
    return out

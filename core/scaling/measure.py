"""Measuring a sweep's points (see :mod:`alignscope.scaling.sweep` for the folder and the units).

* :class:`SweepContext`: what every point of one sweep shares, loaded once per worker process: the
  data, the held-out split, the selectors' embeddings and the probe (its features, the held-out
  pairs' lengths and the length rule), so a point costs one probe fit, not a start-up, a parse and
  a feature load.
* :func:`worker_job` (job kind ``sweep_worker``): claims units of work from the sweep folder until
  none is left; for each unit it ranks once and measures every fraction, appending each point to
  ``points.jsonl`` the moment it is measured, with the sweep's progress and an ETA as the job's message.
* :func:`point_job` (job kind ``sweep_point``, sweeps of earlier versions): one point, same code.
"""
from __future__ import annotations

import json
import os
import socket
import time
from functools import cached_property
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from alignscope.audit import FLAGS
from alignscope.embed.encoders import embed
from alignscope.evaluate.metrics import METRIC_CI_KEYS, METRICS, metric_baseline
from alignscope.files import append_jsonl, atomic_path, count_lines, write_json
from alignscope.jobs import JobStore, read_run_config
from alignscope.run_files import EVAL_PAIRS_FILE, SELECTION_FILE
from alignscope.scaling.sweep import (
    ALL_METHOD,
    AUDIT_FILE,
    CHECKPOINT_METHOD,
    CLAIMS_DIR,
    CLEAN_METHOD,
    FIX_METHOD,
    HELDOUT_FILE,
    POINTS_FILE,
    SWEEP_FILE,
    UNITS_FILE,
    SweepConfig,
    SweepError,
    pair_count,
    point_dir_name,
    rates_path,
    selection_size,
    unit_name,
)
from alignscope.select.pair_options import PAIR_METHODS, PAIR_OPTIONS
from alignscope.select.selection import Selection

# Methods whose ranking reads none of the sweep encoder's features: the probe cannot favour them
# for seeing what they saw (lm-margin reads its own language model).
_READS_NO_FEATURES = frozenset({"random", "length", "lm-margin"})  # clean reads the audit, whose probe reads them

__all__ = ["SweepContext", "worker_job", "point_job", "training_pairs_table", "clean_ranking", "fix_ranking",
           "format_eta"]


# ------------------------------------------------------------------------------- rankings
def training_pairs_table(selection: Selection, test_pairs: np.ndarray, n_pairs: int, k_pairs: int) -> Selection:
    """A pair-level selection table that keeps EXACTLY ``k_pairs`` training pairs: the selector's
    ranking turned into pairs (a completion-level ranking through the ``any`` rule: a pair ranks by
    its better completion; pairs the selector selected come first), held-out pairs never selected.
    So every method of a sweep trains on the same number of pairs at each fraction."""
    pair_sel = selection.pair_selection("any")
    pairs, picked_first = pair_sel.table, pair_sel.selected
    index = pairs["index"].to_numpy(dtype=np.int64)
    in_pool = ~np.isin(index, test_pairs)
    order = np.lexsort((pairs["rank"].to_numpy(), ~picked_first))
    order = order[in_pool[order]]
    if len(order) < k_pairs:
        raise SweepError(f"the selector ranked {len(order)} training pairs, {k_pairs} are needed")
    selected = np.zeros(len(pairs), dtype=bool)
    selected[order[:k_pairs]] = True
    out = pd.DataFrame({"index": index, "score": pairs["score"].to_numpy(dtype=np.float64), "selected": selected,
                        "rank": pairs["rank"].to_numpy(dtype=np.int64)})
    config = dict(selection.config)
    config.update(unit="pair", from_unit=selection.unit, pair_rule="any", n_points=int(len(out)),
                  n_selected=int(k_pairs), k=int(k_pairs), sweep_equal_pairs=True)
    return Selection(out, config, selection.fingerprint)


def clean_ranking(audit_path: Path, seed: int, fingerprint: str) -> Selection:
    """A pair ranking for the ``clean`` method: the pairs without an audit flag in a seeded random
    order, then the flagged ones (used only when the fraction asks for more than the clean pairs)."""

    table = pd.read_parquet(audit_path)
    flagged = np.zeros(len(table), dtype=bool)
    for name in FLAGS:
        flagged |= table[name].to_numpy(dtype=bool)
    order = np.random.default_rng(seed).permutation(len(table))
    rank = np.empty(len(table), dtype=np.int64)
    rank[np.lexsort((order, flagged))] = np.arange(1, len(table) + 1)
    out = pd.DataFrame({"index": table["index"].to_numpy(dtype=np.int64), "score": (~flagged).astype(float),
                        "selected": ~flagged, "rank": rank})
    return Selection(out, {"method": CLEAN_METHOD, "unit": "pair", "seed": int(seed), "n_flagged": int(flagged.sum()),
                           "options": {"drop": list(FLAGS)}}, fingerprint)


def fix_ranking(audit_path: Path, seed: int, fingerprint: str) -> Selection:
    """A pair ranking for the ``fix`` method: every pool pair in the same seeded random order the
    ``clean`` method uses, the pairs the audit suspects flipped kept but recorded in the config as
    ``swapped`` (their labels are exchanged before training): remove (``clean``) and fix differ only
    in what they do with the same flags."""
    table = pd.read_parquet(audit_path)
    order = np.random.default_rng(seed).permutation(len(table))
    rank = np.empty(len(table), dtype=np.int64)
    rank[order] = np.arange(1, len(table) + 1)
    index = table["index"].to_numpy(dtype=np.int64)
    swapped = index[table["suspect_flip"].to_numpy(dtype=bool)]
    out = pd.DataFrame({"index": index, "score": -rank.astype(float), "selected": np.ones(len(table), bool),
                        "rank": rank})
    return Selection(out, {"method": FIX_METHOD, "unit": "pair", "seed": int(seed), "n_swapped": int(len(swapped)),
                           "swapped": swapped.tolist(), "options": {"swap": "suspect_flip"}}, fingerprint)


# ------------------------------------------------------------------------------- the context
class SweepContext:
    """What the points of one sweep share, computed at most once per process (lazily: a worker
    that only trains never loads the probe's features)."""

    def __init__(self, data: Any, sweep: SweepConfig, sweep_dir: str | os.PathLike):
        from alignscope.evaluate.evaluators import split_pairs

        self.data, self.sweep, self.sweep_dir = data, sweep, Path(sweep_dir)
        self.train_pool, self.test_pairs = split_pairs(len(data), sweep.test_fraction, sweep.split_seed)
        self.n_pool = len(self.train_pool)
        self.job_id: str | None = None  # the job measuring, recorded with each point

    @cached_property
    def embeddings(self):
        """The selectors' features (cached on disk by the sweep's submit)."""
        return embed(self.data, encoder=self.sweep.encoder, unit=self.sweep.unit, progress=False)

    @cached_property
    def probe(self):
        """The probe evaluator on the sweep's held-out pairs, features from ``probe_encoder``."""
        from alignscope.evaluate.probe import ProbeEvaluator

        features = (self.embeddings if self.sweep.probe_encoder == self.sweep.encoder and self.sweep.unit == "completion"
                    else embed(self.data, encoder=self.sweep.probe_encoder, unit="completion", progress=False))
        return ProbeEvaluator(features, self.test_pairs, data=self.data, seed=self.sweep.split_seed)

    def ranking(self, method: str, seed: int) -> Selection | None:
        """The ranking of ``method`` with ``seed`` over the TRAINING POOL's points, computed once for
        every fraction of the sweep (None for ``all``: every training pair). Held-out points are not
        candidates (so no selector spends its budget on them) and every ranked point is a training
        point; a selector is asked for as many points as the largest fraction below 1 can need
        (two per pair for completions), which k-center (whose greedy order is nested) reads as its
        run length."""
        from alignscope.select.selectors import select, select_data

        if method == ALL_METHOD:
            return None
        if method == CLEAN_METHOD:
            return clean_ranking(self.sweep_dir / AUDIT_FILE, int(seed), self.data.fingerprint)
        if method == FIX_METHOD:
            return fix_ranking(self.sweep_dir / AUDIT_FILE, int(seed), self.data.fingerprint)
        unit = self.sweep.unit
        largest = max(float(f) for f in self.sweep.fractions if float(f) < 1.0)
        k_pairs = pair_count(largest, self.n_pool)
        if method in PAIR_METHODS:  # they rank pairs from the data itself; the sweep's split is theirs too
            known = PAIR_OPTIONS[method].__dataclass_fields__
            options = {name: value for name, value in (("test_fraction", self.sweep.test_fraction),
                                                       ("split_seed", self.sweep.split_seed),
                                                       ("eval_encoder", self.sweep.probe_encoder)) if name in known}
            return select_data(self.data, method, encoder=self.sweep.encoder, seed=int(seed),
                               embeddings=self.embeddings if unit == "completion" else None,
                               k=min(len(self.data), k_pairs + len(self.test_pairs)), **options)
        if method in ("random", "llm"):  # no embeddings: random reads none, Ask-LLM reads the texts
            n_points = 2 * len(self.data) if unit == "completion" else len(self.data)
            return select_data(self.data, method, unit=unit, seed=int(seed),
                               k=selection_size(largest, n_points, len(self.test_pairs), unit))
        embeddings = self.embeddings
        in_pool = np.isin(embeddings.pair_index, self.train_pool)
        k = min(int(in_pool.sum()), 2 * k_pairs if unit == "completion" else k_pairs)
        options = {"pair_budget": k_pairs} if method == "kcenter" else {}  # its run stops once it covers them
        ranking = select(embeddings.matrix[in_pool], method, seed=int(seed), k=k, unit=unit, **options,
                         pair_index=embeddings.pair_index[in_pool],
                         label=None if embeddings.label is None else embeddings.label[in_pool],
                         encoder=embeddings.encoder, data_fingerprint=self.data.fingerprint)
        ranking.config["candidates"] = "training pool"
        return ranking

    def measure(self, point: Mapping[str, Any], ranking: Selection | None, run_dir: Path,
                report: Callable[..., None]) -> dict[str, Any]:
        """Select exactly ``pair_count(fraction)`` training pairs from ``ranking``, evaluate them,
        keep the held-out margins, write ``point.json`` and append the point to ``points.jsonl``."""
        started = time.monotonic()
        sweep = self.sweep
        run_dir.mkdir(parents=True, exist_ok=True)
        k_pairs = pair_count(point["fraction"], self.n_pool)
        selection_path = None
        if ranking is None:
            train_pairs = self.train_pool
        else:
            table = training_pairs_table(ranking, self.test_pairs, len(self.data), k_pairs)
            selection_path = table.write(run_dir / SELECTION_FILE)
            train_pairs = table.pairs("any")
        if sweep.evaluator == "probe":
            swapped = None if ranking is None else ranking.config.get("swapped")
            result = self.probe.evaluate(train_pairs, swapped=swapped, with_margins=True)
            reads_features = ranking is not None and point["method"] not in _READS_NO_FEATURES
            selection_encoder = sweep.encoder if reads_features else None
            result.update(eval_encoder=sweep.probe_encoder, selection_encoder=selection_encoder,
                          circular=bool(selection_encoder is not None and selection_encoder == sweep.probe_encoder))
            pairs, margin = result.pop("heldout_pairs"), result.pop("heldout_margin")
            n_train = result["n_train"]
        else:
            from alignscope.train.trainer import train

            summary = train(self.data, selection=None if selection_path is None else str(selection_path),
                            config=sweep.point_train_config(point["seed"], **sweep.mode_fields()),
                            run_dir=run_dir / "train", progress_bar=False,
                            report=lambda progress=None, message=None: report(message=message))
            result = summary["eval"]
            per_pair = pd.read_parquet(run_dir / "train" / EVAL_PAIRS_FILE)
            pairs, margin = per_pair["pair"].to_numpy(), per_pair["margin"].to_numpy()
            n_train = summary["training"]["n_train_pairs"]
        _save_margins(run_dir / HELDOUT_FILE, pairs, margin)
        record = {**point, **_scores(result, sweep.metric), "evaluator": sweep.evaluator,
                  "n_train_pairs": int(n_train), "job_id": self.job_id,
                  "wall_s": round(time.monotonic() - started, 3), "finished_at": time.time()}
        if sweep.evaluator == "probe":
            record["circular"] = result["circular"]
        if ranking is not None and ranking.config.get("swapped") is not None:
            record["n_swapped"] = int(np.isin(train_pairs, ranking.config["swapped"]).sum())
        write_json(run_dir / "point.json", record)
        append_jsonl(self.sweep_dir / POINTS_FILE, record)
        return record

    def checkpoint_run(self, seed: int, run_dir: Path, report: Callable[..., None]) -> dict[str, Any]:
        """Checkpoint mode: one run on all the training pairs; every checkpoint evaluation becomes a
        point the moment it is measured (so the curve fills in while the run trains)."""
        from alignscope.train.trainer import train

        started = time.monotonic()
        sweep, job_id = self.sweep, self.job_id

        def record_point(checkpoint: dict) -> None:
            append_jsonl(self.sweep_dir / POINTS_FILE, {
                "method": CHECKPOINT_METHOD, "fraction": checkpoint["fraction"], "seed": int(seed),
                **_scores(checkpoint, sweep.metric), "evaluator": sweep.evaluator,
                "n_train_pairs": checkpoint["pairs_seen"], "job_id": job_id,
                "wall_s": round(time.monotonic() - started, 3), "finished_at": time.time(), "step": checkpoint["step"]})

        run_dir.mkdir(parents=True, exist_ok=True)
        summary = train(self.data, config=sweep.point_train_config(seed, **sweep.mode_fields()),
                        run_dir=run_dir / "train", on_checkpoint=record_point, progress_bar=False,
                        report=lambda progress=None, message=None: report(progress=progress, message=message))
        record = {"method": CHECKPOINT_METHOD, "fraction": 1.0, "seed": int(seed),
                  **_scores(summary["eval"], sweep.metric), "evaluator": sweep.evaluator,
                  "n_train_pairs": int(summary["training"]["n_train_pairs"]), "job_id": job_id,
                  "wall_s": round(time.monotonic() - started, 3),
                  "checkpoints": sorted({float(f) for f in sweep.checkpoints})}
        write_json(run_dir / "point.json", record)
        return record


def _scores(result: Mapping[str, Any], metric: str) -> dict[str, Any]:
    """A point's scores: the curve's ``score`` (= ``metric``) and ``baseline``, then every metric."""
    out: dict[str, Any] = {"score": float(result[metric]), "score_ci95": result.get(METRIC_CI_KEYS[metric]),
                           "metric": metric, "baseline": metric_baseline(result, metric)}
    for name in METRICS:
        out[name] = result.get(name)
        out[METRIC_CI_KEYS[name]] = result.get(METRIC_CI_KEYS[name])
    for name in ("length_baseline", "length_baseline_direction", "length_baseline_log_loss", "n_heldout"):
        out[name] = result.get(name)
    return out


def _save_margins(path: Path, pairs: np.ndarray, margin: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, pairs=np.asarray(pairs, dtype=np.int64), margin=np.asarray(margin, dtype=np.float64))


def _own_job_id(run_dir: Path) -> str | None:
    try:
        return read_run_config(run_dir).get("job_id")
    except Exception:  # noqa: BLE001 - the id is informative only
        return None


# ------------------------------------------------------------------------------ claiming units
def claim_unit(sweep_dir: Path, method: str, seed: int, job_id: str | None, store: Any = None) -> bool:
    """Take the unit ``(method, seed)`` for this worker: True when this call created its claim
    file (exclusively), or took over the claim of a job that ended without finishing it."""
    folder = sweep_dir / CLAIMS_DIR
    folder.mkdir(parents=True, exist_ok=True)
    name = unit_name(method, seed)
    body = json.dumps({"job_id": job_id, "pid": os.getpid(), "host": socket.gethostname(), "at": time.time()})
    for generation in range(100):
        path = folder / (f"{name}.json" if generation == 0 else f"{name}.r{generation}.json")
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _claimant_ended(path, store):
                return False
            continue  # its job ended without the unit: the next generation's file decides who takes over
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
        return True
    return False


def _claimant_ended(path: Path, store: Any) -> bool:
    """True when the job that wrote claim ``path`` failed or was cancelled."""
    if store is None:
        return False
    try:
        job_id = json.loads(path.read_text(encoding="utf-8")).get("job_id")
        return bool(job_id) and store.get(job_id).status in ("failed", "cancelled")
    except Exception:  # noqa: BLE001 - a claim being written, or a job of another store: it stands
        return False


def format_eta(seconds: float | None) -> str:
    """``42 s``, ``3 min``, ``1 h 05 min``; ``?`` when unknown."""
    if seconds is None or not np.isfinite(seconds):
        return "?"
    seconds = max(0.0, float(seconds))
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"


def sweep_progress(sweep_dir: Path, total: int) -> tuple[int, str]:
    """Points finished so far and a message with the ETA from the sweep's own pace."""
    done = count_lines(sweep_dir / POINTS_FILE)
    try:
        created = json.loads((sweep_dir / SWEEP_FILE).read_text(encoding="utf-8"))["created_at"]
    except (OSError, ValueError, KeyError):
        created = None
    eta = None
    if created is not None and done:
        elapsed = time.time() - float(created)
        eta = elapsed / done * max(0, total - done)
    return done, f"{done}/{total} points, ETA {format_eta(eta)}"


# ------------------------------------------------------------------------------------- jobs
def _limit_threads(n_workers: int) -> None:
    """Share the cores among the sweep's workers on one machine (numeric libraries start one thread
    per core each; several workers would oversubscribe)."""
    from threadpoolctl import threadpool_limits

    threads = max(1, (os.cpu_count() or 1) // max(1, n_workers))
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))  # this worker process only, before torch loads
    threadpool_limits(limits=threads)


def worker_job(config: Mapping[str, Any], run_dir: Path, report: Callable[..., None]) -> dict[str, Any]:
    """The ``sweep_worker`` job kind: ``config = {"data": spec, "sweep_dir", "sweep": SweepConfig
    fields, "worker": i, "n_workers": n}``. Measures units until every one is claimed."""
    from alignscope.data.preferences import load_spec

    job_started = time.monotonic()
    _limit_threads(int(config.get("n_workers", 1)))
    sweep = SweepConfig.from_dict(config["sweep"])
    sweep_dir = Path(config["sweep_dir"])
    total = sweep.n_points()
    report(progress=0.0, message="loading the data")
    data = load_spec(config["data"])
    context = SweepContext(data, sweep, sweep_dir)
    context.job_id = job_id = _own_job_id(Path(run_dir))
    store = JobStore()
    if sweep.mode == "subsets":  # the shared features, loaded before the first unit's clock starts
        report(message="loading the features")
        _ = context.embeddings
        if sweep.evaluator == "probe":
            _ = context.probe
    measured, started = 0, time.monotonic()
    load_s = round(started - job_started, 3)
    for method, seed in sweep.units():
        if not claim_unit(sweep_dir, method, seed, job_id, store):
            continue
        points = [p for p in sweep.unit_points(method, seed)
                  if not (sweep_dir / "points" / point_dir_name(p) / "point.json").exists()]
        if not points:
            continue
        if method == CHECKPOINT_METHOD:
            report(message=f"training on all pairs, seed {seed}")
            context.checkpoint_run(seed, sweep_dir / "points" / point_dir_name(points[0]), report)
            measured += 1
            continue
        report(message=f"ranking with {method}, seed {seed} · {sweep_progress(sweep_dir, total)[1]}")
        unit_started = time.monotonic()
        ranking = context.ranking(method, seed)
        rank_s = time.monotonic() - unit_started
        for point in points:
            context.measure(point, ranking, sweep_dir / "points" / point_dir_name(point), report)
            measured += 1
            done, message = sweep_progress(sweep_dir, total)
            report(progress=done / max(total, 1), message=message)
        append_jsonl(sweep_dir / UNITS_FILE, {"method": method, "seed": int(seed), "rank_s": round(rank_s, 3),
                                              "n_points": len(points), "job_id": job_id,
                                              "measure_s": round(time.monotonic() - unit_started - rank_s, 3)})
    busy_s = round(time.monotonic() - started, 3)
    if measured:  # what the next launch's estimate reads (sweep.estimate_seconds)
        rates_path().parent.mkdir(parents=True, exist_ok=True)
        append_jsonl(rates_path(), {"evaluator": sweep.evaluator, "encoder": sweep.encoder, "n_pairs": len(data),
                                    "measured": measured, "busy_s": busy_s, "n_workers": config.get("n_workers", 1),
                                    "load_s": load_s, "at": time.time()})
    done, message = sweep_progress(sweep_dir, total)
    report(progress=1.0, message=f"{measured} points measured here in {format_eta(busy_s)}; {message}")
    return {"measured": measured, "done": done, "total": total, "busy_s": busy_s, "load_s": load_s}


def point_job(config: Mapping[str, Any], run_dir: Path, report: Callable[..., None]) -> dict[str, Any]:
    """The ``sweep_point`` job kind of earlier versions: one point, ``config = {"data": spec,
    "sweep_dir", "point": {method, fraction, seed}, "sweep": SweepConfig fields}``."""
    from alignscope.data.preferences import load_spec

    sweep = SweepConfig.from_dict(config["sweep"])
    point = dict(config["point"])
    report(progress=0.0, message=f"loading data for {point_dir_name(point)}")
    context = SweepContext(load_spec(config["data"]), sweep, config["sweep_dir"])
    context.job_id = _own_job_id(Path(run_dir))
    if sweep.mode == "checkpoints":
        return context.checkpoint_run(int(point["seed"]), Path(run_dir), report)
    record = context.measure(point, context.ranking(point["method"], int(point["seed"])), Path(run_dir), report)
    report(progress=1.0, message=f"{sweep.metric} {record['score']:.3f} on {record['n_train_pairs']:,} training pairs")
    return record

"""Sweeps: every (method, fraction, seed) as a job, points streamed to ``points.jsonl``, a plateau
fitted per method (:mod:`alignscope.scaling.fit`).

A sweep directory holds

* ``sweep.json``: the :class:`SweepConfig`, the data spec and the job ids;
* ``points.jsonl``: one line per finished point, appended by the point's own job as soon as it
  ends (so a curve can be drawn live): ``method, fraction, seed, score, score_ci95, evaluator,
  n_train_pairs, job_id, wall_s``;
* ``points/<method>_<fraction>_s<seed>/``: each point's run directory (its selection, the
  training run for DPO/KTO evaluators, ``point.json``);
* ``fit.json``: the plateau fits per method, written when the sweep command ends
  (``alignscope scaling fit`` reads ``points.csv``, written beside it); the reading and fitting
  side lives in :mod:`alignscope.scaling.results`.

Checkpoint mode (``mode="checkpoints"``, the ISA paper's own measurement): instead of one run per
subset, ONE run per seed on all the training pairs for one epoch (or ``max_steps``), evaluated on
the held-out pairs at ``checkpoints`` (fractions of the run, default 10/25/50/75/100 %); each
evaluation is a point of method ``checkpoints`` whose ``fraction`` is the share of the training
pairs seen so far. It needs a training evaluator (``dpo``/``kto``).

Each point is a job of kind ``sweep_point`` in the ordinary job store, so sweeps show on the Runs
page and run on any executor: ``local`` (``--workers`` parallel processes on this machine) or
``ray`` (:mod:`alignscope.jobs.ray`). A fraction of 1.0 means all pairs (no selection), the
same point for every method. The embeddings a point needs are computed once, by the sweep command,
before any job starts (the cache makes the jobs' own calls instant).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

import numpy as np

from alignscope.errors import AlignscopeError
from alignscope.files import append_jsonl, atomic_path, write_json
from alignscope.evaluate.metrics import LOWER_IS_BETTER, METRICS
from alignscope.select.selection import Selection
from alignscope.train.config import TrainConfig, TrainError, train_config

__all__ = ["EVALUATORS", "MODES", "CHECKPOINT_METHOD", "POINTS_FILE", "SweepConfig", "SweepError", "point_job",
           "submit_sweep", "point_dir_name", "metric_baseline"]

EVALUATORS = ("probe", "dpo", "kto")
MODES = ("subsets", "checkpoints")
CHECKPOINT_METHOD = "checkpoints"  # the method name of checkpoint-mode points
POINTS_FILE = "points.jsonl"
SWEEP_FILE = "sweep.json"
FIT_FILE = "fit.json"
CLEAN_METHOD = "clean"            # drop the pairs the audit flags, then a random share of the rest
AUDIT_FILE = "audit.parquet"      # sweep dir: the audit of the training pool, for the clean method
HELDOUT_FILE = "heldout.npz"      # sweep dir: held-out pairs and their word lengths; point dir: their margins
# Measured on AlpacaEval and HH (README, "Evaluation you can trust"): accuracy there mostly measures
# length (the length rule alone scores 0.84 on AlpacaEval), so curves are drawn with the metric
# length cannot reach by default.
DEFAULT_METRIC = "length_controlled_accuracy"


class SweepError(AlignscopeError):
    """A sweep that cannot be run; one line for the user."""


@dataclass
class SweepConfig:
    """What a sweep measures. ``methods``: selectors of :mod:`alignscope.select.selectors`; ``fractions`` in
    (0, 1]; ``seeds`` seed the selection and (for DPO/KTO) training. ``evaluator``: ``probe``
    (seconds, a proxy) or ``dpo``/``kto`` (a real TRL run per point with ``model``,
    ``max_steps``…). ``test_fraction``/``split_seed``: one held-out split for every point.
    ``q``/``target``: the recommendation rule of :func:`alignscope.scaling.fit.fit_plateau`.
    ``cpus``/``gpus``: resources each point declares to the Ray executor. ``mode``: ``subsets``
    (one job per method × fraction × seed) or ``checkpoints`` (one full-data run per seed, evaluated
    at the ``checkpoints`` fractions of the run; ``max_steps=None`` means one full epoch).

    ``batch_size``/``max_length`` default to the training config's own defaults (one declaration:
    :class:`alignscope.train.config.TrainConfig`); ``max_steps=20`` and ``eval_max_pairs=200`` are
    the sweep's per-point budget (many runs), deliberately smaller than a single run's. Every DPO/KTO
    point builds its config with :meth:`point_train_config`, which :meth:`validate` also calls, so
    a training option that cannot work fails when the sweep is submitted, not in every point."""

    methods: list[str] = field(default_factory=lambda: ["isa", "random"])
    fractions: list[float] = field(default_factory=lambda: [0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    evaluator: str = "probe"
    encoder: str = "minilm"
    unit: str = "completion"
    model: str = "tiny"
    max_steps: int | None = 20
    batch_size: int = TrainConfig.batch_size
    max_length: int = TrainConfig.max_length
    eval_max_pairs: int | None = 200
    test_fraction: float = 0.2
    split_seed: int = 0
    q: float = 0.95
    target: str = "plateau"
    cpus: float = 1.0
    gpus: float = 0.0
    mode: str = "subsets"
    checkpoints: list[float] = field(default_factory=lambda: [0.1, 0.25, 0.5, 0.75, 1.0])
    metric: str = DEFAULT_METRIC
    eval_encoder: str | None = None

    @property
    def probe_encoder(self) -> str:
        """The probe's own features (``eval_encoder``; the selector's encoder when unset: circular)."""
        return self.eval_encoder or self.encoder

    def point_train_config(self, seed: int, **fields: Any) -> TrainConfig:
        """The training config of one DPO/KTO point (``evaluator`` is the method): the sweep's
        model and budget, its split, the point's ``seed``; ``fields`` adds e.g. ``eval_checkpoints``.
        Built and validated by :func:`alignscope.train.config.train_config`, as the CLI and the Train
        page build theirs; every other option keeps the config default."""
        return train_config(self.evaluator, model=self.model, max_steps=self.max_steps, batch_size=self.batch_size,
                            max_length=self.max_length, eval_max_pairs=self.eval_max_pairs,
                            test_fraction=self.test_fraction, split_seed=self.split_seed, seed=int(seed), **fields)

    def validate(self) -> None:
        from alignscope.select.selectors import METHODS

        if self.mode not in MODES:
            raise SweepError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "checkpoints":
            if self.evaluator == "probe":
                raise SweepError("checkpoint mode evaluates one training run as it goes: use --evaluator dpo or kto")
            if not self.checkpoints or any(not (0 < float(f) <= 1) for f in self.checkpoints):
                raise SweepError(f"checkpoints must be fractions in (0, 1], got {self.checkpoints}")
            if len(set(self.checkpoints)) < 3:
                raise SweepError("give at least 3 checkpoints: a plateau has 3 parameters")
        elif not self.methods:
            raise SweepError("give at least one method")
        known = (*METHODS, CLEAN_METHOD)
        unknown = [m for m in self.methods if m not in known]
        if unknown and self.mode == "subsets":
            raise SweepError(f"unknown method(s) {', '.join(unknown)}: use {', '.join(known)}")
        if not self.fractions or any(not (0 < float(f) <= 1) for f in self.fractions):
            raise SweepError(f"fractions must be in (0, 1], got {self.fractions}")
        if not self.seeds or any(not isinstance(s, int) or isinstance(s, bool) for s in self.seeds):
            raise SweepError(f"seeds must be integers, got {self.seeds}")
        if self.evaluator not in EVALUATORS:
            raise SweepError(f"evaluator must be one of {', '.join(EVALUATORS)}, got {self.evaluator!r}")
        if not (0 < self.test_fraction < 1):
            raise SweepError(f"test_fraction must be in (0, 1), got {self.test_fraction}")
        if not (0 < self.q < 1):
            raise SweepError(f"q must be in (0, 1), got {self.q}")
        from alignscope.scaling.fit import TARGETS

        if self.target not in TARGETS:
            raise SweepError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.cpus <= 0 or self.gpus < 0:
            raise SweepError("cpus must be > 0 and gpus >= 0")
        if self.metric not in METRICS:
            raise SweepError(f"metric must be one of {', '.join(METRICS)}, got {self.metric!r}")
        if self.metric in LOWER_IS_BETTER and self.target != "gain":
            raise SweepError(f"{self.metric} falls as quality rises: use the target 'gain'")
        if self.mode == "subsets" and len({float(f) for f in self.fractions}) < 3:
            raise SweepError(f"give at least 3 distinct fractions (got {len(set(self.fractions))}): a plateau has "
                             "3 parameters and cannot be fitted to fewer")
        if self.evaluator != "probe":
            try:
                self.point_train_config(self.seeds[0], **self._mode_fields())
            except TrainError as err:
                raise SweepError(f"sweep training options: {err}") from None

    def _mode_fields(self) -> dict[str, Any]:
        """Fields a point's training config adds in this mode (checkpoint mode: one epoch, evaluated
        at the checkpoints)."""
        if self.mode == "checkpoints":
            return {"epochs": 1.0, "eval_checkpoints": sorted({float(f) for f in self.checkpoints})}
        return {}

    def points(self) -> list[dict[str, Any]]:
        """Every (method, fraction, seed); fraction 1.0 (all pairs) once per seed, as method ``all``.
        In checkpoint mode: one full-data run per seed."""
        if self.mode == "checkpoints":
            return [{"method": CHECKPOINT_METHOD, "fraction": 1.0, "seed": int(seed)} for seed in self.seeds]
        out, seen = [], set()
        for method in self.methods:
            for fraction in sorted({float(f) for f in self.fractions}):
                for seed in self.seeds:
                    point = {"method": "all" if fraction == 1.0 else method, "fraction": fraction, "seed": int(seed)}
                    key = (point["method"], fraction, point["seed"])
                    if key not in seen:
                        seen.add(key)
                        out.append(point)
        return out

    def curve_methods(self) -> list[str]:
        """The curves this sweep draws and fits."""
        return [CHECKPOINT_METHOD] if self.mode == "checkpoints" else list(self.methods)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def point_dir_name(point: Mapping[str, Any]) -> str:
    return f"{point['method']}_{float(point['fraction']) * 100:g}pct_s{point['seed']}"


# ----------------------------------------------------------------------------------- one point
def pair_count(fraction: float, n_pool: int) -> int:
    """Training pairs of a point at ``fraction`` of the ``n_pool`` training pairs (at least 1)."""
    return max(1, min(n_pool, int(round(float(fraction) * n_pool))))


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


def _selection_size(fraction: float, n_points: int, n_test: int, unit: str) -> int:
    """Points a selector is asked for, so that its ranking covers ``fraction`` of the training pairs
    even when some selected points belong to held-out pairs."""
    extra = 2 * n_test if unit == "completion" else n_test
    return max(1, min(n_points, int(math.ceil(float(fraction) * n_points)) + extra))


def point_job(config: Mapping[str, Any], run_dir: Path, report) -> dict[str, Any]:
    """The ``sweep_point`` job kind: select exactly ``pair_count(fraction)`` training pairs, evaluate,
    record. ``config``: ``{"data": spec, "sweep_dir": PATH, "point": {method, fraction, seed},
    "sweep": SweepConfig fields}``. Every point keeps its held-out margins (``heldout.npz``) so the
    fit can bootstrap seeds and held-out pairs together."""
    from alignscope.data.preferences import load_spec
    from alignscope.evaluate.evaluators import split_pairs

    started = time.monotonic()
    sweep = SweepConfig(**config["sweep"])
    point = dict(config["point"])
    run_dir = Path(run_dir)
    report(progress=0.0, message=f"loading data for {point_dir_name(point)}")
    data = load_spec(config["data"])
    if sweep.mode == "checkpoints":
        return _checkpoint_run(data, sweep, point, Path(config["sweep_dir"]), run_dir, report, started)
    _, test_pairs = split_pairs(len(data), sweep.test_fraction, sweep.split_seed)
    k_pairs = pair_count(point["fraction"], len(data) - len(test_pairs))
    selection_path = None
    if point["method"] == CLEAN_METHOD:
        report(progress=0.3, message=f"the audit's clean pairs first, {k_pairs:,} training pairs")
        selection_path = run_dir / "selection.parquet"
        table = clean_ranking(Path(config["sweep_dir"]) / AUDIT_FILE, int(point["seed"]), data.fingerprint)
        training_pairs_table(table, test_pairs, len(data), k_pairs).write(selection_path)
    elif point["method"] != "all":
        from alignscope.embed.encoders import embed
        from alignscope.select.selectors import select

        report(progress=0.1, message="embedding (cached)")
        embeddings = embed(data, encoder=sweep.encoder, unit=sweep.unit, progress=False)
        report(progress=0.3, message=f"selecting {k_pairs:,} training pairs with {point['method']}")
        table = select(embeddings, point["method"], seed=int(point["seed"]),
                       k=_selection_size(point["fraction"], len(embeddings), len(test_pairs), sweep.unit))
        selection_path = run_dir / "selection.parquet"
        training_pairs_table(table, test_pairs, len(data), k_pairs).write(selection_path)
    report(progress=0.5, message=f"evaluating with {sweep.evaluator}")
    if sweep.evaluator == "probe":
        from alignscope.evaluate.evaluators import eval_probe

        result = eval_probe(data, None if selection_path is None else str(selection_path),
                            encoder=sweep.probe_encoder, test_fraction=sweep.test_fraction, seed=sweep.split_seed,
                            with_margins=True)
        pairs, margin = result.pop("heldout_pairs"), result.pop("heldout_margin")
        n_train = result["n_train"]
    else:
        from alignscope.train.trainer import train

        train_cfg = sweep.point_train_config(point["seed"], **sweep._mode_fields())
        summary = train(data, selection=None if selection_path is None else str(selection_path), config=train_cfg,
                        run_dir=run_dir / "train", report=lambda progress=None, message=None: report(
                            progress=None if progress is None else 0.5 + 0.5 * progress, message=message),
                        progress_bar=False)
        result = summary["eval"]
        per_pair = pd.read_parquet(run_dir / "train" / "eval_pairs.parquet")
        pairs, margin = per_pair["pair"].to_numpy(), per_pair["margin"].to_numpy()
        n_train = summary["training"]["n_train_pairs"]
    _save_margins(run_dir / HELDOUT_FILE, pairs, margin)
    record = {**point, **_scores(result, sweep.metric), "evaluator": sweep.evaluator, "n_train_pairs": int(n_train),
              "job_id": _own_job_id(run_dir), "wall_s": round(time.monotonic() - started, 3)}
    write_json(run_dir / "point.json", record)
    append_jsonl(Path(config["sweep_dir"]) / POINTS_FILE, record)
    report(progress=1.0, message=f"{sweep.metric} {record['score']:.3f} on {k_pairs:,} training pairs")
    return record


def audit_training_pool(data, config: SweepConfig, path: Path) -> None:
    """Audit the training pool only (the held-out pairs' labels must not steer what is dropped) and
    keep the table, indexed by the data's pair numbers, for the ``clean`` points."""
    from alignscope.audit import audit, pair_matrices
    from alignscope.embed.encoders import embed
    from alignscope.evaluate.evaluators import split_pairs

    _, test_pairs = split_pairs(len(data), config.test_fraction, config.split_seed)
    pool = np.setdiff1d(np.arange(len(data), dtype=np.int64), test_pairs)
    chosen, rejected = pair_matrices(embed(data, encoder=config.encoder, unit="completion", progress=False), len(data))
    table = audit(data.frame.iloc[pool].reset_index(drop=True), (chosen[pool], rejected[pool]),
                  encoder=config.encoder, seed=config.split_seed)
    table["index"] = pool[table["index"].to_numpy(dtype=np.int64)]
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


def clean_ranking(audit_path: Path, seed: int, fingerprint: str) -> Selection:
    """A pair ranking for the ``clean`` method: the pairs without an audit flag in a seeded random
    order, then the flagged ones (used only when the fraction asks for more than the clean pairs)."""
    from alignscope.audit import FLAGS

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


def metric_baseline(result: Mapping[str, Any], metric: str) -> float | None:
    """What the length rule scores in ``metric`` on the same held-out pairs (0.5 for the
    length-controlled accuracy: length alone cannot do better there)."""
    if metric == "accuracy":
        return result.get("length_baseline")
    if metric == "length_controlled_accuracy":
        return 0.5
    return result.get("length_baseline_log_loss")


_CI_KEYS = {"accuracy": "accuracy_ci95", "length_controlled_accuracy": "length_controlled_ci95",
            "log_loss": "log_loss_ci95"}


def _scores(result: Mapping[str, Any], metric: str) -> dict[str, Any]:
    """A point's scores: the curve's ``score`` (= ``metric``) and ``baseline``, then every metric."""
    out: dict[str, Any] = {"score": float(result[metric]), "score_ci95": result.get(_CI_KEYS[metric]), "metric": metric,
                           "baseline": metric_baseline(result, metric)}
    for name in METRICS:
        out[name] = result.get(name)
        out[_CI_KEYS[name]] = result.get(_CI_KEYS[name])
    for name in ("length_baseline", "length_baseline_direction", "length_baseline_log_loss", "n_heldout"):
        out[name] = result.get(name)
    return out


def _save_margins(path: Path, pairs: np.ndarray, margin: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, pairs=np.asarray(pairs, dtype=np.int64), margin=np.asarray(margin, dtype=np.float64))


def _checkpoint_run(data, sweep: SweepConfig, point: Mapping[str, Any], sweep_dir: Path, run_dir: Path, report,
                    started: float) -> dict[str, Any]:
    """Checkpoint mode: one run on all the training pairs; every checkpoint evaluation becomes a
    point the moment it is measured (so the curve fills in while the run trains)."""
    from alignscope.train.trainer import train

    job_id = _own_job_id(run_dir)

    def record_point(checkpoint: dict) -> None:
        append_jsonl(sweep_dir / POINTS_FILE, {
            "method": CHECKPOINT_METHOD, "fraction": checkpoint["fraction"], "seed": int(point["seed"]),
            **_scores(checkpoint, sweep.metric), "evaluator": sweep.evaluator,
            "n_train_pairs": checkpoint["pairs_seen"], "job_id": job_id, "wall_s": round(time.monotonic() - started, 3),
            "step": checkpoint["step"]})

    train_cfg = sweep.point_train_config(point["seed"], **sweep._mode_fields())
    summary = train(data, config=train_cfg, run_dir=run_dir / "train", on_checkpoint=record_point, progress_bar=False,
                    report=lambda progress=None, message=None: report(progress=progress, message=message))
    record = {**point, **_scores(summary["eval"], sweep.metric), "evaluator": sweep.evaluator, "n_train_pairs": int(summary["training"]["n_train_pairs"]),
              "job_id": job_id, "wall_s": round(time.monotonic() - started, 3),
              "checkpoints": sorted({float(f) for f in sweep.checkpoints})}
    write_json(run_dir / "point.json", record)
    report(progress=1.0, message=f"final score {record['score']:.3f}")
    return record


def _own_job_id(run_dir: Path) -> str | None:
    from alignscope.jobs.store import read_run_config

    try:
        return read_run_config(run_dir).get("job_id")
    except Exception:  # noqa: BLE001 - the id is informative only
        return None


# --------------------------------------------------------------------------------- the sweep
def submit_sweep(data, config: SweepConfig, out: str | os.PathLike, *, executor: str = "local", workers: int = 1,
                 store=None, overwrite: bool = False, report=None) -> list[str]:
    """Prepare ``out`` (refused when it holds another sweep, unless ``overwrite``), compute the
    embeddings once, and submit one ``sweep_point`` job per point. Returns the job ids."""
    from alignscope.jobs.store import JobStore

    config.validate()
    out = Path(out).expanduser().resolve()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise SweepError(f"{out}: exists and is not empty (pass --force to reuse it)")
    if workers < 1:
        raise SweepError(f"workers must be >= 1, got {workers}")
    store = store or JobStore()
    out.mkdir(parents=True, exist_ok=True)
    for stale in (POINTS_FILE, FIT_FILE, "points.csv", AUDIT_FILE):
        (out / stale).unlink(missing_ok=True)
    if config.mode == "subsets" and (any(p["method"] != "all" for p in config.points()) or config.evaluator == "probe"):
        from alignscope.embed.encoders import embed

        if report:
            report("computing the embeddings once for every point (cached)")
        for encoder in dict.fromkeys([config.encoder] + ([config.probe_encoder] if config.evaluator == "probe" else [])):
            embed(data, encoder=encoder, unit="completion", progress=report is not None)
    _save_heldout_lengths(out / HELDOUT_FILE, data, config)
    if config.mode == "subsets" and CLEAN_METHOD in config.methods:
        if report:
            report("auditing the training pool once for the clean method")
        audit_training_pool(data, config, out / AUDIT_FILE)
    spec = data.spec()
    job_ids = []
    for point in config.points():
        run_dir = out / "points" / point_dir_name(point)
        job_config = {"data": spec, "sweep_dir": str(out), "point": point, "sweep": config.to_dict(),
                      "resources": {"cpus": config.cpus, "gpus": config.gpus}}
        job = store.add("sweep_point", job_config, run_dir=run_dir, executor=executor, workers=workers,
                        overwrite=True)
        job_ids.append(job.id)
    write_json(out / SWEEP_FILE, {"config": config.to_dict(), "data": spec, "executor": executor,
                                  "workers": workers, "jobs": job_ids, "created_at": time.time()})
    from alignscope.jobs.store import get_executor

    get_executor(executor).start(store)
    return job_ids


def _save_heldout_lengths(path: Path, data, config: SweepConfig) -> None:
    """The sweep's held-out pairs and their word lengths: what the fit needs to recompute any metric
    on resampled pairs (the points keep only their margins)."""
    from alignscope.evaluate.evaluators import split_pairs
    from alignscope.evaluate.metrics import pair_word_lengths

    _, test_pairs = split_pairs(len(data), config.test_fraction, config.split_seed)
    chosen, rejected = pair_word_lengths(data, test_pairs)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, pairs=test_pairs, chosen_words=chosen, rejected_words=rejected)

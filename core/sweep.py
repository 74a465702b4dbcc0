"""Sweeps: every (method, fraction, seed) as a job, points streamed to ``points.jsonl``, a plateau
fitted per method (:mod:`alignscope.scaling`).

A sweep directory holds

* ``sweep.json``: the :class:`SweepConfig`, the data spec and the job ids;
* ``points.jsonl``: one line per finished point, appended by the point's own job as soon as it
  ends (so a curve can be drawn live): ``method, fraction, seed, score, score_ci95, evaluator,
  n_train_pairs, job_id, wall_s``;
* ``points/<method>_<fraction>_s<seed>/``: each point's run directory (its selection, the
  training run for DPO/KTO evaluators, ``point.json``);
* ``fit.json``: the plateau fits per method, written when the sweep command ends
  (``alignscope scaling fit`` reads ``points.csv``, written beside it).

Checkpoint mode (``mode="checkpoints"``, the ISA paper's own measurement): instead of one run per
subset, ONE run per seed on all the training pairs for one epoch (or ``max_steps``), evaluated on
the held-out pairs at ``checkpoints`` (fractions of the run, default 10/25/50/75/100 %); each
evaluation is a point of method ``checkpoints`` whose ``fraction`` is the share of the training
pairs seen so far. It needs a training evaluator (``dpo``/``kto``).

Each point is a job of kind ``sweep_point`` in the ordinary job store, so sweeps show on the Runs
page and run on any executor: ``local`` (``--workers`` parallel processes on this machine) or
``ray`` (:mod:`alignscope.ray_executor`). A fraction of 1.0 means all pairs (no selection), the
same point for every method. The embeddings a point needs are computed once, by the sweep command,
before any job starts (the cache makes the jobs' own calls instant).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from alignscope.files import atomic_path, write_json
from alignscope.jobs import append_jsonl, read_jsonl

__all__ = ["EVALUATORS", "MODES", "CHECKPOINT_METHOD", "POINTS_FILE", "SweepConfig", "SweepError", "point_job",
           "submit_sweep", "read_points_jsonl", "curve_points", "fit_sweep", "point_dir_name"]

EVALUATORS = ("probe", "dpo", "kto")
MODES = ("subsets", "checkpoints")
CHECKPOINT_METHOD = "checkpoints"  # the method name of checkpoint-mode points
POINTS_FILE = "points.jsonl"
SWEEP_FILE = "sweep.json"
FIT_FILE = "fit.json"


class SweepError(ValueError):
    """A sweep that cannot be run; one line for the user."""


@dataclass
class SweepConfig:
    """What a sweep measures. ``methods``: selectors of :mod:`alignscope.select`; ``fractions`` in
    (0, 1]; ``seeds`` seed the selection and (for DPO/KTO) training. ``evaluator``: ``probe``
    (seconds, a proxy) or ``dpo``/``kto`` (a real TRL run per point with ``model``,
    ``max_steps``…). ``test_fraction``/``split_seed``: one held-out split for every point.
    ``q``/``target``: the recommendation rule of :func:`alignscope.scaling.fit_plateau`.
    ``cpus``/``gpus``: resources each point declares to the Ray executor. ``mode``: ``subsets``
    (one job per method × fraction × seed) or ``checkpoints`` (one full-data run per seed, evaluated
    at the ``checkpoints`` fractions of the run; ``max_steps=None`` means one full epoch)."""

    methods: list[str] = field(default_factory=lambda: ["isa", "random"])
    fractions: list[float] = field(default_factory=lambda: [0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0])
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    evaluator: str = "probe"
    encoder: str = "minilm"
    unit: str = "completion"
    model: str = "tiny"
    max_steps: int | None = 20
    batch_size: int = 8
    max_length: int = 128
    eval_max_pairs: int | None = 200
    test_fraction: float = 0.2
    split_seed: int = 0
    q: float = 0.95
    target: str = "plateau"
    cpus: float = 1.0
    gpus: float = 0.0
    mode: str = "subsets"
    checkpoints: list[float] = field(default_factory=lambda: [0.1, 0.25, 0.5, 0.75, 1.0])

    def validate(self) -> None:
        from alignscope.select import METHODS

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
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown and self.mode == "subsets":
            raise SweepError(f"unknown method(s) {', '.join(unknown)}: use {', '.join(METHODS)}")
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
        from alignscope.scaling import TARGETS

        if self.target not in TARGETS:
            raise SweepError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")
        if self.cpus <= 0 or self.gpus < 0:
            raise SweepError("cpus must be > 0 and gpus >= 0")

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
def point_job(config: Mapping[str, Any], run_dir: Path, report) -> dict[str, Any]:
    """The ``sweep_point`` job kind: select, evaluate, record. ``config``: ``{"data": spec,
    "sweep_dir": PATH, "point": {method, fraction, seed}, "sweep": SweepConfig fields}``."""
    from alignscope.data import load_spec

    started = time.monotonic()
    sweep = SweepConfig(**config["sweep"])
    point = dict(config["point"])
    run_dir = Path(run_dir)
    report(progress=0.0, message=f"loading data for {point_dir_name(point)}")
    data = load_spec(config["data"])
    if sweep.mode == "checkpoints":
        return _checkpoint_run(data, sweep, point, Path(config["sweep_dir"]), run_dir, report, started)
    selection_path = None
    if point["method"] != "all":
        from alignscope.embed import embed
        from alignscope.select import select, write_selection

        report(progress=0.1, message="embedding (cached)")
        embeddings = embed(data, encoder=sweep.encoder, unit=sweep.unit, progress=False)
        report(progress=0.3, message=f"selecting {point['fraction']:.1%} with {point['method']}")
        table = select(embeddings, point["method"], fraction=float(point["fraction"]), seed=int(point["seed"]))
        selection_path = run_dir / "selection.parquet"
        write_selection(table, selection_path)
    report(progress=0.5, message=f"evaluating with {sweep.evaluator}")
    if sweep.evaluator == "probe":
        from alignscope.evaluate import eval_probe

        result = eval_probe(data, None if selection_path is None else str(selection_path), encoder=sweep.encoder,
                            test_fraction=sweep.test_fraction, seed=sweep.split_seed)
        score, interval, n_train = result["accuracy"], result["accuracy_ci95"], result["n_train"]
    else:
        from alignscope.train import train, train_config

        train_cfg = train_config(sweep.evaluator, model=sweep.model, max_steps=sweep.max_steps,
                                 batch_size=sweep.batch_size, max_length=sweep.max_length,
                                 eval_max_pairs=sweep.eval_max_pairs, test_fraction=sweep.test_fraction,
                                 split_seed=sweep.split_seed, seed=int(point["seed"]))
        summary = train(data, selection=None if selection_path is None else str(selection_path), config=train_cfg,
                        run_dir=run_dir / "train", report=lambda progress=None, message=None: report(
                            progress=None if progress is None else 0.5 + 0.5 * progress, message=message),
                        progress_bar=False)
        score, interval = summary["eval"]["accuracy"], summary["eval"]["accuracy_ci95"]
        n_train = summary["training"]["n_train_pairs"]
    record = {**point, "score": float(score), "score_ci95": [float(x) for x in interval],
              "evaluator": sweep.evaluator, "n_train_pairs": int(n_train), "job_id": _own_job_id(run_dir),
              "wall_s": round(time.monotonic() - started, 3)}
    write_json(run_dir / "point.json", record)
    append_jsonl(Path(config["sweep_dir"]) / POINTS_FILE, record)
    report(progress=1.0, message=f"score {score:.3f}")
    return record


def _checkpoint_run(data, sweep: SweepConfig, point: Mapping[str, Any], sweep_dir: Path, run_dir: Path, report,
                    started: float) -> dict[str, Any]:
    """Checkpoint mode: one run on all the training pairs; every checkpoint evaluation becomes a
    point the moment it is measured (so the curve fills in while the run trains)."""
    from alignscope.train import train, train_config

    job_id = _own_job_id(run_dir)

    def record_point(checkpoint: dict) -> None:
        append_jsonl(sweep_dir / POINTS_FILE, {
            "method": CHECKPOINT_METHOD, "fraction": checkpoint["fraction"], "seed": int(point["seed"]),
            "score": checkpoint["accuracy"], "score_ci95": checkpoint["accuracy_ci95"], "evaluator": sweep.evaluator,
            "n_train_pairs": checkpoint["pairs_seen"], "job_id": job_id, "wall_s": round(time.monotonic() - started, 3),
            "step": checkpoint["step"]})

    train_cfg = train_config(sweep.evaluator, model=sweep.model, max_steps=sweep.max_steps, epochs=1.0,
                             batch_size=sweep.batch_size, max_length=sweep.max_length,
                             eval_max_pairs=sweep.eval_max_pairs, test_fraction=sweep.test_fraction,
                             split_seed=sweep.split_seed, seed=int(point["seed"]),
                             eval_checkpoints=sorted({float(f) for f in sweep.checkpoints}))
    summary = train(data, config=train_cfg, run_dir=run_dir / "train", on_checkpoint=record_point, progress_bar=False,
                    report=lambda progress=None, message=None: report(progress=progress, message=message))
    record = {**point, "score": float(summary["eval"]["accuracy"]), "score_ci95": summary["eval"]["accuracy_ci95"],
              "evaluator": sweep.evaluator, "n_train_pairs": int(summary["training"]["n_train_pairs"]),
              "job_id": job_id, "wall_s": round(time.monotonic() - started, 3),
              "checkpoints": sorted({float(f) for f in sweep.checkpoints})}
    write_json(run_dir / "point.json", record)
    report(progress=1.0, message=f"final score {record['score']:.3f}")
    return record


def _own_job_id(run_dir: Path) -> str | None:
    from alignscope.jobs import read_run_config

    try:
        return read_run_config(run_dir).get("job_id")
    except Exception:  # noqa: BLE001 - the id is informative only
        return None


# --------------------------------------------------------------------------------- the sweep
def submit_sweep(data, config: SweepConfig, out: str | os.PathLike, *, executor: str = "local", workers: int = 1,
                 store=None, overwrite: bool = False, report=None) -> list[str]:
    """Prepare ``out`` (refused when it holds another sweep, unless ``overwrite``), compute the
    embeddings once, and submit one ``sweep_point`` job per point. Returns the job ids."""
    from alignscope.jobs import JobStore

    config.validate()
    out = Path(out).expanduser().resolve()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise SweepError(f"{out}: exists and is not empty (pass --force to reuse it)")
    if workers < 1:
        raise SweepError(f"workers must be >= 1, got {workers}")
    store = store or JobStore()
    out.mkdir(parents=True, exist_ok=True)
    for stale in (POINTS_FILE, FIT_FILE, "points.csv"):
        (out / stale).unlink(missing_ok=True)
    if config.mode == "subsets" and (any(p["method"] != "all" for p in config.points()) or config.evaluator == "probe"):
        from alignscope.embed import embed

        if report:
            report("computing the embeddings once for every point (cached)")
        embed(data, encoder=config.encoder, unit="completion", progress=report is not None)
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
    from alignscope.jobs import get_executor

    get_executor(executor).start(store)
    return job_ids


def read_points_jsonl(sweep_dir: str | os.PathLike) -> pd.DataFrame:
    """The finished points of a sweep (empty frame with the columns when none yet)."""
    rows = read_jsonl(Path(sweep_dir) / POINTS_FILE)
    columns = ["method", "fraction", "seed", "score", "score_ci95", "evaluator", "n_train_pairs", "job_id", "wall_s"]
    return pd.DataFrame(rows, columns=columns) if rows else pd.DataFrame(columns=columns)


def curve_points(points: pd.DataFrame, methods: list[str]) -> pd.DataFrame:
    """Each method's curve: its own points plus the shared all-data points (method ``all``)."""
    if points.empty:
        return points
    full = points[points["method"] == "all"]
    return pd.concat([pd.concat([points[points["method"] == m], full.assign(method=m)]) for m in methods],
                     ignore_index=True)


def fit_sweep(sweep_dir: str | os.PathLike, *, q: float | None = None, n_boot: int = 500) -> dict[str, Any]:
    """Fit every method's plateau from ``points.jsonl``; the ``all`` points (fraction 1.0) belong
    to every method's curve. Writes ``points.csv`` and ``fit.json``; returns the fit object."""
    from alignscope.scaling import fit_points

    sweep_dir = Path(sweep_dir)
    recorded = json.loads((sweep_dir / SWEEP_FILE).read_text(encoding="utf-8"))
    config = SweepConfig(**recorded["config"])
    q = float(q if q is not None else config.q)
    points = read_points_jsonl(sweep_dir)
    curves = curve_points(points, config.curve_methods())
    with atomic_path(sweep_dir / "points.csv") as tmp:
        curves[["method", "fraction", "seed", "score"]].to_csv(tmp, index=False)
    fits = fit_points(curves, q=q, n_boot=n_boot, target=config.target) if len(curves) else {}
    result = {"q": q, "target": config.target, "n_points": int(len(points)),
              "methods": {m: (f.to_dict() if not isinstance(f, str) else {"error": f}) for m, f in fits.items()}}
    write_json(sweep_dir / FIT_FILE, result)
    return result

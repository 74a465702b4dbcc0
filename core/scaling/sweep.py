"""Sweeps: how a score grows with the number of training pairs, for several selection methods, and
where it stops growing.

A sweep measures points ``(method, fraction, seed)``: ``method`` picks ``round(fraction · n_pool)``
pairs of the training pool (every method the same number at each fraction), an evaluator scores
them on one held-out split, and :mod:`alignscope.scaling.results` fits a plateau per method. A
sweep directory holds

* ``sweep.json``: the :class:`SweepConfig`, the data spec, the worker job ids, ``created_at``;
* ``points.jsonl``: one line per finished point, appended the moment it is measured (so a curve is
  drawn while the sweep runs): ``method, fraction, seed, score, score_ci95, metric, baseline,
  evaluator, n_train_pairs, job_id, wall_s, finished_at`` and every metric;
* ``points/<method>_<fraction>pct_s<seed>/``: each point's selection, its held-out margins
  (``heldout.npz``), ``point.json`` and, for DPO/KTO evaluators, the training run;
* ``heldout.npz`` (the held-out pairs' word lengths, for the fit's bootstrap), ``audit.parquet``
  (the training pool's audit, for the ``clean`` method), ``claims/`` (see below);
* ``fit.json`` and ``points.csv``, written by :func:`alignscope.scaling.results.fit_sweep`.

How the points are measured: a few long-lived workers (jobs of kind ``sweep_worker``,
:mod:`alignscope.scaling.measure`) each load the data, the features and the probe ONCE and then take
*units* of work from the sweep directory: a unit is one ``(method, seed)``, whose ranking is
computed once and cut at every fraction (a selector's ranking does not depend on how many points
are kept; k-center's greedy order is nested, so one run to the largest fraction serves all). A
worker claims a unit by creating ``claims/<unit>.json`` exclusively, so two workers never measure
the same unit, on one machine or on a Ray cluster sharing the folder. Fraction 1.0 is "all pairs",
the same point for every method (unit ``all`` per seed). Checkpoint mode (``mode="checkpoints"``,
the ISA paper's own measurement): one unit per seed, ONE DPO/KTO run on all the training pairs
evaluated at ``checkpoints`` fractions of the run, each evaluation a point of method
``checkpoints`` at x = the share of the training pairs seen so far.

Sweeps from earlier versions ran one ``sweep_point`` job per point; that kind still runs (it
measures its one point with the same code).
"""
from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, ClassVar, Mapping

import numpy as np

from alignscope import settings
from alignscope.audit import audit, pair_matrices
from alignscope.embed.encoders import embed
from alignscope.errors import AlignscopeError
from alignscope.evaluate.metrics import LOWER_IS_BETTER, METRICS, pair_word_lengths
from alignscope.evaluate.probe import PROBE_ENCODER
from alignscope.files import atomic_path, read_jsonl, write_json
from alignscope.jobs import JobStore, get_executor
from alignscope.options import fields_problem, option
from alignscope.train.config import TrainConfig, TrainError, train_config

__all__ = ["EVALUATORS", "MODES", "CHECKPOINT_METHOD", "ALL_METHOD", "CLEAN_METHOD", "POINTS_FILE", "SWEEP_FILE",
           "FIT_FILE", "AUDIT_FILE", "FIX_METHOD", "HELDOUT_FILE", "DEFAULT_METRIC", "DEFAULT_ENCODER", "DEFAULT_EVAL_ENCODER", "SweepConfig", "SweepError",
           "submit_sweep", "prepare_sweep", "estimate_seconds", "rates_path", "point_dir_name", "unit_name", "pair_count", "selection_size", "default_workers"]

EVALUATORS = ("probe", "dpo", "kto")
MODES = ("subsets", "checkpoints")
CHECKPOINT_METHOD = "checkpoints"  # the method name of checkpoint-mode points
ALL_METHOD = "all"                 # fraction 1.0: every training pair, shared by every method's curve
CLEAN_METHOD = "clean"             # drop the pairs the audit flags, then a random share of the rest
FIX_METHOD = "fix"                 # swap the labels of the pairs the audit suspects flipped, random share
POINTS_FILE = "points.jsonl"
SWEEP_FILE = "sweep.json"
FIT_FILE = "fit.json"
AUDIT_FILE = "audit.parquet"       # sweep dir: the audit of the training pool, for the clean method
HELDOUT_FILE = "heldout.npz"       # sweep dir: held-out pairs and their word lengths; point dir: their margins
CLAIMS_DIR = "claims"              # sweep dir: one file per unit of work a worker took
UNITS_FILE = "units.jsonl"         # sweep dir: per unit, seconds to rank and to measure its points
# Measured on AlpacaEval and HH (README, "Evaluation you can trust"): accuracy there mostly measures
# length (the length rule alone scores 0.84 on AlpacaEval), so curves are drawn with the metric
# length cannot reach by default.
DEFAULT_METRIC = "length_controlled_accuracy"
# The selectors' features by default: the static encoder embeds the 123,904 AlpacaEval completions
# in about a minute on 2 cores where MiniLM takes about an hour (benchmarks/results/embed_static.json).
DEFAULT_ENCODER = "static"
# The probe judges with other features than the selectors chose with (else a selector that covers
# the judge's space wins by construction): the probe's own default, LSA of the data's words.
DEFAULT_EVAL_ENCODER = PROBE_ENCODER
# Cost order of the units (most expensive first), so the long ones do not end a sweep alone.
_UNIT_COST = {"kcenter": 0, "llm": 0, "lm-margin": 0, "isa": 1, "density": 2, "margin": 2, "rds": 3, CLEAN_METHOD: 4,
              "fix": 4,
              "length": 5, "random": 6, ALL_METHOD: 7}


class SweepError(AlignscopeError):
    """A sweep that cannot be run; one line for the user."""


def default_workers() -> int:
    """Workers of a sweep unless told: one per CPU core, at most 4 (points are independent; each
    worker holds the data and features, so memory grows with the count)."""
    return max(1, min(4, os.cpu_count() or 1))


@dataclass
class SweepConfig:
    """What a sweep measures (every field is an option of ``alignscope sweep`` and of the Scaling
    page's launch form, declared once here).

    ``batch_size``/``max_length`` default to the training config's own defaults (one declaration:
    :class:`alignscope.train.config.TrainConfig`); ``max_steps=20`` and ``eval_max_pairs=200`` are
    the sweep's per-point budget (many runs), deliberately smaller than a single run's. Every DPO/KTO
    point builds its config with :meth:`point_train_config`, which :meth:`validate` also calls, so a
    training option that cannot work fails when the sweep is submitted, not in every point."""

    cli_group: ClassVar[str] = "sweep options"

    methods: list[str] = option(default_factory=lambda: ["isa", "random"],
                                help="comma-separated selectors to compare (random is the reference)")
    fractions: list[float] = option(default_factory=lambda: [0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0],
                                    help="comma-separated shares of the training pairs", min=0, max=1, min_open=True)
    seeds: list[int] = option(default_factory=lambda: [0, 1, 2], help="comma-separated seeds of the selectors "
                                                                      "(and of training for dpo/kto)")
    evaluator: str = option("probe", choices=EVALUATORS,
                            help="probe: a linear Bradley-Terry probe per point, seconds, a proxy; dpo/kto: a real "
                                 "TRL run per point")
    encoder: str = option(DEFAULT_ENCODER, help="the selectors' features: static, minilm or lm-last-token:MODEL")
    eval_encoder: str | None = option(DEFAULT_EVAL_ENCODER, help="the probe's own features (the selectors' "
                                      "encoder when empty: flagged as circular, the judge sees what the selector saw)")
    unit: str = option("completion", choices=("completion", "pair"), help="what the selectors rank")
    metric: str = option(DEFAULT_METRIC, choices=METRICS,
                         help="the curve's score (every point records all of " + ", ".join(METRICS) + ")")
    model: str = option("tiny", help="model of dpo/kto points")
    max_steps: int | None = option(20, help="training steps per dpo/kto point", min=1,
                                   default_text="20; checkpoint mode: one full epoch")
    batch_size: int = option(TrainConfig.batch_size, help="pairs per batch of dpo/kto points", min=1)
    max_length: int = option(TrainConfig.max_length, help="tokens kept per sequence in dpo/kto points", min=8)
    eval_max_pairs: int | None = option(200, help="held-out pairs a dpo/kto point evaluates", min=1,
                                        default_text="200")
    test_fraction: float = option(0.2, help="held-out share of ALL pairs (one split for every point)", min=0, max=1,
                                  min_open=True, max_open=True)
    split_seed: int = option(0, help="seed of the held-out split")
    q: float = option(0.95, help="recommend the smallest x with R(x) >= q of the target", min=0, max=1,
                      min_open=True, max_open=True)
    target: str = option("plateau", choices=("plateau", "gain"),
                         help="plateau: R(x) >= q·r; gain: R(x) >= a + q·(r − a), for scores with a high floor")
    mode: str = option("subsets", choices=MODES,
                       help="subsets: a point per method × fraction × seed; checkpoints: one full-data dpo/kto "
                            "run per seed, evaluated at --checkpoints (the ISA paper's measurement)")
    checkpoints: list[float] = option(default_factory=lambda: [0.1, 0.25, 0.5, 0.75, 1.0],
                                      help="checkpoint mode: shares of the run at which to evaluate", min=0, max=1,
                                      min_open=True)
    cpus: float = option(1.0, help="CPUs each worker asks Ray for", min=0, min_open=True)
    gpus: float = option(0.0, help="GPUs each worker asks Ray for", min=0)

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

    def mode_fields(self) -> dict[str, Any]:
        """Fields a point's training config adds in this mode (checkpoint mode: one epoch, evaluated
        at the checkpoints)."""
        if self.mode == "checkpoints":
            return {"epochs": 1.0, "eval_checkpoints": sorted({float(f) for f in self.checkpoints})}
        return {}

    def validate(self) -> None:
        """Raise :class:`SweepError` (one line): first each field against its declaration, then the
        rules that span fields."""
        from alignscope.select.selectors import METHODS

        problem = fields_problem(self)
        if problem:
            raise SweepError(problem)
        if self.mode == "checkpoints":
            if self.evaluator == "probe":
                raise SweepError("checkpoint mode evaluates one training run as it goes: use --evaluator dpo or kto")
            if len(set(self.checkpoints)) < 3:
                raise SweepError("give at least 3 checkpoints: a plateau has 3 parameters")
        else:
            if not self.methods:
                raise SweepError("give at least one method")
            known = (*METHODS, CLEAN_METHOD, FIX_METHOD)
            unknown = [m for m in self.methods if m not in known]
            if unknown:
                raise SweepError(f"unknown method(s) {', '.join(unknown)}: use {', '.join(known)}")
            if FIX_METHOD in self.methods and self.evaluator != "probe":
                raise SweepError("the fix method is measured with the probe evaluator (a label fix for dpo/kto "
                                 "points is not implemented yet): use --evaluator probe")
            if len({float(f) for f in self.fractions}) < 3:
                raise SweepError(f"give at least 3 distinct fractions (got {len(set(self.fractions))}): a plateau "
                                 "has 3 parameters and cannot be fitted to fewer")
        if not self.seeds:
            raise SweepError("give at least one seed")
        if self.metric in LOWER_IS_BETTER and self.target != "gain":
            raise SweepError(f"{self.metric} falls as quality rises: use the target 'gain'")
        if self.evaluator != "probe":
            try:
                self.point_train_config(self.seeds[0], **self.mode_fields())
            except TrainError as err:
                raise SweepError(f"sweep training options: {err}") from None

    def units(self) -> list[tuple[str, int]]:
        """The units of work, ``(method, seed)``, most expensive first: each is ranked once and
        measured at every fraction (``all``: the fraction 1.0 point; checkpoint mode: one run per seed)."""
        if self.mode == "checkpoints":
            return [(CHECKPOINT_METHOD, int(seed)) for seed in self.seeds]
        methods = list(dict.fromkeys(self.methods))
        if any(float(f) < 1.0 for f in self.fractions):
            out = [(m, int(s)) for m in methods for s in self.seeds]
        else:
            out = []
        if any(float(f) == 1.0 for f in self.fractions):
            out += [(ALL_METHOD, int(s)) for s in dict.fromkeys(self.seeds)]
        return sorted(dict.fromkeys(out), key=lambda unit: _UNIT_COST.get(unit[0], 1))

    def unit_points(self, method: str, seed: int) -> list[dict[str, Any]]:
        """The points of one unit, smallest fraction first."""
        if method == CHECKPOINT_METHOD:
            return [{"method": CHECKPOINT_METHOD, "fraction": 1.0, "seed": int(seed)}]
        if method == ALL_METHOD:
            return [{"method": ALL_METHOD, "fraction": 1.0, "seed": int(seed)}]
        return [{"method": method, "fraction": f, "seed": int(seed)} for f in sorted({float(x) for x in self.fractions})
                if f < 1.0]

    def points(self) -> list[dict[str, Any]]:
        """Every point folder the sweep fills, unit by unit (checkpoint mode: one run per seed)."""
        return [point for unit in self.units() for point in self.unit_points(*unit)]

    def n_points(self) -> int:
        """The points the curves will have (checkpoint mode: one per checkpoint and seed)."""
        if self.mode == "checkpoints":
            return len(set(self.checkpoints)) * len(set(self.seeds))
        return len(self.points())

    def curve_methods(self) -> list[str]:
        """The curves this sweep draws and fits."""
        return [CHECKPOINT_METHOD] if self.mode == "checkpoints" else list(self.methods)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "SweepConfig":
        """A config recorded by this or an earlier version (unknown keys are ignored)."""
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in values.items() if k in known})


def point_dir_name(point: Mapping[str, Any]) -> str:
    return f"{point['method']}_{float(point['fraction']) * 100:g}pct_s{point['seed']}"


def unit_name(method: str, seed: int) -> str:
    return f"{method}_s{int(seed)}"


def pair_count(fraction: float, n_pool: int) -> int:
    """Training pairs of a point at ``fraction`` of the ``n_pool`` training pairs (at least 1)."""
    return max(1, min(n_pool, int(round(float(fraction) * n_pool))))


def selection_size(fraction: float, n_points: int, n_test: int, unit: str) -> int:
    """Points a selector is asked for, so that its ranking covers ``fraction`` of the training pairs
    even when some selected points belong to held-out pairs."""
    extra = 2 * n_test if unit == "completion" else n_test
    return max(1, min(n_points, int(math.ceil(float(fraction) * n_points)) + extra))


# --------------------------------------------------------------------------------- the sweep
def submit_sweep(data, config: SweepConfig, out: str | os.PathLike, *, executor: str = "local",
                 workers: int | None = None, store=None, overwrite: bool = False,
                 report: Callable[[str], None] | None = None) -> list[str]:
    """:func:`prepare_sweep`, then submit ``workers`` ``sweep_worker`` jobs (default
    :func:`default_workers`, at most one per unit). Returns the job ids."""
    workers = default_workers() if workers is None else workers
    if not isinstance(workers, int) or workers < 1:
        raise SweepError(f"workers must be an integer >= 1, got {workers!r}")
    out = prepare_sweep(data, config, out, overwrite=overwrite, report=report)
    store = store or JobStore()
    n_workers = min(workers, len(config.units()))
    job_ids = []
    for index in range(n_workers):
        job_config = {"data": data.spec(), "sweep_dir": str(out), "sweep": config.to_dict(), "worker": index,
                      "n_workers": n_workers, "resources": {"cpus": config.cpus, "gpus": config.gpus}}
        job = store.add("sweep_worker", job_config, run_dir=out / "workers" / f"w{index}", executor=executor,
                        workers=max(workers, n_workers), overwrite=True)
        job_ids.append(job.id)
    _record_sweep(out, data, config, executor=executor, jobs=job_ids)
    get_executor(executor).start(store)
    return job_ids


def prepare_sweep(data, config: SweepConfig, out: str | os.PathLike, *, overwrite: bool = False,
                  report: Callable[[str], None] | None = None) -> Path:
    """Make ``out`` ready for workers (refused when it holds another sweep, unless ``overwrite``):
    compute once what every point shares (the embeddings, the held-out pairs' lengths, the training
    pool's audit for ``clean``) and write ``sweep.json``. Returns the resolved folder."""
    config.validate()
    out = Path(out).expanduser().resolve()
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise SweepError(f"{out}: exists and is not empty (pass --force to reuse it)")
    out.mkdir(parents=True, exist_ok=True)
    for stale in (POINTS_FILE, FIT_FILE, "points.csv", AUDIT_FILE, UNITS_FILE):
        (out / stale).unlink(missing_ok=True)
    _clear_claims(out)
    if config.mode == "subsets" and (any(m != ALL_METHOD for m, _ in config.units()) or config.evaluator == "probe"):
        if report:
            report("computing the embeddings once for every point (cached)")
        for encoder in dict.fromkeys([config.encoder] + ([config.probe_encoder] if config.evaluator == "probe" else [])):
            embed(data, encoder=encoder, unit="completion", progress=report is not None)
    _save_heldout_lengths(out / HELDOUT_FILE, data, config)
    if config.mode == "subsets" and {CLEAN_METHOD, FIX_METHOD} & set(config.methods):
        if report:
            report("auditing the training pool once for the clean and fix methods")
        audit_training_pool(data, config, out / AUDIT_FILE)
    _record_sweep(out, data, config)
    return out


def _record_sweep(out: Path, data, config: SweepConfig, **extra: Any) -> None:
    write_json(out / SWEEP_FILE, {"config": config.to_dict(), "data": data.spec(), "n_points": config.n_points(),
                                  "created_at": time.time(), **extra})


# ------------------------------------------------------------------------------ how long it takes
def rates_path() -> Path:
    """``settings.home()/cache/sweep_rates.jsonl``: what each finished sweep worker measured here
    (evaluator, pairs, points, busy seconds), the basis of the estimate before a launch."""
    return settings.home() / "cache" / "sweep_rates.jsonl"


def estimate_seconds(config: SweepConfig, n_pairs: int, workers: int | None = None) -> float | None:
    """Wall seconds the points of a sweep should take here (the shared embeddings and audit are
    estimated apart), from the median seconds per point per 1,000 pairs that earlier sweeps with
    the same evaluator measured on this machine; None before the first."""
    rows = [r for r in read_jsonl(rates_path())[-50:] if r.get("evaluator") == config.evaluator
            and r.get("measured") and r.get("n_pairs")]
    if not rows:
        return None
    per_point_kpair = float(np.median([r["busy_s"] / r["measured"] / max(r["n_pairs"] / 1000, 0.1) for r in rows]))
    workers = min(default_workers() if workers is None else workers, max(1, len(config.units())))
    return per_point_kpair * config.n_points() * max(n_pairs / 1000, 0.1) / workers


def _clear_claims(sweep_dir: Path) -> None:
    claims = sweep_dir / CLAIMS_DIR
    if claims.is_dir():
        for path in claims.glob("*.json"):
            path.unlink(missing_ok=True)


def audit_training_pool(data, config: SweepConfig, path: Path) -> None:
    """Audit the training pool only (the held-out pairs' labels must not steer what is dropped) and
    keep the table, indexed by the data's pair numbers, for the ``clean`` points."""
    from alignscope.evaluate.evaluators import split_pairs

    _, test_pairs = split_pairs(len(data), config.test_fraction, config.split_seed)
    pool = np.setdiff1d(np.arange(len(data), dtype=np.int64), test_pairs)
    chosen, rejected = pair_matrices(embed(data, encoder=config.encoder, unit="completion", progress=False), len(data))
    table = audit(data.frame.iloc[pool].reset_index(drop=True), (chosen[pool], rejected[pool]),
                  encoder=config.encoder, seed=config.split_seed)
    table["index"] = pool[table["index"].to_numpy(dtype=np.int64)]
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


def _save_heldout_lengths(path: Path, data, config: SweepConfig) -> None:
    """The sweep's held-out pairs and their word lengths: what the fit needs to recompute any metric
    on resampled pairs (the points keep only their margins)."""
    from alignscope.evaluate.evaluators import split_pairs

    _, test_pairs = split_pairs(len(data), config.test_fraction, config.split_seed)
    chosen, rejected = pair_word_lengths(data, test_pairs)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, pairs=test_pairs, chosen_words=chosen, rejected_words=rejected)

"""Training configs: one dataclass per trainer (DPO, KTO, DPO + SamS), their validation, and the
names a run directory uses. Cheap to import (no torch, no TRL): the CLI, the pages and sweeps read
defaults and validate options here before any job starts.

Following TRL (one config dataclass per trainer), :func:`train_config` builds the right class from
keyword fields and names the closest known option for a typo.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from alignscope.errors import AlignscopeError
from alignscope.selection import PAIR_RULES  # defined once, with the reason `mean` is not a rule

__all__ = ["METHODS", "PAIR_RULES", "SAMS_LOG", "SAMS_INDEX_COLUMN", "DEFAULT_LR", "DEFAULT_LR_OTHER", "TrainError",
           "TrainConfig", "DPOTrainConfig", "KTOTrainConfig", "DPOSamsTrainConfig", "CONFIG_CLASSES", "base_method",
           "train_config", "config_from_dict", "REPORT_TO", "report_to_names", "report_to_problem"]

METHODS = ("dpo", "kto", "dpo-sams")
SAMS_LOG = "sams.jsonl"  # per-step scheduler log of dpo-sams runs
SAMS_INDEX_COLUMN = "sams_index"  # data index of each training pair, carried through TRL's collator
# Learning rate when the config leaves it unset: the random-init `tiny` model needs big steps to
# move at all in a few dozen updates; real models use a usual DPO/KTO rate.
DEFAULT_LR = {"tiny": 1e-4}
DEFAULT_LR_OTHER = 5e-6


class TrainError(AlignscopeError):
    """Bad training input (config, selection, data); the message is one line for the user."""


# ------------------------------------------------------------------------------------ configs
@dataclass
class TrainConfig:
    """Fields shared by every method. Defaults are CPU-safe and fast on a 2-core machine.

    ``lr=None`` picks :data:`DEFAULT_LR` for built-in models (1e-4 for the random-init ``tiny``),
    else 5e-6. ``epochs`` may be fractional; ``max_steps`` (when set) overrides it.
    ``test_fraction``/``split_seed`` fix the held-out pairs (see the module docstring); ``seed``
    seeds training (shuffling, LoRA init). ``device=None``: CUDA when visible, else CPU.
    ``pair_rule``: how a completion-level selection becomes pairs for DPO, as in
    :func:`alignscope.select.pairs_from_completions` (``any``: a pair is kept when its chosen or its
    rejected completion is selected; ``both``: only when both are; ``chosen``/``rejected``: when
    that one is).
    ``eval_checkpoints``: fractions in (0, 1] of the run's optimizer steps after which the policy is
    evaluated on the held-out pairs (written to ``checkpoints.jsonl``; the last one, 1.0, is the
    final evaluation), e.g. ``[0.1, 0.25, 0.5, 0.75, 1.0]`` for the ISA paper's checkpoint curve.
    ``label_noise``: share of the TRAINING pairs whose chosen and rejected are swapped (seeded by
    ``label_noise_seed``; the held-out pairs are never touched) — the label-noise experiments of
    SamS; the flipped pairs are marked in ``selection.parquet`` (column ``flipped``).
    ``lora``: train a LoRA adapter (Hu et al. 2021, through ``peft``: ``pip install peft`` or the
    ``gpu`` extra) of rank ``lora_r``, scale ``lora_alpha``, dropout ``lora_dropout`` on
    ``lora_target_modules`` (``"all-linear"`` or module names) instead of every weight; the frozen
    base model is then DPO's reference (no second copy in memory) and the adapter is merged into the
    saved model. ``report_to``: experiment tracking through transformers' integrations, ``"none"``
    (default) or any of :data:`REPORT_TO` (a name or a list); each needs its package installed.
    TensorBoard logs go to ``RUN_DIR/tensorboard``; wandb, mlflow and trackio read their own
    environment variables (project, tracking URI) and name the run after the run directory.
    """

    method: ClassVar[str] = ""

    model: str = "tiny"
    epochs: float = 1.0
    batch_size: int = 8
    grad_accum: int = 1
    lr: float | None = None
    beta: float = 0.1
    max_length: int = 256
    test_fraction: float = 0.2
    split_seed: int = 0
    seed: int = 0
    max_steps: int | None = None
    warmup_ratio: float = 0.0
    logging_steps: int = 1
    save_model: bool = False
    device: str | None = None
    gradient_checkpointing: bool = False  # honoured on GPU only
    pair_rule: str = "any"
    label_noise: float = 0.0
    label_noise_seed: int = 0
    eval_batch_size: int = 8
    eval_max_pairs: int | None = None
    eval_checkpoints: list[float] | None = None
    n_boot: int = 1000
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: str | list[str] = "all-linear"
    report_to: list[str] | str = "none"

    def resolved_lr(self) -> float:
        if self.lr is not None:
            return float(self.lr)
        return DEFAULT_LR.get(str(self.model), DEFAULT_LR_OTHER)

    def validate(self) -> None:
        """Raise :class:`TrainError` (one line) for values that cannot work."""
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise TrainError(f"{self.method} config: {message}")

        need(isinstance(self.model, str) and bool(str(self.model).strip()), "model must be a non-empty string")
        need(_finite(self.epochs) and self.epochs > 0, f"epochs must be > 0, got {self.epochs!r}")
        need(_int(self.batch_size) and self.batch_size >= 1, f"batch_size must be an integer >= 1, got {self.batch_size!r}")
        need(_int(self.grad_accum) and self.grad_accum >= 1, f"grad_accum must be an integer >= 1, got {self.grad_accum!r}")
        need(self.lr is None or (_finite(self.lr) and self.lr > 0), f"lr must be > 0, got {self.lr!r}")
        need(_finite(self.beta) and self.beta > 0, f"beta must be > 0, got {self.beta!r}")
        need(_int(self.max_length) and self.max_length >= 8, f"max_length must be an integer >= 8, got {self.max_length!r}")
        need(_finite(self.test_fraction) and 0 <= self.test_fraction < 1,
             f"test_fraction must be in [0, 1), got {self.test_fraction!r}")
        need(_int(self.split_seed) and _int(self.seed), "seed and split_seed must be integers")
        need(self.max_steps is None or (_int(self.max_steps) and self.max_steps >= 1),
             f"max_steps must be an integer >= 1 or null, got {self.max_steps!r}")
        need(_finite(self.warmup_ratio) and 0 <= self.warmup_ratio < 1, f"warmup_ratio must be in [0, 1), got {self.warmup_ratio!r}")
        need(_int(self.logging_steps) and self.logging_steps >= 1, f"logging_steps must be an integer >= 1, got {self.logging_steps!r}")
        need(self.pair_rule in PAIR_RULES, f"pair_rule must be one of {', '.join(PAIR_RULES)}, got {self.pair_rule!r}")
        need(_finite(self.label_noise) and 0 <= self.label_noise < 1, f"label_noise must be in [0, 1), got {self.label_noise!r}")
        need(_int(self.label_noise_seed), "label_noise_seed must be an integer")
        need(_int(self.eval_batch_size) and self.eval_batch_size >= 1, "eval_batch_size must be an integer >= 1")
        need(self.eval_max_pairs is None or (_int(self.eval_max_pairs) and self.eval_max_pairs >= 1),
             "eval_max_pairs must be an integer >= 1 or null")
        need(self.eval_checkpoints is None or (isinstance(self.eval_checkpoints, (list, tuple)) and
                                                all(_finite(f) and 0 < f <= 1 for f in self.eval_checkpoints)),
             f"eval_checkpoints must be a list of fractions in (0, 1], got {self.eval_checkpoints!r}")
        need(not self.eval_checkpoints or self.test_fraction > 0, "eval_checkpoints need held-out pairs (test_fraction > 0)")
        need(_int(self.n_boot) and self.n_boot >= 0, "n_boot must be an integer >= 0")
        need(isinstance(self.lora, bool), f"lora must be true or false, got {self.lora!r}")
        need(_int(self.lora_r) and self.lora_r >= 1, "lora_r must be an integer >= 1")
        need(_finite(self.lora_alpha) and self.lora_alpha > 0, f"lora_alpha must be > 0, got {self.lora_alpha!r}")
        need(_finite(self.lora_dropout) and 0 <= self.lora_dropout < 1,
             f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        targets = self.lora_target_modules
        need((isinstance(targets, str) and bool(targets.strip())) or
             (isinstance(targets, (list, tuple)) and bool(targets) and all(isinstance(t, str) and t for t in targets)),
             f"lora_target_modules must be 'all-linear' or a list of module names, got {targets!r}")
        problem = report_to_problem(self.report_to)
        need(problem is None, problem or "")
        need(self.device is None or str(self.device).split(":")[0] in ("cpu", "cuda", "mps"),
             f"device must be cpu, cuda[:N] or mps, got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, **dataclasses.asdict(self)}


@dataclass
class DPOTrainConfig(TrainConfig):
    """DPO (TRL ``DPOTrainer``, sigmoid loss) on preference pairs."""

    method: ClassVar[str] = "dpo"
    loss_type: str = "sigmoid"
    label_smoothing: float = 0.0

    def validate(self) -> None:
        super().validate()
        if not (_finite(self.label_smoothing) and 0 <= self.label_smoothing < 0.5):
            raise TrainError(f"dpo config: label_smoothing must be in [0, 0.5), got {self.label_smoothing!r}")


@dataclass
class KTOTrainConfig(TrainConfig):
    """KTO (TRL ``KTOTrainer``) on single labelled completions (desirable = chosen).

    Consumes completion-level selections directly (the ISA paper's setting); a pair-level selection
    (or the whole data set) contributes both completions of each pair. ``desirable_weight`` /
    ``undesirable_weight`` left at None are balanced so that λ_D·n_D = λ_U·n_U (the KTO paper asks
    for a ratio in [1, 4/3]). KTO needs ``batch_size >= 2`` (its KL estimate mixes completions of a
    batch).
    """

    method: ClassVar[str] = "kto"
    desirable_weight: float | None = None
    undesirable_weight: float | None = None

    def validate(self) -> None:
        super().validate()
        if self.batch_size < 2:
            raise TrainError(f"kto config: batch_size must be >= 2 (KTO's KL term mixes completions of a batch), got {self.batch_size}")
        for name in ("desirable_weight", "undesirable_weight"):
            value = getattr(self, name)
            if value is not None and not (_finite(value) and value > 0):
                raise TrainError(f"kto config: {name} must be > 0, got {value!r}")


@dataclass
class DPOSamsTrainConfig(DPOTrainConfig):
    """DPO with SamS batch scheduling (:class:`alignscope.sams_trainer.SamsDPOTrainer`): the ``sams_*``
    fields are those of :class:`alignscope.sams.SamsConfig` (``sams_ratio`` = ρ, ``sams_exploration``
    = λ, ``sams_context`` = mean|pair|diff, ``sams_reward`` = published|ranked, ...)."""

    method: ClassVar[str] = "dpo-sams"
    sams_ratio: float = 0.5
    sams_exploration: float = 0.05
    sams_gamma: float = 0.5
    sams_width: int = 128
    sams_depth: int = 2
    sams_lr: float = 1e-3
    sams_scheduler_steps: int = 4
    sams_replay_size: int = 1024
    sams_replay_sample: int = 32
    sams_replay_max_mb: float = 64.0
    sams_selection: str = "topk"
    sams_temperature: float = 1.0
    sams_warmup_steps: int = 0
    sams_context: str = "pair"
    sams_pooling: str = "flatten"
    sams_standardize: bool = True
    sams_reward: str = "ranked"

    def sams_config(self):
        from alignscope.sams import SamsConfig

        return SamsConfig(**{f.name[len("sams_"):]: getattr(self, f.name) for f in dataclasses.fields(self)
                             if f.name.startswith("sams_")}, seed=int(self.seed))

    def validate(self) -> None:
        super().validate()
        if self.loss_type != "sigmoid":
            raise TrainError(f"dpo-sams config: SamS schedules the sigmoid DPO loss, got loss_type={self.loss_type!r}")
        from alignscope.sams import SamsError

        try:
            self.sams_config().validate()
        except SamsError as exc:
            raise TrainError(str(exc).replace("sams config: ", "dpo-sams config: sams_")) from None


CONFIG_CLASSES: dict[str, type[TrainConfig]] = {"dpo": DPOTrainConfig, "kto": KTOTrainConfig,
                                                "dpo-sams": DPOSamsTrainConfig}


def base_method(method: str) -> str:
    """The data layout a method trains on: ``dpo`` (pairs) for ``dpo`` and ``dpo-sams``, else ``kto``."""
    return "kto" if method == "kto" else "dpo"


def train_config(method: str = "dpo", **fields: Any) -> TrainConfig:
    """The config dataclass of ``method`` built from keyword fields; unknown fields are a one-line
    :class:`TrainError` with the closest known name."""
    cls = CONFIG_CLASSES.get(str(method).lower())
    if cls is None:
        raise TrainError(f"unknown training method {method!r}: use one of {', '.join(METHODS)}")
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        import difflib

        hints = [f"{name} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(name, known, n=1))
                 else name for name in unknown]
        raise TrainError(f"unknown {cls.method} option(s) {', '.join(hints)}; the options are the fields of "
                         f"{cls.__name__} (alignscope train --help)")
    config = cls(**fields)
    config.validate()
    return config


def config_from_dict(values: Mapping[str, Any]) -> TrainConfig:
    """Inverse of :meth:`TrainConfig.to_dict` (``method`` picks the class)."""
    values = dict(values)
    return train_config(values.pop("method", "dpo"), **values)


REPORT_TO = ("tensorboard", "trackio", "wandb", "mlflow")  # experiment trackers report_to accepts
_REPORT_TO_MODULES = {"tensorboard": ("tensorboard", "tensorboardX"), "trackio": ("trackio",), "wandb": ("wandb",),
                      "mlflow": ("mlflow",)}


def report_to_names(value: Any) -> list[str]:
    """``report_to`` as a list of tracker names (``"none"``, ``""`` or ``[]`` → ``[]``; a
    comma-separated string is split)."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(item).strip().lower() for item in items if str(item).strip()]
    return [] if names == ["none"] else names


def report_to_problem(value: Any) -> str | None:
    """Why ``report_to`` cannot work (an unknown name, ``none`` mixed with a tracker, or a tracker
    whose package is not installed), or None when it can."""
    import importlib.util

    if value is not None and not isinstance(value, (str, list, tuple)):
        return f"report_to must be a name or a list of names, got {type(value).__name__}"
    if not isinstance(value, str) and value is not None and not all(isinstance(v, str) for v in value):
        return f"report_to must hold names, got {value!r}"
    names = report_to_names(value)
    for name in names:
        if name == "none":
            return "report_to: 'none' cannot be combined with a tracker"
        if name not in REPORT_TO:
            return f"report_to: unknown tracker {name!r}: use none or any of {', '.join(REPORT_TO)}"
        if not any(importlib.util.find_spec(module) is not None for module in _REPORT_TO_MODULES[name]):
            return f"report_to {name!r} needs the {name} package, which is not installed: pip install {name}"
    return None

def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

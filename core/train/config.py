"""Training configs: one dataclass per trainer (DPO, KTO, DPO + SamS), their validation, and the
names a run directory uses. Cheap to import (no torch, no TRL): the CLI, the pages and sweeps read
defaults and validate options here before any job starts.

Following TRL (one config dataclass per trainer), :func:`train_config` builds the right class from
keyword fields and names the closest known option for a typo.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib.util
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

from alignscope.errors import AlignscopeError
from alignscope.options import field_problem, is_finite, option, parse_list
from alignscope.run_files import SAMS_LOG
from alignscope.select.selection import PAIR_RULES  # defined once, with the reason `mean` is not a rule
from alignscope.train.sams_config import SamsConfig, SamsError

__all__ = ["METHODS", "PAIR_RULES", "SAMS_LOG", "SAMS_INDEX_COLUMN", "DEFAULT_LR", "DEFAULT_LR_OTHER", "TrainError",
           "TrainConfig", "DPOTrainConfig", "KTOTrainConfig", "DPOSamsTrainConfig", "CONFIG_CLASSES", "base_method",
           "train_config", "config_from_dict", "REPORT_TO", "report_to_names", "report_to_problem", "config_class", "option_fields", "option_defaults", "option_meta"]

METHODS = ("dpo", "kto", "dpo-sams")
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
    :meth:`alignscope.select.selection.Selection.pairs` (``any``: a pair is kept when its chosen or its
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

    ``max_length`` defaults to 128 tokens (prompt + completion): CPU-friendly, and what sweeps use;
    raise it for real models on a GPU. Every field's help, bounds and choices are its metadata
    (:func:`option`): the CLI flags and the Train page are generated from them.
    """

    method: ClassVar[str] = ""
    cli_group: ClassVar[str] = "training (every method)"

    model: str = option("tiny", help="tiny (random-init, plumbing only), smollm2-135m, a model folder or a hub id "
                                     "org/name", default_text=None)
    epochs: float = option(1.0, help="passes over the training pairs (fractional allowed; --max-steps overrides it)",
                           min=0, min_open=True)
    batch_size: int = option(8, help="pairs per device batch", min=1)
    grad_accum: int = option(1, help="gradient accumulation steps", min=1)
    lr: float | None = option(None, help="learning rate", min=0, min_open=True,
                              default_text=f"{DEFAULT_LR['tiny']:g} for tiny, {DEFAULT_LR_OTHER:g} otherwise")
    beta: float = option(0.1, help="DPO/KTO temperature beta", min=0, min_open=True)
    max_length: int = option(128, help="tokens of prompt + completion kept (longer ones are cut)", min=8)
    test_fraction: float = option(0.2, help="held-out share of ALL pairs (the same pairs for every subset)",
                                  min=0, max=1, max_open=True)
    split_seed: int = option(0, help="seed of the train/test split")
    seed: int = option(0, help="training seed (shuffling, LoRA init)")
    max_steps: int | None = option(None, help="stop after this many optimizer steps", min=1,
                                   default_text="full epochs")
    warmup_ratio: float = option(0.0, help="share of the steps with a linear learning-rate warm-up", min=0, max=1,
                                 max_open=True)
    logging_steps: int = option(1, help="log the training metrics every N steps", min=1)
    save_model: bool = option(False, help="keep the trained model in RUN_DIR/model (safetensors)")
    device: str | None = option(None, help="cpu, cuda[:N] or mps", default_text="cuda when visible, else cpu")
    gradient_checkpointing: bool = option(False, help="trade compute for memory (honoured on GPU only)")
    pair_rule: str = option("any", choices=PAIR_RULES,
                            help="how a completion-level selection becomes pairs: any, both, chosen or rejected "
                                 "completion selected")
    label_noise: float = option(0.0, help="swap chosen/rejected of this share of the training pairs (held-out pairs "
                                          "untouched)", min=0, max=1, max_open=True)
    label_noise_seed: int = option(0, help="seed of the label-noise flips")
    eval_batch_size: int = option(8, help="pairs per evaluation batch", min=1)
    eval_max_pairs: int | None = option(None, help="evaluate on at most this many held-out pairs", min=1,
                                        default_text="all")
    eval_checkpoints: list[float] | None = option(None, help="comma-separated fractions in (0, 1] of the run after "
                                                             "which to evaluate, e.g. 0.1,0.25,0.5,1",
                                                  default_text="the end only")
    n_boot: int = option(1000, help="bootstrap resamples of the held-out scores' 95 % intervals", min=0)
    lora: bool = option(False, help="train a LoRA adapter (needs peft: pip install 'alignscope[gpu]'); merged into "
                                    "model/")
    lora_r: int = option(16, help="LoRA rank", min=1, requires="lora")
    lora_alpha: int = option(32, help="LoRA scale alpha", min=1, requires="lora")
    lora_dropout: float = option(0.05, help="LoRA dropout", min=0, max=1, max_open=True, requires="lora")
    lora_target_modules: str | list[str] = option("all-linear", help="all-linear or comma-separated module names, "
                                                                      "e.g. q_proj,v_proj", requires="lora")
    report_to: list[str] | str = option("none", help="none or comma-separated trackers: tensorboard (logs in "
                                                     "RUN_DIR/tensorboard), trackio, wandb, mlflow (each needs its "
                                                     "package)")

    def resolved_lr(self) -> float:
        if self.lr is not None:
            return float(self.lr)
        return DEFAULT_LR.get(str(self.model), DEFAULT_LR_OTHER)

    def validate(self) -> None:
        """Raise :class:`TrainError` (one line) for values that cannot work: the type, bounds and
        choices every field declares in its metadata, then the rules that span fields."""
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise TrainError(f"{self.method} config: {message}")

        need(isinstance(self.model, str) and bool(str(self.model).strip()), "model must be a non-empty string")
        for f in dataclasses.fields(self):
            problem = field_problem(f, getattr(self, f.name))
            need(problem is None, problem or "")
        need(self.eval_checkpoints is None or (isinstance(self.eval_checkpoints, (list, tuple)) and
                                                all(is_finite(f) and 0 < f <= 1 for f in self.eval_checkpoints)),
             f"eval_checkpoints must be a list of fractions in (0, 1], got {self.eval_checkpoints!r}")
        need(not self.eval_checkpoints or self.test_fraction > 0, "eval_checkpoints need held-out pairs (test_fraction > 0)")
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
    cli_group: ClassVar[str] = "DPO (--method dpo, dpo-sams)"
    loss_type: str = option("sigmoid", help="TRL's DPO loss_type (dpo-sams needs sigmoid)")
    label_smoothing: float = option(0.0, help="conservative DPO label smoothing", min=0, max=0.5, max_open=True)


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
    cli_group: ClassVar[str] = "KTO (--method kto)"
    desirable_weight: float | None = option(None, help="KTO weight of the desirable (chosen) completions", min=0,
                                            min_open=True, default_text="balanced against the undesirable ones")
    undesirable_weight: float | None = option(None, help="KTO weight of the undesirable (rejected) completions",
                                              min=0, min_open=True, default_text="balanced against the desirable ones")

    def validate(self) -> None:
        super().validate()
        if self.batch_size < 2:
            raise TrainError(f"kto config: batch_size must be >= 2 (KTO's KL term mixes completions of a batch), got {self.batch_size}")


_SAMS_PREFIX = "sams_"
# SamsConfig fields a training run sets from its own options rather than a sams_* option.
_SAMS_FROM_RUN = ("seed",)


def _with_sams_options(cls: type) -> type:
    """Give ``cls`` one option ``sams_<name>`` per field of :class:`SamsConfig` (its type, default,
    help, bounds and choices), so the scheduler's options are declared once, in SamsConfig."""
    for f in dataclasses.fields(SamsConfig):
        if f.name in _SAMS_FROM_RUN:
            continue
        name = _SAMS_PREFIX + f.name
        cls.__annotations__[name] = f.type
        setattr(cls, name, dataclasses.field(default=f.default, metadata=f.metadata))
    return cls


@dataclass
@_with_sams_options
class DPOSamsTrainConfig(DPOTrainConfig):
    """DPO with SamS batch scheduling (:class:`alignscope.train.sams_trainer.SamsDPOTrainer`): one
    ``sams_<name>`` option per field of :class:`alignscope.train.sams_config.SamsConfig`
    (``sams_ratio`` = ρ, ``sams_exploration`` = λ, ``sams_context`` = mean|pair|diff,
    ``sams_reward`` = published|ranked, ...), generated from it; the scheduler's seed is the run's."""

    method: ClassVar[str] = "dpo-sams"
    cli_group: ClassVar[str] = "SamS (--method dpo-sams)"

    def __post_init__(self) -> None:
        if self.sams_context == "flatten":  # the old name, as SamsConfig reads it
            self.sams_context, self.sams_pooling = "mean", "flatten"

    def sams_config(self) -> SamsConfig:
        return SamsConfig(**{f.name[len(_SAMS_PREFIX):]: getattr(self, f.name) for f in dataclasses.fields(self)
                             if f.name.startswith(_SAMS_PREFIX)}, seed=int(self.seed))

    def validate(self) -> None:
        super().validate()  # every sams_* option's type, bounds and choices, from SamsConfig's metadata
        if self.loss_type != "sigmoid":
            raise TrainError(f"dpo-sams config: SamS schedules the sigmoid DPO loss, got loss_type={self.loss_type!r}")
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
    cls = config_class(method)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        hints = [f"{name} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(name, known, n=1))
                 else name for name in unknown]
        raise TrainError(f"unknown {cls.method} option(s) {', '.join(hints)}; the options are the fields of "
                         f"{cls.__name__} (alignscope train --help)")
    config = cls(**fields)
    config.validate()
    return config


def config_class(method: str) -> type[TrainConfig]:
    """The config dataclass of ``method`` (a one-line :class:`TrainError` for an unknown one)."""
    cls = CONFIG_CLASSES.get(str(method).lower())
    if cls is None:
        raise TrainError(f"unknown training method {method!r}: use one of {', '.join(METHODS)}")
    return cls


def option_fields(method: str | None = None) -> dict[str, dataclasses.Field]:
    """The declared options (dataclass fields, with their metadata) of ``method``, or of every
    method (shared ones first, then DPO's, KTO's and SamS's) when None."""
    classes = [config_class(method)] if method is not None else list(CONFIG_CLASSES.values())
    out: dict[str, dataclasses.Field] = {}
    for cls in classes:
        for f in dataclasses.fields(cls):
            out.setdefault(f.name, f)
    return out


def option_defaults(method: str | None = None) -> dict[str, Any]:
    """``{field: dataclass default}`` of ``method`` (or of every method): what an unset CLI flag,
    an untouched Train page widget and a sweep point all train with."""
    return {name: f.default for name, f in option_fields(method).items()}


def option_meta(name: str) -> Mapping[str, Any]:
    """The metadata (help, choices, min, max, ...) of the option ``name``."""
    fields = option_fields()
    if name not in fields:
        raise TrainError(f"unknown training option {name!r}")
    return fields[name].metadata


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
    items = parse_list(value) if isinstance(value, str) else list(value)
    names = [str(item).strip().lower() for item in items if str(item).strip()]
    return [] if names == ["none"] else names


def report_to_problem(value: Any) -> str | None:
    """Why ``report_to`` cannot work (an unknown name, ``none`` mixed with a tracker, or a tracker
    whose package is not installed), or None when it can."""
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

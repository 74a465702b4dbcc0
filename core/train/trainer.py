"""Alignment training with TRL (DPO and KTO) on a selection or on the whole data set.

With :mod:`alignscope.train.sams_trainer` (the SamS subclass of TRL's DPOTrainer), this is the only
module of alignscope that imports ``trl``: TRL and transformers change their APIs often, so the
integration lives here, and ``trl`` (and ``sams_trainer``) are imported inside the functions that
need them, so importing this module is cheap (the app and the CLI read the config dataclasses
without paying for torch).

Entry points
------------
* :func:`train` ``(data, *, selection=None, config, run_dir, report=None) -> dict`` from Python.
* :func:`run_job` ``(config, run_dir, report)``: the ``train`` job kind of :mod:`alignscope.jobs`;
  ``config`` is plain JSON: ``{"data": SOURCE, "selection": PATH|None, "method": "dpo"|"kto",
  ...the fields of the method's config dataclass...}``.

What a run writes in ``run_dir`` (atomically, except the append-only metrics file)
-----------------------------------------------------------------------------------
* ``config.json``: what the job system wrote (job id, kind, the job config) plus everything needed
  to re-run and to trust the numbers: ``method``, ``train_config`` (resolved, e.g. the learning
  rate actually used), ``data`` (source, fingerprint, number of pairs), ``selection`` (path, level,
  counts, the selection's own recorded config), ``split`` (seed, fraction, sizes, a hash of the test
  pairs), ``training_set`` (rows and pairs trained on), ``device``, ``versions`` (python, torch,
  transformers, trl, accelerate, datasets, alignscope, peft when installed).
* ``metrics.jsonl``: one JSON object per logged step with the keys of :data:`METRIC_KEYS`
  (``step, epoch, loss, rewards/chosen, rewards/rejected, rewards/margins, rewards/accuracies,
  lr, elapsed_s``; ``null`` where the method does not log it, e.g. KTO has no reward accuracy) plus
  whatever else TRL logged (``grad_norm``, ``logps/chosen``, ``kl``...) under TRL's own names.
* ``selection.parquet``: the selection table used (or one row per pair when training on the whole
  data set) with two added columns, ``in_test`` and ``trained``.
* ``eval.json`` (+ ``eval_pairs.parquet``): the held-out preference evaluation of
  :func:`alignscope.evaluate.evaluators.preference_eval`, plus a ``training`` block (steps, runtime, s/step,
  final loss).
* ``checkpoints.jsonl``: with ``eval_checkpoints``, one line per intermediate evaluation (the ISA
  paper's own scaling measurement: one run, evaluated as it sees more data): ``step, epoch,
  fraction, pairs_seen, accuracy, accuracy_ci95, length_controlled_accuracy, log_loss, length_baseline
  (and their intervals), reward_margin, n_pairs``; ``fraction`` is the
  share of the training rows seen so far (1.0 after one full epoch).
* ``model/``: the trained policy as safetensors + tokenizer, when ``save_model`` is set (a LoRA
  adapter is merged into the weights first, so the folder loads like any model).

The split
---------
The held-out pairs are drawn from the WHOLE data set by :func:`alignscope.evaluate.evaluators.split_pairs`
(``test_fraction``, ``split_seed``), independently of the selection: every selection of the same
data (ISA 3.5 %, random 10 %, all of it) is evaluated on the same pairs, and any selected row
whose pair is held out is dropped from training (counted in ``config.json``).

Why one module of ~590 lines: it is the one place that talks to TRL and transformers
(``tests/test_architecture.py`` keeps ``trl`` here and in :mod:`alignscope.train.sams_trainer`), so
everything that follows their API (config names across versions, datasets in TRL's formats, LoRA,
saving) stays together; what a run logs is in :mod:`alignscope.train.callbacks`. :func:`train`
reads as its four steps.

CPU
---
On CPU, bf16 and gradient checkpointing are forced off (TRL defaults both on; bf16 on a CPU without
native bf16 made DPO ~10x slower here). On a CUDA GPU, bf16 is used when the GPU supports it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import tempfile
import time
import warnings
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import pandas as pd

from alignscope import __version__
from alignscope.evaluate.metrics import describe_scores
from alignscope.files import jsonable, read_jsonl, write_json
from alignscope.models import load_causal_lm, resolve_device, resolve_model, supports_bf16
from alignscope.run_files import (CHECKPOINTS_LOG, CONFIG_FILE, EVAL_FILE, METRICS_FILE, SAMS_LOG, SELECTION_FILE,
                                  TRAINING_ARTEFACTS, WARNINGS_FILE)
from alignscope.train.callbacks import (METRIC_KEYS, TRAIN_SHARE, Report, TrainingWarnings, checkpoint_callback,
                                        checkpoint_record, checkpoint_steps, metrics_callback, normalise_metrics,
                                        record_checkpoint, say)
from alignscope.train.config import SAMS_INDEX_COLUMN, TrainConfig, TrainError, report_to_names, train_config
from alignscope.train.trainset import TrainingSet, flipped_pairs, training_set

__all__ = ["METRIC_KEYS", "CHECKPOINTS_LOG", "WARNINGS_FILE", "SamsDPOTrainer", "checkpoint_steps", "normalise_metrics",
           "train", "run_job", "package_versions"]



def _report_args(config: TrainConfig, run_dir: Path) -> dict[str, Any]:
    """The TrainingArguments of experiment tracking: ``report_to`` and a run name; TensorBoard's
    event files go to ``run_dir/tensorboard`` (transformers reads that folder from the environment)."""
    names = report_to_names(config.report_to)
    if "tensorboard" in names:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(run_dir / "tensorboard")
    return {"report_to": names or "none", "run_name": run_dir.name}

# --------------------------------------------------------------------------------- the run


def package_versions() -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for name in ("alignscope", "torch", "transformers", "trl", "accelerate", "datasets", "peft", "numpy"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    if versions.get("alignscope") is None:
        versions["alignscope"] = __version__
    return versions


def _device_info(device: str) -> dict[str, Any]:
    import torch


    info: dict[str, Any] = {"device": device, "bf16": supports_bf16(device), "torch_threads": torch.get_num_threads()}
    if device.startswith("cuda") and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return info


def _reload_spec(data: Any, given: str | None) -> str | None:
    """A source string :func:`alignscope.data.preferences.load_preferences` can reload, when there is one."""
    if given:
        return given
    source = str(getattr(data, "source", "") or "")
    if getattr(data, "is_demo", False):
        if re.fullmatch(r"demo(:\d+){0,2}", source):
            return source
        demo = re.fullmatch(r"demo \(n=(\d+), seed=(\d+)\)", source)
        if demo:
            return f"demo:{demo.group(1)}:{demo.group(2)}"
        return None  # a demo built with non-default shares cannot be named by a source string
    if source and Path(source).expanduser().exists():
        return str(Path(source).expanduser().resolve())
    return None


def _split_record(n: int, test_pairs: np.ndarray, config: TrainConfig) -> dict[str, Any]:
    digest = hashlib.sha256(np.asarray(test_pairs, dtype=np.int64).tobytes()).hexdigest()[:16]
    return {"method": "alignscope.evaluate.split_pairs", "seed": config.split_seed,
            "test_fraction": config.test_fraction, "n_pairs": n, "n_test": int(len(test_pairs)),
            "n_train_pool": int(n - len(test_pairs)), "test_pairs_sha256": digest}


def _clear_artefacts(run_dir: Path) -> None:
    for name in TRAINING_ARTEFACTS:
        with contextlib.suppress(FileNotFoundError):
            (run_dir / name).unlink()
    if (run_dir / "model").is_dir():
        aside = run_dir / f".model.old.{os.getpid()}"
        os.rename(run_dir / "model", aside)
        shutil.rmtree(aside, ignore_errors=True)


def _merge_config_json(run_dir: Path, record: Mapping[str, Any]) -> None:
    path = run_dir / CONFIG_FILE
    current: dict[str, Any] = {}
    with contextlib.suppress(OSError, ValueError):
        loaded = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(loaded, dict):
            current = loaded
    current.update(jsonable(dict(record)))
    write_json(path, current)


def _build_dataset(data: Any, rows: pd.DataFrame, method: str, seed: int, flipped: np.ndarray):
    import datasets

    frame = data.frame
    pairs = rows["pair"].to_numpy()
    is_flipped = np.isin(pairs, flipped)
    if method != "kto":
        picked = frame.iloc[pairs][["prompt", "chosen", "rejected"]].reset_index(drop=True)
        if is_flipped.any():
            swap = picked.loc[is_flipped, "chosen"].copy()
            picked.loc[is_flipped, "chosen"] = picked.loc[is_flipped, "rejected"]
            picked.loc[is_flipped, "rejected"] = swap
        if method == "dpo-sams":
            picked[SAMS_INDEX_COLUMN] = pairs.astype(np.int64)
        return datasets.Dataset.from_pandas(picked, preserve_index=False)
    labels = rows["label"].to_numpy().astype(bool)
    completions = [frame["chosen"].iat[p] if lab else frame["rejected"].iat[p] for p, lab in zip(pairs, labels)]
    table = pd.DataFrame({"prompt": frame["prompt"].iloc[pairs].tolist(), "completion": completions,
                          "label": (labels ^ is_flipped).tolist()})
    # KTOTrainer samples sequentially (its KL term pairs neighbours in a batch), so mix desirable and
    # undesirable completions here, with the run's seed.
    order = np.random.default_rng(seed).permutation(len(table))
    return datasets.Dataset.from_pandas(table.iloc[order].reset_index(drop=True), preserve_index=False)


# TRL/transformers options renamed across versions: the new name where this version has it (the old
# one stays as a deprecated alias that warns), else the old one.
_RENAMED = {"gradient_checkpointing": "activation_checkpointing"}  # transformers 5
# Options that only exist under another name in newer versions, used under it only when the old is gone.
_REPLACED = {"warmup_ratio": "warmup_steps"}                        # transformers 5: a float < 1 is a ratio


def _trl_args(cls: type, **values: Any):
    """Build a TRL config from option names that may have been renamed across versions (see
    :data:`_RENAMED`, :data:`_REPLACED`); an option this version lacks is dropped when it is a no-op."""
    names = {f.name for f in dataclasses.fields(cls)}
    kept: dict[str, Any] = {}
    for name, value in values.items():
        if _RENAMED.get(name) in names or (name not in names and _REPLACED.get(name) in names):
            name = _RENAMED.get(name) or _REPLACED[name]
        if name in names:
            kept[name] = value
        elif value not in (None, 0, 0.0, False):
            raise TrainError(f"this TRL/transformers version has no {name!r} option for {cls.__name__}")
    return cls(**kept)


def _lora_config(config: TrainConfig):
    try:
        import peft
    except ImportError:
        raise TrainError("LoRA needs the peft package, which is not installed: pip install peft "
                         "(or pip install 'alignscope[gpu]')") from None
    targets = config.lora_target_modules
    return peft.LoraConfig(r=int(config.lora_r), lora_alpha=config.lora_alpha, lora_dropout=float(config.lora_dropout),
                           target_modules=targets if isinstance(targets, str) else list(targets),
                           task_type="CAUSAL_LM")


@contextlib.contextmanager
def _quiet_datasets():
    import datasets

    enabled = datasets.is_progress_bar_enabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if enabled:
            datasets.enable_progress_bars()


def train(data: Any, *, selection: Any = None, config: TrainConfig, run_dir: str | os.PathLike,
          report: Report | None = None, data_source: str | None = None, progress_bar: bool | None = None,
          on_checkpoint: Callable[[dict], None] | None = None) -> dict[str, Any]:
    """Train ``config.model`` with ``config.method`` on ``data`` (a PreferenceData, or anything
    :func:`alignscope.data.preferences.load_preferences` reads) restricted to ``selection`` (a selection parquet
    path or table; None = the whole data set), minus the held-out test pairs; evaluate on those
    pairs; write the run directory (see the module docstring). Returns a summary dict (also the
    ``training`` block and evaluation of ``eval.json``).

    ``report(progress=None, message=None)`` receives progress in 0..1 (the job system's reporter);
    ``data_source`` is the string to reload the data from (recorded in config.json);
    ``progress_bar`` (default: when stderr is a terminal) shows a tqdm bar, else one line per log.
    ``on_checkpoint(record)`` is called with each ``checkpoints.jsonl`` line as it is written (with
    ``config.eval_checkpoints``), e.g. to stream a scaling curve.
    Bad input raises :class:`TrainError` / ``ModelError`` / ``DataError`` with a one-line message.

    Four steps, each its own function: :func:`_configure` (check everything, decide what is
    trained, before any model loads), :func:`_record` (the run folder's config.json and
    selection.parquet), :func:`_fit` (TRL), :func:`_evaluate` (the held-out pairs).
    """
    report = report or (lambda progress=None, message=None: None)
    started = time.monotonic()
    plan = _configure(data, selection, config, data_source=data_source, report=report)
    run_dir = Path(run_dir).expanduser().resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    _record(run_dir, plan, config)
    policy, tokenizer, training = _fit(plan, config, run_dir=run_dir, report=report, started=started,
                                       show_bar=sys.stderr.isatty() if progress_bar is None else bool(progress_bar),
                                       on_checkpoint=on_checkpoint)
    policy.eval()
    saved = None
    steps = training["steps"]
    trained = f"trained {steps:,} step{'s' if steps != 1 else ''} · "  # the last step's line may not have shown
    if config.save_model:
        report(progress=TRAIN_SHARE, message=trained + "saving the model")
        saved = _save_model(policy, tokenizer, run_dir / "model")
    result: dict[str, Any] = {"run_dir": str(run_dir), "method": config.method, "training": training,
                              "model_dir": str(saved) if saved else None, "eval": None}
    if len(plan.tset.test_pairs):
        result["eval"] = _evaluate(plan, config, policy, tokenizer, training, run_dir=run_dir, report=report,
                                   trained=trained, on_checkpoint=on_checkpoint)
    report(progress=1.0, message="done")
    result["elapsed_s"] = round(time.monotonic() - started, 3)
    return result


@dataclasses.dataclass
class _Plan:
    """What a run trains on and with, decided by :func:`_configure` before any model loads."""

    data: Any                      # the PreferenceData
    data_source: str | None        # the string to reload it from
    tset: TrainingSet              # training rows and held-out pairs
    model_dir: Path
    device: str
    lr: float
    kto_weights: dict[str, float]
    flipped: np.ndarray            # training pairs whose labels the run swaps (label_noise)
    n_desirable: int | None
    n_undesirable: int | None


def _configure(data: Any, selection: Any, config: TrainConfig, *, data_source: str | None, report: Report) -> _Plan:
    """Check the config, load the data, split it and resolve the model, device and learning rate:
    everything that can be wrong fails here, with one line, before anything is written."""
    from alignscope.data.preferences import PreferenceData, load_preferences

    if not isinstance(config, TrainConfig):
        raise TrainError(f"config must be a DPOTrainConfig or KTOTrainConfig, got {type(config).__name__}")
    config.validate()
    if config.lora:
        _lora_config(config)  # fail now, not after loading the models, when peft is missing
    if not isinstance(data, PreferenceData):
        if data_source is None and isinstance(data, (str, os.PathLike)):
            data_source = str(data)
        data = load_preferences(data)
    method = config.method
    report(progress=0.0, message="checking the data and the selection")
    tset = training_set(data, selection, method=method, test_fraction=config.test_fraction,
                        split_seed=config.split_seed, pair_rule=config.pair_rule)
    if len(tset.test_pairs) == 0:
        say("test_fraction is 0: no held-out pairs, so no evaluation will be written")
    if method == "kto" and len(tset.rows) < config.batch_size:
        raise TrainError(f"KTO needs at least batch_size={config.batch_size} training completions, the selection "
                         f"leaves {len(tset.rows)}")
    report(message=f"resolving model {config.model}")
    model_dir = resolve_model(config.model)  # ModelError (one line) for unknown models
    device = resolve_device(config.device)  # ModelError (one line) for CUDA without a GPU
    n_desirable = int((tset.rows["label"] == 1).sum()) if "label" in tset.rows else None
    n_undesirable = int((tset.rows["label"] == 0).sum()) if "label" in tset.rows else None
    return _Plan(data=data, data_source=data_source, tset=tset, model_dir=model_dir, device=device,
                 lr=config.resolved_lr(),
                 kto_weights=_kto_weights(config, n_desirable, n_undesirable) if method == "kto" else {},
                 flipped=flipped_pairs(tset.pairs, config.label_noise, config.label_noise_seed),
                 n_desirable=n_desirable, n_undesirable=n_undesirable)


def _record(run_dir: Path, plan: _Plan, config: TrainConfig) -> None:
    """Clear an earlier run's results, then record what this run trains in config.json (everything
    needed to re-run it and to trust its numbers) and the rows it trains on in selection.parquet."""
    data, tset = plan.data, plan.tset
    _clear_artefacts(run_dir)
    if config.label_noise:
        pair_col = "pair_index" if tset.level == "completion" else "index"
        tset.table["flipped"] = np.isin(tset.table[pair_col].to_numpy(), plan.flipped) & tset.table["trained"].to_numpy()
    _merge_config_json(run_dir, {
        "method": config.method,
        "train_config": {**config.to_dict(), "lr": plan.lr, **plan.kto_weights},
        "data": {"source": plan.data_source or getattr(data, "source", None),
                 "reload": _reload_spec(data, plan.data_source), "fingerprint": data.fingerprint, "n_pairs": len(data),
                 "format": getattr(data, "format", None)},
        "model": {"spec": config.model, "folder": str(plan.model_dir)},
        "selection": {"path": tset.info.get("path"), "level": tset.level, "n_rows": int(len(tset.table)),
                      "n_selected": tset.n_selected, "n_selected_in_test": tset.n_selected_in_test,
                      "pair_rule": config.pair_rule, "fingerprint": tset.info.get("fingerprint"),
                      "config": tset.info.get("meta")},
        "split": _split_record(len(data), tset.test_pairs, config),
        "training_set": {"n_rows": int(len(tset.rows)), "n_pairs": int(len(tset.pairs)),
                         "n_desirable": plan.n_desirable, "n_undesirable": plan.n_undesirable},
        "label_noise": {"fraction": config.label_noise, "seed": config.label_noise_seed,
                        "n_flipped": int(len(plan.flipped))},
        "device": _device_info(plan.device),
        "versions": package_versions(),
    })
    _write_selection_copy(run_dir / SELECTION_FILE, tset)


def _fit(plan: _Plan, config: TrainConfig, *, run_dir: Path, report: Report, started: float, show_bar: bool,
         on_checkpoint: Callable[[dict], None] | None) -> tuple[Any, Any, dict[str, Any]]:
    """Train with TRL; keep what TRL and transformers warned about (warnings.json). Returns the
    policy, its tokenizer and the ``training`` block of eval.json (steps, runtime, losses)."""
    report(progress=0.01, message=f"loading {config.model}")
    with TrainingWarnings() as caught:
        policy, tokenizer, trainer = _run_trainer(plan.data, plan.tset, config, model_dir=plan.model_dir,
                                                  device=plan.device, lr=plan.lr, kto_weights=plan.kto_weights,
                                                  run_dir=run_dir, report=report, show_bar=show_bar,
                                                  flipped=plan.flipped, on_checkpoint=on_checkpoint)
    if caught.groups:  # e.g. TRL cutting the end of every prompt: it changes what is learned, so it is shown
        write_json(run_dir / WARNINGS_FILE, caught.record)
    history = [h for h in trainer.state.log_history if "train_runtime" in h]
    steps = int(trainer.state.global_step)
    runtime = float(history[-1]["train_runtime"]) if history else time.monotonic() - started
    logged = read_jsonl(run_dir / METRICS_FILE)
    training = {"method": config.method, "model": config.model, "steps": steps,
                "epochs": float(trainer.state.epoch or 0),
                "train_runtime_s": round(runtime, 3), "s_per_step": round(runtime / steps, 4) if steps else None,
                "final_loss": logged[-1]["loss"] if logged else None,
                "train_loss": float(history[-1]["train_loss"]) if history and "train_loss" in history[-1] else None,
                "n_train_rows": int(len(plan.tset.rows)), "n_train_pairs": int(len(plan.tset.pairs)), "lr": plan.lr}
    return policy, tokenizer, training


def _evaluate(plan: _Plan, config: TrainConfig, policy: Any, tokenizer: Any, training: dict[str, Any], *,
              run_dir: Path, report: Report, trained: str,
              on_checkpoint: Callable[[dict], None] | None) -> dict[str, Any]:
    """Score the trained policy on the held-out pairs against the untrained model (the DPO
    reference), write eval.json and, with eval_checkpoints reaching 1.0, the last checkpoint line."""
    from alignscope.evaluate.evaluators import evaluate_pairs, write_eval

    tset = plan.tset
    n_eval = min(len(tset.test_pairs), config.eval_max_pairs or len(tset.test_pairs))
    report(progress=TRAIN_SHARE, message=trained + (
        f"evaluating on {n_eval:,} of the {len(tset.test_pairs):,} held-out pairs"
        if n_eval < len(tset.test_pairs) else f"evaluating on the {n_eval:,} held-out pairs"))
    reference, _ = load_causal_lm(str(plan.model_dir), device=plan.device)
    evaluation, per_pair = evaluate_pairs(policy, reference, tokenizer, plan.data, tset.test_pairs, beta=config.beta,
                                          max_length=config.max_length, batch_size=config.eval_batch_size,
                                          max_pairs=config.eval_max_pairs, n_boot=config.n_boot,
                                          seed=config.split_seed, device=plan.device,
                                          report=lambda p: report(progress=TRAIN_SHARE + (1 - TRAIN_SHARE) * p))
    evaluation["training"] = training
    write_eval(run_dir, evaluation, per_pair)
    if config.eval_checkpoints and max(config.eval_checkpoints) == 1.0:  # the final evaluation is the last one
        record_checkpoint(run_dir, checkpoint_record(evaluation, step=training["steps"], epoch=training["epochs"],
                                                     n_rows=len(tset.rows),
                                                     rows_per_step=config.batch_size * config.grad_accum),
                          on_checkpoint)
    say(f"held-out {describe_scores(evaluation)} ({EVAL_FILE})")
    return evaluation


def _write_selection_copy(path: Path, tset: TrainingSet) -> None:
    """The selection as used (with ``in_test``/``trained``), config and fingerprint kept, readable
    with :meth:`alignscope.select.selection.Selection.read`."""
    tset.write_selection(path)


def _kto_weights(config: TrainConfig, n_desirable: int | None, n_undesirable: int | None) -> dict[str, float]:
    desirable = getattr(config, "desirable_weight", None)
    undesirable = getattr(config, "undesirable_weight", None)
    if desirable is None and undesirable is None and n_desirable and n_undesirable:
        if n_desirable >= n_undesirable:
            desirable, undesirable = 1.0, n_desirable / n_undesirable
        else:
            desirable, undesirable = n_undesirable / n_desirable, 1.0
    return {"desirable_weight": float(desirable or 1.0), "undesirable_weight": float(undesirable or 1.0)}


def _run_trainer(data, tset: TrainingSet, config: TrainConfig, *, model_dir: Path, device: str, lr: float,
                 kto_weights: Mapping[str, float], run_dir: Path, report: Report, show_bar: bool,
                 flipped: np.ndarray, on_checkpoint: Callable[[dict], None] | None = None):
    """Build the TRL trainer and train. Returns (policy model, tokenizer, trainer)."""
    import transformers
    from transformers.trainer_callback import PrinterCallback, ProgressCallback


    on_cpu = device == "cpu"
    bf16 = supports_bf16(device)
    gradient_checkpointing = bool(config.gradient_checkpointing) and not on_cpu
    if config.gradient_checkpointing and on_cpu:
        say("gradient checkpointing is ignored on CPU (it only slows training down here)")
    transformers.set_seed(config.seed)
    policy, tokenizer = load_causal_lm(str(model_dir), device="cpu")
    peft_config = _lora_config(config) if config.lora else None
    reference = None if peft_config is not None else load_causal_lm(str(model_dir), device="cpu")[0]
    policy.train()

    common = dict(
        output_dir=tempfile.mkdtemp(prefix="alignscope-trainer-"),
        per_device_train_batch_size=config.batch_size, gradient_accumulation_steps=config.grad_accum,
        num_train_epochs=float(config.epochs), max_steps=int(config.max_steps) if config.max_steps else -1,
        learning_rate=lr, warmup_ratio=config.warmup_ratio, lr_scheduler_type="linear",
        logging_steps=config.logging_steps, logging_first_step=False, save_strategy="no", eval_strategy="no",
        **_report_args(config, run_dir), seed=config.seed, data_seed=config.seed, bf16=bf16, fp16=False,
        gradient_checkpointing=gradient_checkpointing, use_cpu=on_cpu, disable_tqdm=True,
        dataloader_num_workers=0,
        max_length=config.max_length, beta=config.beta, dataset_num_proc=None,
    )
    try:
        with _quiet_datasets(), warnings.catch_warnings():
            # transformers 5 renamed gradient checkpointing; TRL still reads the old names and warns
            warnings.filterwarnings("ignore", message=r".*deprecated and will be removed in v6.*", category=FutureWarning)
            dataset = _build_dataset(data, tset.rows, config.method, config.seed, flipped)
            extra: dict[str, Any] = {}
            if config.method in ("dpo", "dpo-sams"):
                from trl import DPOConfig, DPOTrainer

                args = _trl_args(DPOConfig, **common, loss_type=[config.loss_type] if _loss_is_list() else config.loss_type,
                                 label_smoothing=config.label_smoothing)
                trainer_cls = DPOTrainer
                if config.method == "dpo-sams":
                    from alignscope.train.sams_trainer import SamsDPOTrainer

                    trainer_cls = SamsDPOTrainer
                    warnings.filterwarnings("ignore", message=r"SamS selects")  # said by _say below instead
                    extra = {"sams_config": config.sams_config(), "sams_log_path": run_dir / SAMS_LOG}
            else:
                from trl import KTOConfig, KTOTrainer

                args = _trl_args(KTOConfig, **common, **kto_weights)
                trainer_cls = KTOTrainer
            callbacks = [metrics_callback(run_dir / METRICS_FILE, report, method=config.method, show_bar=show_bar)]
            if config.eval_checkpoints and len(tset.test_pairs):
                callbacks.append(checkpoint_callback(data, tset, config, tokenizer=tokenizer, model_dir=model_dir,
                                                      device=device, run_dir=run_dir, on_checkpoint=on_checkpoint))
            trainer = trainer_cls(model=policy, ref_model=reference, args=args, train_dataset=dataset,
                                  processing_class=tokenizer, callbacks=callbacks, peft_config=peft_config, **extra)
            for noisy in (PrinterCallback, ProgressCallback):
                trainer.remove_callback(noisy)
            if getattr(trainer, "sams_warnings", None):  # dpo-sams: e.g. ⌈ρ·n⌉/n ≠ ρ, said once here
                for note in trainer.sams_warnings:
                    say(f"warning: {note}")
                _merge_config_json(run_dir, {"sams_warnings": list(trainer.sams_warnings)})
            if len(trainer.train_dataset) == 0:
                raise TrainError(f"every training example's prompt fills max_length={config.max_length} tokens; "
                                 "raise max_length")
            report(progress=0.02, message=f"training {config.method.upper()} on {len(tset.rows)} rows")
            trainer.train()
        model = trainer.model
        if peft_config is not None:
            model = model.merge_and_unload()
        model = getattr(model, "module", model)
        return model, tokenizer, trainer
    finally:
        shutil.rmtree(common["output_dir"], ignore_errors=True)


def _loss_is_list() -> bool:
    from trl import DPOConfig

    annotation = str({f.name: f.type for f in dataclasses.fields(DPOConfig)}.get("loss_type", ""))
    return annotation.startswith("list")


def _save_model(model, tokenizer, target: Path) -> Path:
    """save_pretrained (safetensors) into a temporary folder beside ``target``, then rename."""
    tmp = Path(tempfile.mkdtemp(prefix=".model.", suffix=".tmp", dir=target.parent))
    try:
        model.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
        if target.exists():
            aside = target.with_name(f".{target.name}.old.{os.getpid()}")
            os.rename(target, aside)
            shutil.rmtree(aside, ignore_errors=True)
        os.rename(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


# ------------------------------------------------------------------------------ SamS trainer
def __getattr__(name: str):
    # ``from alignscope.train.trainer import SamsDPOTrainer`` imports alignscope.train.sams_trainer (and TRL) on
    # first use, so importing this module stays cheap for the app and the CLI.
    if name == "SamsDPOTrainer":
        return sams_trainer_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def sams_trainer_class() -> type:
    """:class:`alignscope.train.sams_trainer.SamsDPOTrainer`, a ``trl.DPOTrainer`` subclass (imported on
    first use; kept for code written against the earlier class factory)."""
    from alignscope.train.sams_trainer import SamsDPOTrainer

    return SamsDPOTrainer


# ---------------------------------------------------------------------------------- job kind
def run_job(config: Mapping[str, Any], run_dir: Path, report: Report) -> dict[str, Any]:
    """The ``train`` job kind. ``config``: ``{"data": SOURCE or PreferenceData.spec(), "selection":
    PATH|None, "method": "dpo"|"kto", "data_options": {"split", "columns", "drop_invalid"}?, ...config
    fields}``. A spec (dict) also pins the data's fingerprint, so edited data is refused.
    Relative paths are relative to the submitter's working directory (the worker runs there)."""
    from alignscope.data.preferences import load_preferences, load_spec

    values = dict(config)
    source = values.pop("data", None)
    if isinstance(source, Mapping):
        method = values.pop("method", "dpo")
        selection = values.pop("selection", None)
        train_cfg = train_config(method, **values)
        report(progress=0.0, message=f"loading {source.get('source')}")
        return train(load_spec(source), selection=selection, config=train_cfg, run_dir=run_dir, report=report,
                     data_source=str(source.get("source")))
    if not source or not isinstance(source, str):
        raise TrainError("train job config needs 'data': a data file, folder, hub id or demo[:N]")
    selection = values.pop("selection", None)
    method = values.pop("method", "dpo")
    data_options = values.pop("data_options", None) or {}
    if not isinstance(data_options, Mapping) or set(data_options) - {"split", "columns", "drop_invalid"}:
        raise TrainError("data_options may only hold split, columns and drop_invalid")
    train_cfg = train_config(method, **values)
    report(progress=0.0, message=f"loading {source}")
    data = load_preferences(source, **dict(data_options))
    return train(data, selection=selection, config=train_cfg, run_dir=run_dir, report=report, data_source=source)

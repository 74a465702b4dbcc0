"""What a training run logs while it trains: one ``metrics.jsonl`` record per logged step (TRL's
names normalised to :data:`METRIC_KEYS`), the job's progress and a terminal bar, the held-out
evaluations at ``eval_checkpoints`` (``checkpoints.jsonl``), and the warnings TRL and transformers
log (``warnings.json``). TrainerCallbacks built inside functions, so importing this module loads
no transformers.
"""
from __future__ import annotations

import logging
import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping

from alignscope.files import append_jsonl
from alignscope.models import load_causal_lm
from alignscope.run_files import CHECKPOINTS_LOG
from alignscope.train.config import TrainConfig
from alignscope.train.run_notes import warning_key
from alignscope.train.trainset import TrainingSet

__all__ = ["METRIC_KEYS", "CHECKPOINT_SCORES", "Report", "normalise_metrics", "checkpoint_steps", "checkpoint_record",
           "record_checkpoint", "metrics_callback", "checkpoint_callback", "TrainingWarnings", "TRAIN_SHARE", "say"]

# The keys every line of metrics.jsonl has (null when the method does not log that quantity).
METRIC_KEYS = ("step", "epoch", "loss", "rewards/chosen", "rewards/rejected", "rewards/margins",
               "rewards/accuracies", "lr", "elapsed_s")
Report = Callable[..., None]
TRAIN_SHARE = 0.9  # job progress: training 0..0.9, evaluation 0.9..1


_ALIASES = {
    "loss": ("loss",),
    "lr": ("learning_rate", "lr"),
    "rewards/chosen": ("rewards/chosen", "train_rewards/chosen"),
    "rewards/rejected": ("rewards/rejected", "train_rewards/rejected"),
    "rewards/margins": ("rewards/margins", "train_rewards/margins"),
    "rewards/accuracies": ("rewards/accuracies", "train_rewards/accuracies"),
}
_SUMMARY_KEYS = {"train_runtime", "train_samples_per_second", "train_steps_per_second", "total_flos", "train_loss"}


def normalise_metrics(logs: Mapping[str, Any], *, step: int, epoch: float | None, elapsed_s: float) -> dict[str, Any]:
    """One metrics.jsonl record from a TRL/transformers log dict: the keys of :data:`METRIC_KEYS`
    first (``null`` when absent), then every other numeric key under its own name.

    Older TRL versions logged KTO rewards as ``rewards/chosen_sum`` with ``count/chosen``; those
    become means. A missing ``rewards/margins`` is chosen − rejected when both exist.
    """
    logs = dict(logs)
    record: dict[str, Any] = {"step": int(step),
                              "epoch": _num(logs.get("epoch", epoch)),
                              "elapsed_s": round(float(elapsed_s), 3)}
    used = {"epoch"}
    for key, aliases in _ALIASES.items():
        value = None
        for alias in aliases:
            if alias in logs:
                value, _ = _num(logs[alias]), used.add(alias)
                break
        record[key] = value
    for side in ("chosen", "rejected"):
        total, count = logs.get(f"rewards/{side}_sum"), logs.get(f"count/{side}")
        if record[f"rewards/{side}"] is None and total is not None and count:
            record[f"rewards/{side}"] = _num(float(total) / float(count))
            used.update({f"rewards/{side}_sum", f"count/{side}"})
    if record["rewards/margins"] is None and None not in (record["rewards/chosen"], record["rewards/rejected"]):
        record["rewards/margins"] = record["rewards/chosen"] - record["rewards/rejected"]
    ordered = {key: record.get(key) for key in METRIC_KEYS}
    for key, value in logs.items():
        if key not in used and key not in ordered:
            number = _num(value)
            if number is not None:
                ordered[key] = number
    return ordered


def _num(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def metrics_callback(metrics_path: Path, report: Report, *, method: str, show_bar: bool):
    """Our TrainerCallback (metrics.jsonl + job progress + terminal progress)."""
    from transformers import TrainerCallback

    class AlignscopeCallback(TrainerCallback):
        def __init__(self) -> None:
            self.started = time.monotonic()
            self.bar = None
            self.max_steps = 0
            self.last: dict[str, Any] = {}

        def on_train_begin(self, args, state, control, **kwargs):
            self.started = time.monotonic()
            self.max_steps = int(state.max_steps or 0)
            if show_bar:
                from tqdm.auto import tqdm

                self.bar = tqdm(total=self.max_steps, desc=f"{method.upper()} training", unit="step",
                                dynamic_ncols=True, file=sys.stderr)
            else:
                say(f"{method.upper()} training: {self.max_steps} steps")

        def on_step_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)
            if self.max_steps:
                # The step's number goes with its progress: the metrics line (on_log) comes after this
                # call, and a reader polling in between would otherwise see the previous step's line.
                report(progress=TRAIN_SHARE * state.global_step / self.max_steps,
                       message=f"step {state.global_step}/{self.max_steps}")

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not logs or "loss" not in logs or _SUMMARY_KEYS & set(logs):
                return
            elapsed = time.monotonic() - self.started
            record = normalise_metrics(logs, step=state.global_step, epoch=state.epoch, elapsed_s=elapsed)
            append_jsonl(metrics_path, record)
            self.last = record
            message = _step_message(record, self.max_steps)
            report(progress=TRAIN_SHARE * state.global_step / max(1, self.max_steps), message=message)
            if self.bar is not None:
                postfix = {"loss": record["loss"], "margin": record["rewards/margins"]}
                self.bar.set_postfix({k: f"{v:.4g}" for k, v in postfix.items() if v is not None}, refresh=False)
            else:
                say(message)

        def on_train_end(self, args, state, control, **kwargs):
            if self.bar is not None:
                self.bar.update(state.global_step - self.bar.n)
                self.bar.close()
                self.bar = None

    return AlignscopeCallback()


def checkpoint_steps(fractions: list[float], max_steps: int) -> dict[int, float]:
    """Optimizer step of each checkpoint fraction (at least step 1; duplicates collapse)."""
    return {max(1, min(max_steps, int(round(f * max_steps)))): float(f) for f in sorted(fractions)}


def checkpoint_record(evaluation: Mapping[str, Any], *, step: int, epoch: float | None, n_rows: int,
                      rows_per_step: int) -> dict[str, Any]:
    """One line of ``checkpoints.jsonl``: where the run was and how it scored on the held-out pairs."""
    seen = min(step * rows_per_step, max(1, n_rows) * max(1.0, float(epoch or 0)))
    scores = {key: evaluation.get(key) for key in CHECKPOINT_SCORES}
    return {"step": int(step), "epoch": None if epoch is None else round(float(epoch), 4),
            "fraction": round(seen / max(1, n_rows), 6), "pairs_seen": int(seen), **scores,
            "reward_margin": evaluation.get("margin_mean"), "n_pairs": int(evaluation["n_pairs"])}


# What a checkpoint keeps of its evaluation: every score beside its length baseline.
CHECKPOINT_SCORES = ("accuracy", "accuracy_ci95", "length_controlled_accuracy", "length_controlled_ci95", "log_loss",
                     "log_loss_ci95", "length_baseline", "length_baseline_direction", "length_baseline_log_loss",
                     "beats_length_baseline", "n_heldout")


def record_checkpoint(run_dir: Path, record: dict[str, Any], on_checkpoint: Callable[[dict], None] | None) -> None:
    """Append one checkpoint evaluation to ``checkpoints.jsonl`` and hand it to ``on_checkpoint``."""
    append_jsonl(run_dir / CHECKPOINTS_LOG, record)
    if on_checkpoint is not None:
        on_checkpoint(record)


def checkpoint_callback(data, tset: TrainingSet, config: TrainConfig, *, tokenizer, model_dir: Path, device: str,
                         run_dir: Path, on_checkpoint: Callable[[dict], None] | None):
    """Evaluate the policy on the held-out pairs at the ``eval_checkpoints`` steps (all but the last:
    :func:`train` adds the final evaluation itself, so the end of the run is not evaluated twice)."""
    from transformers import TrainerCallback

    from alignscope.evaluate.evaluators import evaluate_pairs

    class CheckpointEvalCallback(TrainerCallback):
        def __init__(self) -> None:
            self.steps: dict[int, float] = {}
            self.reference = None

        def on_train_begin(self, args, state, control, **kwargs):
            self.steps = checkpoint_steps(config.eval_checkpoints or [], int(state.max_steps or 1))
            self.steps.pop(int(state.max_steps or 1), None)

        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step not in self.steps or model is None:
                return
            if self.reference is None:  # a frozen copy: TRL's ref_model is absent with LoRA
                self.reference, _ = load_causal_lm(str(model_dir), device=device)
            say(f"checkpoint at step {state.global_step}: evaluating on the held-out pairs")
            was_training = model.training
            model.eval()
            evaluation, _ = evaluate_pairs(model, self.reference, tokenizer, data, tset.test_pairs, beta=config.beta,
                                           max_length=config.max_length, batch_size=config.eval_batch_size,
                                           max_pairs=config.eval_max_pairs, n_boot=config.n_boot,
                                           seed=config.split_seed, device=device)
            model.train(was_training)
            record_checkpoint(run_dir, checkpoint_record(evaluation, step=state.global_step, epoch=state.epoch,
                                                         n_rows=len(tset.rows),
                                                         rows_per_step=config.batch_size * config.grad_accum),
                              on_checkpoint)

    return CheckpointEvalCallback()


def _step_message(record: Mapping[str, Any], max_steps: int) -> str:
    parts = [f"step {record['step']}/{max_steps}"]
    for key, label in (("loss", "loss"), ("rewards/margins", "margin"), ("rewards/accuracies", "acc")):
        if record.get(key) is not None:
            parts.append(f"{label} {record[key]:.4g}")
    parts.append(f"{record['elapsed_s']:.1f} s")
    return " · ".join(parts)


def say(message: str) -> None:
    print(f"[alignscope train] {message}", file=sys.stderr, flush=True)


class TrainingWarnings(logging.Handler):
    """Collects the warnings TRL and transformers log while a run trains (they go to log.txt
    otherwise, where nobody reads them), grouped by their wording with the numbers left out
    (:func:`alignscope.train.run_notes.warning_key`): one example and a count per kind, so that one
    warning repeated with other numbers reads as one line "×15", not 15 lines."""

    _LOGGERS = ("trl", "transformers")

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.groups: dict[str, dict[str, Any]] = {}

    def emit(self, record: logging.LogRecord) -> None:
        text = " ".join(record.getMessage().split())[:600]
        if not text:
            return
        key = warning_key(text)
        if key in self.groups:
            self.groups[key]["count"] += 1
        elif len(self.groups) < 20:
            self.groups[key] = {"message": text, "count": 1}

    @property
    def record(self) -> dict[str, Any]:
        """What warnings.json holds: ``groups`` (message, count), ``total``, and ``warnings`` (one
        example per kind, as earlier versions wrote it)."""
        groups = list(self.groups.values())
        return {"warnings": [g["message"] for g in groups], "groups": groups, "total": sum(g["count"] for g in groups)}

    def __enter__(self) -> "TrainingWarnings":
        for name in self._LOGGERS:
            logging.getLogger(name).addHandler(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        for name in self._LOGGERS:
            logging.getLogger(name).removeHandler(self)

"""``SamsDPOTrainer``: TRL's ``DPOTrainer`` with SamS batch scheduling (Huang et al., "Adaptive
Batch-Wise Sample Scheduling for Direct Preference Optimization", NeurIPS 2025, arXiv 2506.17252).

The scheduler itself (networks, contexts, rewards, replay) is plain torch in :mod:`alignscope.train.sams`;
this module is the TRL side: forward hooks on the policy's blocks, the gradient mask that lets only
the selected pairs move the policy, the per-step log ``sams.jsonl``. It imports ``trl`` and
``transformers`` at its top, so import it lazily (``alignscope.train.trainer`` does, inside the training
function; ``from alignscope.train.trainer import SamsDPOTrainer`` also works).

Order of one optimizer step t (no extra forward pass)
-----------------------------------------------------
1. The policy and reference forwards of TRL's ``compute_loss`` run over the whole batch; hooks on
   the policy's blocks take the per-block means of the completion tokens (contexts), and the
   policy's token log-probabilities pass through an identity whose backward multiplies each row's
   gradient by a mask that is filled in step 3.
2. The loss of this batch (before the step) is the ``L_{t+1}`` of the previous step's batch
   reward: the scheduler is trained on the previous step's reward NOW, before it scores this batch.
3. The scheduler scores this batch's contexts and selects ⌈ρ·n⌉ pairs; the mask is set to 1 for
   their chosen and rejected rows. The DPO loss value is unchanged; only selected pairs get gradient.
4. After the optimizer step, the step's record (contexts, selection, margins, loss) waits for the
   next step's loss (step 2); the last step of a run is logged without a reward.
"""
from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
import transformers
import trl

from alignscope.files import append_jsonl
from alignscope.train.sams import SamsScheduler, batch_reward, layer_mean, pair_contexts, sample_rewards
from alignscope.train.sams_config import SamsConfig, ratio_warning
from alignscope.run_files import SAMS_LOG
from alignscope.train.config import SAMS_INDEX_COLUMN, TrainError  # train imports this module lazily

__all__ = ["SamsDPOTrainer", "SAMS_INDEX_COLUMN", "SAMS_LOG"]


def _sams_error(message: str) -> Exception:
    return TrainError(message)


def _transformer_blocks(model) -> list:
    """The decoder blocks of a causal LM: the first ``nn.ModuleList`` as long as the config's
    ``num_hidden_layers`` (``model.layers`` on Llama/SmolLM2, ``transformer.h`` on GPT-2, ...)."""
    config = getattr(model, "config", None)
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    n_layers = getattr(text_config, "num_hidden_layers", None)
    for module in model.modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) and (n_layers is None or len(module) == n_layers):
            return list(module)
    raise _sams_error(f"SamS cannot find the transformer blocks of {type(model).__name__} (a ModuleList of "
                      f"{n_layers} layers)")


class _IndexCollator:
    """Wraps TRL's collator: takes :data:`SAMS_INDEX_COLUMN` out of each example (TRL's collator
    ignores it) and puts it back into the batch as a tensor."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def __call__(self, examples):
        if not examples or SAMS_INDEX_COLUMN not in examples[0]:
            return self.inner(examples)
        index = [int(example[SAMS_INDEX_COLUMN]) for example in examples]
        batch = self.inner([{k: v for k, v in example.items() if k != SAMS_INDEX_COLUMN} for example in examples])
        batch[SAMS_INDEX_COLUMN] = torch.tensor(index, dtype=torch.long)
        return batch


class _DeferredGradMask(torch.autograd.Function):
    """Identity on ``values`` ``(rows, ...)``; the backward multiplies row r's gradient by
    ``mask[r]``, read at backward time (the mask is filled after the forward, once the scheduler
    has chosen). Kept as an attribute, not saved for backward: it is written in place later."""

    @staticmethod
    def forward(ctx, values, mask):
        ctx.mask = mask
        return values.clone()

    @staticmethod
    def backward(ctx, grad):
        mask = ctx.mask.to(device=grad.device, dtype=grad.dtype).view(-1, *([1] * (grad.ndim - 1)))
        return grad * mask, None


@dataclass
class _Capture:
    """What the hooks collect during one training forward of the policy."""

    mask: Any                       # completion mask (2n, T)
    n_pairs: int
    full: bool                      # warm-up: every pair gets gradient
    layer_means: list = field(default_factory=list)
    contexts: Any = None
    grad_mask: Any = None           # (2n,) float, 1 for the rows that keep their gradient
    policy_logps: Any = None        # (2n,) chosen rows then rejected rows
    ref_logps: Any = None


class SamsDPOTrainer(trl.DPOTrainer):
    """TRL's ``DPOTrainer`` with SamS batch scheduling (Huang et al., NeurIPS 2025; see
    :mod:`alignscope.train.sams`). Use it like ``DPOTrainer``, plus ``sams_config`` (a
    :class:`~alignscope.train.sams.SamsConfig`), ``sams_log_path`` (default ``<output_dir>/sams.jsonl``)
    and ``reward_override``; pass ``train_dataset`` by keyword.

    Per training batch of n pairs, without a second forward pass: forward hooks on the policy's
    blocks average each block's hidden states over the completion tokens into per-pair contexts
    (``SamsConfig.context``); the scheduler, first trained on the previous step's reward, scores
    them; the ⌈ρ·n⌉ selected pairs keep their gradient, the others' gradient is masked to zero, so
    the DPO loss value is unchanged but only selected pairs move the policy. One line per step is
    appended to ``sams.jsonl``: ``step``, ``batch`` (data indices: the ``sams_index`` column when the
    data set has one, else the row number), ``selected``, ``scores``, ``rewards``,
    ``sample_rewards``, ``scheduler_loss``, ``loss``, ``batch_reward``, ``warmup``. Gradient
    accumulation: each micro-batch selects its own ⌈ρ·n⌉ (a warning says when ⌈ρ·n⌉/n ≠ ρ: see
    :attr:`sams_warnings`); the previous step's reward is learned at the first micro-batch.
    ``precompute_ref_log_probs`` works. Single process only (each rank would keep its own scheduler).

    ``reward_override``: ``callable(index (n,) long) -> (n,) float`` replacing the sample reward
    r_S of the pairs with those data indices (tests and experiments: a planted reward).
    """

    def __init__(self, *args, sams_config: SamsConfig | None = None, sams_log_path: str | os.PathLike | None = None,
                 reward_override: Callable[[torch.Tensor], torch.Tensor] | None = None, **kwargs):
        self.sams_config = sams_config or SamsConfig()
        self.sams_config.validate()
        if reward_override is not None and not callable(reward_override):
            raise _sams_error("reward_override must be a function of the data indices")
        self.reward_override = reward_override
        dataset = kwargs.get("train_dataset")
        if dataset is not None and hasattr(dataset, "column_names") and SAMS_INDEX_COLUMN not in dataset.column_names:
            kwargs["train_dataset"] = dataset.add_column(SAMS_INDEX_COLUMN, list(range(len(dataset))))
        super().__init__(*args, **kwargs)
        unsupported = {"aot", "aot_unpaired", "sft"} & set(self.loss_types)
        if unsupported:  # these couple the pairs of a batch: masking some pairs would change the loss
            raise _sams_error(f"SamS needs a per-pair DPO loss; {', '.join(sorted(unsupported))} couples the batch")
        self.data_collator = _IndexCollator(self.data_collator)
        self.sams_log_path = Path(sams_log_path) if sams_log_path else Path(self.args.output_dir) / SAMS_LOG
        self.scheduler = SamsScheduler(self.sams_config, device=self.accelerator.device)
        self.sams_warnings: list[str] = []
        note = ratio_warning(self.sams_config.ratio, int(self.args.per_device_train_batch_size))
        if note:
            self.sams_warnings.append(note)
            warnings.warn(note, stacklevel=2)
        self._capture: _Capture | None = None
        self._micro: list[dict[str, Any]] = []   # micro-batches of the running optimizer step
        self._pending: dict[str, Any] | None = None  # last finished step, waiting for its reward
        policy = self.accelerator.unwrap_model(self.model)
        for block in _transformer_blocks(policy):
            block.register_forward_hook(self._on_block)
        policy.register_forward_hook(self._on_policy)
        if self.ref_model is not None:
            self.ref_model.register_forward_hook(self._on_reference)
        self.add_callback(_SamsStepCallback(self))

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        if self._signature_columns is not None and SAMS_INDEX_COLUMN not in self._signature_columns:
            self._signature_columns = [*self._signature_columns, SAMS_INDEX_COLUMN]

    # ---- hooks: only active inside a training forward (self._capture set by compute_loss)
    def _on_block(self, module, args, output):
        capture = self._capture
        if capture is None or capture.contexts is not None or not torch.is_grad_enabled():
            return None
        hidden = output[0] if isinstance(output, (tuple, list)) else output
        capture.layer_means.append(layer_mean(hidden, capture.mask.to(hidden.device)))
        return None

    def _on_policy(self, module, args, output):
        capture = self._capture
        if capture is None or getattr(output, "log_probs", None) is None:
            return None
        if not torch.is_grad_enabled():  # PEFT: the reference is the policy with its adapter off
            if capture.contexts is not None:
                capture.ref_logps = output.log_probs.detach().sum(dim=1)
            return None
        if capture.contexts is not None:
            return None
        capture.contexts = pair_contexts(capture.layer_means, self.sams_config.context, self.sams_config.pooling)
        capture.layer_means = []
        log_probs = output.log_probs
        capture.policy_logps = log_probs.detach().sum(dim=1)
        # Zero until compute_loss has chosen: same values, gradient only through the selected rows.
        capture.grad_mask = torch.zeros(log_probs.shape[0], dtype=torch.float32, device=log_probs.device)
        output.log_probs = _DeferredGradMask.apply(log_probs, capture.grad_mask)
        return output

    def _on_reference(self, module, args, output):
        if self._capture is not None and getattr(output, "log_probs", None) is not None:
            self._capture.ref_logps = output.log_probs.detach().sum(dim=1)
        return None

    # ---- one training forward
    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        index = inputs.pop(SAMS_INDEX_COLUMN, None)
        if index is None or not (model.training and torch.is_grad_enabled()):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        n_pairs = int(index.shape[0])
        capture = _Capture(mask=inputs["completion_mask"], n_pairs=n_pairs,
                           full=self.state.global_step < self.sams_config.warmup_steps)
        self._capture = capture
        try:
            result = super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        finally:
            self._capture = None
        if capture.contexts is None:
            raise _sams_error("SamS saw no policy forward pass with hidden states in this training step")
        loss = result[0] if isinstance(result, tuple) else result
        loss_value = float(loss.detach())
        chosen, rejected = capture.policy_logps.float().cpu().chunk(2)
        if "ref_chosen_logps" in inputs:
            ref_chosen = inputs["ref_chosen_logps"].detach().float().cpu()
            ref_rejected = inputs["ref_rejected_logps"].detach().float().cpu()
        elif capture.ref_logps is not None:
            ref_chosen, ref_rejected = capture.ref_logps.float().cpu().chunk(2)
        else:
            ref_chosen = ref_rejected = torch.zeros(n_pairs)
        margins = self.beta * ((chosen - ref_chosen) - (rejected - ref_rejected))
        # The previous step's reward (its batch loss vs this batch's loss after the step) trains
        # the scheduler before it scores this batch.
        if self._pending is not None:
            pending, self._pending = self._pending, None
            self._sams_reward(pending, next_loss=loss_value)
        scores = self.scheduler.score(capture.contexts)
        selected = self.scheduler.select(scores, full=capture.full)
        rows = selected.to(capture.grad_mask.device)
        capture.grad_mask[rows] = 1.0
        capture.grad_mask[rows + n_pairs] = 1.0
        chosen_mask = torch.zeros(n_pairs, dtype=torch.bool)
        chosen_mask[selected] = True
        index = index.cpu()
        self._micro.append({"index": index, "contexts": capture.contexts.cpu(), "scores": scores,
                            "selected": index[selected], "selected_mask": chosen_mask, "margins": margins,
                            "chosen_logps": chosen, "loss": loss_value})
        return result

    # ---- once per optimizer step (called by _SamsStepCallback)
    def _sams_step_end(self, step: int) -> None:
        micro, self._micro = self._micro, []
        if not micro:
            return
        if self._pending is not None:  # a step without a following forward (should not happen): log it
            self._sams_log(self._pending, rewards=None, sample=None, r_batch=None, scheduler_loss=None)
        self._pending = {"step": int(step), **{key: torch.cat([m[key] for m in micro]) for key in
                         ("index", "selected", "selected_mask", "contexts", "scores", "margins", "chosen_logps")},
                         "loss": sum(m["loss"] for m in micro) / len(micro)}

    def _sams_train_end(self) -> None:
        self._sams_step_end(int(self.state.global_step))
        if self._pending is not None:  # the last step's reward would need one more step
            self._sams_log(self._pending, rewards=None, sample=None, r_batch=None, scheduler_loss=None)
            self._pending = None

    def _sample_rewards(self, record: dict[str, Any]) -> torch.Tensor:
        if self.reward_override is None:
            return sample_rewards(record["margins"], record["chosen_logps"])
        values = torch.as_tensor(self.reward_override(record["index"]), dtype=torch.float32).flatten()
        if values.shape != record["index"].shape:
            raise _sams_error(f"reward_override returned {tuple(values.shape)} values for "
                              f"{record['index'].shape[0]} pairs")
        return values

    def _sams_reward(self, record: dict[str, Any], next_loss: float) -> None:
        r_batch = batch_reward(record["loss"], next_loss)
        sample = self._sample_rewards(record)
        rewards = self.scheduler.rewards(r_batch=r_batch, r_sample=sample, selected=record["selected_mask"])
        scheduler_loss = self.scheduler.update(record["contexts"], rewards)
        self._sams_log(record, rewards=rewards, sample=sample, r_batch=r_batch, scheduler_loss=scheduler_loss)

    def _sams_log(self, record, *, rewards, sample, r_batch, scheduler_loss) -> None:
        def rounded(values):
            return None if values is None else [round(float(x), 6) for x in values]

        append_jsonl(self.sams_log_path, {
            "step": record["step"], "batch": record["index"].tolist(), "selected": record["selected"].tolist(),
            "scores": rounded(record["scores"]), "rewards": rounded(rewards), "sample_rewards": rounded(sample),
            "scheduler_loss": None if scheduler_loss is None else round(float(scheduler_loss), 6),
            "loss": round(float(record["loss"]), 6),
            "batch_reward": None if r_batch is None else round(float(r_batch), 6),
            "warmup": record["step"] <= self.sams_config.warmup_steps,
        })


class _SamsStepCallback(transformers.TrainerCallback):
    def __init__(self, trainer: SamsDPOTrainer) -> None:
        self.trainer = trainer

    def on_step_end(self, args, state, control, **kwargs):
        self.trainer._sams_step_end(state.global_step)

    def on_train_end(self, args, state, control, **kwargs):
        self.trainer._sams_train_end()


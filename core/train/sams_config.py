"""The SamS scheduler's options, declared once and torch-free.

Huang et al., "Adaptive Batch-Wise Sample Scheduling for Direct Preference Optimization", NeurIPS
2025 (arXiv 2506.17252). :class:`SamsConfig` is read by the scheduler
(:class:`alignscope.train.sams.SamsScheduler`, plain torch) and, field by field as ``sams_<name>``,
by :class:`alignscope.train.config.DPOSamsTrainConfig`, so the ``alignscope train --sams-*`` flags and
the Train page's SamS widgets come from these declarations. Also here: ⌈ρ·n⌉ and the warning when a
micro-batch cannot hold ρ, which the trainer reports before any torch work.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from alignscope.errors import AlignscopeError
from alignscope.options import fields_problem, option

__all__ = ["SELECTION_MODES", "CONTEXT_MODES", "POOLING_MODES", "REWARD_MODES", "SamsConfig", "SamsError",
           "n_selected", "ratio_warning"]

SELECTION_MODES = ("topk", "softmax", "random")
CONTEXT_MODES = ("mean", "pair", "diff")   # how a pair's chosen and rejected features combine
POOLING_MODES = ("flatten", "mean")        # how the per-block features of one sequence combine
REWARD_MODES = ("published", "ranked")


class SamsError(AlignscopeError):
    """A SamS option that cannot work; one line for the user."""


@dataclass
class SamsConfig:
    """Options of the SamS scheduler (the paper's symbols in brackets).

    ``ratio`` [ρ]: share of each batch that gets gradient, ⌈ρ·n⌉ pairs. ``exploration`` [λ]: weight
    of the exploration network. ``gamma`` [γ]: weight of the batch reward against the sample reward.
    ``width``/``depth``: the scheduler MLPs (paper: 4096 × 16 on 7–9B models; 64–512 × 2–6 suit
    small ones). ``lr``, ``scheduler_steps``: Adam learning rate and steps per training step.
    ``replay_size`` batches (and at most ``replay_max_mb`` of contexts) are kept; each update trains
    on the newest batch plus ``replay_sample − 1`` earlier ones. ``selection``: ``topk`` (paper),
    ``softmax`` (sampling without replacement, as the reference code; ``temperature``) or ``random``
    (the "random ⌈ρ·n⌉ of each batch" baseline: the scheduler still learns and logs, but does not
    choose). ``warmup_steps``: first optimizer steps train on full batches. ``context``
    (``mean``/``pair``/``diff``), ``pooling`` (``flatten``/``mean``), ``standardize`` (running
    per-feature standardisation of the contexts) and ``reward`` (``published``/``ranked``): see
    :mod:`alignscope.train.sams`. ``seed``: scheduler init and sampling (a training run passes its
    own ``seed``, so it is not one of the ``sams_*`` training options).
    """

    ratio: float = option(0.5, help="share of each batch that gets gradient, rho (ceil(rho*n) pairs)", min=0, max=1,
                          min_open=True)
    exploration: float = option(0.05, help="lambda, weight of the exploration network", min=0)
    gamma: float = option(0.5, help="weight of the batch reward against the sample reward", min=0, max=1)
    width: int = option(128, help="scheduler MLP width", min=1)
    depth: int = option(2, help="scheduler MLP depth", min=1)
    lr: float = option(1e-3, help="scheduler Adam learning rate", min=0, min_open=True)
    scheduler_steps: int = option(4, help="scheduler updates per training step", min=1)
    replay_size: int = option(1024, help="batches kept in the scheduler's replay buffer", min=1)
    replay_sample: int = option(32, help="batches per scheduler update (the newest + earlier ones)", min=1)
    replay_max_mb: float = option(64.0, help="memory cap of the replay buffer's contexts (MB)", min=0, min_open=True)
    selection: str = option("topk", choices=SELECTION_MODES,
                            help="topk (the paper), softmax sampling, or random (the random-subset baseline)")
    temperature: float = option(1.0, help="softmax selection temperature", min=0, min_open=True)
    warmup_steps: int = option(0, help="first optimizer steps on full batches", min=0)
    context: str = option("pair", choices=CONTEXT_MODES,
                          help="what the scheduler sees of a pair: pair = chosen and rejected states side by side, "
                               "diff = chosen - rejected, mean = their average (the reference code's; it cannot "
                               "tell a pair from its flipped copy)")
    pooling: str = option("flatten", choices=POOLING_MODES, help="how the per-block features of one sequence combine")
    standardize: bool = option(True, help="running per-feature standardisation of the contexts")
    reward: str = option("ranked", choices=REWARD_MODES,
                         help="scheduler reward: ranked = sample reward z-scored within the batch plus the batch "
                              "reward credited to selected pairs; published = the paper's formula")
    seed: int = option(0, help="seed of the scheduler's init and sampling")

    def __post_init__(self) -> None:
        if self.context == "flatten":  # before the pair contexts, ``context`` named the block pooling
            self.context, self.pooling = "mean", "flatten"

    def validate(self) -> None:
        """Raise :class:`SamsError` (one line) for a value outside its declared type, bounds or choices."""
        problem = fields_problem(self)
        if problem is not None:
            raise SamsError(f"sams config: {problem}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def n_selected(ratio: float, n: int) -> int:
    """⌈ρ·n⌉, at least 1 (the tiny epsilon keeps 0.5·8 = 4 from becoming 5 through rounding)."""
    return max(1, min(n, math.ceil(ratio * n - 1e-9)))


def ratio_warning(ratio: float, n: int) -> str | None:
    """A one-line warning when ⌈ρ·n⌉ of a micro-batch of ``n`` pairs is not the share ρ asked for
    (each micro-batch selects its own pairs: with n = 1, every pair is selected), else None."""
    k = n_selected(ratio, n)
    if abs(k / n - ratio) < 1e-9:
        return None
    return (f"SamS selects ⌈ρ·n⌉ = {k} of every {n} pairs per micro-batch (per-device batch size {n}): an "
            f"effective ratio of {k / n:.3g}, not ρ = {ratio:g}; raise the batch size (and lower gradient "
            "accumulation) for a finer selection")

"""SamS: adaptive batch-wise sample scheduling for DPO, the trainer-independent part.

Huang, Ban, Fu, Li, Dai, Li, Wang, "Adaptive Batch-Wise Sample Scheduling for Direct Preference
Optimization", NeurIPS 2025 (arXiv 2506.17252); see ``docs/`` and the shared design ``SAMS.md``.

Every DPO batch of n pairs is a set of bandit arms. A small scheduler scores each pair from the
policy's own state (its hidden states in the forward pass DPO already makes), the top ⌈ρ·n⌉ pairs
get gradient, and the scheduler learns online from a reward that says how much the policy learned.

This module is plain torch: the networks, the selection, the rewards and the replay pool. Its
options (:class:`~alignscope.train.sams_config.SamsConfig`) are declared torch-free in
:mod:`alignscope.train.sams_config`, and its log is read by :mod:`alignscope.train.sams_log`. The TRL
side (hooks on the policy's forward, masking the unselected pairs' gradient, the per-step log)
lives in :mod:`alignscope.train.sams_trainer` (``SamsDPOTrainer``).

Shapes: ``n`` pairs per batch, ``L`` transformer blocks, ``D`` hidden size.

* per block and sequence, the mean hidden state over the completion tokens (padding and prompt
  masked out); ``pooling`` turns the ``(L, D)`` blocks of one sequence into ``L·D`` (``flatten``,
  the paper) or ``D`` (``mean`` over blocks) features ``e``.
* context ``c_i`` of a pair from its chosen and rejected features (``context``): ``mean`` =
  ``(e_w + e_l)/2`` (the paper's code; the same for a pair and its flipped copy, so it cannot see
  which answer is labelled the better one), ``pair`` = ``[e_w, e_l]`` (twice the size), ``diff`` =
  ``e_w − e_l`` (changes sign when the labels are flipped).
* per-feature running standardisation (``standardize``): a Welford running mean and variance of
  every context feature, applied before the networks, so a few massive-activation dimensions do not
  drown the rest (a per-row layer norm over the flattened vector did not prevent that).
* score ``s_i = f_S(c_i) + λ·f_S′(h_S(c_i))``: ``f_S`` (exploitation) regresses the reward,
  ``f_S′`` (exploration) regresses the residual ``r − f_S`` from ``f_S``'s hidden activations.
* the sample reward ``r_S,i = σ(½·g(m_i) + ½·(1 − g(log πθ(y_w|x)_i)))`` (``g`` = min-max over the
  batch; ``m`` the DPO margin) and the batch reward ``r_B = exp(L_t − L_{t+1}) − 1`` (the relative
  change of e^{−L}: positive when the loss of the NEXT batch, after the step, is lower than this
  batch's loss before it; two different batches, so mostly noise at small batch sizes; the
  reference code's normalisation flipped its sign). The scheduler is trained on step t's reward
  during step t+1's forward, before it scores step t+1's pairs (the reference code's order).
* ``reward="published"``: ``r_i = γ·σ(r_B) + (1 − γ)·σ(r_S,i)`` as written in the paper. σ(r_B)
  is ≈ 0.5 ± 0.01 and the same for every pair of the batch (selected or not), and σ(r_S) lies in
  [0.62, 0.68]: the target hardly varies.
  ``reward="ranked"``: ``r_i = γ·b·u_i + (1 − γ)·z_i`` with ``z`` the z-scored ``r_S`` within the
  batch (it ranks the pairs of a batch), ``b`` the batch reward standardised by its running mean and
  variance (clipped to ±3: was this step better than usual?) and ``u_i = (sel_i − q)/√(q(1−q))``, q = ⌈ρ·n⌉/n
  (+1 for a selected pair, −1 for a skipped one at ρ = ½): a better-than-usual step credits the
  pairs that got gradient and debits the skipped ones, a worse one the opposite; 0 in warm-up.
"""
from __future__ import annotations

import math
import random
from collections import deque

import torch
import torch.nn.functional as F
from torch import nn

from alignscope.train.sams_config import CONTEXT_MODES, POOLING_MODES, SamsConfig, SamsError, n_selected

__all__ = ["SchedulerNetworks", "RunningMoments", "ReplayPool", "SamsScheduler", "layer_mean", "pair_contexts",
           "batch_reward", "sample_rewards", "pair_rewards", "ranked_rewards"]

# -------------------------------------------------------------------------------- contexts
def layer_mean(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``hidden`` ``(rows, T, D)`` over the positions where ``mask`` ``(rows, T)`` is 1 →
    ``(rows, D)`` float32. A row without masked-in positions gives zeros (not NaN)."""
    if hidden.shape[:2] != mask.shape:
        raise SamsError(f"hidden states {tuple(hidden.shape)} and mask {tuple(mask.shape)} do not match")
    weights = mask.to(torch.float32).unsqueeze(-1)
    total = (hidden.detach().to(torch.float32) * weights).sum(dim=1)
    return total / weights.sum(dim=1).clamp(min=1.0)


def pair_contexts(layer_means: list[torch.Tensor], context: str = "mean", pooling: str = "flatten") -> torch.Tensor:
    """Per-pair contexts from per-block means, each ``(2n, D)`` with the n chosen rows first (TRL's
    batch layout). ``pooling``: each sequence's blocks → ``(2n, L·D)`` (``flatten``) or ``(2n, D)``
    (``mean``); ``context``: chosen and rejected → their mean ``(n, F)`` (``mean``), their
    concatenation ``(n, 2F)`` (``pair``) or chosen − rejected ``(n, F)`` (``diff``)."""
    if not layer_means:
        raise SamsError("no hidden states were captured from the policy's forward pass")
    stacked = torch.stack(layer_means, dim=1)  # (2n, L, D)
    if stacked.shape[0] % 2:
        raise SamsError(f"expected chosen and rejected rows (an even count), got {stacked.shape[0]}")
    if pooling == "flatten":
        pooled = stacked.flatten(1)
    elif pooling == "mean":
        pooled = stacked.mean(dim=1)
    else:
        raise SamsError(f"pooling must be one of {', '.join(POOLING_MODES)}, got {pooling!r}")
    chosen, rejected = pooled.chunk(2, dim=0)
    if context == "mean":
        return (chosen + rejected) / 2
    if context == "pair":
        return torch.cat([chosen, rejected], dim=1)
    if context == "diff":
        return chosen - rejected
    raise SamsError(f"context must be one of {', '.join(CONTEXT_MODES)}, got {context!r}")


class RunningMoments:
    """Per-feature running mean and variance (Welford's algorithm, merged batch-wise with Chan et
    al.'s parallel update) of vectors ``(n, d)``; :meth:`transform` standardises with them.

    Hidden states of transformers carry a few "massive activations" (Sun et al., 2024) orders of
    magnitude above the rest; standardising every feature by its own running scale keeps the other
    features visible to the scheduler. Standardised values are clipped to ``±clip``.
    """

    def __init__(self, eps: float = 1e-8, clip: float = 5.0) -> None:
        self.count = 0
        self.mean: torch.Tensor | None = None
        self.m2: torch.Tensor | None = None
        self.eps = float(eps)
        self.clip = float(clip)

    def update(self, values: torch.Tensor) -> None:
        x = values.detach().to(torch.float64).cpu()
        if x.ndim == 1:
            x = x.unsqueeze(1)
        if x.ndim != 2 or x.shape[0] == 0:
            raise SamsError(f"running moments need a non-empty (n, d) tensor, got {tuple(values.shape)}")
        n = x.shape[0]
        batch_mean = x.mean(dim=0)
        batch_m2 = ((x - batch_mean) ** 2).sum(dim=0)
        if self.mean is None:
            self.count, self.mean, self.m2 = n, batch_mean, batch_m2
            return
        if x.shape[1] != self.mean.shape[0]:
            raise SamsError(f"running moments: feature count changed from {self.mean.shape[0]} to {x.shape[1]}")
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + batch_m2 + delta ** 2 * (self.count * n / total)
        self.count = total

    @property
    def var(self) -> torch.Tensor:
        if self.mean is None:
            raise SamsError("running moments: no values seen yet")
        return self.m2 / max(self.count - 1, 1)

    def transform(self, values: torch.Tensor) -> torch.Tensor:
        """``(values − mean) / √(var + eps)``, clipped, float32, on ``values``' device."""
        if self.mean is None:
            raise SamsError("running moments: no values seen yet")
        mean = self.mean.to(values.device, torch.float32)
        scale = (self.var + self.eps).sqrt().to(values.device, torch.float32)
        return ((values.float() - mean) / scale).clamp(-self.clip, self.clip)


# --------------------------------------------------------------------------------- rewards
def batch_reward(previous_loss: float, loss: float) -> float:
    """r_B for the step that moved the batch loss from ``previous_loss`` to ``loss``:
    ``exp(previous − loss) − 1`` (relative change of e^{−L}), > 0 exactly when the loss fell; the
    exponent is clipped to ±20 so one bad step cannot produce inf."""
    return math.expm1(max(-20.0, min(20.0, float(previous_loss) - float(loss))))


def _min_max(values: torch.Tensor) -> torch.Tensor:
    low, high = values.min(), values.max()
    if not torch.isfinite(high - low) or float(high - low) <= 0:
        return torch.full_like(values, 0.5)
    return (values - low) / (high - low)


def sample_rewards(margins: torch.Tensor, chosen_logps: torch.Tensor) -> torch.Tensor:
    """r_S ``(n,)`` = σ(½·g(m) + ½·(1 − g(log πθ(y_w|x)))), g = min-max over the batch."""
    margins, chosen_logps = margins.detach().float(), chosen_logps.detach().float()
    return torch.sigmoid(0.5 * _min_max(margins) + 0.5 * (1 - _min_max(chosen_logps)))


def pair_rewards(r_batch: float, r_sample: torch.Tensor, gamma: float) -> torch.Tensor:
    """``reward="published"``: r ``(n,)`` = γ·σ(r_B) + (1 − γ)·σ(r_S), as written in the paper
    (r_S is already a sigmoid)."""
    return gamma * torch.sigmoid(torch.tensor(float(r_batch))) + (1 - gamma) * torch.sigmoid(r_sample.float())


def ranked_rewards(batch_score: float, r_sample: torch.Tensor, selected: torch.Tensor, ratio: float,
                   gamma: float) -> torch.Tensor:
    """``reward="ranked"``: r ``(n,)`` = γ·b·u + (1 − γ)·z(r_S).

    ``z`` z-scores the sample rewards within the batch (0 when they are all equal); ``batch_score``
    is ``b``, the batch reward already standardised against earlier steps; ``selected`` ``(n,)``
    bool marks the pairs that got gradient, ``u = (sel − q)/√(q(1−q))`` with ``q`` the batch's selected share
    (⌈ρ·n⌉/n; zero when every pair or no pair was selected: a warm-up step has nothing to credit)."""
    r = r_sample.detach().float()
    if r.ndim != 1 or selected.shape != r.shape:
        raise SamsError(f"ranked rewards need r_sample (n,) and selected (n,), got {tuple(r.shape)} and "
                        f"{tuple(selected.shape)}")
    std = r.std(unbiased=False) if r.numel() > 1 else torch.tensor(0.0)
    z = (r - r.mean()) / std if float(std) > 1e-12 else torch.zeros_like(r)
    share = float(selected.float().mean())
    if 0 < share < 1:
        u = (selected.float() - share) / math.sqrt(share * (1 - share))
    else:
        u = torch.zeros_like(r)
    return gamma * float(batch_score) * u + (1 - gamma) * z


# -------------------------------------------------------------------------------- networks
class _Residual(nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.linear = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.linear(x))


class SchedulerNetworks(nn.Module):
    """f_S (exploitation) and f_S′ (exploration), residual MLPs of ``width`` × ``depth``.

    ``forward(contexts (n, d)) -> (exploit (n,), explore (n,), hidden (n, width))``; the
    exploration network reads f_S's hidden activations, detached (it must not train f_S).
    With ``layer_norm`` (when the scheduler does not standardise the contexts itself) each context
    is layer-normalised first: hidden-state scales differ by orders of magnitude across models.
    """

    def __init__(self, context_dim: int, width: int = 128, depth: int = 2, layer_norm: bool = True) -> None:
        super().__init__()
        self.context_dim = int(context_dim)
        self.layer_norm = bool(layer_norm)
        self.exploit_body = nn.Sequential(nn.Linear(context_dim, width), nn.ReLU(),
                                          *[_Residual(width) for _ in range(depth - 1)])
        self.exploit_head = nn.Linear(width, 1)
        self.explore = nn.Sequential(nn.Linear(width, width), nn.ReLU(),
                                     *[_Residual(width) for _ in range(depth - 1)], nn.Linear(width, 1))

    def forward(self, contexts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = F.layer_norm(contexts.float(), contexts.shape[-1:]) if self.layer_norm else contexts.float()
        hidden = self.exploit_body(x)
        exploit = self.exploit_head(hidden).squeeze(-1)
        explore = self.explore(hidden.detach()).squeeze(-1)
        return exploit, explore, hidden


class ReplayPool:
    """Bounded pool of past batches ``(contexts (n, d), rewards (n,))`` kept on the CPU: at most
    ``max_batches`` batches and ``max_bytes`` of tensors; the oldest go first."""

    def __init__(self, max_batches: int, max_bytes: int) -> None:
        self.max_batches = int(max_batches)
        self.max_bytes = int(max_bytes)
        self.batches: deque[tuple[torch.Tensor, torch.Tensor]] = deque()
        self.nbytes = 0

    def __len__(self) -> int:
        return len(self.batches)

    def add(self, contexts: torch.Tensor, rewards: torch.Tensor) -> None:
        item = (contexts.detach().float().cpu(), rewards.detach().float().cpu())
        self.batches.append(item)
        self.nbytes += _nbytes(item)
        while len(self.batches) > self.max_batches or (self.nbytes > self.max_bytes and len(self.batches) > 1):
            self.nbytes -= _nbytes(self.batches.popleft())

    def sample(self, k: int, rng: random.Random) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """The newest batch plus up to ``k − 1`` distinct earlier ones, drawn uniformly."""
        if not self.batches:
            return []
        older = list(range(len(self.batches) - 1))
        picked = rng.sample(older, min(k - 1, len(older)))
        return [self.batches[-1]] + [self.batches[i] for i in picked]


def _nbytes(item: tuple[torch.Tensor, torch.Tensor]) -> int:
    return sum(t.element_size() * t.nelement() for t in item)


# ------------------------------------------------------------------------------- scheduler
class SamsScheduler:
    """Score, select, and learn online (fit = :meth:`update`, score = :meth:`score`,
    select = :meth:`select`), in the scikit-learn spirit of one object per estimator.

    The networks are built on the first :meth:`score` call, when the context size is known.
    """

    def __init__(self, config: SamsConfig | None = None, device: str | torch.device = "cpu") -> None:
        self.config = config or SamsConfig()
        self.config.validate()
        self.device = torch.device(device)
        self.networks: SchedulerNetworks | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.pool = ReplayPool(self.config.replay_size, int(self.config.replay_max_mb * 2 ** 20))
        self.rng = random.Random(self.config.seed)
        self.generator = torch.Generator().manual_seed(self.config.seed)
        self.updates = 0
        self.moments = RunningMoments()          # per-feature context statistics (``standardize``)
        self.batch_moments = RunningMoments()    # of the batch reward r_B (``reward="ranked"``)

    def _build(self, context_dim: int) -> None:
        with torch.random.fork_rng(devices=[]):  # seed the scheduler without moving the trainer's RNG
            torch.manual_seed(self.config.seed)
            self.networks = SchedulerNetworks(context_dim, self.config.width, self.config.depth,
                                              layer_norm=not self.config.standardize).to(self.device)
        self.optimizer = torch.optim.Adam(self.networks.parameters(), lr=self.config.lr)

    def _inputs(self, contexts: torch.Tensor) -> torch.Tensor:
        """The networks' input: contexts standardised by the running moments (when ``standardize``)."""
        x = contexts.to(self.device)
        return self.moments.transform(x) if self.config.standardize else x.float()

    @torch.no_grad()
    def score(self, contexts: torch.Tensor) -> torch.Tensor:
        """s ``(n,)`` = f_S(c) + λ·f_S′(h_S(c)) for contexts ``(n, d)``. The contexts first update
        the running moments (each batch is scored once, so each is counted once)."""
        if contexts.ndim != 2:
            raise SamsError(f"contexts must be (n, d), got shape {tuple(contexts.shape)}")
        if self.networks is None:
            self._build(contexts.shape[1])
        if contexts.shape[1] != self.networks.context_dim:
            raise SamsError(f"context size changed from {self.networks.context_dim} to {contexts.shape[1]}")
        if self.config.standardize:
            self.moments.update(contexts)
        exploit, explore, _ = self.networks(self._inputs(contexts))
        return (exploit + self.config.exploration * explore).float().cpu()

    def batch_score(self, r_batch: float) -> float:
        """The batch reward standardised by the running mean and variance of the EARLIER batch
        rewards (then clipped to ±3), 0 until two have been seen; then it joins them."""
        score = 0.0
        if self.batch_moments.count >= 2:
            mean = float(self.batch_moments.mean[0])
            std = math.sqrt(float(self.batch_moments.var[0]))
            if std > 1e-12:
                score = max(-3.0, min(3.0, (float(r_batch) - mean) / std))
        self.batch_moments.update(torch.tensor([[float(r_batch)]]))
        return score

    def rewards(self, *, r_batch: float | None, r_sample: torch.Tensor, selected: torch.Tensor) -> torch.Tensor:
        """The per-pair reward ``(n,)`` of :attr:`SamsConfig.reward` from the batch reward (None:
        unknown, counts as 0), the sample rewards ``(n,)`` and the selected mask ``(n,)`` bool."""
        if self.config.reward == "published":
            return pair_rewards(0.0 if r_batch is None else r_batch, r_sample, self.config.gamma)
        b = 0.0 if r_batch is None else self.batch_score(r_batch)
        return ranked_rewards(b, r_sample, selected, self.config.ratio, self.config.gamma)

    def select(self, scores: torch.Tensor, *, full: bool = False) -> torch.Tensor:
        """Sorted positions ``(k,)`` of the pairs that get gradient, k = ⌈ρ·n⌉ (all when ``full``)."""
        n = int(scores.shape[0])
        if full:
            return torch.arange(n)
        k = n_selected(self.config.ratio, n)
        mode = self.config.selection
        if mode == "topk":
            order = torch.argsort(scores, descending=True, stable=True)  # ties: lower position first
        elif mode == "softmax":  # Gumbel top-k = sampling k without replacement from softmax(s / T)
            uniform = torch.rand(n, generator=self.generator).clamp(1e-12, 1 - 1e-12)
            order = torch.argsort(scores / self.config.temperature - torch.log(-torch.log(uniform)), descending=True)
        else:
            order = torch.randperm(n, generator=self.generator)
        return torch.sort(order[:k]).values

    def update(self, contexts: torch.Tensor, rewards: torch.Tensor) -> float:
        """Add one rewarded batch to the replay pool and take ``scheduler_steps`` Adam steps of
        MSE(f_S(c), r) + MSE(f_S′(h_S(c)), r − f_S(c)) on it plus sampled earlier batches.
        Returns the mean loss of those steps."""
        if contexts.ndim != 2 or rewards.shape != (contexts.shape[0],):
            raise SamsError(f"update needs contexts (n, d) and rewards (n,), got {tuple(contexts.shape)} "
                            f"and {tuple(rewards.shape)}")
        if self.networks is None:
            self._build(contexts.shape[1])
        if self.config.standardize and self.moments.count == 0:
            self.moments.update(contexts)
        self.pool.add(contexts, rewards)
        losses = []
        self.networks.train()
        for _ in range(self.config.scheduler_steps):
            batches = self.pool.sample(self.config.replay_sample, self.rng)
            x = self._inputs(torch.cat([b[0] for b in batches]))
            y = torch.cat([b[1] for b in batches]).to(self.device)
            exploit, explore, _ = self.networks(x)
            # Both predictions are (m,), exactly the targets' shape: no broadcasting to (m, m).
            assert exploit.shape == y.shape and explore.shape == y.shape
            loss = F.mse_loss(exploit, y) + F.mse_loss(explore, y - exploit.detach())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            losses.append(float(loss.detach()))
        self.networks.eval()
        self.updates += 1
        return sum(losses) / len(losses)

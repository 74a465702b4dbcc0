"""The baselines ISA was compared with, as scikit-learn estimators (see :mod:`alignscope.select.selectors`):
``random`` (a uniformly random subset), ``density`` (Sachdeva et al., "How to Train Data-Efficient
LLMs", arXiv:2402.09668, 2024: inverse-propensity sampling on a kernel density estimate) and
``kcenter`` (k-center greedy: Gonzalez 1985; Sener & Savarese 2018). Inputs are ``(n, d)`` matrices.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from alignscope.models import resolve_device
from alignscope.options import is_finite
from alignscope.select.base import Selector, _check_positive_int
from alignscope.select.selection import SelectionError

__all__ = ["RandomSelector", "DensitySelector", "KCenterSelector"]


# ============================================================================== random
class RandomSelector(Selector):
    """A uniformly random subset: score = a seeded uniform draw in [0, 1); top-k of those draws is
    a uniform k-subset. The paper's first baseline (Khera et al. 2024, Table 1)."""

    method = "random"
    score_meaning = "seeded uniform draw in [0, 1)"

    def __init__(self, *, seed: int = 0):
        self.seed = seed

    def _score(self, X):
        return np.random.default_rng(self.seed).random(len(X)), {}


# ============================================================================== density
class DensitySelector(Selector):
    """Density sampling (Sachdeva et al. 2024, "How to Train Data-Efficient LLMs", arXiv:2402.09668).

    1. A kernel density estimate per point:

       * ``kde="lsh"`` (default, as in the paper): ``n_hashes`` independent p-stable LSH functions
         for the L2 distance (Datar et al. 2004), each the concatenation of ``hash_concat``
         projections ``floor((a . x + b) / w)`` with ``a ~ N(0, I)``, ``b ~ U[0, w)`` and bucket
         width ``w = bandwidth * median pairwise distance`` (measured on a seeded sample). The
         density of ``x`` is the mean, over hash functions, of the share of points in ``x``'s
         bucket (bucket counts in arrays of ``>= 4 n`` slots, as in a RACE sketch, Coleman &
         Shrivastava 2020). ``O(n d (n_hashes * hash_concat))``.
       * ``kde="gaussian"``: ``mean_j exp(-||x - y_j||^2 / (2 h^2))`` over a seeded reference
         sample of ``sample_size`` points, ``h = bandwidth * median pairwise distance``.

    2. Inverse-propensity sampling: weights ``w = density ** -power`` (default power 1), a weighted
       sample without replacement drawn by Efraimidis–Spirakis keys: ``score = log(u) / w`` with
       seeded ``u ~ U(0, 1]``; the top-k keys are exactly such a sample. Sparse points (low
       density, high weight) are kept more often, dense regions thinned.

    Details: ``density`` (the estimate, in (0, 1]) and ``sampling_weight`` (``w / sum w``).
    """

    method = "density"
    score_meaning = "Efraimidis-Spirakis key log(u) * density**power (higher = keep; sparse kept more)"

    def __init__(self, *, seed: int = 0, kde: str = "lsh", n_hashes: int = 32, hash_concat: int = 2,
                 bandwidth: float = 1.0, sample_size: int = 4096, power: float = 1.0,
                 distance_sample: int = 2000):
        self.seed = seed
        self.kde = kde
        self.n_hashes = n_hashes
        self.hash_concat = hash_concat
        self.bandwidth = bandwidth
        self.sample_size = sample_size
        self.power = power
        self.distance_sample = distance_sample

    def _check_params(self) -> None:
        super()._check_params()
        kde, n_hashes, hash_concat, bandwidth = self.kde, self.n_hashes, self.hash_concat, self.bandwidth
        sample_size, power, distance_sample = self.sample_size, self.power, self.distance_sample
        if kde not in ("lsh", "gaussian"):
            raise SelectionError(f"kde must be 'lsh' or 'gaussian', got {kde!r}")
        for name, value in (("n_hashes", n_hashes), ("hash_concat", hash_concat),
                            ("sample_size", sample_size), ("distance_sample", distance_sample)):
            _check_positive_int(name, value)
        for name, value in (("bandwidth", bandwidth), ("power", power)):
            if not is_finite(value) or not value > 0:
                raise SelectionError(f"{name} must be a positive number, got {value!r}")

    def _fit(self, X: np.ndarray) -> None:
        n, d = X.shape
        rng = np.random.default_rng(self.seed)
        self.scale_ = _median_distance(X, rng, self.distance_sample)
        width = self.bandwidth * (self.scale_ if self.scale_ > 0 else 1.0)
        self.width_ = width
        if self.kde == "lsh":
            m = self.n_hashes * self.hash_concat
            self._proj = rng.standard_normal((d, m)).astype(X.dtype)
            self._offset = (rng.random(m) * width).astype(np.float64)
            self._mult = rng.integers(1, 2**63 - 1, size=(self.n_hashes, self.hash_concat),
                                      dtype=np.uint64) | np.uint64(1)
            self._slots = 1 << max(10, int(math.ceil(math.log2(4 * n))))
            keys = self._bucket_keys(X)
            self._counts = [np.bincount(keys[:, r], minlength=self._slots).astype(np.int64)
                            for r in range(self.n_hashes)]
            self._n_fit = n
            self._fit_keys = keys
        else:
            size = min(self.sample_size, n)
            rows = np.sort(rng.choice(n, size=size, replace=False))
            self._reference = np.asarray(X[rows], dtype=np.float64)

    def _bucket_keys(self, X: np.ndarray) -> np.ndarray:
        """``(n, n_hashes)`` int64 slot of each point in each hash table."""
        n = len(X)
        keys = np.empty((n, self.n_hashes), dtype=np.int64)
        step = max(1, 2_000_000 // max(self._proj.shape[1], 1))
        bits = self._slots.bit_length() - 1
        for start in range(0, n, step):
            block = X[start:start + step] @ self._proj  # (rows, n_hashes * hash_concat)
            cells = np.floor((block.astype(np.float64) + self._offset) / self.width_).astype(np.int64)
            cells = cells.reshape(len(block), self.n_hashes, self.hash_concat).view(np.uint64)
            mixed = (cells * self._mult[None]).sum(axis=2, dtype=np.uint64)  # wraps mod 2^64
            keys[start:start + len(block)] = (mixed >> np.uint64(64 - bits)).astype(np.int64)
        return keys

    def density(self, X: np.ndarray) -> np.ndarray:
        """Kernel density estimate ``(n,)`` in (0, 1] (fitted points include themselves)."""
        self._require_fitted_model()
        if self.kde == "lsh":
            if X is self._fitted_X and getattr(self, "_fit_keys", None) is not None:
                keys = self._fit_keys
            else:
                keys = self._bucket_keys(X)
            total = np.zeros(len(X), dtype=np.float64)
            for r in range(self.n_hashes):
                total += self._counts[r][keys[:, r]]
            est = total / (self.n_hashes * self._n_fit)
            return np.maximum(est, 1.0 / (self.n_hashes * self._n_fit))
        ref = self._reference
        h2 = 2.0 * self.width_ ** 2
        out = np.empty(len(X), dtype=np.float64)
        ref_sq = (ref * ref).sum(1)
        step = max(1, 4_000_000 // max(len(ref), 1))
        for start in range(0, len(X), step):
            block = np.asarray(X[start:start + step], dtype=np.float64)
            sq = (block * block).sum(1)[:, None] - 2 * block @ ref.T + ref_sq[None, :]
            out[start:start + len(block)] = np.exp(-np.maximum(sq, 0) / h2).mean(1)
        return np.maximum(out, np.finfo(np.float64).tiny)

    def _release(self) -> None:
        self._fit_keys = None

    def _require_fitted_model(self) -> None:
        if not hasattr(self, "width_"):
            raise SelectionError("this DensitySelector is not fitted: call fit(X) first")

    def _score(self, X):
        dens = self.density(X)
        weight = dens ** -self.power
        u = 1.0 - np.random.default_rng([self.seed, 1]).random(len(X))  # in (0, 1]
        scores = np.log(u) / weight + 0.0
        return scores, {"density": dens, "sampling_weight": weight / math.fsum(weight.tolist())}

    def _extra_config(self):
        return {"kde_width": self.width_, "median_distance": self.scale_}


# ============================================================================== k-center
class KCenterSelector(Selector):
    """k-center greedy (Gonzalez 1985; the core-set selection of Sener & Savarese 2018).

    Starts from a seeded random point, then repeatedly keeps the point farthest (Euclidean) from
    the kept set; the first ``k`` picks are the greedy 2-approximate k-center solution for every
    ``k``. Exact greedy, made fast by deferring work (lazy greedy): a pool of the ``pool_size``
    points with the largest (possibly stale, hence upper-bound) distances is kept up to date
    against every new center, and the next center is taken from the pool as long as its best
    exact distance is at least the largest stale distance outside it; the distances of all ``n``
    points to the new centers are applied in batches of ``flush_every`` as one
    ``(n, d) x (d, flush_every)`` matrix product (torch; GPU when present). Worst case
    ``O(k n d)`` multiply-adds, in BLAS-3 form.

    Score: for kept points, the distance at which they were picked (their coverage radius; the
    first pick has ``inf``); for the rest, the distance to the nearest kept point. Rank = greedy
    order, then the rest by distance, descending. ``n_centers`` sets the greedy length used by
    :meth:`score_samples` (default 10 % of the points); :meth:`select` runs exactly ``k`` picks, or
    fewer with ``pair_budget``: the run stops once its picks cover that many distinct pairs (the
    rows' ``pair_index``), which is all a selection of that many pairs needs (the greedy order is
    nested, so stopping early changes no pick; a sweep asks for the pairs of its largest fraction).
    """

    method = "kcenter"
    score_meaning = "distance to the kept set when picked (kept points) or at the end (others)"
    score_on_fit = False

    def __init__(self, *, seed: int = 0, n_centers: int | None = None, pool_size: int = 2048,
                 flush_every: int = 256, device: str = "auto", pair_budget: int | None = None):
        self.seed = seed
        self.n_centers = n_centers
        self.pool_size = pool_size
        self.flush_every = flush_every
        self.device = device
        self.pair_budget = pair_budget

    def _check_params(self) -> None:
        super()._check_params()
        if self.n_centers is not None:
            _check_positive_int("n_centers", self.n_centers)
        _check_positive_int("pool_size", self.pool_size)
        _check_positive_int("flush_every", self.flush_every)
        if self.pair_budget is not None:
            _check_positive_int("pair_budget", self.pair_budget)

    def _fit(self, X):
        self._runs = {}

    def _score(self, X):
        m = min(len(X), self.n_centers or max(1, int(math.ceil(0.1 * len(X)))))
        scores, order = self._greedy(X, m)
        if X is self._fitted_X:
            self._runs[m] = (scores, order)
        return scores, {}

    def _selection_scores(self, k: int):
        if k not in self._runs:
            self._runs = {k: self._greedy(self._fitted_X, k)}
        scores, order = self._runs[k]
        return scores, {}, order

    def _extra_config(self) -> dict[str, Any]:
        return {"greedy_picks": int(getattr(self, "greedy_picks_", 0))}

    def _greedy(self, X: np.ndarray, m: int):
        import torch


        device = torch.device(resolve_device(self.device))
        n = len(X)
        rng = np.random.default_rng(self.seed)
        first = int(rng.integers(n))
        with torch.inference_mode():
            Xt = torch.from_numpy(X).to(device)
            sq_norms = _row_sq_norms(Xt)
            mind = _nearest_center_distance(Xt, sq_norms, [first]).cpu().numpy()
        mind[first] = -1.0  # kept points are marked -1 and never picked again
        centers, radius, pending = [first], [math.inf], []
        pool = pool_rows = pool_dist = None
        threshold = -math.inf
        pair_of = getattr(self, "_pair_index", None) if self.pair_budget else None
        covered = None if pair_of is None else {int(pair_of[first])}
        while len(centers) < m and (covered is None or len(covered) < self.pair_budget):
            if pool is None:
                size = min(self.pool_size, n)
                if size < n:
                    top = np.argpartition(-mind, size)[:size + 1]
                    top = top[np.argsort(-mind[top], kind="stable")]
                    threshold = float(mind[top[-1]])
                    pool = np.sort(top[:-1])
                else:
                    threshold = -math.inf
                    pool = np.arange(n)
                pool_rows = X[pool].astype(np.float64)
                pool_dist = mind[pool].copy()
            best = int(np.argmax(pool_dist))
            value = float(pool_dist[best])
            if pending and value <= threshold:  # someone outside the pool may be farther
                mind = self._flush(Xt, sq_norms, mind, pending)
                pending, pool = [], None
                continue
            nxt = int(pool[best])
            if covered is not None:
                covered.add(int(pair_of[nxt]))
            centers.append(nxt)
            radius.append(value)
            pending.append(nxt)
            diff = pool_rows - pool_rows[best]
            new_dist = np.sqrt(np.einsum("ij,ij->i", diff, diff))
            pool_dist = np.where(pool_dist < 0, pool_dist, np.minimum(pool_dist, new_dist))
            pool_dist[best] = -1.0
            mind[nxt] = -1.0
            if len(pending) >= self.flush_every:
                mind = self._flush(Xt, sq_norms, mind, pending)
                pending, pool = [], None
        if pending:
            mind = self._flush(Xt, sq_norms, mind, pending)
        self.greedy_picks_ = len(centers)
        is_center = np.zeros(n, dtype=bool)
        is_center[centers] = True
        scores = np.maximum(mind, 0.0)
        scores[centers] = radius
        rest = np.flatnonzero(~is_center)
        rest = rest[np.argsort(-scores[rest], kind="stable")]
        order = np.concatenate([np.asarray(centers, dtype=np.int64), rest])
        return scores, order

    @staticmethod
    def _flush(Xt, sq_norms, mind: np.ndarray, pending: list[int]) -> np.ndarray:
        """Apply the pending centers to every point's distance (one matrix product per chunk)."""
        import torch

        with torch.inference_mode():
            dist = _nearest_center_distance(Xt, sq_norms, pending).cpu().numpy()
        return np.where(mind < 0, mind, np.minimum(mind, dist))


def _row_sq_norms(Xt):
    import torch

    out = torch.empty(len(Xt), dtype=torch.float64, device=Xt.device)
    step = max(1, 8_000_000 // max(Xt.shape[1], 1))
    for start in range(0, len(Xt), step):
        out[start:start + step] = (Xt[start:start + step].double() ** 2).sum(1)
    return out


def _nearest_center_distance(Xt, sq_norms, centers):
    """Distance (float64, ``(n,)``) from every row to its nearest row among ``centers``, via
    ``|x|^2 - 2 x.c + |c|^2``: one ``(chunk, d) x (d, len(centers))`` product per chunk."""
    import torch

    C = Xt[list(centers)]
    c_sq = (C.double() ** 2).sum(1)
    out = torch.empty(len(Xt), dtype=torch.float64, device=Xt.device)
    step = max(1, 4_000_000 // max(Xt.shape[1], len(C), 1))
    for start in range(0, len(Xt), step):
        dots = (Xt[start:start + step] @ C.T).double()
        sq = (sq_norms[start:start + step, None] - 2.0 * dots + c_sq[None, :]).min(dim=1).values
        out[start:start + step] = torch.sqrt(torch.clamp(sq, min=0.0))
    return out


# ============================================================================== helpers
def _median_distance(X: np.ndarray, rng: np.random.Generator, n_pairs: int) -> float:
    """Median Euclidean distance between seeded random pairs of distinct rows."""
    n = len(X)
    if n < 2:
        return 0.0
    a = rng.integers(n, size=n_pairs)
    b = (a + rng.integers(1, n, size=n_pairs)) % n
    diff = np.asarray(X[a], dtype=np.float64) - np.asarray(X[b], dtype=np.float64)
    return float(np.median(np.sqrt((diff * diff).sum(1))))

"""Selectors: which preference data to keep. ISA as published, and the baselines it was compared with.

Every selector is a scikit-learn estimator (``BaseEstimator``): configuration in the constructor
(stored there, validated in ``fit``), ``fit(X)`` → ``self``, ``score_samples(X)`` → one float per point where **higher = keep**,
and ``select(X, k=None, fraction=None)`` → a :class:`~alignscope.select.selection.Selection` (the table, one
row per point, its config and the data fingerprint). Same seed (same machine, same library versions) →
bitwise the same scores and the same subset.

Methods (:data:`METHODS`):

``isa``
    Information Sampling for Alignment, Khera, Ghosh & Dutta, "Efficient Alignment of Large Language
    Models via Data Sampling", arXiv:2411.10545 (2024). Exactly the published rule: fit a
    2-component Gaussian mixture, per point log-likelihood ``l``, min-max ``l' in [0, 1]``,
    ``p = exp(l')`` (not renormalised), ``Delta[x] = H(X) - H(X \\ x)`` with
    ``H = -sum p log p``, keep the top-k by ``Delta`` descending. Since ``Delta = -e^{l'} l'`` is
    decreasing in ``l'``, **the published rule keeps the LOWEST-likelihood points** — the rarest,
    most atypical points under the mixture (ISA.md §3). ``variant="renormalised"`` (``p / sum p``)
    flips that and keeps the most typical points; it is offered for comparison only.
``random``
    A uniformly random subset (the paper's first baseline).
``density``
    Density sampling, Sachdeva et al., "How to Train Data-Efficient LLMs", arXiv:2402.09668 (2024):
    a kernel density estimate per point from a p-stable LSH sketch (RACE-style counts) or a Gaussian
    KDE against a seeded reference sample, then inverse-propensity sampling: points are drawn
    without replacement with probability proportional to ``1 / density`` (sparse regions kept).
``kcenter``
    k-center greedy (Gonzalez 1985; the core-set selection of Sener & Savarese 2018): repeatedly
    keep the point farthest from everything kept so far — a diversity baseline.
``llm``
    Ask-LLM (Sachdeva et al. 2024): a causal LM is asked whether the example is good training data;
    the score is its probability of answering "yes". Takes texts, not a matrix.
``length``, ``margin``, ``rds``, ``lm-margin`` (:data:`PAIR_METHODS`)
    Methods that beat random elsewhere, ranking PAIRS: the data's own length pattern (Zhao et al.
    2024), a cross-fitted preference probe's margin (Deng et al. 2025; Gao et al. 2025; Qi et al.
    2025), similarity to a target set (RDS+, Ivison et al. 2025) and a reference LM's log-ratio.
    They live in :mod:`alignscope.select.pairwise` and :mod:`alignscope.select.lm_margin`, with their
    options declared in :mod:`alignscope.select.pair_options`; :func:`select_data` builds their inputs.

Units. ISA as published treats every *completion* (prompt + one response) as a point: a preference
pair gives two rows (``unit="completion"``, labels 1 = chosen, 0 = rejected); ``unit="pair"`` has one
row per pair. :meth:`Selection.pairs` / :meth:`Selection.pair_selection` map a completion-level
selection to pairs for DPO with one of :data:`~alignscope.select.selection.PAIR_RULES` (default ``"any"``:
keep a pair when its chosen or its rejected completion is kept; ranked by the better of its two
completion scores).
"""
from __future__ import annotations

import math
import os
from fractions import Fraction
from typing import Any, Callable, Sequence

import numpy as np

from alignscope.embed.encoders import DEFAULT_ENCODER, embed
from alignscope.models import load_causal_lm, resolve_device
from alignscope.options import is_finite, is_int
from alignscope.select.base import Selector, _check_positive_int, _first_attr
from alignscope.select.gmm import COVARIANCE_TYPES, GaussianMixture, GMMError
from alignscope.select.lm_margin import LMMarginSelector
from alignscope.select.pair_options import PAIR_METHODS
from alignscope.select.pairwise import LengthSelector, MarginSelector, PairSelector, RDSSelector
from alignscope.select.selection import PAIR_RULES, Selection, SelectionError, resolve_k

__all__ = [
    "METHODS", "PAIR_RULES", "ISA_VARIANTS", "SelectionError", "Selection", "Selector", "ISASelector",
    "RandomSelector", "DensitySelector", "KCenterSelector", "AskLLMSelector", "make_selector",
    "select", "select_data", "resolve_k", "isa_scale", "isa_probability", "isa_delta", "isa_entropy",
    "isa_delta_leave_one_out", "ask_llm_texts", "PAIR_METHODS", "LengthSelector", "MarginSelector", "RDSSelector",
    "LMMarginSelector", "selector_class",
]

# The pair methods (PAIR_METHODS: alignscope.select.pairwise and alignscope.select.lm_margin) rank
# pairs: their selections have one row per pair.
METHODS = ("isa", "random", "density", "kcenter", "llm", *PAIR_METHODS)
ISA_VARIANTS = ("published", "renormalised")


# ============================================================================== the ISA formulas
def isa_scale(loglik: np.ndarray) -> np.ndarray:
    """Min-max scale log-likelihoods to ``l' in [0, 1]`` (float64; all zeros when ``l`` is constant)."""
    loglik = np.asarray(loglik, dtype=np.float64)
    low, high = float(loglik.min()), float(loglik.max())
    if high == low:
        return np.zeros_like(loglik)
    return (loglik - low) / (high - low)


def isa_probability(loglik_scaled: np.ndarray, variant: str = "published") -> np.ndarray:
    """``p = exp(l')`` as published (values in [1, e], NOT a probability distribution), or
    ``exp(l') / sum exp(l')`` for ``variant="renormalised"``."""
    if variant not in ISA_VARIANTS:
        raise SelectionError(f"ISA variant must be one of {', '.join(ISA_VARIANTS)}; got {variant!r}")
    p = np.exp(np.asarray(loglik_scaled, dtype=np.float64))
    if variant == "renormalised":
        p = p / math.fsum(p.tolist())
    return p


def isa_delta(p: np.ndarray) -> np.ndarray:
    """The fast O(N) path: ``Delta[x] = H(X) - H(X \\ x) = -p(x) log p(x)`` (float64).

    The identity holds because ``H`` is a plain sum over points of ``-p log p`` with ``p`` fixed by
    the whole set. ``+ 0.0`` turns the ``-0.0`` of ``p = 1`` into ``+0.0`` so that this agrees
    bitwise with :func:`isa_delta_leave_one_out`.
    """
    p = np.asarray(p, dtype=np.float64)
    return -(p * np.log(p)) + 0.0


def isa_entropy(p: np.ndarray) -> float:
    """``H(X) = -sum p log p`` as published (exactly rounded sum). Negative for ``p = e^{l'}``:
    it is not a true entropy (ISA.md §3)."""
    terms = isa_delta(p)
    return math.fsum(terms.tolist())


def isa_delta_leave_one_out(p: np.ndarray, *, exact: bool = True) -> np.ndarray:
    """Reference implementation: literally ``H(X) - H(X \\ x)`` for every ``x``, O(N²).

    Each summand ``-p log p`` is evaluated in float64 exactly as :func:`isa_delta` evaluates it (the
    only rounding both paths share). With ``exact=True`` (default) the sums ``H(X)`` and, for every
    ``x``, ``H(X \\ x)`` — recomputed from scratch over the other N−1 points — are formed in exact
    integer arithmetic (every float64 is an integer multiple of a power of two), and the difference
    is rounded once back to float64. That is the literal leave-one-out with summation error removed,
    so equality with the fast path is a test of the algebra and holds bitwise. With ``exact=False``
    the sums are naive float64 sums, and the result differs from the fast path by rounding of
    order ``N * eps * |H|`` (the reason the product never computes Delta this way).
    """
    terms = isa_delta(p)
    n = len(terms)
    if not exact:
        total = terms.sum()
        out = np.empty(n)
        for i in range(n):
            without = np.concatenate([terms[:i], terms[i + 1:]]).sum()
            out[i] = total - without
        return out
    ratios = [t.as_integer_ratio() for t in terms.tolist()]
    shift = max(den.bit_length() - 1 for _, den in ratios)  # denominators are powers of two
    ints = [num << (shift - (den.bit_length() - 1)) for num, den in ratios]
    scale = 1 << shift
    entropy_all = sum(ints)
    out = np.empty(n)
    for i in range(n):
        entropy_without = sum(ints[:i]) + sum(ints[i + 1:])  # H(X \ x_i), summed from scratch
        out[i] = float(Fraction(entropy_all - entropy_without, scale)) + 0.0
    return out


# ============================================================================== ISA
class ISASelector(Selector):
    """ISA (Khera et al. 2024, arXiv:2411.10545, ENLSP-IV @ NeurIPS 2024), the published rule.

    Steps on ``X`` of shape ``(n, d)`` (optionally PCA-reduced to ``pca_dim``):
    ``l = log p_GMM(x)`` of a 2-component Gaussian mixture → ``l' = (l - min l) / (max l - min l)``
    → ``p = e^{l'}`` → ``Delta = H(X) - H(X \\ x) = -p log p`` → top-k by ``Delta`` descending.
    With the published ``p = e^{l'}`` every ``Delta <= 0`` and ``Delta`` falls as ``l'`` rises, so
    the selection keeps the **lowest-likelihood (rarest) points**. ``variant="renormalised"``
    uses ``p / sum p`` and therefore keeps the most typical points instead.

    The mixture (:class:`alignscope.select.gmm.GaussianMixture`) is fitted by EM in torch (GPU when
    present). By default the EM iterations run on a seeded sample of ``fit_sample=100_000`` rows,
    followed by ``refine_steps=1`` EM iteration on all rows and a scoring pass over all rows — the
    paper fits on all rows; ``fit_sample=None`` does exactly that. ``backend="sklearn"`` uses
    ``sklearn.mixture.GaussianMixture`` instead (the reference; slower).

    Per-point details: ``loglik`` (``l``), ``loglik_scaled`` (``l'``), ``delta`` (``Delta`` = the
    score), ``component`` (argmax responsibility).
    """

    method = "isa"
    score_meaning = ("delta = H(X) - H(X without x) = -p log p, p = exp(l'); published rule: "
                     "higher delta = lower likelihood")

    def __init__(self, *, covariance_type: str = "full", pca_dim: int | None = None, seed: int = 0,
                 n_init: int = 1, max_iter: int = 100, tol: float = 1e-3, reg_covar: float = 1e-6,
                 fit_sample: int | None = 100_000, refine_steps: int = 1, variant: str = "published",
                 backend: str = "torch", device: str = "auto", dtype: str = "auto"):
        self.covariance_type = covariance_type
        self.pca_dim = pca_dim
        self.seed = seed
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.reg_covar = reg_covar
        self.fit_sample = fit_sample
        self.refine_steps = refine_steps
        self.variant = variant
        self.backend = backend
        self.device = device
        self.dtype = dtype

    def _check_params(self) -> None:
        super()._check_params()
        covariance_type, variant, backend, pca_dim = self.covariance_type, self.variant, self.backend, self.pca_dim
        n_init, max_iter, fit_sample, refine_steps = self.n_init, self.max_iter, self.fit_sample, self.refine_steps
        tol, reg_covar = self.tol, self.reg_covar
        if covariance_type not in COVARIANCE_TYPES:
            raise SelectionError(f"covariance_type must be one of {', '.join(COVARIANCE_TYPES)}; "
                                 f"got {covariance_type!r}")
        if variant not in ISA_VARIANTS:
            raise SelectionError(f"variant must be one of {', '.join(ISA_VARIANTS)}; got {variant!r}")
        if backend not in ("torch", "sklearn"):
            raise SelectionError(f"backend must be 'torch' or 'sklearn', got {backend!r}")
        if pca_dim is not None and (not is_int(pca_dim) or pca_dim < 1):
            raise SelectionError(f"pca_dim must be a positive integer or None, got {pca_dim!r}")
        _check_positive_int("n_init", n_init)
        _check_positive_int("max_iter", max_iter)
        if fit_sample is not None:
            _check_positive_int("fit_sample", fit_sample)
        if not is_int(refine_steps) or refine_steps < 0:
            raise SelectionError(f"refine_steps must be an integer >= 0, got {refine_steps!r}")
        if not isinstance(tol, (int, float)) or tol < 0:
            raise SelectionError(f"tol must be a number >= 0, got {tol!r}")
        if not isinstance(reg_covar, (int, float)) or reg_covar < 0:
            raise SelectionError(f"reg_covar must be a number >= 0, got {reg_covar!r}")

    def _fit(self, X: np.ndarray) -> None:
        n, d = X.shape
        if n < 2:
            raise SelectionError(f"ISA needs at least 2 points (it fits a 2-component mixture), got n_samples = {n}")
        if self.pca_dim is not None and self.pca_dim > d:
            raise SelectionError(f"pca_dim={self.pca_dim} is larger than the dimension ({d})")
        rng = np.random.default_rng(self.seed)
        fit_rows = None
        if self.fit_sample is not None and self.fit_sample < n:
            fit_rows = np.sort(rng.choice(n, size=self.fit_sample, replace=False))
        self.pca_ = None
        if self.pca_dim is not None:
            self.pca_ = _fit_pca(X if fit_rows is None else X[fit_rows], self.pca_dim)
        Z = X if self.pca_ is None else _project(X, self.pca_)
        try:
            if self.backend == "torch":
                self.gmm_ = GaussianMixture(
                    2, covariance_type=self.covariance_type, tol=self.tol, reg_covar=self.reg_covar,
                    max_iter=self.max_iter, n_init=self.n_init, seed=self.seed,
                    fit_sample=self.fit_sample, refine_steps=self.refine_steps, dtype=self.dtype,
                    device=self.device).fit(Z)
            else:
                from sklearn.mixture import GaussianMixture as SkGaussianMixture

                Z_fit = Z if fit_rows is None else Z[fit_rows]
                self.gmm_ = SkGaussianMixture(
                    2, covariance_type=self.covariance_type, tol=self.tol, reg_covar=self.reg_covar,
                    max_iter=self.max_iter, n_init=self.n_init, random_state=self.seed).fit(Z_fit)
        except GMMError as exc:
            raise SelectionError(str(exc)) from None
        except ValueError as exc:  # scikit-learn's ill-defined covariance
            raise SelectionError(f"the Gaussian mixture could not be fitted: {str(exc).splitlines()[0]}") from None
        self._fit_Z = Z

    def _score(self, X: np.ndarray):
        if X is self._fitted_X and getattr(self, "_fit_Z", None) is not None:
            Z = self._fit_Z  # the fitted matrix, already PCA-projected
        else:
            if X.shape[1] != self.gmm_.n_features_in_ and self.pca_ is None:
                raise SelectionError(f"X has {X.shape[1]} features; ISA was fitted on {self.gmm_.n_features_in_}")
            Z = X if self.pca_ is None else _project(X, self.pca_)
        if self.backend == "torch":
            loglik, component = self.gmm_.score_samples_and_labels(Z)
        else:
            loglik = self.gmm_.score_samples(Z)
            component = self.gmm_.predict(Z)
        scaled = isa_scale(loglik)
        delta = isa_delta(isa_probability(scaled, self.variant))
        details = {"loglik": loglik, "loglik_scaled": scaled, "delta": delta,
                   "component": component.astype(np.int8)}
        return delta, details

    def _release(self) -> None:
        self._fit_Z = None

    def _extra_config(self) -> dict[str, Any]:
        gmm = self.gmm_
        info = {"weights": np.asarray(gmm.weights_).tolist(), "converged": bool(gmm.converged_),
                "n_iter": int(gmm.n_iter_), "lower_bound": float(gmm.lower_bound_)}
        if self.backend == "torch":
            info.update(fit_rows=int(gmm.fit_rows_), compute_dtype=str(gmm.compute_dtype_).replace("torch.", ""),
                        device=str(gmm.device_))
        return {"gmm": info}


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
    :meth:`score_samples` (default 10 % of the points); :meth:`select` runs exactly ``k`` picks.
    """

    method = "kcenter"
    score_meaning = "distance to the kept set when picked (kept points) or at the end (others)"
    score_on_fit = False

    def __init__(self, *, seed: int = 0, n_centers: int | None = None, pool_size: int = 2048,
                 flush_every: int = 256, device: str = "auto"):
        self.seed = seed
        self.n_centers = n_centers
        self.pool_size = pool_size
        self.flush_every = flush_every
        self.device = device

    def _check_params(self) -> None:
        super()._check_params()
        if self.n_centers is not None:
            _check_positive_int("n_centers", self.n_centers)
        _check_positive_int("pool_size", self.pool_size)
        _check_positive_int("flush_every", self.flush_every)

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
        while len(centers) < m:
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


# ============================================================================== Ask-LLM
_LM_CACHE: dict[str, Any] = {}
ASK_LLM_TEMPLATE = (
    "###\n{example}\n###\n"
    "Does the previous example, demarcated within ### and ###, show a good response to the user "
    "that is worth training an AI assistant on? A good example is helpful, correct, clearly "
    "written and harmless.\n"
    "OPTIONS:\n- yes\n- no\nANSWER:"
)


class AskLLMSelector(Selector):
    """Ask-LLM (Sachdeva et al. 2024, "How to Train Data-Efficient LLMs", arXiv:2402.09668).

    Each example text is wrapped in a yes/no question (:data:`ASK_LLM_TEMPLATE`, adapted from the
    paper's prompt to preference data) and the score is the model's next-token probability of
    answering "yes" (the sum over the single-token spellings ``yes``, `` yes``, ``Yes``,
    `` Yes``). ``normalise=True`` returns ``P(yes) / (P(yes) + P(no))`` instead. ``model`` is any
    spec of :func:`alignscope.models.load_causal_lm` (``"tiny"``, ``"smollm2-135m"``, a local
    folder). Inputs are sorted by length and batched (right padding, the last real token's logits),
    under ``torch.inference_mode``, with a progress bar. Long examples are cut to ``max_length``
    tokens, keeping their start and the whole question.
    """

    method = "llm"
    takes_text = True
    score_meaning = "P('yes') of the causal LM asked whether the example is good training data"

    def __init__(self, *, model: str = "tiny", seed: int = 0, batch_size: int = 16,
                 max_length: int = 512, template: str = ASK_LLM_TEMPLATE, normalise: bool = False,
                 device: str | None = None, progress: bool = True):
        self.model = model
        self.seed = seed
        self.batch_size = batch_size
        self.max_length = max_length
        self.template = template
        self.normalise = normalise
        self.device = device
        self.progress = progress

    def _check_params(self) -> None:
        super()._check_params()
        if not isinstance(self.model, str) or not self.model:
            raise SelectionError(f"model must be a model name or folder, got {self.model!r}")
        _check_positive_int("batch_size", self.batch_size)
        _check_positive_int("max_length", self.max_length)
        if not isinstance(self.template, str) or "{example}" not in self.template:
            raise SelectionError("the Ask-LLM template must contain '{example}'")

    def _check_input(self, X, *, reset: bool = True):
        if isinstance(X, (str, bytes)) or not hasattr(X, "__iter__"):
            raise SelectionError("the llm selector takes a list of example texts")
        texts = list(X)
        bad = next((i for i, t in enumerate(texts) if not isinstance(t, str)), None)
        if bad is not None:
            raise SelectionError(f"the llm selector takes texts; item {bad} is {type(texts[bad]).__name__}")
        if not texts:
            raise SelectionError("no texts to score")
        return texts

    def _fit(self, X):
        import torch


        torch.manual_seed(self.seed)
        key = (self.model, self.device, os.environ.get("ALIGNSCOPE_HOME"))
        if _LM_CACHE.get("key") != key:  # keep the last model loaded: re-scoring is common
            _LM_CACHE.clear()
            _LM_CACHE.update(key=key, value=load_causal_lm(self.model, device=self.device))
        self._lm, self._tok = _LM_CACHE["value"]
        self._yes_ids = _single_token_ids(self._tok, ("yes", " yes", "Yes", " Yes"))
        self._no_ids = _single_token_ids(self._tok, ("no", " no", "No", " No"))
        if not self._yes_ids:
            raise SelectionError(f"the tokenizer of {self.model!r} has no single-token 'yes'")

    def _score(self, texts):
        import torch

        tok = self._tok
        head, tail = self.template.split("{example}", 1)
        head_ids = tok(head, add_special_tokens=False)["input_ids"]
        tail_ids = tok(tail, add_special_tokens=False)["input_ids"]
        bos = [tok.bos_token_id] if tok.bos_token_id is not None and getattr(tok, "add_bos_token", False) else []
        budget = max(1, self.max_length - len(bos) - len(head_ids) - len(tail_ids))
        sequences = []
        for text in texts:
            ids = tok(text, add_special_tokens=False)["input_ids"][:budget]
            sequences.append(bos + head_ids + ids + tail_ids)
        order = sorted(range(len(sequences)), key=lambda i: (len(sequences[i]), i))
        scores = np.empty(len(texts), dtype=np.float64)
        p_yes_all = np.empty(len(texts), dtype=np.float64)
        device = next(self._lm.parameters()).device
        pad = tok.pad_token_id
        batches = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        try:
            from tqdm.auto import tqdm

            iterator = tqdm(batches, desc="ask-llm", unit="batch", disable=not self.progress)
        except ImportError:  # pragma: no cover - tqdm is a dependency
            iterator = batches
        with torch.inference_mode():
            for batch in iterator:
                width = max(len(sequences[i]) for i in batch)
                ids = torch.full((len(batch), width), pad, dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                for row, i in enumerate(batch):
                    seq = sequences[i]
                    ids[row, :len(seq)] = torch.tensor(seq)
                    mask[row, :len(seq)] = 1
                logits = self._lm(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
                last = mask.sum(1) - 1
                final = logits[torch.arange(len(batch)), last.to(device)].float()
                probs = torch.softmax(final, dim=-1)
                p_yes = probs[:, self._yes_ids].sum(1)
                if self.normalise:
                    p_no = probs[:, self._no_ids].sum(1) if self._no_ids else torch.zeros_like(p_yes)
                    value = p_yes / (p_yes + p_no).clamp(min=torch.finfo(p_yes.dtype).tiny)
                else:
                    value = p_yes
                scores[batch] = value.double().cpu().numpy()
                p_yes_all[batch] = p_yes.double().cpu().numpy()
        return np.clip(scores, 0.0, 1.0), {"p_yes": np.clip(p_yes_all, 0.0, 1.0)}


def ask_llm_texts(data: Any, unit: str = "completion") -> list[str]:
    """Example texts for the ``llm`` selector, row-aligned with the embedding units.

    ``unit="completion"``: ``2N`` texts, rows ``0..N-1`` the chosen and ``N..2N-1`` the rejected
    completion of pairs ``0..N-1`` ("User: <prompt>\\nAssistant: <completion>"). ``unit="pair"``:
    ``N`` texts showing the prompt and both responses, the preferred one first.
    """
    prompts, chosen, rejected = data.texts("prompt"), data.texts("chosen"), data.texts("rejected")
    if unit == "completion":
        return ([f"User: {p}\nAssistant: {c}" for p, c in zip(prompts, chosen)]
                + [f"User: {p}\nAssistant: {r}" for p, r in zip(prompts, rejected)])
    if unit == "pair":
        return [f"User: {p}\nPreferred answer: {c}\nWorse answer: {r}"
                for p, c, r in zip(prompts, chosen, rejected)]
    raise SelectionError(f"unit must be 'completion' or 'pair', got {unit!r}")


# ============================================================================== factory + select
_SELECTORS: dict[str, type[Selector]] = {
    "isa": ISASelector, "random": RandomSelector, "density": DensitySelector,
    "kcenter": KCenterSelector, "llm": AskLLMSelector,
    "length": LengthSelector, "margin": MarginSelector, "rds": RDSSelector, "lm-margin": LMMarginSelector,
}
assert tuple(_SELECTORS) == METHODS


def selector_class(method: str) -> type[Selector]:
    """The estimator class of ``method`` (SelectionError for an unknown one)."""
    cls = _SELECTORS.get(method)
    if cls is None:
        raise SelectionError(f"unknown selection method {method!r}; choose one of {', '.join(METHODS)}", field="method")
    return cls


def make_selector(method: str, *, seed: int = 0, **options: Any) -> Selector:
    """The selector for ``method`` with its options, validated now (unknown method/option or a bad
    value → SelectionError)."""
    cls = selector_class(method)
    allowed = [p for p in cls._get_param_names() if p != "seed"]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise SelectionError(f"bad option for method {method!r} ({', '.join(unknown)}); options are: "
                             f"{', '.join(allowed)}")
    selector = cls(seed=seed, **options)
    selector._check_params()  # up front, so a command fails before any embedding or model load
    return selector


def select(X: Any, method: str = "isa", *, k: int | None = None, fraction: float | None = None,
           seed: int = 0, pair_index: Any = None, label: Any = None, unit: str | None = None,
           data_fingerprint: str | None = None, encoder: str | None = None,
           **options: Any) -> Selection:
    """Select with ``method`` and return the :class:`~alignscope.select.selection.Selection` (table,
    config, and the data fingerprint when known).

    ``X``: an ``(n, d)`` float matrix (e.g. a raw ``.npy``), an ``alignscope.embed.encoders.Embeddings``
    (its ``pair_index``, ``label``, ``unit``, encoder and fingerprint are used), or for
    ``method="llm"`` a list of ``n`` texts. ``unit="completion"`` without ``pair_index``/``label``
    assumes alignscope's embedding layout: ``n = 2N`` rows, rows ``0..N-1`` the chosen and
    ``N..2N-1`` the rejected completions of pairs ``0..N-1``. The pair methods (:data:`PAIR_METHODS`)
    take their own ``X`` (see :mod:`alignscope.select.pairwise`); from Embeddings only ``margin``
    can be made (the differences of the completion rows): the others read texts (:func:`select_data`).
    """
    selector = make_selector(method, seed=seed, **options)
    if getattr(selector, "ranks_pairs", False):
        return _select_pairs(selector, X, k=k, fraction=fraction, pair_index=pair_index, label=label, unit=unit,
                             data_fingerprint=data_fingerprint, encoder=encoder)
    if hasattr(X, "matrix") and not isinstance(X, np.ndarray):
        emb = X
        pair_index = emb.pair_index if pair_index is None else pair_index
        label = getattr(emb, "label", None) if label is None else label
        unit = unit or getattr(emb, "unit", None)
        encoder = encoder or _first_attr(emb, ("encoder", "encoder_name"))
        data_fingerprint = data_fingerprint or _first_attr(emb, ("fingerprint", "data_fingerprint"))
        X = emb.matrix
    if unit not in (None, "completion", "pair"):
        raise SelectionError(f"unit must be 'completion' or 'pair', got {unit!r}")
    if unit == "completion" and label is None and pair_index is None:
        n = len(X)
        if n % 2:
            raise SelectionError(f"unit='completion' needs 2N rows (chosen then rejected), got {n}")
        pair_index = np.tile(np.arange(n // 2), 2)
        label = np.concatenate([np.ones(n // 2, np.int8), np.zeros(n // 2, np.int8)])
    if unit == "pair" and label is not None:
        raise SelectionError("unit='pair' takes no label column (labels belong to completions)")
    if unit == "completion" and label is None:
        raise SelectionError("unit='completion' with pair_index needs label too (1 chosen, 0 rejected)")
    selection = selector.select(X, k=k, fraction=fraction, pair_index=pair_index, label=label)
    selection.config["encoder"] = encoder
    selection.fingerprint = data_fingerprint
    return selection


def _select_pairs(selector: PairSelector, X: Any, *, k, fraction, pair_index=None, label=None, unit=None,
                  data_fingerprint=None, encoder=None, fit_params: dict | None = None) -> Selection:
    """A pair method's selection: one row per pair (unit ``"pair"``), its encoder recorded only when
    it read embeddings, then the method's own provenance (``margin``'s ``circular``)."""
    if unit not in (None, "pair"):
        raise SelectionError(f"{selector.method} ranks pairs: use unit 'pair' (or leave the unit unset)", field="unit")
    if label is not None:
        raise SelectionError(f"{selector.method} ranks pairs; rows take no label")
    if hasattr(X, "matrix") and not isinstance(X, np.ndarray):
        encoder = encoder or _first_attr(X, ("encoder", "encoder_name"))
        data_fingerprint = data_fingerprint or _first_attr(X, ("fingerprint", "data_fingerprint"))
        X = selector.from_embeddings(X)
    selection = selector.select(X, k=k, fraction=fraction, pair_index=pair_index, **(fit_params or {}))
    selection.config["encoder"] = encoder if selector.uses_embeddings else None
    selector.finish_config(selection.config)
    selection.fingerprint = data_fingerprint
    return selection


def select_data(data: Any, method: str = "isa", *, encoder: str | None = None, unit: str | None = None,
                layer: int | None = None, batch_size: int | None = None, progress: bool = False,
                embeddings: Any = None, on_progress: Callable[[float, str], None] | None = None,
                k: int | None = None, fraction: float | None = None, seed: int = 0, **options: Any) -> Selection:
    """:func:`select` on a :class:`~alignscope.data.preferences.PreferenceData`, with the input each method
    needs: the example texts for ``llm`` (:func:`ask_llm_texts`), nothing for ``random`` (its
    ranking ignores the points), the pair methods' own inputs (:meth:`~alignscope.select.pairwise.PairSelector.inputs`:
    word counts, embedding differences, prompt embeddings, the texts for ``lm-margin``), else the
    data embedded with ``encoder`` (:func:`alignscope.embed.encoders.embed`, cached on disk). What
    ``alignscope select DATA`` runs, and what sweeps run.

    ``embeddings``: the data's completion embeddings already in memory (an
    :class:`~alignscope.embed.embeddings.Embeddings` of this data): used instead of loading them
    again; ``encoder`` defaults to theirs (else ``minilm``). ``unit``: ``completion`` (default) or
    ``pair``; the pair methods rank pairs (unset or ``pair``). ``on_progress(fraction, message)``
    receives ``lm-margin``'s measured time estimate and progress."""
    selector = make_selector(method, seed=seed, **options)  # a bad option fails before any embedding
    encoder = _resolve_encoder(encoder, embeddings, data)
    size = {"k": k, "fraction": fraction}
    if getattr(selector, "ranks_pairs", False):
        X, fit_params = selector.inputs(data, encoder=encoder, embeddings=embeddings, layer=layer,
                                        batch_size=batch_size, progress=progress)
        if method == "lm-margin":
            fit_params["on_progress"] = on_progress
        return _select_pairs(selector, X, **size, unit=unit, data_fingerprint=data.fingerprint, encoder=encoder,
                             fit_params=fit_params)
    unit = unit or "completion"
    common = {**size, "seed": seed, "unit": unit, **options}
    if method == "llm":
        return select(ask_llm_texts(data, unit=unit), "llm", data_fingerprint=data.fingerprint, **common)
    if method == "random":
        n = 2 * data.n_pairs if unit == "completion" else data.n_pairs
        return select(np.zeros((n, 1), np.float32), "random", data_fingerprint=data.fingerprint, **common)
    if embeddings is None:
        embeddings = embed(data, encoder, unit, layer, batch_size=batch_size, progress=progress)
    return select(embeddings.to_unit(unit), method, **common)


def _resolve_encoder(encoder: str | None, embeddings: Any, data: Any) -> str:
    """The encoder of a :func:`select_data` call, checked against precomputed ``embeddings``."""
    if embeddings is None:
        return encoder or DEFAULT_ENCODER
    if getattr(embeddings, "fingerprint", None) not in (None, data.fingerprint):
        raise SelectionError(f"the embeddings were made on data with fingerprint {embeddings.fingerprint}, not this "
                             f"data ({data.fingerprint})", field="embeddings")
    made_with = getattr(embeddings, "encoder", None)
    if encoder and made_with and encoder != made_with:
        raise SelectionError(f"the embeddings were made with {made_with}, not {encoder}", field="encoder")
    return encoder or made_with or DEFAULT_ENCODER


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


def _fit_pca(X_fit: np.ndarray, dim: int) -> dict[str, np.ndarray]:
    """PCA basis from the covariance of ``X_fit`` (float64, eigenvector signs fixed)."""
    mean = X_fit.mean(axis=0, dtype=np.float64)
    d = X_fit.shape[1]
    cov = np.zeros((d, d))
    step = max(1, 4_000_000 // d)
    for start in range(0, len(X_fit), step):
        block = np.asarray(X_fit[start:start + step], dtype=np.float64) - mean
        cov += block.T @ block
    cov /= max(len(X_fit) - 1, 1)
    vals, vecs = np.linalg.eigh(cov)
    top = vecs[:, ::-1][:, :dim]
    signs = np.sign(top[np.abs(top).argmax(axis=0), np.arange(dim)])
    signs[signs == 0] = 1
    return {"mean": mean, "components": top * signs, "explained_variance": vals[::-1][:dim]}


def _project(X: np.ndarray, pca: dict[str, np.ndarray]) -> np.ndarray:
    out_dtype = X.dtype if X.dtype in (np.float32, np.float64) else np.float64
    comp = pca["components"].astype(out_dtype)
    mean = pca["mean"].astype(out_dtype)
    out = np.empty((len(X), comp.shape[1]), dtype=out_dtype)
    step = max(1, 4_000_000 // X.shape[1])
    for start in range(0, len(X), step):
        out[start:start + step] = (X[start:start + step] - mean) @ comp
    return out


def _single_token_ids(tokenizer: Any, words: Sequence[str]) -> list[int]:
    ids = []
    for word in words:
        enc = tokenizer(word, add_special_tokens=False)["input_ids"]
        if len(enc) == 1 and enc[0] not in ids:
            ids.append(enc[0])
    return ids

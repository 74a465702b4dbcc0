"""ISA, Information Sampling for Alignment, exactly as published: Khera, Ghosh & Dutta, "Efficient
Alignment of Large Language Models via Data Sampling", arXiv:2411.10545 (2024); see ISA.md.

Fit a 2-component Gaussian mixture, per point log-likelihood ``l`` (shape ``(n,)``), min-max
``l' in [0, 1]``, ``p = exp(l')`` (not renormalised), ``Delta[x] = H(X) - H(X \\ x)`` with
``H = -sum p log p``, keep the top-k by ``Delta`` descending. Since ``Delta = -e^{l'} l'`` is
decreasing in ``l'``, **the published rule keeps the LOWEST-likelihood points** (ISA.md §3);
``variant="renormalised"`` (``p / sum p``) flips that and is offered for comparison only.
"""
from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

import numpy as np

from alignscope.options import is_int
from alignscope.select.base import Selector, _check_positive_int
from alignscope.select.gmm import COVARIANCE_TYPES, GaussianMixture, GMMError
from alignscope.select.selection import SelectionError

__all__ = ["ISA_VARIANTS", "ISASelector", "isa_scale", "isa_probability", "isa_delta", "isa_entropy",
           "isa_delta_leave_one_out"]

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
        if self.backend == "torch":  # the mixture's own stages (benchmarks/bench_isa.py reports them)
            stages = self.gmm_.timings_
            self.timings_.update(sample_fit_s=round(stages["sample_s"] + stages["init_s"] + stages["em_s"], 4),
                                 full_step_s=stages["full_step_s"])

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
                        scatter_dtype=str(gmm.scatter_dtype_).replace("torch.", ""),
                        low_precision_iter=int(gmm.low_precision_iter_),
                        low_precision_error=gmm.low_precision_error_,
                        device=str(gmm.device_))
        return {"gmm": info}


# ============================================================================== helpers
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

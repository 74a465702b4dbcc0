"""Spectral imbalance diagnostics: how differently an encoder represents groups of the data.

Method: Kaushik, Liu, Lin, Khera, Jin, Ma, Muthukumar, Dyer, "Balanced Data, Imbalanced Spectra:
Unveiling Class Disparities with Spectral Imbalance", ICML 2024 (arXiv:2402.11742); the project's
summary is ``shared/design/SPECTRA.md``. Even with equal counts, groups whose feature covariance
spectra differ (scale, decay) get different error rates from a linear classifier; for a Gaussian
mixture the per-group error of a linear rule ``w, b`` is ``err_c = Φ(−s_c (wᵀμ_c + b) / √(wᵀΣ_c w))``.

Pipeline of :func:`spectral_imbalance` on ``X`` of shape ``(n, d)`` and ``groups`` of shape ``(n,)``:

1. **Balance**: every group is subsampled (seeded) to the same ``n_per_group`` rows.
2. **Covariance**: each group is centred on its own mean; ``Σ_c = X_cᵀX_c / n_c``, shrunk towards
   ``(tr Σ_c / d)·I`` with the Ledoit–Wolf intensity when ``n_c < 10·d`` (``shrinkage="auto"``).
3. **Spectrum**: eigenvalues ``λ_1 ≥ … ≥ λ_m`` — exact (``eigvalsh`` of the d×d covariance, ``m = d``)
   for ``d ≤ 2048``, else a randomised truncated SVD of the centred rows (top ``m = n_components``;
   the remaining trace is spread evenly over the other ``d − m`` directions, an approximation).
4. **Metrics** (:func:`spectral_metrics`): trace ``T``, ``λ_1``, top-k energy share, effective rank
   ``exp(−Σ p_i log p_i)`` (``p_i = λ_i / T``), participation ratio ``T² / Σ λ_i²``, power-law decay
   ``α`` (least-squares slope of ``−log λ_i`` on ``log i`` for ``i`` in the middle range).
   Bootstrap intervals: the rows of a group are split at random into ``n_blocks`` blocks whose
   first and second moments are computed once; each replicate redraws blocks with replacement and
   recombines the moments (the bootstrap of i.i.d. blocks; exact resampling of rows when
   ``n_c ≤ n_blocks``); intervals are basic (reverse-percentile) bootstrap intervals, which undo the
   extra eigenvalue spread of resampled data. The point estimate's shrinkage is reused in replicates.
5. **Imbalance** (:func:`imbalance_scores`): ``max/min`` of ``T`` and of ``λ_1``, ``max − min`` of
   ``α``, and the largest RMS distance between two groups' ``log λ_i`` over the top k.
6. **Outcome** (:func:`linear_probe`): a logistic-regression probe on a stratified half of the
   balanced rows (one-vs-rest for more than two groups), per-group error on the other half, the
   gap ``max − min``, and the Gaussian plug-in prediction of each group's error.

Everything here is NumPy/SciPy/scikit-learn; no Streamlit. Errors on bad input are
:class:`SpectraError` (a ``ValueError``) with a one-line message.

Why one module of ~590 lines: it is one paper's method, and its sections (validation, balancing,
covariance and spectrum, metrics, probe, report, groups of a data set) follow the pipeline above
in order, each used by the next; split apart, every piece would import the others.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Mapping

import numpy as np
import pandas as pd

from alignscope.blas import one_blas_thread
from alignscope.errors import AlignscopeError
from alignscope.files import jsonable
from alignscope.options import is_finite, is_int

__all__ = ["SpectraError", "GroupSpectrum", "ProbeResult", "SpectralReport", "balanced_indices",
           "group_spectrum", "spectral_metrics", "imbalance_scores", "plugin_error", "linear_probe",
           "spectral_imbalance", "spectrum_band", "compare_encoders", "group_labels", "embeddings_report", "sample_pairs", "GROUPINGS", "METRICS",
           "IMBALANCE_SCORES"]

GROUPINGS = ("label", "component")  # plus any metadata column
METRICS = ("trace", "lambda1", "topk_share", "effective_rank", "participation_ratio", "alpha")
IMBALANCE_SCORES = ("trace_ratio", "lambda1_ratio", "alpha_diff", "log_spectrum_distance")
EXACT_MAX_DIM = 2048
MIN_PER_GROUP = 10
# embeddings_report's default size per group: the smallest group, at most this. On AlpacaEval by
# source (12,488 per group) the full size took 6.5 s and 5,000 took 3.7 s with the same trace ratio
# within its interval (1.271 [1.262, 1.280] vs 1.259 [1.244, 1.274]); d ≤ 1,024 stays well below n.
MAX_PER_GROUP = 5000
MAX_GROUPS = 50


class SpectraError(AlignscopeError):
    """Bad input to the spectral diagnostics; the message is one line."""


# ------------------------------------------------------------------------------------ validation
def _check_matrix(X: Any) -> np.ndarray:
    try:
        X = np.asarray(X, dtype=np.float64)
    except (TypeError, ValueError):
        raise SpectraError("X must be a numeric matrix of shape (n, d)") from None
    if X.ndim != 2:
        raise SpectraError(f"X must be 2-D (n, d); got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise SpectraError(f"X is empty (shape {X.shape})")
    if not np.isfinite(X).all():
        bad = int((~np.isfinite(X)).any(axis=1).sum())
        raise SpectraError(f"X has {bad} row(s) with NaN or infinite values")
    return X


def _check_groups(groups: Any, n: int) -> np.ndarray:
    groups = np.asarray(groups)
    if groups.ndim != 1 or len(groups) != n:
        raise SpectraError(f"groups must have shape ({n},) like the rows of X; got {groups.shape}")
    if groups.dtype.kind == "f" and np.isnan(groups).any():
        raise SpectraError("groups has missing values (NaN)")
    if groups.dtype == object and any(g is None or (isinstance(g, float) and math.isnan(g)) for g in groups):
        raise SpectraError("groups has missing values (None/NaN)")
    groups = groups.astype(str)
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise SpectraError(f"need at least 2 groups to compare; got {n_groups}")
    if n_groups > MAX_GROUPS:
        raise SpectraError(f"too many groups ({n_groups} > {MAX_GROUPS}); pick a coarser grouping")
    return groups


def _check_int(name: str, value: Any, low: int) -> int:
    if not is_int(value) or value < low:
        raise SpectraError(f"{name} must be an integer >= {low}; got {value!r}")
    return int(value)


# ------------------------------------------------------------------------------------- balancing
def balanced_indices(groups: Any, n_per_group: int | None = None, *, seed: int = 0,
                     min_per_group: int = MIN_PER_GROUP, max_per_group: int | None = None) -> dict[str, np.ndarray]:
    """Row indices per group, each subsampled (without replacement, seeded) to the same size.

    ``groups``: shape ``(n,)``. ``n_per_group``: the common size (default: the smallest group's
    size, at most ``max_per_group`` when given). Returns ``{group: sorted int64 indices of shape (n_per_group,)}`` in sorted group order.
    """
    groups = _check_groups(groups, len(np.asarray(groups)))
    names, counts = np.unique(groups, return_counts=True)
    smallest = int(counts.min())
    if smallest < min_per_group:
        raise SpectraError(f"group {str(names[counts.argmin()])!r} has {smallest} rows; each group needs at "
                           f"least {min_per_group}")
    if n_per_group is None:
        n_take = smallest if max_per_group is None else min(smallest, max_per_group)
    else:
        n_take = _check_int("n_per_group", n_per_group, min_per_group)
    if n_take > smallest:
        raise SpectraError(f"n_per_group={n_take} exceeds the smallest group ({str(names[counts.argmin()])!r}: "
                           f"{smallest} rows)")
    rng = np.random.default_rng(seed)
    return {str(name): np.sort(rng.choice(np.flatnonzero(groups == name), size=n_take, replace=False))
            for name in names}


# ----------------------------------------------------------------------------------- covariance
def _ledoit_wolf(gram_frob2: float, fourth: float, trace: float, n: int, d: int) -> float:
    """Ledoit–Wolf (2004) shrinkage intensity from ``‖S‖_F²``, ``Σ_i ‖x_i‖⁴``, ``tr S`` of the
    centred rows (the formula of ``sklearn.covariance.ledoit_wolf_shrinkage``)."""
    mu = trace / d
    beta = (fourth / n - gram_frob2) / (d * n)
    delta = (gram_frob2 - 2 * mu * trace + d * mu * mu) / d
    if delta <= 0:
        return 0.0
    return float(min(max(beta, 0.0), delta) / delta)


def _resolve_shrinkage(shrinkage: Any, n: int, d: int) -> str | float:
    if shrinkage == "auto":
        return "lw" if n < 10 * d else 0.0
    if shrinkage == "lw":
        return "lw"
    if shrinkage is None or shrinkage is False:
        return 0.0
    if not is_finite(shrinkage) or not 0 <= shrinkage <= 1:
        raise SpectraError(f"shrinkage must be 'auto', 'lw', None or a number in [0, 1]; got {shrinkage!r}")
    return float(shrinkage)


@dataclass
class GroupSpectrum:
    """Spectrum of one group. ``eigenvalues``: shape ``(m,)`` descending (``m = d`` exact, else the
    top ``n_components`` plus the spread tail, still ``(d,)``); ``bootstrap``: ``(n_boot, d)``."""

    name: str
    n: int
    eigenvalues: np.ndarray
    bootstrap: np.ndarray
    shrinkage: float
    solver: str
    metrics: dict[str, float] = field(default_factory=dict)
    intervals: dict[str, tuple[float, float]] = field(default_factory=dict)


def _block_moments(Z: np.ndarray, n_blocks: int, rng: np.random.Generator):
    """Per-block counts ``(B,)``, sums ``(B, m)``, second moments ``(B, m, m)`` of rows ``Z``."""
    n = len(Z)
    n_blocks = min(n_blocks, n)
    order = rng.permutation(n)
    parts = np.array_split(order, n_blocks)
    counts = np.array([len(p) for p in parts], dtype=np.float64)
    sums = np.stack([Z[p].sum(axis=0) for p in parts])
    grams = np.stack([Z[p].T @ Z[p] for p in parts])
    return counts, sums, grams, parts


def group_spectrum(X: Any, *, shrinkage: Any = "auto", n_boot: int = 100, n_blocks: int = 50, seed: int = 0,
                   solver: str = "auto", n_components: int = 256, name: str = "group",
                   top_k: int = 10, ci: float = 0.95, alpha_range: tuple[float, float] = (0.02, 0.5)) -> GroupSpectrum:
    """Eigen-spectrum of one group's covariance with bootstrap replicates and metrics.

    ``X``: shape ``(n, d)``, the group's rows. Returns a :class:`GroupSpectrum` whose eigenvalues
    have shape ``(d,)`` (descending, ≥ 0) and bootstrap replicates shape ``(n_boot, d)``.
    ``solver``: ``"exact"`` (d×d covariance + ``eigvalsh``), ``"randomized"`` (truncated SVD, top
    ``n_components``), or ``"auto"`` (exact when ``d ≤ 2048``).
    """
    from scipy.linalg import eigvalsh

    X = _check_matrix(X)
    n, d = X.shape
    if n < 3:
        raise SpectraError(f"group {name!r} has {n} rows; a covariance needs at least 3")
    n_boot = _check_int("n_boot", n_boot, 0)
    n_blocks = _check_int("n_blocks", n_blocks, 2)
    if solver not in ("auto", "exact", "randomized"):
        raise SpectraError(f"solver must be 'auto', 'exact' or 'randomized'; got {solver!r}")
    if not 0 < ci < 1:
        raise SpectraError(f"ci must be in (0, 1); got {ci!r}")
    mode = _resolve_shrinkage(shrinkage, n, d)
    solver = ("exact" if d <= EXACT_MAX_DIM else "randomized") if solver == "auto" else solver
    rng = np.random.default_rng(seed)
    mean = X.mean(axis=0)
    Xc = X - mean
    sq = np.einsum("ij,ij->i", Xc, Xc)
    trace = float(sq.sum() / n)
    if solver == "exact":
        basis = None
        Z = Xc
    else:
        from sklearn.utils.extmath import randomized_svd

        m = min(_check_int("n_components", n_components, 1), n, d)
        _, _, vt = randomized_svd(Xc, m, n_iter=4, random_state=int(rng.integers(2**31 - 1)))
        basis = vt.T  # (d, m)
        Z = Xc @ basis
    counts, sums, grams, parts = _block_moments(Z, n_blocks, rng)
    sq_blocks = np.array([sq[p].sum() for p in parts])
    m = Z.shape[1]

    def spectrum(cnt, s, g, sqsum, lw_s=None):
        total = float(np.sum(cnt))
        mu = s / total
        cov = g / total - np.outer(mu, mu)
        tr_full = float(sqsum / total - mu @ mu) if basis is not None else float(np.trace(cov))
        lam = np.clip(eigvalsh(cov, check_finite=False)[::-1], 0, None)
        if basis is not None and d > m:  # spread the remaining trace evenly over the other directions
            tail = max(tr_full - lam.sum(), 0.0) / (d - m)
            lam = np.concatenate([lam, np.full(d - m, tail)])
        if lw_s is None:
            if mode == "lw":
                frob2 = float((lam ** 2).sum())
                lw_s = _ledoit_wolf(frob2, float((sq ** 2).sum()), tr_full, int(total), d)
            else:
                lw_s = float(mode)
        if lw_s:
            lam = (1 - lw_s) * lam + lw_s * tr_full / d
        return lam, lw_s

    # Many small eigen-solves: multi-threaded LAPACK on a shared CPU is up to 100x slower than one
    # thread (measured: 0.7 s vs 8 ms for 384x384), so they run single-threaded.
    with one_blas_thread():
        eig, s_point = spectrum(counts, sums.sum(axis=0), grams.sum(axis=0), sq_blocks.sum())
        reps = np.empty((n_boot, d))
        if n_boot:
            flat = grams.reshape(len(counts), -1)
            draws = rng.multinomial(len(counts), np.full(len(counts), 1 / len(counts)), size=n_boot).astype(float)
            for r in range(n_boot):
                w = draws[r]
                reps[r], _ = spectrum(w @ counts, w @ sums, (w @ flat).reshape(m, m), w @ sq_blocks, s_point)
    result = GroupSpectrum(name=str(name), n=n, eigenvalues=eig, bootstrap=reps, shrinkage=float(s_point),
                           solver=solver)
    result.metrics = spectral_metrics(eig, top_k=top_k, alpha_range=alpha_range)
    if n_boot:
        rep_metrics = pd.DataFrame([spectral_metrics(r, top_k=top_k, alpha_range=alpha_range) for r in reps])
        result.intervals = {k: _basic_interval(result.metrics[k], rep_metrics[k].to_numpy(), ci) for k in METRICS}
    return result


def _basic_interval(point: float, replicates: np.ndarray, ci: float) -> tuple[float, float]:
    """Basic (reverse-percentile) bootstrap interval ``[2θ̂ − q_hi, 2θ̂ − q_lo]``. Resampling
    duplicates rows, which spreads a sample spectrum further (more dispersed eigenvalues), so the
    replicates are biased; the basic interval corrects that shift, the plain percentile does not."""
    reps = replicates[np.isfinite(replicates)]
    if not np.isfinite(point) or reps.size == 0:
        return float("nan"), float("nan")
    q_lo, q_hi = np.quantile(reps, [(1 - ci) / 2, 1 - (1 - ci) / 2])
    return float(2 * point - q_hi), float(2 * point - q_lo)


_FLOORS = {"trace_ratio": 1.0, "lambda1_ratio": 1.0, "alpha_diff": 0.0, "log_spectrum_distance": 0.0}


def spectrum_band(spec: "GroupSpectrum", ci: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Per-rank basic bootstrap band ``(low, high)`` of a group's eigenvalues, each ``(d,)``, ≥ 0."""
    if not spec.bootstrap.size:
        return spec.eigenvalues.copy(), spec.eigenvalues.copy()
    q_lo, q_hi = np.quantile(spec.bootstrap, [(1 - ci) / 2, 1 - (1 - ci) / 2], axis=0)
    return np.clip(2 * spec.eigenvalues - q_hi, 0, None), np.clip(2 * spec.eigenvalues - q_lo, 0, None)


# --------------------------------------------------------------------------------------- metrics
def spectral_metrics(eigenvalues: Any, *, top_k: int = 10,
                     alpha_range: tuple[float, float] = (0.02, 0.5)) -> dict[str, float]:
    """Metrics of one spectrum (Kaushik et al., ICML 2024, arXiv:2402.11742, §3).

    ``eigenvalues``: shape ``(m,)``, any order, ≥ 0. Returns ``trace``, ``lambda1``,
    ``topk_share`` (share of the trace in the top ``top_k``), ``effective_rank``
    (``exp`` of the entropy of ``λ/T``), ``participation_ratio`` (``T²/Σλ²``) and ``alpha`` (slope
    of ``−log λ_i`` against ``log i`` over ``i ∈ [alpha_range[0]·r, alpha_range[1]·r]``, ``r`` the
    number of positive eigenvalues; at least 3 points).
    """
    lam = np.sort(np.asarray(eigenvalues, dtype=np.float64).ravel())[::-1]
    if lam.size == 0 or not np.isfinite(lam).all():
        raise SpectraError("eigenvalues must be a non-empty finite vector")
    if lam[-1] < -1e-9 * max(lam[0], 1.0):
        raise SpectraError("eigenvalues must be non-negative (a covariance spectrum)")
    lam = np.clip(lam, 0, None)
    trace = float(lam.sum())
    if trace <= 0:
        raise SpectraError("the spectrum is all zero: the group's rows are identical")
    p = lam[lam > 0] / trace
    lo_f, hi_f = alpha_range
    if not 0 <= lo_f < hi_f <= 1:
        raise SpectraError(f"alpha_range must satisfy 0 <= low < high <= 1; got {alpha_range!r}")
    r = int((lam > 1e-12 * lam[0]).sum())
    lo = max(1, int(math.ceil(lo_f * r)))
    hi = max(lo + 2, int(math.floor(hi_f * r)))
    hi = min(hi, r)
    if hi - lo + 1 >= 3:
        i = np.arange(lo, hi + 1)
        slope = np.polyfit(np.log(i), np.log(lam[i - 1]), 1)[0]
        alpha = float(-slope)
    else:
        alpha = float("nan")
    return {"trace": trace, "lambda1": float(lam[0]),
            "topk_share": float(lam[:top_k].sum() / trace),
            "effective_rank": float(np.exp(-(p * np.log(p)).sum())),
            "participation_ratio": float(trace ** 2 / (lam ** 2).sum()),
            "alpha": alpha}


def imbalance_scores(spectra: Mapping[str, Any], *, top_k: int = 50,
                     alpha_range: tuple[float, float] = (0.02, 0.5)) -> dict[str, float]:
    """Imbalance between ≥ 2 spectra (``{group: eigenvalues (m,)}``): ``trace_ratio`` and
    ``lambda1_ratio`` (max/min), ``alpha_diff`` (max − min) and ``log_spectrum_distance`` (largest
    RMS difference of ``log λ_i`` over the top ``top_k`` between two groups). 0 / 1 = balanced."""
    if len(spectra) < 2:
        raise SpectraError(f"imbalance needs at least 2 groups; got {len(spectra)}")
    metrics = {g: spectral_metrics(v, alpha_range=alpha_range) for g, v in spectra.items()}
    logs = {}
    for g, v in spectra.items():
        lam = np.sort(np.asarray(v, dtype=np.float64))[::-1][:top_k]
        logs[g] = np.log(np.clip(lam, 1e-12 * max(lam[0], 1e-300), None))
    k = min(len(v) for v in logs.values())
    names = list(spectra)
    dist = max(float(np.sqrt(np.mean((logs[a][:k] - logs[b][:k]) ** 2)))
               for i, a in enumerate(names) for b in names[i + 1:])
    tr = [m["trace"] for m in metrics.values()]
    l1 = [m["lambda1"] for m in metrics.values()]
    al = [m["alpha"] for m in metrics.values()]
    return {"trace_ratio": max(tr) / min(tr), "lambda1_ratio": max(l1) / min(l1),
            "alpha_diff": float(np.nanmax(al) - np.nanmin(al)) if not np.isnan(al).all() else float("nan"),
            "log_spectrum_distance": dist}


# ------------------------------------------------------------------------------------------ probe
def plugin_error(w: Any, b: float, mean: Any, cov: Any, sign: int) -> float:
    """Gaussian plug-in error of the linear rule ``sign(wᵀx + b)`` on a group ``N(μ, Σ)`` whose
    correct side is ``sign`` (+1 or −1): ``Φ(−s (wᵀμ + b) / √(wᵀΣw))`` (Kaushik et al. 2024, eq. for
    the per-class error of a linear classifier in a Gaussian mixture). ``w``, ``mean``: ``(d,)``;
    ``cov``: ``(d, d)``, or a scalar = the variance ``wᵀΣw`` of the scores."""
    from scipy.stats import norm

    if sign not in (1, -1):
        raise SpectraError(f"sign must be +1 or -1; got {sign!r}")
    w = np.asarray(w, dtype=np.float64)
    cov = np.asarray(cov, dtype=np.float64)
    var = float(cov) if cov.ndim == 0 else float(w @ cov @ w)
    margin = sign * (float(w @ np.asarray(mean, dtype=np.float64)) + float(b))
    if var <= 0:
        return 0.0 if margin > 0 else 1.0
    return float(norm.cdf(-margin / math.sqrt(var)))


@dataclass
class ProbeResult:
    """Balanced linear probe. ``error``: per-group test error of the (argmax) classifier;
    ``ovr_error``: per-group error of that group's own linear rule (= ``error`` for 2 groups);
    ``predicted``: the Gaussian plug-in prediction of ``ovr_error``; ``gap`` = max − min ``error``."""

    error: dict[str, float]
    ovr_error: dict[str, float]
    predicted: dict[str, float]
    gap: float
    predicted_gap: float
    accuracy: float
    n_train: int
    n_test: int


def linear_probe(X: Any, groups: Any, *, seed: int = 0, test_size: float = 0.5, C: float = 1.0,
                 max_iter: int = 500) -> ProbeResult:
    """Logistic-regression probe predicting the group from ``X`` (``(n, d)``; ``groups`` ``(n,)``,
    balanced by the caller), trained on a stratified ``1 − test_size`` split, features standardised
    with training statistics. Two groups: one rule ``w, b`` (``s = +1`` for the second group in
    sorted order); more: one-vs-rest rules, class = argmax. The plug-in prediction uses the test
    rows' group mean and covariance through the score variance ``wᵀΣ_c w = var(X_c w)``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    X = _check_matrix(X)
    groups = _check_groups(groups, len(X))
    if not 0 < test_size < 1:
        raise SpectraError(f"test_size must be in (0, 1); got {test_size!r}")
    names = np.unique(groups)
    counts = np.array([(groups == g).sum() for g in names])
    if counts.min() < 4:
        raise SpectraError(f"group {str(names[counts.argmin()])!r} has {counts.min()} rows; the probe needs >= 4")
    idx_train, idx_test = train_test_split(np.arange(len(X)), test_size=test_size, stratify=groups,
                                           random_state=seed)
    centre = X[idx_train].mean(axis=0)
    scale = X[idx_train].std(axis=0)
    scale[scale == 0] = 1.0
    Xs = (X - centre) / scale
    Xtr, Xte, ytr, yte = Xs[idx_train], Xs[idx_test], groups[idx_train], groups[idx_test]
    rules = []  # (w, b) per binary rule, one per group (positive side = that group)
    targets = names[1:] if len(names) == 2 else names
    for g in targets:
        model = LogisticRegression(C=C, max_iter=max_iter, class_weight="balanced")
        with one_blas_thread():  # L-BFGS's matrix-vector products: 4.4x faster on one thread (alignscope.blas)
            model.fit(Xtr, (ytr == g).astype(int))
        rules.append((model.coef_[0].copy(), float(model.intercept_[0])))
    if len(names) == 2:
        w, b = rules[0]
        scores = Xte @ w + b
        pred = np.where(scores > 0, names[1], names[0])
        ovr = {}
        predicted = {}
        for g, s in ((names[0], -1), (names[1], 1)):
            rows = scores[yte == g]
            ovr[str(g)] = float(np.mean(s * rows <= 0))
            predicted[str(g)] = plugin_error(np.array([1.0]), 0.0, [rows.mean()], rows.var(), s)
    else:
        W = np.stack([r[0] for r in rules])
        B = np.array([r[1] for r in rules])
        all_scores = Xte @ W.T + B
        pred = names[all_scores.argmax(axis=1)]
        ovr, predicted = {}, {}
        for j, g in enumerate(names):
            rows = all_scores[yte == g, j]
            ovr[str(g)] = float(np.mean(rows <= 0))
            predicted[str(g)] = plugin_error(np.array([1.0]), 0.0, [rows.mean()], rows.var(), 1)
    error = {str(g): float(np.mean(pred[yte == g] != g)) for g in names}
    return ProbeResult(error=error, ovr_error=ovr, predicted=predicted,
                       gap=max(error.values()) - min(error.values()),
                       predicted_gap=max(predicted.values()) - min(predicted.values()),
                       accuracy=float(np.mean(pred == yte)), n_train=len(idx_train), n_test=len(idx_test))


# ----------------------------------------------------------------------------------------- report
@dataclass
class SpectralReport:
    """Everything :func:`spectral_imbalance` computed. ``table()``: one row per group."""

    spectra: dict[str, GroupSpectrum]
    imbalance: dict[str, float]
    imbalance_intervals: dict[str, tuple[float, float]]
    probe: ProbeResult | None
    config: dict[str, Any]

    def table(self) -> pd.DataFrame:
        rows = []
        for g, spec in self.spectra.items():
            row: dict[str, Any] = {"group": g, "n": spec.n, "shrinkage": spec.shrinkage}
            for k in METRICS:
                row[k] = spec.metrics[k]
                if k in spec.intervals:
                    row[f"{k}_lo"], row[f"{k}_hi"] = spec.intervals[k]
            if self.probe is not None:
                row["probe_error"] = self.probe.error[g]
                row["ovr_error"] = self.probe.ovr_error[g]
                row["predicted_error"] = self.probe.predicted[g]
            rows.append(row)
        return pd.DataFrame(rows)

    def summary(self) -> dict[str, Any]:
        """Flat dict: imbalance scores (with ``_lo``/``_hi``), probe gap, accuracy, config."""
        out: dict[str, Any] = dict(self.imbalance)
        for k, (lo, hi) in self.imbalance_intervals.items():
            out[f"{k}_lo"], out[f"{k}_hi"] = lo, hi
        if self.probe is not None:
            out.update(probe_gap=self.probe.gap, predicted_gap=self.probe.predicted_gap,
                       probe_accuracy=self.probe.accuracy)
        out["n_groups"] = len(self.spectra)
        out["n_per_group"] = self.config.get("n_per_group")
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"summary": jsonable(self.summary()), "groups": jsonable(self.table().to_dict(orient="records")),
                "config": jsonable(self.config)}


def spectral_imbalance(X: Any, groups: Any, *, n_per_group: int | None = None, shrinkage: Any = "auto",
                       n_boot: int = 100, ci: float = 0.95, top_k: int = 10, seed: int = 0,
                       probe: bool = True, solver: str = "auto", n_components: int = 256,
                       min_per_group: int = MIN_PER_GROUP, max_per_group: int | None = None) -> SpectralReport:
    """Spectral imbalance of ``X`` (``(n, d)``) across ``groups`` (``(n,)``) after balancing every
    group to ``n_per_group`` rows (default the smallest group, at most ``max_per_group``). See the module docstring; method of
    Kaushik et al., ICML 2024, arXiv:2402.11742. Returns a :class:`SpectralReport`."""
    X = _check_matrix(X)
    groups = _check_groups(groups, len(X))
    n_boot = _check_int("n_boot", n_boot, 0)
    index = balanced_indices(groups, n_per_group, seed=seed, min_per_group=min_per_group,
                             max_per_group=max_per_group)
    spectra = {g: group_spectrum(X[rows], shrinkage=shrinkage, n_boot=n_boot, seed=seed + 1 + i, solver=solver,
                                 n_components=n_components, name=g, top_k=top_k, ci=ci)
               for i, (g, rows) in enumerate(index.items())}
    imbalance = imbalance_scores({g: s.eigenvalues for g, s in spectra.items()})
    intervals: dict[str, tuple[float, float]] = {}
    if n_boot:
        reps = [imbalance_scores({g: s.bootstrap[r] for g, s in spectra.items()}) for r in range(n_boot)]
        frame = pd.DataFrame(reps)
        intervals = {}
        for k in IMBALANCE_SCORES:  # scores are max-type (≥ 1 or ≥ 0): clip the interval at that floor
            lo_k, hi_k = _basic_interval(imbalance[k], frame[k].to_numpy(), ci)
            intervals[k] = (max(lo_k, _FLOORS[k]), max(hi_k, _FLOORS[k]))
    result = None
    if probe:
        rows = np.concatenate(list(index.values()))
        result = linear_probe(X[rows], groups[rows], seed=seed)
    n_take = len(next(iter(index.values())))
    config = {"n_per_group": n_take, "shrinkage": shrinkage if isinstance(shrinkage, str) else shrinkage,
              "n_boot": n_boot, "ci": ci, "top_k": top_k, "seed": seed, "solver": next(iter(spectra.values())).solver,
              "dim": int(X.shape[1]), "groups": list(index),
              "method": "Kaushik et al. ICML 2024 (arXiv:2402.11742)"}
    return SpectralReport(spectra=spectra, imbalance=imbalance, imbalance_intervals=intervals, probe=result,
                          config=config)


def compare_encoders(reports: Mapping[str, SpectralReport]) -> pd.DataFrame:
    """One row per encoder: its imbalance scores (with intervals), probe gap and accuracy."""
    if not reports:
        raise SpectraError("no encoders to compare")
    rows = [{"encoder": name, "dim": rep.config.get("dim"), **rep.summary()} for name, rep in reports.items()]
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------------------- groups
def embeddings_report(embeddings: Any, data: Any, grouping: str, *, n_per_group: int | None = None,
                      n_boot: int = 100, seed: int = 0) -> SpectralReport:
    """:func:`spectral_imbalance` of one encoder's completion embeddings (an
    :class:`alignscope.embed.embeddings.Embeddings` of ``data``) over ``grouping`` (see :func:`group_labels`):
    what the Spectra page and ``alignscope spectra`` compute per encoder. ``n_per_group`` defaults to
    the smallest group's size, at most :data:`MAX_PER_GROUP`."""
    groups = group_labels(data, grouping, pair_index=embeddings.pair_index, label=embeddings.label,
                          matrix=embeddings.matrix, seed=seed)
    return spectral_imbalance(embeddings.matrix, groups, n_per_group=n_per_group, n_boot=n_boot, seed=seed,
                              max_per_group=MAX_PER_GROUP)


def group_labels(data: Any, grouping: str, *, pair_index: Any, label: Any = None, matrix: Any = None,
                 seed: int = 0) -> np.ndarray:
    """Group name per embedding row (shape ``(n,)``, str). ``grouping``: ``"label"`` (chosen /
    rejected; needs ``label``), ``"component"`` (argmax component of ISA's 2-component GMM on
    ``matrix``, the same mixture as the Select page's default) or a metadata column of ``data.frame`` (looked up through ``pair_index``)."""
    pair_index = np.asarray(pair_index)
    if grouping == "label":
        if label is None:
            raise SpectraError("grouping 'label' needs completion-level embeddings (unit='completion')")
        return np.where(np.asarray(label) == 1, "chosen", "rejected")
    if grouping == "component":
        if matrix is None:
            raise SpectraError("grouping 'component' needs the embedding matrix")
        from alignscope.select.selectors import ISASelector

        selector = ISASelector(covariance_type="full", seed=seed).fit(np.asarray(matrix, dtype=np.float32))
        selector.score_samples()
        component = selector.details_["component"]
        return np.array([f"component {int(c)}" for c in component])
    frame = data.frame
    if grouping not in frame.columns or grouping in ("prompt", "chosen", "rejected"):
        choices = ["label", "component"] + [c for c in getattr(data, "metadata_columns", [])]
        raise SpectraError(f"unknown grouping {grouping!r}; use one of: {', '.join(choices)}")
    values = frame[grouping].to_numpy(dtype=object)[pair_index]
    if pd.isna(pd.Series(values)).any():
        raise SpectraError(f"column {grouping!r} has missing values; fill or drop them first")
    return np.array([str(v) for v in values])


def sample_pairs(data: Any, grouping: str, n: int, *, seed: int = 0) -> Any:
    """A seeded sample of the pairs of ``data`` (a PreferenceData) before embedding: for a metadata
    column, ``n`` pairs per value (all pairs of smaller values); for ``label``/``component``, ``n``
    pairs in all. The sample is a new PreferenceData (its own fingerprint, so its own cache)."""
    n = _check_int("sample", n, 1)
    frame = data.frame
    rng = np.random.default_rng(seed)
    if grouping in ("label", "component"):
        rows = np.sort(rng.choice(len(frame), size=min(n, len(frame)), replace=False))
    else:
        if grouping not in frame.columns or grouping in ("prompt", "chosen", "rejected"):
            raise SpectraError(f"unknown grouping {grouping!r}; use label, component or a metadata column "
                               f"({', '.join(getattr(data, 'metadata_columns', [])) or 'none'})")
        values = frame[grouping].astype(str).to_numpy()
        rows = np.sort(np.concatenate([rng.choice(idx, size=min(n, len(idx)), replace=False)
                                       for idx in (np.flatnonzero(values == v) for v in np.unique(values))]))
    sub = frame.iloc[rows].reset_index(drop=True)
    return dataclasses.replace(data, frame=sub)  # same source: a job spec of it fails its fingerprint check

"""Gaussian mixture models by EM in torch: the cost centre of ISA, made fast and kept honest.

:class:`GaussianMixture` mirrors scikit-learn's ``sklearn.mixture.GaussianMixture`` (same
parameters, same attribute names and shapes, same EM loop, same convergence test on the mean
log-likelihood, same ``reg_covar`` handling) so that :meth:`GaussianMixture.to_sklearn` hands the
fitted parameters to scikit-learn as a reference. What differs is how the work is done:

* every pass over the data runs in chunks of rows; the ``(chunk, d) x (d, d)`` products (E-step
  Mahalanobis terms, M-step scatter matrices) run in ``float32`` BLAS when the problem is large
  (``dtype="auto"``) and everything ``d x d`` (Cholesky factors, log-determinants, parameters) and
  every per-row result (log-likelihoods, responsibilities) is ``float64``;
* the M-step scatter is accumulated about the previous means (a shifted, single-pass estimate) so
  that ``float32`` accumulation never subtracts two large numbers; one pass does the E-step of
  iteration ``t`` and the sufficient statistics of its M-step together;
* for two full-covariance components (and ``tied``), one ``(chunk, d) x (d, d + K)`` product gives
  every component's Mahalanobis terms (the two precisions diagonalised together), and the M-step
  statistics are taken in those coordinates, where each component is white; on hardware with
  fast bfloat16 products (CPUs with AVX512-BF16/AMX, CUDA) large problems run those scatter
  products in bf16 with their diagonals in float32 (``dtype="mixed"``, picked by ``"auto"``):
  ~4x float32's speed for the M-step on the 2-core test CPU, log-likelihoods within ~1e-2 of
  float32's and the same ISA selection (tests/test_isa.py, benchmarks/bench_isa.py);
* with ``"mixed"``, the early EM iterations on the fitting rows also run the E-step's product in
  bfloat16 when a check on the first chunk shows it moves the log-likelihoods little (see
  ``_low_precision_allowed``); scikit-learn's stopping rule applies to their bounds as it is, and
  a bound that drops by more than ``tol`` (bf16's noise floor reached) sends the remaining
  iterations to float32. The refinement on all rows and the scoring pass stay float32 (torch's
  CPU bf16 product rounds its output to 8 bits: log-likelihoods ~0.07 nats apart, too coarse for
  a ranking, fine for EM's first steps). ~1.5x faster selection on AlpacaEval's static
  embeddings on a CPU with AVX512-BF16, same subset;
* rows whose responsibility for a component is below ``skip_responsibility`` (default 1e-7,
  under float32 resolution) are left out of that component's scatter product;
* an optional seeded row subsample (``fit_sample``) for the EM iterations, followed by
  ``refine_steps`` EM iterations on all rows, then one scoring pass over all rows;
* it runs on a CUDA GPU when one is present (``device="auto"``), on the CPU otherwise.

It is a scikit-learn estimator (``BaseEstimator`` + ``DensityMixin``: ``get_params``/``set_params``,
``clone``, ``_parameter_constraints`` checked in ``fit``, ``validate_data`` on every input).

Why one module of ~890 lines: the EM loop, its fast paths (joint diagonalisation, mixed precision,
responsibility skipping, sampled fit + refinement) and the conversion to scikit-learn's estimator
must agree line for line; apart, a change to one path could silently drift from the reference.

Initialisation is scikit-learn's default recipe: k-means (k-means++ seeding, Lloyd iterations to a
fixed point) on the fitting rows, then one M-step from the hard labels.

Shapes (``K`` components, ``d`` features), as in scikit-learn: ``weights_ (K,)``,
``means_ (K, d)``; ``covariances_`` and ``precisions_cholesky_`` are ``(K, d, d)`` for ``full``,
``(d, d)`` for ``tied``, ``(K, d)`` for ``diag``, ``(K,)`` for ``spherical``.
"""
from __future__ import annotations

import math
import time
import warnings
from numbers import Integral, Real
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import Interval, InvalidParameterError, StrOptions

from alignscope.blas import one_blas_thread
from alignscope.errors import AlignscopeError
from alignscope.models import ModelError, cpu_bf16_flags, resolve_device

try:
    from sklearn.utils.validation import validate_data
except ImportError:  # scikit-learn < 1.6: the same check was a method
    def validate_data(estimator, X, **kwargs):
        return estimator._validate_data(X, **kwargs)

# No process-wide settings are changed on import. OMP_WAIT_POLICY=PASSIVE (idle OpenMP workers
# sleep instead of spinning; on an oversubscribed 2-core CPU spinning made small parallel torch ops
# 10-50x slower) only works when set before torch loads, which a library cannot promise: the
# entry points set it (scripts/setup.sh exports it for the app and the tests), a user may too.

__all__ = ["GaussianMixture", "GMMError", "GMMNotFittedError", "GMMParameterError", "COVARIANCE_TYPES",
           "check_matrix"]

COVARIANCE_TYPES = ("full", "tied", "diag", "spherical")
_LOG_2PI = math.log(2.0 * math.pi)
_EPS64 = float(np.finfo(np.float64).eps)
# Below this many multiply-adds per EM pass, float64 costs nothing noticeable: use it.
_FLOAT32_MIN_WORK = 5e9
_CHUNK_ENTRIES = 4_000_000
# A bfloat16 E-step is trusted for the early EM iterations when, on the first chunk, it moves the
# per-row log-likelihood by at most this much (median, nats): ~0.07 on real sentence embeddings,
# ~1.6 on the ill-conditioned synthetic mixture of benchmarks/bench_isa.py, which stays float32.
_LOW_PRECISION_MAX_ERROR = 0.25


class GMMError(AlignscopeError):
    """A mixture that cannot be fitted or evaluated; the message says what to change."""


class GMMParameterError(GMMError, InvalidParameterError):
    """A constructor parameter out of range (raised by ``fit``, as scikit-learn does)."""


class GMMNotFittedError(GMMError, NotFittedError):
    """``score_samples``/``predict``... before ``fit`` (scikit-learn's NotFittedError too)."""


def check_matrix(X: Any, *, name: str = "X", min_rows: int = 1) -> np.ndarray:
    """Return ``X`` as a C-contiguous 2-D float32/float64 array, refusing NaN/inf with one line.

    float32 and float64 inputs are kept as they are (no copy of a large float32 matrix); other
    numeric types become float64. The finiteness check runs in chunks so that it never allocates a
    boolean array the size of the data.
    """
    try:
        import torch

        if isinstance(X, torch.Tensor):
            X = X.detach().cpu().numpy()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    arr = np.asarray(X)
    if arr.dtype.kind not in "fiub":
        raise GMMError(f"{name} must be a numeric matrix, got dtype {arr.dtype}")
    if arr.ndim != 2:
        raise GMMError(f"{name} must be 2-D (n_points, n_features), got shape {arr.shape}")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    arr = np.ascontiguousarray(arr)
    n, d = arr.shape
    if n < min_rows:
        raise GMMError(f"{name} has {n} rows; at least {min_rows} are needed")
    if d < 1:
        raise GMMError(f"{name} has no columns")
    step = max(1, 4_000_000 // d)
    for start in range(0, n, step):
        block = arr[start:start + step]
        if not np.isfinite(block).all():
            bad = start + int(np.flatnonzero(~np.isfinite(block).all(axis=1))[0])
            raise GMMError(f"{name} contains NaN or infinite values (first in row {bad})")
    return arr


class GaussianMixture(DensityMixin, BaseEstimator):
    """A ``K``-component Gaussian mixture fitted by EM in torch (a scikit-learn estimator).

    Parameters follow ``sklearn.mixture.GaussianMixture``: ``n_components``, ``covariance_type``
    (``full`` | ``tied`` | ``diag`` | ``spherical``), ``tol`` (on the change of the mean
    log-likelihood per EM iteration), ``reg_covar`` (added to the covariance diagonals),
    ``max_iter``, ``n_init`` (best of that many seeded starts by final mean log-likelihood).
    Additions:

    ``seed``
        Seeds the row subsample and the k-means++ start; same seed, same machine → bitwise same
        parameters. (scikit-learn's ``random_state``; only integers.)
    ``fit_sample``
        Run the EM iterations on this many seeded rows (all rows when ``None`` or when the data is
        smaller), then ``refine_steps`` full EM iterations on all rows.
    ``dtype``
        ``"auto"`` (float32 products when an EM pass exceeds ~5e9 multiply-adds and there are at
        least 10 rows per feature, float64 otherwise; then ``"mixed"`` where bfloat16 products
        are fast), ``"float32"``, ``"float64"`` or ``"mixed"`` (float32 scoring, the M-step's
        scatter products in bfloat16 in whitened coordinates: see ``_accumulate_whitened``, and
        the first EM iterations' E-step products in bfloat16 where a check allows it; only for
        the joint two-component / tied passes).
    ``device``
        ``"auto"`` (CUDA when available), ``"cpu"``, ``"cuda"``, ``"cuda:1"`` ...
    ``chunk_size``
        Rows per chunk of every pass (default: ~16 M matrix entries per chunk).
    ``skip_responsibility``, ``kmeans_iter``
        See the module docstring.

    After ``fit(X)`` with ``X`` of shape ``(n, d)``: ``weights_ (K,)``, ``means_ (K, d)``,
    ``covariances_``, ``precisions_cholesky_``, ``precisions_`` (shapes as scikit-learn's),
    ``n_features_in_`` (and ``feature_names_in_`` for a DataFrame), ``n_iter_`` and
    ``converged_`` (of the EM run on the fitting rows), ``lower_bound_`` (mean log-likelihood of
    the last E-step, over all rows when ``refine_steps`` ran), ``fit_rows_``, ``compute_dtype_``,
    ``device_``, ``timings_`` (wall seconds of the fit's stages: ``sample_s`` drawing the fitting
    rows, ``init_s`` k-means and the first M-step, ``em_s`` the EM iterations on the fitting rows,
    ``full_step_s`` the ``refine_steps`` on all rows), ``low_precision_iter_`` (how many of the
    ``n_iter_`` iterations ran their E-step product in bfloat16) and ``low_precision_error_``
    (the check's median log-likelihood change in nats; ``None`` when not checked).

    scikit-learn conventions: ``__init__`` only stores the parameters; ``fit`` validates them
    (:class:`GMMParameterError`, also scikit-learn's ``InvalidParameterError``) and the input
    (``sklearn.utils.validation.validate_data``: 2-D, numeric, finite, not sparse; float32 is kept
    as float32 without a copy, other numbers become float64). Methods called before ``fit`` raise
    :class:`GMMNotFittedError` (also ``NotFittedError``). Errors about ``X`` are
    :class:`GMMError` (a ``ValueError``) with scikit-learn's message joined into one line.
    ``sklearn.utils.estimator_checks.check_estimator`` passes every check it runs on this class,
    for every covariance type (tests/test_gmm_sklearn.py; scikit-learn 1.9.1: 41 checks, none
    expected to fail; ``check_array_api_input`` is skipped by scikit-learn itself unless
    ``SCIPY_ARRAY_API=1``; not tried, array-API input is not supported: the EM runs in torch on
    numpy input). Not scikit-learn's: the seed is ``seed`` (an integer), not ``random_state``;
    there is no ``warm_start``, ``init_params``, ``weights_init``/``means_init``/``precisions_init``,
    ``sample``, ``bic``/``aic`` or ``verbose``.
    """

    _parameter_constraints: dict = {
        "n_components": [Interval(Integral, 1, None, closed="left")],
        "covariance_type": [StrOptions(set(COVARIANCE_TYPES))],
        "tol": [Interval(Real, 0.0, None, closed="left")],
        "reg_covar": [Interval(Real, 0.0, None, closed="left")],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "n_init": [Interval(Integral, 1, None, closed="left")],
        "seed": [Interval(Integral, 0, None, closed="left")],
        "fit_sample": [Interval(Integral, 1, None, closed="left"), None],
        "refine_steps": [Interval(Integral, 0, None, closed="left")],
        "dtype": [StrOptions({"auto", "float32", "float64", "mixed"})],
        "device": [str, None],
        "chunk_size": [Interval(Integral, 1, None, closed="left"), None],
        "skip_responsibility": [Interval(Real, 0.0, 1.0, closed="both")],
        "kmeans_iter": [Interval(Integral, 1, None, closed="left")],
    }

    def __init__(self, n_components: int = 2, *, covariance_type: str = "full", tol: float = 1e-3,
                 reg_covar: float = 1e-6, max_iter: int = 100, n_init: int = 1, seed: int = 0,
                 fit_sample: int | None = None, refine_steps: int = 0, dtype: str = "auto",
                 device: str = "auto", chunk_size: int | None = None,
                 skip_responsibility: float = 1e-7, kmeans_iter: int = 100):
        # Stored as given (scikit-learn's rule: get_params/set_params/clone round-trip them);
        # validated in fit.
        self.n_components = n_components
        self.covariance_type = covariance_type
        self.tol = tol
        self.reg_covar = reg_covar
        self.max_iter = max_iter
        self.n_init = n_init
        self.seed = seed
        self.fit_sample = fit_sample
        self.refine_steps = refine_steps
        self.dtype = dtype
        self.device = device
        self.chunk_size = chunk_size
        self.skip_responsibility = skip_responsibility
        self.kmeans_iter = kmeans_iter

    # ------------------------------------------------------------------------------------ public
    def fit(self, X: Any, y: Any = None) -> "GaussianMixture":
        """Fit on ``X`` of shape ``(n, d)`` (``n >= n_components``); ``y`` is ignored. Returns ``self``."""
        import torch

        try:
            self._validate_params()
        except InvalidParameterError as exc:
            raise GMMParameterError(_one_line(exc)) from None
        X = self._validate_X(X, reset=True)
        n, d = X.shape
        K = int(self.n_components)
        if n < K:
            raise GMMError(f"X has n_samples = {n} rows; a mixture of n_components = {K} needs at least {K}")
        self.device_ = _resolve_device(self.device)
        clock = time.perf_counter()
        rng = np.random.default_rng(int(self.seed))
        if self.fit_sample is not None and self.fit_sample < n:
            rows = np.sort(rng.choice(n, size=int(self.fit_sample), replace=False))
            X_fit = X[rows]
        else:
            X_fit = X
        self.fit_rows_ = len(X_fit)
        self.compute_dtype_, self.scatter_dtype_ = self._pick_dtype(len(X_fit), d)
        timings = {"sample_s": time.perf_counter() - clock, "init_s": 0.0, "em_s": 0.0, "full_step_s": 0.0}
        best = None
        self.low_precision_error_ = None
        init_seeds = rng.integers(0, 2**32 - 1, size=int(self.n_init))
        with torch.inference_mode():
            for init_seed in init_seeds:
                clock = time.perf_counter()
                params = self._initial_params(X_fit, int(init_seed))
                timings["init_s"] += time.perf_counter() - clock
                params, lower_bound, n_iter, converged, n_low = self._em(
                    X_fit, params, int(self.max_iter), stop_early=True, low_precision_first=True)
                timings["em_s"] += time.perf_counter() - clock
                if best is None or lower_bound > best[1]:
                    best = (params, lower_bound, n_iter, converged, n_low)
            params, lower_bound, n_iter, converged, n_low = best
            if self.refine_steps and X_fit is not X:
                clock = time.perf_counter()
                params, lower_bound, _, _, _ = self._em(X, params, int(self.refine_steps), stop_early=False)
                timings["full_step_s"] = time.perf_counter() - clock
        self._workspace = self._low_buffer = None
        timings["em_s"] -= timings["init_s"]
        self.timings_ = {key: round(value, 4) for key, value in timings.items()}
        self._params = params
        self.lower_bound_ = float(lower_bound)
        self.n_iter_ = int(n_iter)
        self.converged_ = bool(converged)
        self.low_precision_iter_ = int(n_low)
        self._export_params()
        return self

    def score_samples(self, X: Any) -> np.ndarray:
        """Per-row log-likelihood ``log sum_k pi_k N(x | mu_k, Sigma_k)``, float64 ``(n,)``."""
        return self.score_samples_and_labels(X)[0]

    def score_samples_and_labels(self, X: Any) -> tuple[np.ndarray, np.ndarray]:
        """One pass: log-likelihood ``(n,)`` float64 and argmax-responsibility component ``(n,)``."""
        import torch

        X = self._check_fitted_input(X)
        loglik = np.empty(len(X), dtype=np.float64)
        labels = np.empty(len(X), dtype=np.int64)
        with torch.inference_mode():
            for start, chunk in self._chunks(X):
                weighted = self._weighted_log_prob(chunk, self._params, len(X))
                stop = start + len(chunk)
                loglik[start:stop] = _log_sum_exp(weighted).cpu().numpy()
                labels[start:stop] = weighted.argmax(dim=1).cpu().numpy()
        self._workspace = None
        return loglik, labels

    def predict_proba(self, X: Any) -> np.ndarray:
        """Responsibilities ``(n, K)`` float64."""
        import torch

        X = self._check_fitted_input(X)
        out = np.empty((len(X), self.n_components), dtype=np.float64)
        with torch.inference_mode():
            for start, chunk in self._chunks(X):
                weighted = self._weighted_log_prob(chunk, self._params, len(X))
                out[start:start + len(chunk)] = torch.softmax(weighted, dim=1).cpu().numpy()
        self._workspace = None
        return out

    def predict(self, X: Any) -> np.ndarray:
        """Component with the largest responsibility ``(n,)``."""
        return self.score_samples_and_labels(X)[1]

    def score(self, X: Any, y: Any = None) -> float:
        """Mean log-likelihood (scikit-learn's ``score``); ``y`` is ignored."""
        return float(np.mean(self.score_samples(X)))

    def to_sklearn(self):
        """A fitted ``sklearn.mixture.GaussianMixture`` carrying exactly these parameters."""
        from sklearn.mixture import GaussianMixture as SkGaussianMixture

        self._require_fitted()
        sk = SkGaussianMixture(n_components=self.n_components, covariance_type=self.covariance_type,
                               tol=self.tol, reg_covar=self.reg_covar, max_iter=self.max_iter,
                               n_init=self.n_init, random_state=self.seed)
        sk.weights_ = self.weights_.copy()
        sk.means_ = self.means_.copy()
        sk.covariances_ = self.covariances_.copy()
        sk.precisions_cholesky_ = self.precisions_cholesky_.copy()
        sk.precisions_ = self.precisions_.copy()
        sk.converged_ = self.converged_
        sk.n_iter_ = self.n_iter_
        sk.lower_bound_ = self.lower_bound_
        sk.n_features_in_ = self.n_features_in_
        return sk

    # ---------------------------------------------------------------------------------- internals
    def _pick_dtype(self, n_fit: int, d: int):
        import torch

        """``(compute dtype, dtype of the whitened scatter products)``."""
        if self.dtype == "float64":
            return torch.float64, torch.float64
        if self.dtype == "float32":
            return torch.float32, torch.float32
        if self.dtype == "mixed":
            return torch.float32, torch.bfloat16
        per_component = d * d if self.covariance_type in ("full", "tied") else d
        work = n_fit * per_component * self.n_components
        if work >= _FLOAT32_MIN_WORK and n_fit >= 10 * d:
            return torch.float32, torch.bfloat16 if _native_bf16(self.device_) else torch.float32
        return torch.float64, torch.float64

    def _require_fitted(self) -> None:
        if not hasattr(self, "_params"):
            raise GMMNotFittedError("this GaussianMixture is not fitted yet: call fit(X) first")

    def _validate_X(self, X: Any, *, reset: bool) -> np.ndarray:
        """scikit-learn's input check (n_features_in_, feature names, dtype, finiteness, sparse),
        its message joined into one line, as a :class:`GMMError`. float32 stays float32 (no copy of a C-contiguous
        float32 matrix); every other numeric type becomes float64."""
        if type(X).__module__.startswith("torch"):
            X = X.detach().cpu().numpy()
        try:
            return validate_data(self, X, reset=reset, dtype=[np.float64, np.float32], order="C",
                                 ensure_min_samples=1)
        except GMMError:
            raise
        except ValueError as exc:
            raise GMMError(_one_line(exc)) from None

    def _check_fitted_input(self, X: Any) -> np.ndarray:
        self._require_fitted()
        return self._validate_X(X, reset=False)

    def _chunk_rows(self, d: int) -> int:
        if self.chunk_size is not None:
            return int(self.chunk_size)
        # ~4 M entries (16 MB of float32, ~10k rows at d = 384): big enough that each BLAS call is
        # efficient, small enough that the chunk and its work buffers stay in cache between the
        # element-wise ops (16 M entries, the earlier default, cost ~25 % more CPU per pass).
        return max(256, _CHUNK_ENTRIES // max(d, 1))

    def _chunks(self, X: np.ndarray):
        """Yield ``(start, chunk)`` with ``chunk`` a compute-dtype tensor on the device (a view of
        ``X`` when dtype and device already match)."""
        import torch

        step = self._chunk_rows(X.shape[1])
        for start in range(0, len(X), step):
            block = _from_numpy(X[start:start + step])
            yield start, block.to(device=self.device_, dtype=self.compute_dtype_)

    def _buffers(self, chunk):
        """Reusable work buffers for a chunk of ``rows``: ``(rows, d)``, ``(rows, d)`` and a
        ``(rows, d + K)`` view sharing the second one's memory. Allocating (and page-faulting)
        fresh tensors for every chunk cost seconds per pass on the 2-core machine."""
        import torch

        rows, d = chunk.shape
        wide = d + self.n_components
        key = (d, wide, chunk.dtype, chunk.device)
        work = getattr(self, "_workspace", None)
        if work is None or work[0] != key or work[1].shape[0] < rows:
            capacity = max(rows, self._chunk_rows(d))
            work = (key, torch.empty((capacity, d), dtype=chunk.dtype, device=chunk.device),
                    torch.empty(capacity * wide, dtype=chunk.dtype, device=chunk.device))
            self._workspace = work
        flat = work[2]
        return work[1][:rows], flat[:rows * d].view(rows, d), flat[:rows * wide].view(rows, wide)

    def _weighted_log_prob(self, chunk, params, pass_rows: int, *, keep_z: bool = False,
                           low_precision: bool = False):
        """``log pi_k + log N(x | mu_k, Sigma_k)`` as float64 ``(rows, K)`` for one chunk of a pass
        over ``pass_rows`` rows. With ``keep_z``, returns ``(weighted, z)``: ``z`` the chunk in the
        joint transform's coordinates (``None`` unless the pass runs in joint mode). With
        ``low_precision`` (joint mode only) the product runs in ``cast["product_dtype"]``."""
        import torch

        cast = self._cast(params, pass_rows)
        d = chunk.shape[1]
        maha = []
        z = None
        if cast["mode"] == "joint":
            # One (rows, d) x (d, d + K) product serves every component (see _joint_transform):
            # sum_j s_kj (z_j - o_kj)^2 = (z^2) . s_k - 2 z . (s_k o_k) + sum_j s_kj o_kj^2, and the
            # K linear terms z . (s_k o_k) ride along as K extra columns of the transform (a skinny
            # (rows, d) x (d, K) product on its own ran at a third of memory speed).
            buf_a, _, wide = self._buffers(chunk)
            centred = torch.sub(chunk, cast["shift"], out=buf_a)
            if low_precision:
                low = self._low_precision_copy(centred, cast["product_dtype"])
                product = wide.copy_(low @ cast["transform_wide_low"])
            else:
                product = torch.matmul(centred, cast["transform_wide"], out=wide)
            z, linear = product[:, :d], product[:, d:]
            squares = torch.mul(z, z, out=buf_a)
            plain_norm = None
            columns = []
            for k in range(self.n_components):
                if cast["unit_scale"][k]:
                    if plain_norm is None:
                        plain_norm = squares.sum(dim=1)
                    columns.append(plain_norm)
                else:
                    columns.append(torch.mv(squares, cast["scales"][k]))
            quadratic = torch.stack(columns, dim=1)
            maha = (quadratic - 2.0 * linear).to(torch.float64) + cast["offset_terms"][None, :]
        else:
            for k in range(self.n_components):
                diff = chunk - cast["means"][k]
                if self.covariance_type == "full":
                    y = diff @ cast["prec_chol"][k]
                    maha.append((y * y).sum(dim=1))
                elif self.covariance_type == "diag":
                    maha.append((diff * diff) @ cast["prec_sq"][k])
                else:  # spherical
                    maha.append((diff * diff).sum(dim=1) * cast["prec_sq"][k])
            maha = torch.stack(maha, dim=1).to(torch.float64)
        log_prob = -0.5 * (d * _LOG_2PI + maha) + params["log_det"][None, :]
        weighted = log_prob + torch.log(params["weights"])[None, :]
        return (weighted, z) if keep_z else weighted

    def _cast(self, params, n_rows: int):
        """Compute-dtype copies of the parameters for a pass over ``n_rows`` rows (memoised). The
        joint transform (one eigendecomposition) pays off from ``32 d`` rows in the pass."""
        import torch

        cast = params["cast"]
        dt = self.compute_dtype_
        if "means" not in cast:
            cast["means"] = params["means"].to(dt)
            if self.covariance_type == "full":
                cast["prec_chol"] = params["prec_chol"].to(dt)
            elif self.covariance_type in ("diag", "spherical"):
                cast["prec_sq"] = (params["prec_chol"] ** 2).to(dt)
        d = params["means"].shape[1]
        joint = self.covariance_type == "tied" or (
            self.covariance_type == "full" and self.n_components == 2 and n_rows >= 32 * d)
        if not joint:
            cast["mode"] = "per-component"
            return cast
        if "transform" not in cast:
            transform, scales = _joint_transform(self.covariance_type, params["prec_chol"])
            # Centre on the mixture mean first so that float32 products never subtract two large
            # numbers: z - offset_k below equals (x - mu_k) @ transform up to rounding.
            shift = (params["weights"][:, None] * params["means"]).sum(0)
            offsets = (params["means"] - shift) @ transform  # (K, d), float64
            if scales is None:
                scales = torch.ones_like(offsets)
            cast["shift"] = shift.to(dt)
            cast["transform"] = transform.to(dt)
            # [T | T (s_k o_k)^T]: the product yields z and the K linear terms z . (s_k o_k)
            cast["transform_wide"] = torch.cat([transform, transform @ (scales * offsets).T], dim=1).to(dt)
            cast["scales"] = scales.to(dt).contiguous()  # (K, d): row k weighs component k's squares
            cast["unit_scale"] = [bool((row == 1).all()) for row in scales]
            cast["offsets"] = offsets.to(dt)  # (K, d): mu_k in z coordinates
            cast["root_scales"] = scales.sqrt().to(dt).contiguous()
            cast["product_dtype"] = self.scatter_dtype_
            cast["transform_wide_low"] = cast["transform_wide"].to(self.scatter_dtype_)
            cast["offset_terms"] = (scales * offsets * offsets).sum(1)  # (K,), float64
        cast["mode"] = "joint"
        return cast

    def _accumulate(self, stats, chunk, resp, means) -> None:
        """Add one chunk's M-step sufficient statistics, taken about ``means`` (compute dtype)."""
        import torch

        resp_c = resp.to(chunk.dtype)
        n_rows = resp.shape[0]
        buf_a, buf_b, _ = self._buffers(chunk)
        for k in range(self.n_components):
            stats["n"][k] += resp[:, k].sum()
            r = resp_c[:, k]
            keep = None
            if self.skip_responsibility > 0:
                mask = resp[:, k] > self.skip_responsibility
                n_keep = int(mask.sum())
                if n_keep == 0:
                    continue
                if n_keep < 0.9 * n_rows:  # worth a gather
                    keep = mask.nonzero().squeeze(1)
            if keep is None:
                diff = torch.sub(chunk, means[k], out=buf_a)
            else:
                diff = torch.index_select(chunk, 0, keep, out=buf_a[:len(keep)]).sub_(means[k])
                r = r.index_select(0, keep)
            stats["s1"][k] += (r @ diff).to(torch.float64)
            if self.covariance_type in ("full", "tied"):
                weighted = torch.mul(diff, r[:, None], out=buf_b[:len(diff)])
                stats["s2"][k] += _symmetric_product(weighted, diff).to(torch.float64)
            else:
                stats["s2"][k] += (r @ (diff * diff)).to(torch.float64)

    def _accumulate_whitened(self, stats, z, resp, cast) -> None:
        """Add one chunk's M-step statistics in each component's whitened coordinates.

        In the joint transform's coordinates ``z`` (see :func:`_joint_transform`) component ``k``
        has mean ``o_k`` and, at the current parameters, covariance ``diag(1 / s_k)``; so
        ``w = (z - o_k) * sqrt(s_k)`` is white for it. The statistics ``sum r w`` and
        ``sum r w w^T`` (about ``o_k``) are mapped back to the data's coordinates by
        :func:`_whitened_to_data`. Working where every direction has unit scale is what lets the
        ``(d, d)`` products run in bfloat16 (``cast["product_dtype"]``, ~4x float32's speed on CPUs
        with AVX512-BF16/AMX): the rounding of the inputs is relative, unbiased and averages out
        over rows, and the rounding of each chunk's result to 8 bits is relative to entries of
        size ~``rows`` on the diagonal, ~``sqrt(rows)`` elsewhere — equally small in every
        direction, so small-variance directions lose nothing (in the data's own coordinates they
        would be swamped).
        """
        import torch

        n_rows = resp.shape[0]
        buf_a, _, _ = self._buffers(z)
        product_dtype = cast["product_dtype"]
        for k in range(self.n_components):
            r = resp[:, k]
            stats["n"][k] += r.sum()
            keep = None
            if self.skip_responsibility > 0:
                mask = r > self.skip_responsibility
                n_keep = int(mask.sum())
                if n_keep == 0:
                    continue
                if n_keep < 0.9 * n_rows:  # worth a gather
                    keep = mask.nonzero().squeeze(1)
            if keep is None:
                white = torch.sub(z, cast["offsets"][k], out=buf_a)
            else:
                white = torch.index_select(z, 0, keep, out=buf_a[:len(keep)]).sub_(cast["offsets"][k])
                r = r.index_select(0, keep)
            if not cast["unit_scale"][k]:
                white.mul_(cast["root_scales"][k])
            root = r.sqrt().to(white.dtype)
            white.mul_(root[:, None])  # rows sqrt(r) w: the scatter is white^T white
            stats["s1"][k] += torch.mv(white.T, root).to(torch.float64)
            if product_dtype == white.dtype:
                stats["s2"][k] += _symmetric_product(white, white).to(torch.float64)
                continue
            factor = self._low_precision_copy(white, product_dtype)
            scatter = (factor.T @ factor).to(torch.float64)
            # The diagonal (~rows, the entries whose 8-bit rounding would matter) in full precision.
            scatter.diagonal().copy_(white.square_().sum(dim=0))
            stats["s2"][k] += scatter

    def _low_precision_copy(self, white, dtype):
        """``white`` in ``dtype``, written into a reused buffer."""
        import torch

        held = getattr(self, "_low_buffer", None)
        if held is None or held.dtype != dtype or held.device != white.device or held.numel() < white.numel():
            held = torch.empty(max(white.numel(), self._chunk_rows(white.shape[1]) * white.shape[1]),
                               dtype=dtype, device=white.device)
            self._low_buffer = held
        out = held[:white.numel()].view(white.shape)
        return out.copy_(white)

    def _new_stats(self, d: int):
        import torch

        kw = dict(dtype=torch.float64, device=self.device_)
        K = self.n_components
        s2_shape = (K, d, d) if self.covariance_type in ("full", "tied") else (K, d)
        return {"n": torch.zeros(K, **kw), "s1": torch.zeros(K, d, **kw),
                "s2": torch.zeros(s2_shape, **kw)}

    def _em(self, X: np.ndarray, params, n_steps: int, *, stop_early: bool,
            low_precision_first: bool = False):
        """``n_steps`` EM iterations (sklearn's loop and stopping rule when ``stop_early``).

        With ``low_precision_first`` (and a mixed-precision joint pass whose check passes), the
        iterations run the E-step product in bfloat16 until one's bound drops by more than
        ``tol`` (bf16's noise floor); later ones run in float32. The stopping rule is sklearn's.
        Returns ``(params, lower_bound, n_iter, converged, low-precision iterations)``."""
        import torch

        lower_bound = -np.inf
        converged = False
        n_iter = n_low = 0
        n = len(X)
        low = low_precision_first
        for n_iter in range(1, n_steps + 1):
            previous = lower_bound
            stats = self._new_stats(X.shape[1])
            total = torch.zeros((), dtype=torch.float64, device=self.device_)
            cast = self._cast(params, n)
            if low:
                low = self._low_precision_allowed(X, params, cast)
            for _, chunk in self._chunks(X):
                weighted, z = self._weighted_log_prob(chunk, params, n, keep_z=True, low_precision=low)
                log_norm = _log_sum_exp(weighted)
                total += log_norm.sum()
                resp = torch.exp(weighted - log_norm[:, None])
                if z is None:
                    self._accumulate(stats, chunk, resp, cast["means"])
                else:
                    self._accumulate_whitened(stats, z, resp, cast)
            lower_bound = float(total) / n
            if cast["mode"] == "joint":
                stats, centres = _whitened_to_data(stats, cast)
            else:
                centres = params["means"]
            params = self._params_from_stats(stats, centres, n)
            gain = lower_bound - previous
            n_low += low
            if stop_early and abs(gain) < self.tol:
                converged = True
                break
            if low:
                low = gain >= -self.tol  # a loss: bf16's noise floor, not convergence
        return params, lower_bound, n_iter, converged, n_low

    def _low_precision_allowed(self, X: np.ndarray, params, cast) -> bool:
        """Whether this pass may run its E-step product in ``cast["product_dtype"]``: a joint pass
        with a narrower product dtype, and (checked once per fit, on the first chunk) a median
        log-likelihood change within ``_LOW_PRECISION_MAX_ERROR`` nats."""
        if cast["mode"] != "joint" or cast["product_dtype"] == self.compute_dtype_:
            return False
        if self.low_precision_error_ is None:
            _, chunk = next(self._chunks(X))
            exact = _log_sum_exp(self._weighted_log_prob(chunk, params, len(X)))
            low = _log_sum_exp(self._weighted_log_prob(chunk, params, len(X), low_precision=True))
            self.low_precision_error_ = round(float((low - exact).abs().median()), 4)
        return self.low_precision_error_ <= _LOW_PRECISION_MAX_ERROR

    def _initial_params(self, X_fit: np.ndarray, seed: int):
        """k-means (k-means++ seeding, Lloyd to a fixed point) → hard labels → one M-step."""
        import torch

        centers, labels = self._kmeans(X_fit, seed)
        stats = self._new_stats(X_fit.shape[1])
        center_t = torch.as_tensor(centers, dtype=torch.float64, device=self.device_)
        cast_means = center_t.to(self.compute_dtype_)
        step = self._chunk_rows(X_fit.shape[1])
        for start, chunk in self._chunks(X_fit):
            lab = torch.as_tensor(labels[start:start + step], device=self.device_)
            resp = torch.nn.functional.one_hot(lab, self.n_components).to(torch.float64)
            self._accumulate(stats, chunk, resp, cast_means)
        return self._params_from_stats(stats, center_t, len(X_fit))

    def _kmeans(self, X_fit: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        import torch

        K = self.n_components
        n = len(X_fit)
        rng = np.random.default_rng(seed)
        # k-means++ (greedy, 2 + log K candidates per step, as scikit-learn) on at most 20k rows.
        seed_rows = X_fit if n <= 20_000 else X_fit[np.sort(rng.choice(n, 20_000, replace=False))]
        pts = _from_numpy(seed_rows).to(device=self.device_, dtype=torch.float64)
        centers = [pts[int(rng.integers(len(pts)))]]
        closest = ((pts - centers[0]) ** 2).sum(dim=1)
        n_trials = 2 + int(math.log(K))
        for _ in range(1, K):
            total = float(closest.sum())
            if total <= 0:
                centers.append(pts[int(rng.integers(len(pts)))])
                continue
            cumulative = torch.cumsum(closest, 0).cpu().numpy()
            picks = np.searchsorted(cumulative, rng.random(n_trials) * total)
            picks = np.minimum(picks, len(pts) - 1)
            candidates = pts[torch.as_tensor(picks, device=self.device_)]
            dist = torch.cdist(candidates, pts) ** 2
            potentials = torch.minimum(dist, closest[None, :])
            best = int(potentials.sum(dim=1).argmin())
            centers.append(candidates[best])
            closest = potentials[best]
        # Lloyd iterations on the same <= 20k rows (float64), stopped as scikit-learn stops:
        # labels unchanged, or squared center shift <= 1e-4 x the mean feature variance.
        centers_t = torch.stack(centers)
        tol = 1e-4 * float(pts.var(dim=0).mean())
        previous = None
        for _ in range(self.kmeans_iter):
            # nearest center by |c|^2 - 2 x.c (|x|^2 is the same for every center)
            lab = ((centers_t * centers_t).sum(1)[None, :] - 2.0 * _times_rows(pts, centers_t)).argmin(dim=1)
            counts = torch.bincount(lab, minlength=K)
            sums = torch.zeros_like(centers_t).index_add_(0, lab, pts)
            new_centers = sums / counts.clamp(min=1)[:, None].to(pts.dtype)
            for k in torch.nonzero(counts == 0).flatten().tolist():  # empty cluster: farthest row
                new_centers[k] = pts[int(torch.cdist(pts, centers_t).min(dim=1).values.argmax())]
            shift = float(((new_centers - centers_t) ** 2).sum())
            centers_t = new_centers
            if shift <= tol or (previous is not None and torch.equal(lab, previous)):
                break
            previous = lab
        # Hard labels of every fitting row for the first M-step.
        labels = np.empty(n, dtype=np.int64)
        cast = centers_t.to(self.compute_dtype_)
        cast_sq = (cast * cast).sum(1)[None, :]
        for start, chunk in self._chunks(X_fit):
            dist = cast_sq - 2 * _times_rows(chunk, cast)  # + |x|^2, the same for every center
            labels[start:start + len(chunk)] = dist.argmin(dim=1).cpu().numpy()
        return centers_t.to(torch.float64).cpu().numpy(), labels

    def _params_from_stats(self, stats, shift, n_rows: int):
        """M-step from statistics accumulated about ``shift`` (the previous means)."""
        import torch

        K = self.n_components
        nk = stats["n"] + 10 * _EPS64  # as scikit-learn: keeps empty components finite
        mean_offset = stats["s1"] / nk[:, None]
        means = shift + mean_offset
        d = means.shape[1]
        eye = torch.eye(d, dtype=torch.float64, device=self.device_)
        ct = self.covariance_type
        if ct in ("full", "tied"):
            scatter = stats["s2"] - nk[:, None, None] * mean_offset[:, :, None] * mean_offset[:, None, :]
            scatter = 0.5 * (scatter + scatter.transpose(1, 2))
            if ct == "full":
                cov = scatter / nk[:, None, None] + self.reg_covar * eye
            else:
                cov = scatter.sum(0) / nk.sum() + self.reg_covar * eye
            chol, info = torch.linalg.cholesky_ex(cov)
            if bool((info != 0).any()):
                raise GMMError(
                    "a covariance matrix is not positive definite (too few rows per component, or "
                    "duplicated/collinear features); raise reg_covar, use covariance_type='diag' "
                    "or reduce the dimension with pca_dim")
            eye_b = eye if ct == "tied" else eye.expand(K, d, d)
            prec_chol = torch.linalg.solve_triangular(chol, eye_b, upper=False).transpose(-1, -2)
            diag = torch.diagonal(prec_chol, dim1=-2, dim2=-1)
            log_det = torch.log(diag).sum(-1)
            log_det = log_det.expand(K) if ct == "tied" else log_det
        else:
            var = stats["s2"] / nk[:, None] - mean_offset * mean_offset + self.reg_covar
            if ct == "spherical":
                var = var.mean(dim=1)
            if bool((var <= 0).any()):
                raise GMMError("a variance is not positive; raise reg_covar")
            cov = var
            prec_chol = 1.0 / torch.sqrt(var)
            log_det = torch.log(prec_chol).sum(-1) if ct == "diag" else d * torch.log(prec_chol)
        weights = nk / nk.sum()
        return {"weights": weights, "means": means, "cov": cov, "prec_chol": prec_chol,
                "log_det": log_det.clone(), "cast": {}}

    def _export_params(self) -> None:
        p = self._params
        self.weights_ = p["weights"].cpu().numpy()
        self.means_ = p["means"].cpu().numpy()
        self.covariances_ = p["cov"].cpu().numpy()
        self.precisions_cholesky_ = p["prec_chol"].cpu().numpy()
        pc = self.precisions_cholesky_
        if self.covariance_type == "full":
            self.precisions_ = np.einsum("kij,klj->kil", pc, pc)
        elif self.covariance_type == "tied":
            self.precisions_ = pc @ pc.T
        else:
            self.precisions_ = pc ** 2


def _one_line(exc: Exception) -> str:
    return " ".join(part.strip() for part in str(exc).splitlines() if part.strip())


def _from_numpy(array: np.ndarray):
    """``torch.from_numpy``, also for read-only arrays (a memory map opened ``"r"``): tensors made
    from ``X`` are only ever read here, so torch's warning about non-writable arrays does not apply."""
    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(array)


def _times_rows(matrix, rows):
    """``matrix @ rows.T`` for a few ``rows`` (``(n, d) x (K, d) -> (n, K)``): K matrix-vector
    products, which ran ~3x faster than one skinny GEMM on the 2-core CPU."""
    import torch

    if rows.shape[0] > 8:
        return matrix @ rows.T
    return torch.stack([torch.mv(matrix, row) for row in rows], dim=1)


def _symmetric_product(weighted, diff):
    """``weighted.T @ diff`` for a symmetric result (``weighted = diff * r``): only the block rows
    on and above the diagonal are multiplied (``B`` block rows: ``(B + 1) / 2B`` of the
    multiply-adds; 5/8 for ``B = 4``), the rest is mirrored. BLAS's own ``syrk`` was slower than
    the full product on the 2-core test machine (OpenBLAS); bfloat16 products are done whole."""
    import torch

    d = diff.shape[1]
    blocks = 4 if d >= 128 else 2 if d >= 64 else 1
    if blocks == 1 or diff.dtype == torch.bfloat16:  # bf16 products: smaller blocks ran no faster
        return weighted.T @ diff
    edges = [round(i * d / blocks) for i in range(blocks + 1)]
    out = torch.empty((d, d), dtype=diff.dtype, device=diff.device)
    for a, b in zip(edges[:-1], edges[1:]):
        row = weighted[:, a:b].T @ diff[:, a:]  # block row a..b, from the diagonal rightwards
        out[a:b, a:] = row
        out[b:, a:b] = row[:, b - a:].T
    return out


def _log_sum_exp(weighted):
    """Row-wise log-sum-exp of ``(rows, K)``; ``logaddexp`` for K = 2 (torch's generic
    ``logsumexp`` over a length-2 axis was ~10x slower on the 2-core CPU)."""
    import torch

    if weighted.shape[1] == 2:
        return torch.logaddexp(weighted[:, 0], weighted[:, 1])
    return torch.logsumexp(weighted, dim=1)


def _resolve_device(device: str):
    """:func:`alignscope.models.resolve_device` as a torch device, its error as the mixture's own."""
    import torch

    try:
        return torch.device(resolve_device(device))
    except ModelError as err:
        raise GMMError(str(err)) from None


def _whitened_to_data(stats, cast):
    """Statistics of :meth:`GaussianMixture._accumulate_whitened` in the data's coordinates.

    With ``z = (x - shift) T`` (the float32 ``shift`` and ``T`` the pass used, here in float64) and
    ``w = (z - o_k) diag(sqrt(s_k))``: ``x - c_k = w B_k`` with ``B_k = diag(1 / sqrt(s_k)) T^-1``
    and ``c_k = shift + o_k T^-1``. Returns (statistics about ``c_k``, ``c`` of shape ``(K, d)``).
    """
    import torch

    transform = cast["transform"].to(torch.float64)
    eye = torch.eye(transform.shape[0], dtype=torch.float64, device=transform.device)
    inverse = torch.linalg.solve(transform, eye)
    offsets = cast["offsets"].to(torch.float64)
    centres = cast["shift"].to(torch.float64)[None, :] + offsets @ inverse
    back = inverse[None, :, :] / cast["root_scales"].to(torch.float64)[:, :, None]  # (K, d, d)
    s1 = torch.einsum("kd,kde->ke", stats["s1"], back)
    s2 = back.transpose(1, 2) @ stats["s2"] @ back
    return {"n": stats["n"], "s1": s1, "s2": s2}, centres


def _native_bf16(device) -> bool:
    """Whether bfloat16 matrix products are fast here: a CUDA GPU with bf16 support, or a CPU with
    AVX512-BF16 or AMX instructions (oneDNN's native kernels; ~4x float32 on the 2-core AMD EPYC
    test machine). Elsewhere CPU bf16 is emulated and no faster than float32."""
    import torch

    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    return bool(cpu_bf16_flags())


def _joint_transform(covariance_type: str, prec_chol):
    """One linear map that yields every component's Mahalanobis distance (float64 algebra).

    ``tied``: the shared precision Cholesky factor ``U`` (``maha_k = ||(x - mu_k) U||^2``).
    ``full`` with two components: the two precisions ``P1 = U1 U1^T`` and ``P2 = U2 U2^T`` are
    diagonalised together. With ``G = U1^{-1} U2`` and ``G G^T = V diag(lam) V^T`` (symmetric
    eigendecomposition), ``T = U1 V`` gives ``maha_1 = ||(x - mu_1) T||^2`` (V is orthogonal) and
    ``maha_2 = sum_j lam_j ((x - mu_2) T)_j^2``. That halves the dominant ``n d^2`` cost of every
    E-step and of scoring. Returns ``(transform (d, d), scales (K, d) or None)``.
    """
    import torch

    if covariance_type == "tied":
        return prec_chol, None
    upper1, upper2 = prec_chol[0], prec_chol[1]
    g = torch.linalg.solve_triangular(upper1, upper2, upper=True)
    # numpy's LAPACK eigh on one thread: torch's CPU eigh, and a multi-threaded OpenBLAS competing
    # with torch's spinning OpenMP workers, were both 50-100x slower on the 2-core test machine.
    with one_blas_thread():
        lam, vecs = np.linalg.eigh((g @ g.T).cpu().numpy())
    lam = torch.as_tensor(lam, dtype=upper1.dtype, device=upper1.device)
    vecs = torch.as_tensor(vecs, dtype=upper1.dtype, device=upper1.device)
    transform = upper1 @ vecs
    scales = torch.stack([torch.ones_like(lam), lam])
    return transform, scales

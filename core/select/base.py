"""The interface every selector shares: :class:`Selector`, a scikit-learn estimator that ranks points.

``fit(X)`` → ``self``, ``score_samples(X)`` → one float per point where **higher = keep**,
``select(X, k=None, fraction=None)`` → a :class:`~alignscope.select.selection.Selection`. The methods
live in :mod:`alignscope.select.selectors` (ISA and the baselines), :mod:`alignscope.select.pairwise`
(length, margin, rds) and :mod:`alignscope.select.lm_margin`; this module is what they have in common,
so that each of those modules can import it without importing the others.
"""
from __future__ import annotations

import inspect
import time
from typing import Any, ClassVar, Sequence

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils import check_array

from alignscope import __version__
from alignscope.files import jsonable
from alignscope.options import is_int
from alignscope.select.gmm import check_matrix, validate_data
from alignscope.select.selection import (SELECTION_FORMAT_VERSION, Selection, SelectionError, distinct_integers,
                                         order_by_score, resolve_k)

__all__ = ["Selector", "seeded_order"]

# scikit-learn 1.6 renamed check_array's force_all_finite to ensure_all_finite
_FINITE_KEYWORD = ("ensure_all_finite" if "ensure_all_finite" in inspect.signature(check_array).parameters
                   else "force_all_finite")


# ============================================================================== base class
class Selector(BaseEstimator):
    """Common interface, a scikit-learn estimator (``sklearn.base.BaseEstimator``).

    As scikit-learn requires, ``__init__`` only stores its keyword arguments (so ``get_params``,
    ``set_params``, ``clone`` and parameter grids work); they are validated when ``fit`` runs (and by
    :func:`make_selector`, so the CLI fails before any work), with a one-line
    :class:`SelectionError`. Fitted state ends with ``_``. Subclasses set ``method`` and implement
    ``_fit`` / ``_score``; ``_score(X)`` returns ``(scores (n,) float64, extra columns dict of (n,)
    arrays)``. ``timings_`` holds the wall seconds of the last fit/select by stage (``check_s``,
    ``fit_s``, ``score_s``, ``table_s``; ISA adds its mixture's ``sample_fit_s`` and ``full_step_s``).

    Selectors are *rankers*, not predictors: ``fit(X)`` learns on the pool it will rank,
    ``score_samples(X)`` gives one float per point (higher = keep, like a density's
    ``score_samples``), ``select`` returns a :class:`~alignscope.select.selection.Selection`. Input goes
    through scikit-learn's ``validate_data`` (2-D numeric, no sparse or complex input,
    ``n_features_in_``), then alignscope's finiteness check that names the bad row.

    scikit-learn's estimator checks (``check_estimator``) pass for ``isa``, ``random``,
    ``density`` and ``kcenter`` (tests/test_selectors_sklearn.py runs them all), except two that
    cannot apply to a ranker whose score is relative to the batch it scores:

    * ``check_methods_subset_invariance`` (scoring rows in a batch must equal scoring them alone):
      ISA min-max scales the log-likelihood over the batch (``l'``, as published), k-center scores
      are distances to the centres greedily picked from that batch, density and random scores are
      seeded draws taken in row order;
    * ``check_methods_sample_order_invariance`` (permuting the rows permutes the scores): the
      seeded draws of ``random``/``density`` and k-center's seeded first centre follow row
      positions, which is what makes a selection reproducible bitwise (ISA's scores are per point
      given the batch, so it passes).

    The pair methods: ``rds`` passes every check (its score of a row depends on the row and the
    fitted target only); ``margin`` fails the same two for the same kind of reason (its fitted rows
    are scored out-of-fold, by probes fitted on seeded folds of row positions; other rows by the
    probe of the whole training part). ``length`` takes exactly two non-negative word counts per pair,
    so checks that feed other feature counts or signs cannot apply.

    ``llm`` (Ask-LLM) and ``lm-margin`` take texts, not a numeric ``X``, so the checks do not apply; they
    support ``clone``/``get_params``/``set_params`` like the others. The mixture ISA fits is
    :class:`alignscope.select.gmm.GaussianMixture`, which passes scikit-learn's checks in full.
    """

    method: ClassVar[str] = ""
    takes_text: ClassVar[bool] = False
    score_meaning: ClassVar[str] = ""
    score_on_fit: ClassVar[bool] = True  # False: scores are computed when first asked for

    def __init__(self, *, seed: int = 0):
        self.seed = seed

    # ---------------------------------------------------------------------------- public API
    def _check_params(self) -> None:
        """Validate the stored parameters (SelectionError naming the parameter)."""
        _check_seed(self.seed)

    def fit(self, X: Any, y: Any = None, *, pair_index: Any = None, label: Any = None) -> "Selector":
        """Fit on ``X`` (``(n, d)`` matrix; a list of ``n`` texts for ``llm``) and score it.
        ``y`` is ignored (scikit-learn's convention for unsupervised estimators)."""
        clock = time.perf_counter()
        self._check_params()
        X = self._check_input(X)
        self._pair_index, self._label = _check_pair_info(len(X), pair_index, label)
        self.timings_ = {"check_s": round(time.perf_counter() - clock, 4)}
        self._fitted_X = X
        clock = time.perf_counter()
        self._fit(X)
        self.timings_["fit_s"] = round(time.perf_counter() - clock, 4)
        self.n_points_ = len(X)
        self.scores_ = self.details_ = None
        if self.score_on_fit:
            self._ensure_scores()
        return self

    def _ensure_scores(self) -> None:
        if self.scores_ is None:
            clock = time.perf_counter()
            self.scores_, self.details_ = self._score(self._fitted_X)
            self._release()
            self.timings_["score_s"] = round(time.perf_counter() - clock, 4)

    def score_samples(self, X: Any = None) -> np.ndarray:
        """Per-point scores, float64 ``(n,)``, higher = keep. ``X=None`` (or the fitted ``X``) →
        the scores of the fitted points; another ``X`` is scored with the fitted model."""
        self._require_fitted()
        if X is None or X is self._fitted_X:
            self._ensure_scores()
            return self.scores_.copy()
        scores, _ = self._score(self._check_input(X, reset=False))
        return scores

    def select(self, X: Any = None, k: int | None = None, fraction: float | None = None, *,
               pair_index: Any = None, label: Any = None, **fit_params: Any) -> Selection:
        """Fit (unless ``X`` is None and the selector is fitted) and return the
        :class:`~alignscope.select.selection.Selection` with the top ``k`` (or ``fraction``) points
        marked ``selected``. ``fit_params`` go to :meth:`fit` (e.g. ``rds``'s ``target_embeddings``)."""
        if X is not None:
            self.fit(X, pair_index=pair_index, label=label, **fit_params)
        self._require_fitted()
        k_eff = resolve_k(self.n_points_, k, fraction)
        clock = time.perf_counter()  # table_s: ranking + table (+ k-center's greedy run for this k)
        scores, details, order = self._selection_scores(k_eff)
        table = _build_table(scores, order, k_eff, details, self._pair_index, self._label)
        config = {
            "format_version": SELECTION_FORMAT_VERSION,
            "method": self.method,
            "k": k_eff,
            "k_requested": None if k is None else int(k),
            "fraction": None if fraction is None else float(fraction),
            "n_points": int(self.n_points_),
            "n_selected": int(k_eff),
            "seed": int(self.seed),
            "options": jsonable({k_: v for k_, v in self.get_params().items() if k_ != "seed"}),
            "unit": "completion" if self._label is not None else "pair",
            "score": self.score_meaning,
            "alignscope_version": _version(),
        }
        config.update(self._extra_config())
        selection = Selection(table, config)
        self.timings_["table_s"] = round(time.perf_counter() - clock, 4)
        return selection

    # ---------------------------------------------------------------------------- hooks
    def _fit(self, X: Any) -> None:
        pass

    def _score(self, X: Any) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        raise NotImplementedError

    def _release(self) -> None:
        """Drop per-fit intermediates that are only needed to score the fitted points."""

    def _selection_scores(self, k: int):
        """Scores, details and the rank order for a selection of ``k`` (kcenter needs ``k``)."""
        self._ensure_scores()
        return self.scores_, self.details_, order_by_score(self.scores_)

    def _extra_config(self) -> dict[str, Any]:
        return {}

    def _check_input(self, X: Any, *, reset: bool = True):
        """scikit-learn's input check (``validate_data``: 2-D, numeric, not sparse or complex, at
        least one row, ``n_features_in_`` set on fit and compared after), then alignscope's
        finiteness check that names the first bad row; every message one line, as a SelectionError.
        float32 stays float32 (no copy of a C-contiguous float32 matrix)."""
        if hasattr(X, "matrix") and not isinstance(X, np.ndarray):
            X = X.matrix  # an alignscope.embed.encoders.Embeddings (duck-typed: no import of embed here)
        if type(X).__module__.startswith("torch"):
            X = X.detach().cpu().numpy()
        try:  # a TypeError (sparse input, an object that is no number) stays one, as scikit-learn has it
            X = validate_data(self, X, reset=reset, dtype=[np.float64, np.float32], order="C",
                              **{_FINITE_KEYWORD: False})
            return check_matrix(X, min_rows=1)
        except ValueError as exc:  # scikit-learn's messages and GMMError
            raise SelectionError(" ".join(part.strip() for part in str(exc).splitlines() if part.strip())) from None

    def _require_fitted(self) -> None:
        if not hasattr(self, "n_points_"):
            raise SelectionError(f"this {type(self).__name__} is not fitted: call fit(X) or select(X, ...)")


# ============================================================================== helpers
def seeded_order(scores: np.ndarray, seed: int) -> np.ndarray:
    """Indices by score descending, ties in a seeded random order (not by row: a data set sorted by
    length or source must not decide which of many tied pairs are kept). int64 ``(n,)``."""
    scores = np.asarray(scores, dtype=np.float64)
    tie_break = np.random.default_rng([int(seed), 7]).permutation(len(scores))
    return np.lexsort((tie_break, -scores)).astype(np.int64)


def _build_table(scores, order, k, details, pair_index, label) -> pd.DataFrame:
    n = len(scores)
    rank = np.empty(n, dtype=np.int64)
    rank[order] = np.arange(1, n + 1)
    # index = the row in the canonical data for pair-level rows (their pair ids when given), the
    # row of X for completion-level rows (whose pair sits in pair_index).
    own_ids = pair_index is not None and label is None
    columns: dict[str, Any] = {"index": pair_index if own_ids else np.arange(n, dtype=np.int64)}
    if label is not None:
        columns["pair_index"] = pair_index
        columns["label"] = label
    columns.update(score=np.asarray(scores, dtype=np.float64), selected=rank <= k, rank=rank)
    columns.update(details)
    return pd.DataFrame(columns)


def _check_pair_info(n: int, pair_index: Any, label: Any):
    """Validate the row identities. Neither: rows are pairs ``0..n-1``. ``pair_index`` alone: rows
    are pairs with these ids (distinct). Both: rows are completions (label 1 chosen, 0 rejected)."""
    if pair_index is None and label is None:
        return None, None
    if pair_index is None:
        raise SelectionError("label needs pair_index too (the pair each completion belongs to)")
    pair_index = np.asarray(pair_index)
    if pair_index.shape != (n,):
        raise SelectionError(f"pair_index must have shape ({n},), got {pair_index.shape}")
    if pair_index.dtype.kind not in "iu" or (n and pair_index.min() < 0):
        raise SelectionError("pair_index must hold non-negative integers")
    if label is None:
        if not distinct_integers(pair_index):
            raise SelectionError("pair-level rows need distinct pair_index values (give label for "
                                 "completion-level rows)")
        return pair_index.astype(np.int64), None
    label = np.asarray(label)
    if label.shape != (n,):
        raise SelectionError(f"label must have shape ({n},), got {label.shape}")
    if label.dtype.kind not in "iub" or not np.isin(label.astype(np.int64), (0, 1)).all():
        raise SelectionError("label must hold 1 (chosen) or 0 (rejected)")
    return pair_index.astype(np.int64), label.astype(np.int8)


def _check_seed(seed: Any) -> int:
    if not is_int(seed) or seed < 0:
        raise SelectionError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_positive_int(name: str, value: Any) -> None:
    if not is_int(value) or value < 1:
        raise SelectionError(f"{name} must be a positive integer, got {value!r}")


def _first_attr(obj: Any, names: Sequence[str]):
    for name in names:
        value = getattr(obj, name, None)
        if isinstance(value, str):
            return value
    return None


def _version() -> str:
    return __version__

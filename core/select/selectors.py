"""Selectors: which preference data to keep. ISA as published, and the baselines it was compared with.

Every selector is a scikit-learn estimator (``BaseEstimator``): configuration in the constructor
(stored there, validated in ``fit``), ``fit(X)`` → ``self``, ``score_samples(X)`` → one float per point where **higher = keep**,
and ``select(X, k=None, fraction=None)`` → a :class:`~alignscope.select.selection.Selection` (the table, one
row per point, its config and the data fingerprint). Same seed (same machine, same library versions) →
bitwise the same scores and the same subset.

This module is the entry point: :data:`METHODS`, :func:`make_selector`, :func:`select` and
:func:`select_data`, and every selector class re-exported. The methods live in
:mod:`~alignscope.select.isa`, :mod:`~alignscope.select.baselines` (random, density, k-center),
:mod:`~alignscope.select.ask_llm`, :mod:`~alignscope.select.pairwise` and
:mod:`~alignscope.select.lm_margin`.

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

from typing import Any, Callable

import numpy as np

from alignscope.embed.encoders import DEFAULT_ENCODER, embed
from alignscope.select.ask_llm import AskLLMSelector, ask_llm_texts
from alignscope.select.base import Selector, _first_attr
from alignscope.select.baselines import DensitySelector, KCenterSelector, RandomSelector
from alignscope.select.isa import (ISA_VARIANTS, ISASelector, isa_delta, isa_delta_leave_one_out, isa_entropy,
                                   isa_probability, isa_scale)
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

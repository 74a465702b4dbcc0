"""Selectors that rank PAIRS by signals that beat random selection in published comparisons.

The selectors of :mod:`alignscope.select.selectors` did not beat random on this product's real data
(issue 28). The methods here are the ones that did elsewhere, so that a user can measure which of
them, if any, works on *their* data (each against random at the same size, e.g. in a sweep):

``length`` (:class:`LengthSelector`)
    Keep pairs by the data's own length pattern. Zhao et al., "Long Is More for Alignment: A Simple
    but Tough-to-Beat Baseline for Instruction Fine-Tuning", ICML 2024 (arXiv:2402.04833): the
    longest responses are a strong subset; Xia et al., "Rethinking Data Selection at Scale: Random
    Selection is Almost All You Need" (arXiv:2410.09335, 2024): across two million-scale pools
    nearly every method failed to beat random, and filtering by token length was the one stable
    improvement.
``margin`` (:class:`MarginSelector`)
    A cross-fitted Bradley–Terry preference probe's margin on embedding differences. ``keep="easy"``
    (largest margin) is margin maximisation, Deng et al., "Less is More: Improving LLM Alignment via
    Preference Data Selection" (arXiv:2502.14560, 2025: 10 % of UltraFeedback, +3–8 % on
    AlpacaEval 2); it is also what Selective DPO keeps at a given size (Gao et al., "Principled Data
    Selection for Alignment: The Hidden Risks of Difficult Examples", arXiv:2502.09650, 2025: drop
    the hardest pairs). ``keep="hard"`` (smallest margin) follows Qi, Xu & Jin, "Difficulty-Based
    Preference Data Selection by DPO Implicit Reward Gap" (arXiv:2508.04149, 2025: the smallest
    implicit-reward gaps, 10 % of the data). ``keep="middle"`` drops both tails.
``rds`` (:class:`RDSSelector`)
    Representation-based selection toward a target set, RDS+ of Ivison et al., "Large-Scale Data
    Selection for Instruction Tuning" (arXiv:2503.01807, 2025): the best of the methods compared
    when selecting up to 2.5M from 5.8M examples.

The reference-LM log-ratio (``lm-margin``) is in :mod:`alignscope.select.lm_margin`.

**Options are declared once**, as :func:`alignscope.options.option` fields (help, choices,
bounds) of the light dataclasses of :mod:`alignscope.select.pair_options`, which each estimator here
inherits: the estimator is itself a dataclass whose generated ``__init__`` only stores them, which
is what scikit-learn requires (``get_params``, ``set_params``, ``clone`` read that signature);
``fit`` validates them with :func:`alignscope.options.fields_problem`; the CLI flags and the Select
page's widgets are generated from the same fields.

**Held-out labels never shape a ranking.** The selectors that learn from labels (the length rule's
direction, the margin probe) learn only from the pairs that :func:`alignscope.train.trainset.split_pairs`
does NOT hold out with ``test_fraction`` / ``split_seed`` — the split training, ``eval-probe`` and
sweeps use (defaults 0.2 and 0). The held-out pairs are still ranked (by a model that did not see
them) and ``rds`` uses their prompts as its default target.

Rows are pairs: ``X`` row ``i`` is pair ``i`` of the data (``select_data`` builds ``X`` from a
PreferenceData with :meth:`PairSelector.inputs`), the selection's unit is ``"pair"``, and
:meth:`~alignscope.select.selection.Selection.pairs` returns the kept pairs directly. Ties in the
score are broken in a seeded random order (:func:`alignscope.select.base.seeded_order`).
"""
from __future__ import annotations

import dataclasses
import gzip
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from alignscope.audit import AuditError, fit_bt_probe, pair_matrices
from alignscope.embed.encoders import (
    embed,
    embed_prompts,
    embed_texts,
    join_prompt_completion,
)
from alignscope.evaluate.metrics import LengthRule, pair_word_lengths
from alignscope.options import fields_problem
from alignscope.select.base import Selector, seeded_order
from alignscope.select.pair_options import LengthOptions, MarginOptions, RDSOptions
from alignscope.select.selection import SelectionError
from alignscope.train.trainset import split_pairs

__all__ = ["PairSelector", "LengthSelector", "MarginSelector", "RDSSelector", "keep_score", "pair_differences",
           "read_target_texts"]

def keep_score(margin: np.ndarray, keep: str, centre: float | None = None) -> np.ndarray:
    """Score (higher = keep) of each margin under ``keep``: ``easy`` → margin, ``hard`` → −margin,
    ``middle`` → −|margin − centre| (``centre`` defaults to the median margin)."""
    margin = np.asarray(margin, dtype=np.float64)
    if keep == "easy":
        return margin + 0.0
    if keep == "hard":
        return -margin + 0.0
    centre = float(np.median(margin)) if centre is None else float(centre)
    return -np.abs(margin - centre) + 0.0


class PairSelector(Selector):
    """A selector whose rows are pairs and whose options are :func:`~alignscope.options.option`
    fields of a dataclass subclass. Subclasses implement ``_fit``/``_score`` (as every selector)
    and :meth:`inputs` (the ``X`` and fit parameters they need from a PreferenceData)."""

    ranks_pairs: ClassVar[bool] = True
    uses_embeddings: ClassVar[bool] = False  # whether inputs() reads an encoder's embeddings

    def _check_params(self) -> None:
        problem = fields_problem(self)
        if problem is not None:
            raise SelectionError(problem, field=problem.split(" ", 1)[0])

    def inputs(self, data: Any, *, encoder: str, embeddings: Any = None, layer: int | None = None,
               batch_size: int | None = None, progress: bool = False) -> tuple[Any, dict[str, Any]]:
        """``(X, fit_params)`` for ``data`` (a PreferenceData): what :func:`alignscope.select.selectors.select_data`
        passes to :meth:`select`. ``embeddings``: precomputed completion embeddings of ``data``
        with ``encoder`` (used instead of embedding again)."""
        raise NotImplementedError

    @classmethod
    def from_embeddings(cls, embeddings: Any) -> np.ndarray:
        """``X`` from an :class:`~alignscope.embed.embeddings.Embeddings` (``select --embeddings``)."""
        raise SelectionError(f"--method {cls.method} reads the texts of the pairs: give DATA, not embeddings")

    def finish_config(self, config: dict[str, Any]) -> None:
        """Add what only the caller knows (the selection's encoder) to the selection config."""

    def _held_out_rows(self, n: int) -> np.ndarray:
        """Row positions of the held-out pairs of :func:`split_pairs` (rows are pairs ``0..n-1``)."""
        if self.test_fraction == 0:
            return np.zeros(0, dtype=np.int64)
        if self._pair_index is not None and not np.array_equal(self._pair_index, np.arange(n)):
            raise SelectionError("the held-out split needs rows that are the data's pairs 0..n-1 in order; "
                                 "with other rows pass test_fraction=0", field="test_fraction")
        return split_pairs(n, self.test_fraction, self.split_seed)[1]

    def _selection_scores(self, k: int):
        self._ensure_scores()
        return self.scores_, self.details_, seeded_order(self.scores_, self.seed)


# ============================================================================== length
@dataclasses.dataclass(kw_only=True, eq=False, repr=False)
class LengthSelector(PairSelector, LengthOptions):
    """Keep pairs by the data's own length pattern (Zhao et al. 2024, arXiv:2402.04833; Xia et al.
    2024, arXiv:2410.09335 found length filtering the one stable method at scale).

    ``X``: ``(n, 2)`` word counts ``[chosen, rejected]`` per pair (whitespace words, as the length
    rule of :mod:`alignscope.evaluate.metrics` counts them). ``by="gap"`` (default): score =
    ``s · (chosen − rejected)`` with ``s = +1`` when the data's length rule
    (:class:`~alignscope.evaluate.metrics.LengthRule`, fitted on the training part of the split) says
    the longer answer wins, ``−1`` when the shorter wins — the pairs where length separates the
    answers most, in the direction the data rewards. ``by="chosen"``: score = chosen words, the plain
    "longest responses" filter of Zhao et al. Details: ``chosen_words``, ``rejected_words``,
    ``gap`` (chosen − rejected).
    """

    method: ClassVar[str] = "length"
    score_meaning: ClassVar[str] = ("by=gap: (chosen - rejected words) signed by the direction the data's length rule "
                                    "learned; by=chosen: chosen words")

    def inputs(self, data, *, encoder, embeddings=None, layer=None, batch_size=None, progress=False):
        chosen, rejected = pair_word_lengths(data)
        return np.column_stack([chosen, rejected]).astype(np.float64), {}

    def _check_input(self, X, *, reset: bool = True):
        X = super()._check_input(X, reset=reset)
        if X.shape[1] != 2:
            raise SelectionError(f"the length selector takes (n, 2) word counts [chosen, rejected], got {X.shape[1]} "
                                 "columns")
        if (X < 0).any():
            raise SelectionError("word counts must be >= 0")
        return X

    def _fit(self, X):
        held = self._held_out_rows(len(X))
        train = np.setdiff1d(np.arange(len(X)), held)
        self.length_rule_ = LengthRule.fit(X[train, 0], X[train, 1])

    def _score(self, X):
        chosen, rejected = X[:, 0].astype(np.float64), X[:, 1].astype(np.float64)
        gap = chosen - rejected
        sign = 1.0 if self.length_rule_.direction == "longer" else -1.0
        scores = (sign * gap if self.by == "gap" else chosen) + 0.0
        return scores, {"chosen_words": chosen, "rejected_words": rejected, "gap": gap}

    def _extra_config(self):
        return {"length_rule": self.length_rule_.to_dict()}


# ============================================================================== margin
@dataclasses.dataclass(kw_only=True, eq=False, repr=False)
class MarginSelector(PairSelector, MarginOptions):
    """A cross-fitted preference probe's margin (margin maximisation, Deng et al. 2025,
    arXiv:2502.14560; Selective DPO, Gao et al. 2025, arXiv:2502.09650; smallest implicit-reward gap,
    Qi, Xu & Jin 2025, arXiv:2508.04149).

    ``X``: ``(n, d)`` embedding differences ``e(chosen) − e(rejected)``, one row per pair. The
    Bradley–Terry probe ``P(chosen ≻ rejected) = σ(w·x)`` is fitted by
    :func:`alignscope.audit.fit_bt_probe` (L2 logistic regression without intercept, symmetric). The
    training part of the split is cut into ``folds`` seeded folds and each fold's margins ``w·x`` come
    from a probe fitted on the other folds (out-of-fold: no pair is scored by a probe that saw its
    label); the held-out pairs are scored by the probe fitted on the whole training part (``coef_``),
    which also scores any new ``X``. Scores by ``keep`` (:func:`keep_score`; ``middle``'s median is
    over the training pairs). Details: ``margin``, ``p_chosen`` = σ(margin).

    The probe evaluator (:func:`alignscope.evaluate.probe.eval_probe`) fits the same kind of model:
    when the selection's features are the evaluator's, selecting by its margin favours what the
    judge will reward. The selection config records ``circular`` (``eval_encoder`` unset: the
    evaluator is assumed to use the selector's own features, as a sweep without ``--eval-encoder``
    does).
    """

    method: ClassVar[str] = "margin"
    score_meaning: ClassVar[str] = "out-of-fold Bradley-Terry probe margin w.(e_c - e_r), by keep (easy/hard/middle)"
    uses_embeddings: ClassVar[bool] = True

    def inputs(self, data, *, encoder, embeddings=None, layer=None, batch_size=None, progress=False):
        if embeddings is None:
            embeddings = embed(data, encoder, "completion", layer, batch_size=batch_size, progress=progress)
        return pair_differences(embeddings, len(data)), {}

    @classmethod
    def from_embeddings(cls, embeddings):
        return pair_differences(embeddings, None)

    def finish_config(self, config):
        encoder = config.get("encoder")
        judge = self.eval_encoder or encoder
        config["eval_encoder"] = judge
        config["circular"] = None if encoder is None else bool(judge == encoder)
        if config["circular"]:
            config["circular_note"] = (f"the margin probe and the evaluator both read {encoder} features: a probe "
                                       "evaluator will favour this selection; judge it with another encoder")

    def _fit(self, X):
        n = len(X)
        held = self._held_out_rows(n)
        train = np.setdiff1d(np.arange(n), held)
        if len(train) < 2:
            raise SelectionError(f"the margin probe needs at least 2 training pairs, got n_samples = {n}")
        diff = np.asarray(X, dtype=np.float32)
        margin = np.empty(n, dtype=np.float64)
        folds = min(self.folds, len(train))
        fold_of = np.random.default_rng(self.seed).permutation(len(train)) % folds
        for fold in range(folds):
            scored = train[fold_of == fold]
            w = fit_bt_probe(diff[train[fold_of != fold]], C=self.C, seed=self.seed + fold)
            margin[scored] = diff[scored].astype(np.float64) @ w
        self.coef_ = fit_bt_probe(diff[train], C=self.C, seed=self.seed + folds)
        margin[held] = diff[held].astype(np.float64) @ self.coef_
        self.train_margin_median_ = float(np.median(margin[train]))
        self._fit_margin = margin

    def _score(self, X):
        if X is self._fitted_X and self._fit_margin is not None:
            margin = self._fit_margin
        else:
            margin = np.asarray(X, dtype=np.float64) @ self.coef_
        scores = keep_score(margin, self.keep, self.train_margin_median_)
        return scores, {"margin": margin, "p_chosen": 1.0 / (1.0 + np.exp(-np.clip(margin, -500, 500)))}

    def _release(self):
        self._fit_margin = None


def pair_differences(embeddings: Any, n_pairs: int | None) -> np.ndarray:
    """``e(chosen) − e(rejected)``, float32 ``(N, d)``, from completion embeddings
    (:class:`~alignscope.embed.embeddings.Embeddings` or a ``(2N, d)`` matrix in alignscope's layout)
    or pair embeddings in alignscope's pair layout (``[(c + r) / 2, c − r]``: the second half)."""

    unit = getattr(embeddings, "unit", "completion")
    matrix = getattr(embeddings, "matrix", embeddings)
    if unit == "pair":
        half = matrix.shape[1] // 2
        out = np.asarray(matrix[:, half:], dtype=np.float32)
        if n_pairs is not None and len(out) != n_pairs:
            raise SelectionError(f"the pair embeddings have {len(out):,} rows, the data {n_pairs:,} pairs")
        return out
    if unit != "completion":
        raise SelectionError("margin needs completion embeddings (chosen then rejected rows): pass --unit completion")
    n = len(matrix) // 2 if n_pairs is None else n_pairs
    try:
        chosen, rejected = pair_matrices(embeddings, n)
    except AuditError as exc:
        raise SelectionError(str(exc)) from None
    return chosen - rejected


# ============================================================================== rds
@dataclasses.dataclass(kw_only=True, eq=False, repr=False)
class RDSSelector(PairSelector, RDSOptions):
    """Similarity to a target set (RDS+, Ivison et al. 2025, arXiv:2503.01807).

    ``X``: ``(n, d)`` query embeddings, one row per pair: the prompt embedded alone
    (``query="prompt"``, :func:`alignscope.embed.encoders.embed_prompts`) or the prompt with its
    chosen answer (``query="prompt+chosen"``: the chosen rows of the completion embeddings). The
    target: ``target_embeddings`` ``(m, d)`` given to :meth:`fit` (from the ``target`` file: its
    prompts, or prompt + chosen of its pairs when it has them and ``query="prompt+chosen"``), else
    the held-out rows of ``X`` (the held-out prompts of the data's own split). Identical target rows
    count once. Score = the mean cosine similarity of the row to its ``top_k`` most similar target
    rows (``min(top_k, m)``; ``top_k=1`` is the nearest target). When the target is the held-out
    pairs, those pairs are ranked after every other pair (they are what is aimed at, not candidates).

    RDS+ uses a weighted mean pooling of an LM's hidden states and a round-robin over target points
    for multi-task targets; here the features are the product's encoders and the score is one number
    per pair. Details: ``similarity``, ``in_target``.
    """

    method: ClassVar[str] = "rds"
    score_meaning: ClassVar[str] = "mean cosine similarity to the top_k most similar target points"
    uses_embeddings: ClassVar[bool] = True

    def fit(self, X, y=None, *, target_embeddings: Any = None, pair_index: Any = None, label: Any = None):
        """Fit on query rows ``X`` ``(n, d)`` toward ``target_embeddings`` ``(m, d)`` (None: the
        held-out rows of ``X``)."""
        self._target_input = target_embeddings
        return super().fit(X, y, pair_index=pair_index, label=label)

    def inputs(self, data, *, encoder, embeddings=None, layer=None, batch_size=None, progress=False):
        options = {"batch_size": batch_size, "progress": progress}
        prompts = None
        if self.query == "prompt":
            X = prompts = embed_prompts(data, encoder, layer, **options)
        else:
            if embeddings is None:
                embeddings = embed(data, encoder, "completion", layer, **options)
            X = _chosen_rows(embeddings, len(data))
        if self.target is None:
            if self.query == "prompt":
                return X, {}
            # the default target is the held-out PROMPTS, whatever the query embeds
            held = split_pairs(len(data), self.test_fraction, self.split_seed)[1]
            prompts = embed_prompts(data, encoder, layer, **options)
            return X, {"target_embeddings": prompts[held]}
        prompt_texts, chosen_texts = read_target_texts(self.target)
        if self.query == "prompt+chosen" and chosen_texts is not None:
            texts = [join_prompt_completion(p, c) for p, c in zip(prompt_texts, chosen_texts)]
        else:
            texts = prompt_texts
        return X, {"target_embeddings": embed_texts(texts, encoder, layer, **options)}

    def _fit(self, X):
        n, d = X.shape
        held = self._held_out_rows(n) if self.target is None else np.zeros(0, dtype=np.int64)
        target = self._target_input
        if target is None:
            if self.target is not None:
                raise SelectionError("target is a file: give its embeddings as fit(X, target_embeddings=...) "
                                     "(select_data does)", field="target")
            target = X[held]
        target = np.asarray(target, dtype=np.float32)
        if target.ndim != 2 or (len(target) and target.shape[1] != d):
            raise SelectionError(f"target embeddings must be (m, {d}), got shape {target.shape}", field="target")
        if len(target) == 0:
            where = "the target file" if self.target is not None else \
                "the held-out pairs (none are held out: give a target file or test_fraction > 0)"
            raise SelectionError(f"the target set is empty: {where} gave no target points (n_samples = {n})",
                                 field="target")
        if not np.isfinite(target).all():
            raise SelectionError("the target embeddings contain NaN or infinite values", field="target")
        self.target_ = np.unique(_unit_rows(target), axis=0)
        self.n_target_ = len(self.target_)
        self.top_k_ = min(self.top_k, self.n_target_)
        in_target = np.zeros(n, dtype=bool)
        in_target[held] = True
        self._in_target = in_target
        self._target_input = None

    def _score(self, X):
        similarity = _mean_top_k_cosine(_unit_rows(X), self.target_, self.top_k_)
        in_target = self._in_target if X is self._fitted_X else np.zeros(len(X), dtype=bool)
        return similarity + 0.0, {"similarity": similarity, "in_target": in_target.copy()}

    def _selection_scores(self, k: int):
        self._ensure_scores()
        order = seeded_order(self.scores_, self.seed)
        in_target = self.details_["in_target"]
        return self.scores_, self.details_, np.concatenate([order[~in_target[order]], order[in_target[order]]])

    def _extra_config(self):
        return {"n_target": int(self.n_target_), "top_k_used": int(self.top_k_),
                "target_source": self.target or "held-out prompts"}


def _chosen_rows(embeddings: Any, n_pairs: int) -> np.ndarray:

    if getattr(embeddings, "unit", "completion") != "completion":
        raise SelectionError("query='prompt+chosen' needs completion embeddings: pass unit 'completion'")
    try:
        return pair_matrices(embeddings, n_pairs)[0]
    except AuditError as exc:
        raise SelectionError(str(exc)) from None


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    matrix = np.asarray(matrix, dtype=np.float32)
    return matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)


def _mean_top_k_cosine(queries: np.ndarray, targets: np.ndarray, k: int) -> np.ndarray:
    """Mean of the ``k`` largest cosines of each unit query row to the unit target rows, float64
    ``(n,)``; chunked so that no more than ~4M similarities are held at once."""
    n, m = len(queries), len(targets)
    out = np.empty(n, dtype=np.float64)
    step = max(1, 4_000_000 // max(m, 1))
    for start in range(0, n, step):
        sims = queries[start:start + step] @ targets.T
        top = np.partition(sims, m - k, axis=1)[:, m - k:] if k < m else sims
        out[start:start + step] = top.astype(np.float64).mean(axis=1)
    return np.clip(out, -1.0, 1.0)


def read_target_texts(path: str) -> tuple[list[str], list[str] | None]:
    """``(prompts, chosen answers or None)`` of a target file, distinct and non-empty, in order.

    ``.txt`` (optionally ``.gz``): one prompt a line. Anything :func:`alignscope.data.preferences.load_preferences`
    reads as pairs (explicit or implicit prompts): the prompts and the chosen answers. Any other
    table with a ``prompt`` column: its prompts. Raises :class:`SelectionError` naming the file."""
    from alignscope.data.preferences import load_preferences, render_text
    from alignscope.data.readers import DataError, read_path

    file = Path(str(path)).expanduser()
    if not file.exists():
        raise SelectionError(f"{file}: no such target file", field="target")
    chosen: list[str] | None = None
    try:
        if file.name.endswith((".txt", ".txt.gz")):
            raw = gzip.decompress(file.read_bytes()) if file.name.endswith(".gz") else file.read_bytes()
            prompts = [line.strip() for line in raw.decode("utf-8").splitlines()]
        else:
            records = read_path(file).records
            if {"chosen", "rejected"} <= set(records.columns):
                data = load_preferences(str(file))
                prompts, chosen = data.texts("prompt"), data.texts("chosen")
            elif "prompt" in records.columns:
                prompts = [render_text(v) for v in records["prompt"].tolist()]
            else:
                raise SelectionError(f"{file}: a target file needs a 'prompt' column (or prompt/chosen/rejected "
                                     "pairs, or .txt with one prompt a line)", field="target")
    except (DataError, UnicodeDecodeError, OSError) as exc:
        raise SelectionError(f"{file}: cannot read the target file: {str(exc).splitlines()[0]}",
                             field="target") from None
    seen: dict[tuple[str, str], None] = {}
    for i, prompt in enumerate(prompts):
        if prompt.strip():
            seen.setdefault((prompt, chosen[i] if chosen is not None else ""), None)
    if not seen:
        raise SelectionError(f"{file}: the target set is empty (no non-empty prompt)", field="target")
    kept = list(seen)
    return [p for p, _ in kept], (None if chosen is None else [c for _, c in kept])


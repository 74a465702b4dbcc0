"""The flip signals and the one cross-fitted model that combines them.

Every signal is a Bradley–Terry *margin* per pair (float64 ``(N,)``): positive when the signal
agrees with the label (chosen better), negative when it says the rejected answer is the better one,
and every one is computed so that no pair is scored by anything fitted on its own label:

``probe``
    A reward probe r(y) = w·e(y) on the completion embeddings (Bradley & Terry 1952), an L2
    logistic regression without intercept on ``e_c − e_r``, fitted on the other folds
    (:func:`fit_bt_probe`, :func:`oof_probe_margins`).
``length``
    The data's own length rule (:class:`alignscope.evaluate.metrics.LengthRule`: "the longer (or
    shorter) answer wins", direction and slope learned on the other folds).
``neighbours``
    Neighbour agreement: answers to the same (normalised) prompt in OTHER pairs vote with their
    verdict (+1 chosen, −1 rejected), weighted by embedding similarity ``exp((cos − 1)/τ)``; the
    margin is vote(chosen) − vote(rejected). A pair whose chosen answer resembles answers that lose
    elsewhere, and whose rejected answer resembles winners, scores negative. The pair's own two
    answers never vote. Prompts that occur once give 0 (no neighbours).
``lexical``
    A second, word-level view: the same cross-fitted probe on hashed word 1- and 2-gram vectors of
    the answers (scikit-learn ``HashingVectorizer``, L2-normalised; log-loss SGD).
``second``
    The probe on a second encoder's embeddings (optional).

:func:`combine_margins` stacks them (Wolpert 1992): per fold, a logistic regression without
intercept on the other folds' signal margins, each scaled by its root mean square. Every signal
is antisymmetric (swapping a pair's answers negates it) and so is the combination: a swapped pair's
combined margin is exactly the negative of its unswapped one under the same models.
"""
from __future__ import annotations

import warnings
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp

from alignscope.audit.duplicates import normalise_prompt
from alignscope.audit.vectors import unit_rows
from alignscope.blas import one_blas_thread
from alignscope.evaluate.metrics import LengthRule

__all__ = ["SIGNALS", "fold_assignment", "fit_bt_probe", "oof_probe_margins",
           "oof_flip_scores", "length_margins", "neighbour_margins", "lexical_margins", "combine_margins",
           "flip_score_of", "label_issues"]

SIGNALS = ("probe", "length", "neighbours", "lexical", "second")
NEIGHBOUR_TEMPERATURE = 0.05  # weight exp((cos − 1)/τ): an exact copy 1, cos 0.9 → e^-2
LEXICAL_FEATURES = 2 ** 18
STACK_C = 10.0  # the combiner has a handful of weights: almost no shrinkage


def fold_assignment(n: int, folds: int, seed: int) -> np.ndarray:
    """Fold of every pair, int64 ``(n,)``: a seeded permutation modulo ``folds`` (sizes differ by ≤ 1)."""
    return (np.random.default_rng(seed).permutation(n) % folds).astype(np.int64)


def _signs(n: int, seed: int) -> np.ndarray:
    """A seeded random sign per row (True = as labelled); both signs present whenever n ≥ 2."""
    sign = np.random.default_rng(seed).random(n) < 0.5
    if n >= 2 and (sign.all() or not sign.any()):
        sign[0] = not sign[0]
    return sign


# ============================================================================== probe
def fit_bt_probe(diff: np.ndarray, *, C: float = 1.0, seed: int = 0, symmetric: bool = False) -> np.ndarray:
    """Weights ``w`` (``(d,)`` float64) of the Bradley–Terry probe P(chosen ≻ rejected) = σ(w·diff).

    The objective is L2 logistic regression without intercept on ``diff`` (label 1) and ``−diff``
    (label 0): ``½‖w‖² + C·Σ 2·log(1 + exp(−w·diff_i))``. ``symmetric=True`` fits literally that
    (2N rows); the default fits the identical objective on N rows, each pair once with a seeded
    random sign (label = sign > 0), with ``C`` doubled — the same minimiser at half the cost.
    """
    from sklearn.linear_model import LogisticRegression

    diff = np.asarray(diff)
    sign = np.random.default_rng(seed).random(len(diff)) < 0.5
    if sign.all() or not sign.any():  # one class only (a tiny fold): fit the literal 2N-row form
        symmetric = True
    if symmetric:
        X = np.vstack([diff, -diff])
        y = np.concatenate([np.ones(len(diff), np.int64), np.zeros(len(diff), np.int64)])
        c_eff = C
    else:
        X = np.where(sign[:, None], diff, -diff)
        y = sign.astype(np.int64)
        c_eff = 2.0 * C
    model = LogisticRegression(fit_intercept=False, C=c_eff, max_iter=1000)
    with one_blas_thread():  # L-BFGS's matrix-vector products: 5x faster on one thread (alignscope.blas)
        model.fit(X, y)
    return model.coef_.ravel().astype(np.float64)


def oof_probe_margins(chosen: np.ndarray, rejected: np.ndarray, fold_of: np.ndarray, *, seed: int = 0,
                      C: float = 1.0) -> np.ndarray:
    """Out-of-fold probe margins ``w_k·(e_c − e_r)``, float64 ``(N,)``: fold ``k`` is scored with
    :func:`fit_bt_probe` fitted on the other folds only."""
    diff = (np.asarray(chosen, np.float32) - np.asarray(rejected, np.float32))
    out = np.empty(len(diff), dtype=np.float64)
    for k in np.unique(fold_of):
        test = fold_of == k
        w = fit_bt_probe(diff[~test], C=C, seed=seed + int(k))
        out[test] = diff[test].astype(np.float64) @ w
    return out


def flip_score_of(margin: np.ndarray) -> np.ndarray:
    """``1 − σ(margin)``: the probability that the REJECTED answer is the better one."""
    return 1.0 / (1.0 + np.exp(np.clip(np.asarray(margin, np.float64), -500, 500)))


def oof_flip_scores(chosen: np.ndarray, rejected: np.ndarray, *, folds: int = 5, seed: int = 0,
                    C: float = 1.0) -> np.ndarray:
    """Out-of-fold ``P(rejected ≻ chosen)`` of the cross-fitted probe alone, float64 ``(N,)``."""
    return flip_score_of(oof_probe_margins(chosen, rejected, fold_assignment(len(chosen), folds, seed), seed=seed, C=C))


# ============================================================================== length
def length_margins(chosen_words: np.ndarray, rejected_words: np.ndarray, fold_of: np.ndarray) -> np.ndarray:
    """The data's length rule as a margin, out of fold: for fold ``k`` the rule (direction and
    slope, :class:`~alignscope.evaluate.metrics.LengthRule`) is learned on the other folds."""

    chosen_words, rejected_words = np.asarray(chosen_words), np.asarray(rejected_words)
    out = np.empty(len(chosen_words), dtype=np.float64)
    for k in np.unique(fold_of):
        test = fold_of == k
        rule = LengthRule.fit(chosen_words[~test], rejected_words[~test])
        out[test] = rule.margin(chosen_words[test], rejected_words[test])
    return out


# ============================================================================== neighbours
def neighbour_margins(prompts: Sequence[str], chosen: np.ndarray, rejected: np.ndarray, *,
                      temperature: float = NEIGHBOUR_TEMPERATURE, max_block: int = 20_000, seed: int = 0) -> np.ndarray:
    """vote(chosen) − vote(rejected) per pair, float64 ``(N,)`` (see the module docstring).

    Blocks are pairs with the same :func:`~alignscope.audit.duplicates.normalise_prompt`; a block
    of more than ``max_block`` pairs is voted on by a seeded sample of ``max_block`` of its pairs.
    Cost: ``Σ 4·b·min(b, max_block)·d`` flops over blocks, in row chunks."""
    n = len(prompts)
    raw = pd.Series(list(prompts), dtype=object)
    uniques = raw.unique()
    keys = raw.map(dict(zip(uniques, (normalise_prompt(p) for p in uniques))))
    blocks = keys.groupby(keys, sort=False).indices
    c, r = unit_rows(chosen), unit_rows(rejected)
    vote_c, vote_r = np.zeros(n), np.zeros(n)
    rng = np.random.default_rng(seed)
    for rows in blocks.values():
        if len(rows) < 2:
            continue
        rows = np.sort(rows)
        voters = rows if len(rows) <= max_block else np.sort(rng.choice(rows, max_block, replace=False))
        V = np.vstack([c[voters], r[voters]])                       # (2v, d)
        verdict = np.concatenate([np.ones(len(voters)), -np.ones(len(voters))])
        owner = np.concatenate([voters, voters])
        step = max(1, 4_000_000 // len(V))
        for start in range(0, len(rows), step):
            chunk = rows[start:start + step]
            for side, out in ((c, vote_c), (r, vote_r)):
                weight = np.exp((side[chunk] @ V.T - 1.0) / temperature)
                weight[owner[None, :] == chunk[:, None]] = 0.0      # the pair's own answers never vote
                total = weight.sum(axis=1)
                out[chunk] = np.where(total > 0, (weight @ verdict) / np.maximum(total, 1e-300), 0.0)
    return vote_c - vote_r


# ============================================================================== lexical
def lexical_margins(chosen_texts: Sequence[str], rejected_texts: Sequence[str], fold_of: np.ndarray, *,
                    seed: int = 0) -> np.ndarray:
    """Out-of-fold margins of a Bradley–Terry probe on hashed word 1–2-gram vectors of the answers
    (2^18 features, L2-normalised; each distinct text is hashed once). The fit is log-loss SGD
    without intercept on one seeded random sign per pair (the symmetric objective of
    :func:`fit_bt_probe`), ``alpha = 0.25 / n_train`` (the same penalty per pair at every size)."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import SGDClassifier

    n = len(chosen_texts)
    diff = _hashed_differences(chosen_texts, rejected_texts)
    out = np.empty(n, dtype=np.float64)
    for k in np.unique(fold_of):
        test = fold_of == k
        train_rows = np.nonzero(~test)[0]
        if len(train_rows) < 2:  # a fold of a tiny set: nothing to learn from
            out[test] = 0.0
            continue
        sign = _signs(len(train_rows), seed + int(k))
        X = diff[train_rows]
        # flip each row's sign in place (x ±1 is exact): a .multiply would build two more copies
        X.data *= np.repeat(np.where(sign, 1.0, -1.0), np.diff(X.indptr))
        model = SGDClassifier(loss="log_loss", alpha=0.25 / max(len(train_rows), 1), fit_intercept=False,
                              max_iter=20, tol=1e-3, random_state=seed + int(k))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)  # 20 passes suffice for a ranking
            model.fit(X, sign.astype(np.int64))
        del X
        out[test] = np.asarray(diff[test] @ model.coef_.ravel()).ravel()
    return out


def _hashed_differences(chosen_texts: Sequence[str], rejected_texts: Sequence[str], *, block: int = 16384):
    """Hashed chosen − hashed rejected per pair, CSR float64 ``(N, 2^18)``. Each distinct text is
    hashed once; the differences are formed a block of pairs at a time and the text matrix is freed
    before they are joined, so at 250k pairs one matrix of that size exists at a time, not four."""
    from sklearn.feature_extraction.text import HashingVectorizer

    n = len(chosen_texts)
    if n == 0:
        return sp.csr_matrix((0, LEXICAL_FEATURES), dtype=np.float64)
    codes, uniques = pd.factorize(pd.Series(list(chosen_texts) + list(rejected_texts), dtype=object))
    hashed = HashingVectorizer(n_features=LEXICAL_FEATURES, ngram_range=(1, 2), alternate_sign=False,
                               norm="l2").transform(uniques.tolist())
    parts = [(hashed[codes[a:min(a + block, n)]] - hashed[codes[n + a:n + min(a + block, n)]]).tocsr()
             for a in range(0, n, block)]
    del hashed
    return sp.vstack(parts, format="csr")


# ============================================================================== combination
def combine_margins(signals: dict[str, np.ndarray], fold_of: np.ndarray, *, seed: int = 0,
                    C: float = STACK_C) -> tuple[np.ndarray, dict[str, float]]:
    """The stacked margin per pair (float64 ``(N,)``) and each signal's weight (mean over folds,
    per unit of the signal's root mean square). A signal that is 0 everywhere is left out (weight
    0), and so is one that is the same for every pair: it would act as an intercept, which a
    Bradley–Terry model has none of. With one signal the margin is that signal's."""
    from sklearn.linear_model import LogisticRegression

    names = [name for name, values in signals.items() if np.ptp(np.asarray(values, np.float64)) > 0]
    n = len(fold_of)
    if not names:
        return np.zeros(n), {name: 0.0 for name in signals}
    F = np.column_stack([np.asarray(signals[name], np.float64) for name in names])
    if len(names) == 1:
        return F[:, 0].copy(), {name: (1.0 if name == names[0] else 0.0) for name in signals}
    out = np.empty(n, dtype=np.float64)
    weights = np.zeros(len(names))
    folds = np.unique(fold_of)
    for k in folds:
        test = fold_of == k
        train = F[~test]
        scale = np.sqrt((train ** 2).mean(axis=0))
        scale[scale == 0] = 1.0
        sign = _signs(len(train), seed + 1000 + int(k))
        model = LogisticRegression(fit_intercept=False, C=C, max_iter=1000)
        with one_blas_thread():
            model.fit(np.where(sign[:, None], train, -train) / scale, sign.astype(np.int64))
        w = model.coef_.ravel() / scale
        out[test] = F[test] @ w
        weights += model.coef_.ravel() / len(folds)
    return out, {name: (float(weights[names.index(name)]) if name in names else 0.0) for name in signals}


# ============================================================================== flags
def label_issues(flip_score: np.ndarray, filter_by: str = "confident_learning") -> np.ndarray:
    """cleanlab's confident-learning filter (Northcutt, Jiang & Chuang, JAIR 2021) on the 2N rows
    (each pair as labelled and negated), bool ``(N,)``. ``filter_by`` is cleanlab's rule:
    ``confident_learning`` flags the off-diagonal of the confident joint (pairs whose other order
    is above its class's mean confidence); ``prune_by_noise_rate`` flags as many pairs as that
    estimates to be noisy, the least confident first (more recall, less precision)."""
    from cleanlab.filter import find_label_issues

    n = len(flip_score)
    p_chosen = np.clip(1.0 - np.asarray(flip_score, np.float64), 1e-9, 1 - 1e-9)
    labels = np.concatenate([np.ones(n, np.int64), np.zeros(n, np.int64)])
    # columns: P(class 0), P(class 1); class 1 = "the first answer is better"
    probs = np.vstack([np.column_stack([1 - p_chosen, p_chosen]), np.column_stack([p_chosen, 1 - p_chosen])])
    issues = find_label_issues(labels, probs, filter_by=filter_by, n_jobs=1)
    return issues[:n] | issues[n:]

"""The fast evaluator: a Bradley–Terry linear reward model on FROZEN sentence embeddings of the
pairs, scored on the same held-out pairs as a trained policy (:func:`split_pairs`).

Seconds on a CPU and no training of the language model: a PROXY for training, useful for fast
interactive scaling curves and for comparing subsets, never a substitute for the preference
accuracy of a trained policy (:mod:`alignscope.evaluate.evaluators`). Its results carry
:data:`PROBE_NOTE` and every score beside the length rule
(:func:`alignscope.evaluate.metrics.preference_metrics`).
"""
from __future__ import annotations

import time
from typing import Any, Mapping, Sequence

import numpy as np

from alignscope.blas import one_blas_thread
from alignscope.embed.encoders import embed
from alignscope.evaluate.evaluators import DEFAULT_N_BOOT, heldout_length_rule, share_ci
from alignscope.evaluate.metrics import LengthRule, pair_word_lengths, preference_metrics, success
from alignscope.train.trainset import EvaluationError, training_set

__all__ = ["PROBE_ENCODER", "PROBE_NOTE", "ProbeEvaluator", "probe_margins", "probe_accuracy", "eval_probe"]

# The probe's features unless told: LSA of the data's own words (alignscope.embed.lsa), about a minute at
# AlpacaEval's size on 2 cores and sharing no parameter with the static encoder the selectors use by
# default, so the judge does not favour what a selector saw (MiniLM: about an hour there).
PROBE_ENCODER = "lsa"

PROBE_NOTE = ("proxy: a linear Bradley-Terry reward model on frozen sentence embeddings of the selected pairs; "
              "it predicts which subsets carry a learnable preference signal, it is not the accuracy of a trained policy")


def _pair_matrices(embeddings: Any) -> tuple[np.ndarray, np.ndarray]:
    """(chosen, rejected) matrices, one row per pair, from an Embeddings object (``matrix``,
    ``pair_index``, ``label``), a ``(2N, d)`` array (rows 0..N-1 chosen, N..2N-1 rejected) or a
    ``(chosen, rejected)`` tuple."""
    if isinstance(embeddings, tuple) and len(embeddings) == 2:
        chosen, rejected = (np.asarray(m, dtype=np.float64) for m in embeddings)
    else:
        matrix = np.asarray(getattr(embeddings, "matrix", embeddings), dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] % 2:
            raise EvaluationError(f"completion embeddings must be a (2N, d) matrix, got shape {matrix.shape}")
        pair_index = getattr(embeddings, "pair_index", None)
        label = getattr(embeddings, "label", None)
        n = matrix.shape[0] // 2
        if pair_index is not None and label is not None:
            pair_index = np.asarray(pair_index, dtype=np.int64)
            label = np.asarray(label, dtype=np.int64)
            chosen = np.full((n, matrix.shape[1]), np.nan)
            rejected = np.full((n, matrix.shape[1]), np.nan)
            chosen[pair_index[label == 1]] = matrix[label == 1]
            rejected[pair_index[label == 0]] = matrix[label == 0]
            if np.isnan(chosen).any() or np.isnan(rejected).any():
                raise EvaluationError("the embeddings do not hold both completions of every pair (unit must be 'completion')")
        else:
            chosen, rejected = matrix[:n], matrix[n:]
    if chosen.shape != rejected.shape or chosen.ndim != 2:
        raise EvaluationError(f"chosen and rejected embeddings differ in shape: {chosen.shape} vs {rejected.shape}")
    return chosen, rejected


class ProbeEvaluator:
    """The Bradley–Terry probe of :func:`probe_accuracy`, prepared once for one data set and one
    held-out split and then fitted on many training subsets (a sweep's points): the pair matrices,
    the held-out pairs' word lengths and the length rule are computed once.

    ``embeddings``: completion embeddings as :func:`_pair_matrices` reads them (``(2N, d)`` or an
    Embeddings object or a ``(chosen, rejected)`` tuple); ``test_pairs``: held-out pair indices
    ``(n_test,)``; ``data``: the pairs' texts, for the length baseline and the metrics that control
    for length (without it only accuracy is reported); ``length_rule``: default learned from every
    pair that is not held out.
    """

    def __init__(self, embeddings: Any, test_pairs: Sequence[int] | np.ndarray, *, data: Any = None,
                 length_rule: LengthRule | None = None, seed: int = 0, C: float = 1.0, n_boot: int = DEFAULT_N_BOOT):
        self.chosen, self.rejected = _pair_matrices(embeddings)
        self.test_pairs = np.asarray(test_pairs, dtype=np.int64).ravel()
        if self.test_pairs.size == 0:
            raise EvaluationError("the probe has no held-out pairs")
        n = self.chosen.shape[0]
        if self.test_pairs.min() < 0 or self.test_pairs.max() >= n:
            raise EvaluationError(f"held-out pair index out of range for {n} pairs")
        self.seed, self.C, self.n_boot = int(seed), float(C), int(n_boot)
        self.test_diff = self.chosen[self.test_pairs] - self.rejected[self.test_pairs]
        self.rule = self.test_words = None
        if data is not None:
            self.rule = length_rule or heldout_length_rule(data, self.test_pairs)
            self.test_words = pair_word_lengths(data, self.test_pairs)

    def margins(self, train_pairs: Sequence[int] | np.ndarray, *, swapped: Sequence[int] | np.ndarray | None = None
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fit on ``train_pairs`` (those in ``swapped`` with chosen and rejected exchanged: a label
        fix); returns (held-out margins (n_test,), training margins (n_train,), weights (d,))."""
        from sklearn.linear_model import LogisticRegression

        train_pairs = np.asarray(train_pairs, dtype=np.int64).ravel()
        if train_pairs.size == 0:
            raise EvaluationError("the probe has no training pairs")
        n = self.chosen.shape[0]
        if train_pairs.min() < 0 or train_pairs.max() >= n:
            raise EvaluationError(f"training pair index out of range for {n} pairs")
        overlap = np.intersect1d(train_pairs, self.test_pairs)
        if overlap.size:
            raise EvaluationError(f"{overlap.size} pairs are both training and held-out pairs")
        diff = self.chosen[train_pairs] - self.rejected[train_pairs]
        if swapped is not None and len(swapped):
            diff[np.isin(train_pairs, np.asarray(swapped, dtype=np.int64))] *= -1.0
        X = np.vstack([diff, -diff])
        y = np.concatenate([np.ones(len(diff), dtype=np.int64), np.zeros(len(diff), dtype=np.int64)])
        model = LogisticRegression(fit_intercept=False, C=self.C, max_iter=5000, random_state=self.seed)
        with one_blas_thread():  # L-BFGS's matrix-vector products: 5x faster on one thread (alignscope.blas)
            model.fit(X, y)
        w = model.coef_.ravel()
        return self.test_diff @ w, diff @ w, w

    def evaluate(self, train_pairs: Sequence[int] | np.ndarray, *, swapped: Sequence[int] | np.ndarray | None = None,
                 with_margins: bool = False) -> dict[str, Any]:
        """The probe's scores on the held-out pairs after fitting on ``train_pairs`` (the keys of
        :func:`probe_accuracy`; ``swapped``: training pairs whose labels are exchanged first);
        ``with_margins`` adds the arrays ``heldout_pairs`` and ``heldout_margin`` (not JSON)."""
        started = time.monotonic()
        test_scores, train_scores, w = self.margins(train_pairs, swapped=swapped)
        if self.rule is not None:
            result = preference_metrics(test_scores, *self.test_words, self.rule, n_boot=self.n_boot, seed=self.seed)
        else:
            accuracy, ci = share_ci(test_scores, self.n_boot, self.seed)
            result = {"accuracy": accuracy, "accuracy_ci95": ci, "n_heldout": int(self.test_pairs.size)}
        result.update({
            "train_accuracy": float(success(train_scores).mean()),
            "margin_mean": float(test_scores.mean()),
            "n_train": int(len(train_scores)), "n_test": int(self.test_pairs.size), "dim": int(len(w)),
            "C": self.C, "weight_norm": float(np.linalg.norm(w)), "n_boot": self.n_boot, "seed": self.seed,
            "elapsed_s": round(time.monotonic() - started, 3), "note": PROBE_NOTE,
        })
        if with_margins:
            result["heldout_pairs"], result["heldout_margin"] = self.test_pairs, test_scores
        return result


def probe_margins(embeddings: Any, train_pairs: Sequence[int] | np.ndarray, test_pairs: Sequence[int] | np.ndarray,
                  seed: int = 0, *, C: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit the Bradley–Terry probe of :func:`probe_accuracy`; returns (held-out margins (n_test,),
    training margins (n_train,), weights (d,))."""
    return ProbeEvaluator(embeddings, test_pairs, seed=seed, C=C).margins(train_pairs)


def probe_accuracy(embeddings: Any, train_pairs: Sequence[int] | np.ndarray, test_pairs: Sequence[int] | np.ndarray,
                   seed: int = 0, *, C: float = 1.0, n_boot: int = DEFAULT_N_BOOT, data: Any = None,
                   length_rule: LengthRule | None = None) -> dict[str, Any]:
    """Held-out pairwise accuracy of a Bradley–Terry linear reward model on frozen embeddings.

    The reward is r(y) = w·e(y). P(chosen ≻ rejected) = σ(w·(e_c − e_r)); w is fitted by L2
    logistic regression WITHOUT intercept on the differences of the ``train_pairs`` (each
    difference also enters negated with the opposite label, which makes the fit symmetric: swapping
    chosen and rejected flips the prediction). Scored on ``test_pairs``: share with
    w·(e_c − e_r) > 0 (ties 0.5), with a seeded bootstrap 95 % interval. With ``data`` (the pairs'
    texts), the result also carries :func:`alignscope.evaluate.metrics.preference_metrics` of the held-out
    margins: the length baseline (rule ``length_rule``, default: learned from every pair that is not
    held out), length-controlled accuracy and log loss. Many subsets of one data set:
    :class:`ProbeEvaluator` prepares the shared parts once.

    This is a PROXY for training: it says whether the selected pairs carry a preference signal a
    linear model of the embeddings can learn, in seconds; it is not what DPO/KTO would reach.
    """
    return ProbeEvaluator(embeddings, test_pairs, data=data, length_rule=length_rule, seed=seed, C=C,
                          n_boot=n_boot).evaluate(train_pairs)


def eval_probe(data: Any, selection: Any = None, *, encoder: str = PROBE_ENCODER, test_fraction: float = 0.2,
               seed: int = 0, pair_rule: str = "any", embeddings: Any = None, C: float = 1.0,
               n_boot: int = DEFAULT_N_BOOT, with_margins: bool = False, **embed_options: Any) -> dict[str, Any]:
    """The probe on a selection (``alignscope eval-probe DATA --selection SEL [--eval-encoder E]``).

    Held-out pairs come from :func:`split_pairs` (``test_fraction``, ``seed``) over the whole data,
    as in training; the probe is fitted on the SELECTED pairs that are not held out (a
    completion-level selection keeps a pair by ``pair_rule``, as DPO training does) and scored on
    every held-out pair, beside the length baseline (see :func:`probe_accuracy`). ``encoder``: the
    probe's own features (the *evaluation* encoder); ``embeddings``: precomputed completion
    embeddings, else ``alignscope.embed.encoders.embed(data, encoder=encoder, unit="completion", **embed_options)``.
    When the selection was made with the same encoder, ``circular`` is True: the selector and the
    judge see the same features. ``with_margins``: also return the held-out pairs and their margins
    as arrays (``heldout_pairs``, ``heldout_margin``; not JSON). A proxy for training.
    """
    from alignscope.data.preferences import PreferenceData, load_preferences

    if not isinstance(data, PreferenceData):
        data = load_preferences(data)
    tset = training_set(data, selection, method="dpo", test_fraction=test_fraction, split_seed=seed,
                        pair_rule=pair_rule)
    if len(tset.test_pairs) == 0:
        raise EvaluationError("test_fraction must be > 0: the probe needs held-out pairs")
    used_encoder = getattr(embeddings, "encoder", None)
    if embeddings is None:
        embeddings = embed(data, encoder=encoder, unit="completion", **embed_options)
        used_encoder = getattr(embeddings, "encoder", None) or encoder
    result = ProbeEvaluator(embeddings, tset.test_pairs, data=data, seed=seed, C=C, n_boot=n_boot).evaluate(
        tset.pairs, with_margins=with_margins)
    selection_encoder = _selection_encoder(tset.info.get("meta"))
    result.update({"encoder": used_encoder, "eval_encoder": used_encoder, "selection_encoder": selection_encoder,
                   "circular": bool(selection_encoder is not None and selection_encoder == used_encoder),
                   "data_fingerprint": data.fingerprint,
                   "selection": tset.info.get("path"), "selection_level": tset.level,
                   "n_selected": tset.n_selected, "n_selected_in_test": tset.n_selected_in_test,
                   "test_fraction": test_fraction, "pair_rule": pair_rule})
    if result["circular"]:
        result["circular_note"] = (f"the selection and the probe both use {used_encoder} features: the probe may "
                                   "favour what the selector saw; judge with another --eval-encoder")
    return result


def _selection_encoder(meta: Any) -> str | None:
    """The encoder a selection's recorded config names (None for random or unknown)."""
    if not isinstance(meta, Mapping) or meta.get("method") == "random":  # random reads no features
        return None
    for key in ("encoder",):
        if isinstance(meta.get(key), str) and meta[key]:
            return meta[key]
    for value in meta.values():
        found = _selection_encoder(value) if isinstance(value, Mapping) else None
        if found:
            return found
    return None

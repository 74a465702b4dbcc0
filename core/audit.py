"""Audit a preference set: suspected flipped labels, near-duplicates, outliers and length bias.

:func:`audit` returns one row per pair (a ``pandas.DataFrame``, columns :data:`AUDIT_COLUMNS`);
:func:`audit_summary` condenses it (counts, rates, per metadata column); :func:`clean_selection`
turns it into an ordinary pair-level selection table (method ``"clean"``, the format of
:mod:`alignscope.select.selectors`) that ``alignscope train --selection``, ``export`` and ``eval-probe`` read
unchanged. Everything works on the completion embeddings of :func:`alignscope.embed.encoders.embed`
(``unit="completion"``: a ``(2N, d)`` matrix, rows ``0..N-1`` the chosen and ``N..2N-1`` the
rejected completions), computed once and cached.

The rules (each is a documented, adjustable default):

``flip_score`` / ``suspect_flip``
    A Bradley–Terry reward probe r(y) = w·e(y) (Bradley & Terry 1952) is cross-fitted: the pairs are
    split into ``folds`` seeded folds and each fold is scored by an L2 logistic regression WITHOUT
    intercept fitted on the other folds' differences ``e_c − e_r`` (label 1) and their negated
    copies (label 0), so no pair is scored by a model that saw it. ``flip_score`` is the
    out-of-fold probability that the REJECTED answer is the better one, ``1 − σ(w·(e_c − e_r))``.
    (The negated copy doubles every loss term, so the fit is computed as the same objective on one
    copy per pair with a seeded random sign and ``C`` doubled: exactly the same minimiser on half
    the rows; :func:`fit_bt_probe` says so and a test checks it.) ``suspect_flip`` is confident
    learning (Northcutt, Jiang & Chuang, "Confident Learning: Estimating Uncertainty in Dataset
    Labels", JAIR 2021) as implemented by ``cleanlab.filter.find_label_issues`` on the
    out-of-fold probabilities of the ``2N`` rows (each pair once as labelled, once negated).
``dup_group`` / ``is_duplicate``
    Whole-pair near-duplicates: pairs are blocked by their normalised prompt (lower case, every run
    of non-alphanumeric characters a single space). Inside a block, candidates need an embedding
    cosine ≥ ``dup_embed_threshold`` (0.9) for BOTH the chosen and the rejected completions, then a
    Jaccard similarity ≥ ``dup_text_threshold`` (0.8) of the character 3-shingle sets of BOTH
    normalised responses. Accepted links are merged (union-find); ``dup_group`` is the lowest pair
    index of the group (−1 when none), which is also the kept representative, and
    ``is_duplicate`` marks every other member. Cost: a block of ``b`` pairs costs ``b²·d`` flops,
    chunked; a block of more than ``max_block`` pairs (20,000) falls back to exact matches of the
    normalised texts. No all-pairs matrix over the data is ever formed.
``outlier_score`` / ``is_outlier``
    k-nearest-neighbour distance (Ramaswamy, Rastogi & Shim, SIGMOD 2000): the mean cosine
    distance of each completion to its ``outlier_k`` (10) nearest completions in a seeded reference
    sample of ``outlier_reference`` (2,000) completions (itself excluded). That distance becomes a
    robust z-score, ``(x − median) / (1.4826·MAD)``; a pair's ``outlier_score`` is the
    larger z of its two completions and ``is_outlier`` is ``outlier_score > outlier_z`` (3.5, the
    modified z-score rule of Iglewicz & Hoaglin 1993).
``length_ratio`` / ``identical``
    Chosen words over rejected words (whitespace tokens; a 0-word rejected counts as 1 word), and
    whether chosen and rejected are equal after lower-casing and collapsing whitespace.

The table also keeps ``chosen_words`` and ``rejected_words``. Speed: at 100k pairs × 384-d
embeddings (AlpacaEval texts, synthetic vectors) the whole audit took 28–58 s on two shared CPU
cores, depending on their load (``benchmarks/results/audit.json``).
"""
from __future__ import annotations

import difflib
import re
import time
from typing import Any, Sequence

import numpy as np
import pandas as pd

from alignscope.errors import AlignscopeError
from alignscope.select.selection import SELECTION_FORMAT_VERSION, Selection, order_by_score

__all__ = ["AuditError", "AUDIT_COLUMNS", "FLAGS", "audit", "audit_summary", "clean_selection",
           "fit_bt_probe", "oof_flip_scores", "pair_matrices", "normalise_prompt", "normalise_text",
           "duplicate_groups", "knn_outlier_scores", "nearest_pairs", "unit_rows", "word_diff", "search_pairs",
           "write_audit", "read_audit", "AUDIT_META_KEY", "duplicate_members", "keep_duplicates"]

AUDIT_COLUMNS = ("index", "flip_score", "suspect_flip", "dup_group", "is_duplicate", "outlier_score",
                 "is_outlier", "length_ratio", "identical", "reasons")
FLAGS = ("suspect_flip", "is_duplicate", "is_outlier", "identical")
AUDIT_META_KEY = b"alignscope.audit"
_NON_ALNUM = re.compile(r"[\W_]+", re.UNICODE)


class AuditError(AlignscopeError):
    """Bad audit input (too few pairs, embeddings of the wrong shape, unknown flag); one line."""


# ============================================================================== normalisation
def normalise_prompt(text: str) -> str:
    """Lower case, every run of non-alphanumeric characters (punctuation, spaces) one space."""
    return _NON_ALNUM.sub(" ", text.lower()).strip()


def normalise_text(text: str) -> str:
    """Lower case with whitespace runs collapsed to one space (the ``identical`` rule)."""
    return " ".join(text.lower().split())


def _texts(data: Any, column: str) -> list[str]:
    from alignscope.data.preferences import render_text

    frame = getattr(data, "frame", data)
    return [render_text(v) for v in frame[column].tolist()]


# ============================================================================== embeddings
def pair_matrices(embeddings: Any, n_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """``(chosen, rejected)``, each float32 ``(N, d)``, from completion embeddings: an
    ``alignscope.embed.encoders.Embeddings`` (its ``pair_index``/``label`` place the rows), a ``(2N, d)``
    matrix (rows ``0..N-1`` chosen, ``N..2N-1`` rejected) or a ``(chosen, rejected)`` tuple.
    Raises :class:`AuditError` for a wrong number of rows, a non-2-D matrix or non-finite values."""
    if isinstance(embeddings, tuple) and len(embeddings) == 2:
        chosen, rejected = (np.asarray(m, dtype=np.float32) for m in embeddings)
    else:
        if getattr(embeddings, "unit", "completion") != "completion":
            raise AuditError("the audit needs completion embeddings (unit='completion'), got unit="
                             f"{getattr(embeddings, 'unit', None)!r}")
        matrix = np.asarray(getattr(embeddings, "matrix", embeddings), dtype=np.float32)
        if matrix.ndim != 2:
            raise AuditError(f"embeddings must be a 2-D matrix, got shape {matrix.shape}")
        if matrix.shape[0] != 2 * n_pairs:
            raise AuditError(f"embeddings have {matrix.shape[0]:,} rows, but {n_pairs:,} pairs need "
                             f"{2 * n_pairs:,} (chosen then rejected completions): were they made on other data?")
        pair_index, label = getattr(embeddings, "pair_index", None), getattr(embeddings, "label", None)
        if pair_index is not None and label is not None:
            pair_index, label = np.asarray(pair_index, np.int64), np.asarray(label, np.int64)
            order_c = np.argsort(pair_index[label == 1], kind="stable")
            order_r = np.argsort(pair_index[label == 0], kind="stable")
            chosen, rejected = matrix[label == 1][order_c], matrix[label == 0][order_r]
            if len(chosen) != n_pairs or len(rejected) != n_pairs:
                raise AuditError("the embeddings do not hold one chosen and one rejected row per pair")
        else:
            chosen, rejected = matrix[:n_pairs], matrix[n_pairs:]
    if chosen.shape != rejected.shape or chosen.ndim != 2:
        raise AuditError(f"chosen and rejected embeddings differ in shape: {chosen.shape} vs {rejected.shape}")
    if chosen.shape[0] != n_pairs:
        raise AuditError(f"embeddings hold {chosen.shape[0]:,} pairs, the data {n_pairs:,}")
    if not (np.isfinite(chosen).all() and np.isfinite(rejected).all()):
        raise AuditError("the embeddings contain NaN or infinite values")
    return chosen, rejected


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, float32 (zero rows stay zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


# ============================================================================== flips
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
    model.fit(X, y)
    return model.coef_.ravel().astype(np.float64)


def oof_flip_scores(chosen: np.ndarray, rejected: np.ndarray, *, folds: int = 5, seed: int = 0,
                    C: float = 1.0) -> np.ndarray:
    """Out-of-fold ``P(rejected ≻ chosen)`` of the cross-fitted probe, float64 ``(N,)``.

    Pairs are assigned to ``folds`` seeded folds of (nearly) equal size; fold ``k`` is scored with
    :func:`fit_bt_probe` fitted on the other folds only.
    """
    n = len(chosen)
    diff = (chosen - rejected).astype(np.float32)
    fold_of = np.random.default_rng(seed).permutation(n) % folds
    out = np.empty(n, dtype=np.float64)
    for k in range(folds):
        test = fold_of == k
        w = fit_bt_probe(diff[~test], C=C, seed=seed + k)
        margin = diff[test].astype(np.float64) @ w
        out[test] = 1.0 / (1.0 + np.exp(np.clip(margin, -500, 500)))  # 1 − σ(margin)
    return out


def _label_issues(flip_score: np.ndarray) -> np.ndarray:
    """cleanlab's confident-learning filter on the 2N rows (pair as labelled + negated copy)."""
    from cleanlab.filter import find_label_issues

    n = len(flip_score)
    p_chosen = np.clip(1.0 - flip_score, 1e-9, 1 - 1e-9)
    labels = np.concatenate([np.ones(n, np.int64), np.zeros(n, np.int64)])
    # columns: P(class 0), P(class 1); class 1 = "the first answer is better"
    probs = np.vstack([np.column_stack([1 - p_chosen, p_chosen]), np.column_stack([p_chosen, 1 - p_chosen])])
    issues = find_label_issues(labels, probs, n_jobs=1)
    return issues[:n] | issues[n:]


# ============================================================================== duplicates
def _shingles(text: str, k: int = 3) -> frozenset:
    if len(text) <= k:
        return frozenset([text])
    return frozenset(text[i:i + k] for i in range(len(text) - k + 1))


def _jaccard(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def duplicate_groups(prompts: Sequence[str], chosen_texts: Sequence[str], rejected_texts: Sequence[str],
                     chosen: np.ndarray, rejected: np.ndarray, *, embed_threshold: float = 0.9,
                     text_threshold: float = 0.8, max_block: int = 20_000) -> np.ndarray:
    """``dup_group`` per pair (int64 ``(N,)``): the lowest pair index of its near-duplicate group,
    −1 when the pair has none. See the module docstring for the rule."""
    n = len(prompts)
    parent = np.arange(n)

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    def union(i: int, j: int) -> None:
        a, b = find(i), find(j)
        if a != b:
            parent[max(a, b)] = min(a, b)

    raw = pd.Series(list(prompts), dtype=object)
    uniques = raw.unique()  # prompts repeat (AlpacaEval: 805 prompts for 62k pairs): normalise each once
    keys = raw.map(dict(zip(uniques, (normalise_prompt(p) for p in uniques))))
    blocks = keys.groupby(keys, sort=False).indices
    norm_c = norm_r = None
    shingle_cache: dict[int, tuple[frozenset, frozenset]] = {}

    def shingles(i: int) -> tuple[frozenset, frozenset]:
        got = shingle_cache.get(i)
        if got is None:
            got = (_shingles(normalise_prompt(chosen_texts[i])), _shingles(normalise_prompt(rejected_texts[i])))
            shingle_cache[i] = got
        return got

    for rows in blocks.values():
        if len(rows) < 2:
            continue
        rows = np.sort(rows)
        if len(rows) > max_block:  # exact matches of the normalised texts only
            seen: dict[tuple[str, str], int] = {}
            for i in rows.tolist():
                key = (normalise_prompt(chosen_texts[i]), normalise_prompt(rejected_texts[i]))
                if key in seen:
                    union(seen[key], i)
                else:
                    seen[key] = i
            continue
        if norm_c is None:
            norm_c, norm_r = unit_rows(chosen), unit_rows(rejected)
        bc, br = norm_c[rows], norm_r[rows]
        step = max(1, 4_000_000 // len(rows))
        for start in range(0, len(rows), step):
            sim_c = bc[start:start + step] @ bc.T
            sim_r = br[start:start + step] @ br.T
            ok = (sim_c >= embed_threshold) & (sim_r >= embed_threshold)
            a_idx, b_idx = np.nonzero(ok)
            a_idx = a_idx + start
            keep = b_idx > a_idx
            for a, b in zip(a_idx[keep].tolist(), b_idx[keep].tolist()):
                i, j = int(rows[a]), int(rows[b])
                if find(i) == find(j):
                    continue
                (ci, ri), (cj, rj) = shingles(i), shingles(j)
                if _jaccard(ci, cj) >= text_threshold and _jaccard(ri, rj) >= text_threshold:
                    union(i, j)
    roots = np.array([find(i) for i in range(n)], dtype=np.int64)
    sizes = np.bincount(roots, minlength=n)
    return np.where(sizes[roots] > 1, roots, -1).astype(np.int64)


# ============================================================================== outliers
def knn_outlier_scores(matrix: np.ndarray, *, k: int = 10, reference: int = 2000, seed: int = 0) -> np.ndarray:
    """Robust z of log mean cosine distance to the ``k`` nearest rows of a seeded reference sample
    (itself excluded), float64 ``(n,)``. See the module docstring.

    The z-score is taken of the distance itself, not its log: kNN distances of sentence embeddings
    are concentrated, and a log compresses exactly the right tail the rule is meant to see (on HH
    and AlpacaEval no completion exceeded z = 3.5 after a log).
    """
    n = len(matrix)
    X = unit_rows(matrix)
    rng = np.random.default_rng(seed)
    ref_rows = np.sort(rng.choice(n, size=min(n, reference), replace=False))
    R = X[ref_rows]
    k_eff = max(1, min(k, len(ref_rows) - 1))
    position = np.full(n, -1, dtype=np.int64)
    position[ref_rows] = np.arange(len(ref_rows))
    dist = np.empty(n, dtype=np.float64)
    step = max(1, 8_000_000 // max(1, len(ref_rows)))
    for start in range(0, n, step):
        stop = min(n, start + step)
        d = 1.0 - X[start:stop] @ R.T
        own = position[start:stop]
        rows_in_ref = np.nonzero(own >= 0)[0]
        d[rows_in_ref, own[rows_in_ref]] = np.inf
        part = np.partition(d, k_eff - 1, axis=1)[:, :k_eff]
        dist[start:stop] = np.clip(part, 0.0, None).mean(axis=1)
    x = dist
    median = np.median(x)
    mad = np.median(np.abs(x - median)) * 1.4826
    if mad <= 0:
        mad = max(float(np.std(x)), 1e-12)
    return (x - median) / mad


# ============================================================================== the audit
def audit(data: Any, embeddings: Any = None, *, encoder: str = "minilm", folds: int = 5, seed: int = 0,
          C: float = 1.0, dup_embed_threshold: float = 0.9, dup_text_threshold: float = 0.8,
          outlier_k: int = 10, outlier_reference: int = 2000, outlier_z: float = 3.5,
          max_block: int = 20_000, progress: bool = False) -> pd.DataFrame:
    """Audit every pair of ``data`` (a PreferenceData, or a DataFrame with prompt/chosen/rejected).

    ``embeddings``: completion embeddings (see :func:`pair_matrices`); ``None`` embeds ``data``
    with ``encoder`` (cached on disk). Returns one row per pair with :data:`AUDIT_COLUMNS`, the
    configuration and timings in ``table.attrs["alignscope_audit"]``. Raises :class:`AuditError`
    for fewer pairs than folds, ``folds < 2`` or embeddings that do not fit the data.
    """
    frame = getattr(data, "frame", data)
    if not isinstance(frame, pd.DataFrame) or not {"prompt", "chosen", "rejected"} <= set(frame.columns):
        raise AuditError("the audit needs preference data with prompt, chosen and rejected columns")
    n = len(frame)
    if isinstance(folds, bool) or not isinstance(folds, (int, np.integer)) or folds < 2:
        raise AuditError(f"folds must be an integer >= 2, got {folds!r}")
    if n < folds:
        raise AuditError(f"the data has {n} pairs, fewer than the {folds} folds of the cross-fitted probe")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise AuditError(f"seed must be a non-negative integer, got {seed!r}")
    for name, value in (("dup_embed_threshold", dup_embed_threshold), ("dup_text_threshold", dup_text_threshold)):
        if not 0.0 <= float(value) <= 1.0:
            raise AuditError(f"{name} must be in [0, 1], got {value}")
    used_encoder = encoder
    if embeddings is None:
        from alignscope.data.preferences import PreferenceData, load_preferences
        from alignscope.embed.encoders import embed

        if not isinstance(data, PreferenceData):
            data = load_preferences(frame)
        embeddings = embed(data, encoder, "completion", progress=progress)
    else:
        used_encoder = getattr(embeddings, "encoder", None) or None
        made_on, this = getattr(embeddings, "fingerprint", None), getattr(data, "fingerprint", None)
        if isinstance(made_on, str) and isinstance(this, str) and made_on != this:
            raise AuditError(f"the embeddings were made on data with fingerprint {made_on}, this data has {this}")
    chosen, rejected = pair_matrices(embeddings, n)
    started = time.perf_counter()  # the audit proper, once the embeddings exist
    timings: dict[str, float] = {}

    tick = time.perf_counter()
    flip_score = oof_flip_scores(chosen, rejected, folds=int(folds), seed=int(seed), C=C)
    suspect = _label_issues(flip_score)
    timings["flips_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    prompts, chosen_texts, rejected_texts = (_texts(data, c) for c in ("prompt", "chosen", "rejected"))
    dup_group = duplicate_groups(prompts, chosen_texts, rejected_texts, chosen, rejected,
                                 embed_threshold=dup_embed_threshold, text_threshold=dup_text_threshold,
                                 max_block=max_block)
    index = np.arange(n, dtype=np.int64)
    is_duplicate = (dup_group >= 0) & (dup_group != index)
    timings["duplicates_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    z = knn_outlier_scores(np.vstack([chosen, rejected]), k=outlier_k, reference=outlier_reference, seed=seed)
    outlier_score = np.maximum(z[:n], z[n:])
    is_outlier = outlier_score > outlier_z
    timings["outliers_s"] = time.perf_counter() - tick

    tick = time.perf_counter()
    words_c = np.fromiter((len(t.split()) for t in chosen_texts), dtype=np.int64, count=n)
    words_r = np.fromiter((len(t.split()) for t in rejected_texts), dtype=np.int64, count=n)
    length_ratio = words_c / np.maximum(words_r, 1)
    identical = np.zeros(n, dtype=bool)
    for i in np.nonzero(words_c == words_r)[0].tolist():  # equal texts have equal word counts
        identical[i] = normalise_text(chosen_texts[i]) == normalise_text(rejected_texts[i])
    reasons = _reasons(flip_score, suspect, dup_group, is_duplicate, outlier_score, is_outlier, identical)
    timings["text_s"] = time.perf_counter() - tick

    table = pd.DataFrame({
        "index": index, "flip_score": flip_score, "suspect_flip": suspect.astype(bool), "dup_group": dup_group,
        "is_duplicate": is_duplicate, "outlier_score": outlier_score, "is_outlier": is_outlier,
        "length_ratio": length_ratio.astype(np.float64), "identical": identical, "reasons": reasons,
        "chosen_words": words_c, "rejected_words": words_r,
    })
    timings["total_s"] = time.perf_counter() - started
    table.attrs["alignscope_audit"] = {
        "n_pairs": n, "encoder": used_encoder, "dim": int(chosen.shape[1]), "folds": int(folds), "seed": int(seed),
        "C": float(C), "dup_embed_threshold": float(dup_embed_threshold),
        "dup_text_threshold": float(dup_text_threshold), "outlier_k": int(outlier_k),
        "outlier_reference": int(outlier_reference), "outlier_z": float(outlier_z), "max_block": int(max_block),
        "data_fingerprint": getattr(data, "fingerprint", None),
        "timings": {k: round(v, 3) for k, v in timings.items()}, "alignscope_version": _version(),
    }
    return table


def _reasons(flip_score, suspect, dup_group, is_duplicate, outlier_score, is_outlier, identical) -> list[str]:
    out = []
    for i in range(len(flip_score)):
        parts = []
        if identical[i]:
            parts.append("chosen = rejected (case/space)")
        if suspect[i]:
            parts.append(f"label looks flipped (p={flip_score[i]:.2f})")
        if is_duplicate[i]:
            parts.append(f"near-copy of pair #{int(dup_group[i]) + 1}")  # pairs are shown numbered from 1
        if is_outlier[i]:
            parts.append(f"outlier (z={outlier_score[i]:.1f})")
        out.append("; ".join(parts))
    return out


# ============================================================================== summary
def _rates(table: pd.DataFrame) -> dict[str, Any]:
    n = len(table)
    longer = (table["chosen_words"] > table["rejected_words"]).to_numpy()
    ties = (table["chosen_words"] == table["rejected_words"]).to_numpy()
    acc_longer = float(longer.mean() + 0.5 * ties.mean()) if n else float("nan")
    return {
        "n_pairs": int(n),
        "suspect_flip": int(table["suspect_flip"].sum()),
        "duplicates": int(table["is_duplicate"].sum()),
        "dup_groups": int(table.loc[table["dup_group"] >= 0, "dup_group"].nunique()),
        "outliers": int(table["is_outlier"].sum()),
        "identical": int(table["identical"].sum()),
        "suspect_flip_rate": float(table["suspect_flip"].mean()) if n else float("nan"),
        "duplicate_rate": float(table["is_duplicate"].mean()) if n else float("nan"),
        "outlier_rate": float(table["is_outlier"].mean()) if n else float("nan"),
        "identical_rate": float(table["identical"].mean()) if n else float("nan"),
        "mean_flip_score": float(table["flip_score"].mean()) if n else float("nan"),
        # how well the cross-fitted probe agrees with the labels out of fold (ties ½): how far to
        # trust suspect_flip; beside it, the length rule's accuracy on the same labels
        "probe_oof_accuracy": float((table["flip_score"] < 0.5).mean() + 0.5 * (table["flip_score"] == 0.5).mean())
        if n else float("nan"),
        "chosen_longer_share": float(longer.mean()) if n else float("nan"),
        "tie_share": float(ties.mean()) if n else float("nan"),
        "length_baseline": max(acc_longer, 1.0 - acc_longer) if n else float("nan"),
        "length_baseline_direction": "longer wins" if acc_longer >= 0.5 else "shorter wins",
    }


def audit_summary(data: Any, table: pd.DataFrame, *, max_levels: int = 20) -> dict[str, Any]:
    """Counts and rates of every flag, the length bias and the same per metadata column with
    2..``max_levels`` distinct scalar values (``by_column``: column → list of per-value dicts).

    ``length_baseline`` is the accuracy of the "longer answer wins" rule with its direction chosen
    by majority (ties count ½), i.e. ``max(acc, 1 − acc)``.
    """
    _check_table(table, data)
    summary = _rates(table)
    by_column: dict[str, list[dict[str, Any]]] = {}
    frame = getattr(data, "frame", data)
    metadata = [c for c in frame.columns if c not in ("prompt", "chosen", "rejected")]
    for column in metadata:
        values = frame[column]
        if not values.map(lambda v: isinstance(v, (str, bool, int, np.integer, np.bool_))).all():
            continue
        levels = values.nunique()
        if not 2 <= levels <= max_levels:
            continue
        rows = []
        for value, idx in values.groupby(values, sort=True).indices.items():
            rows.append({"value": value.item() if hasattr(value, "item") else value, **_rates(table.iloc[idx])})
        by_column[column] = rows
    summary["by_column"] = by_column
    summary["config"] = dict(table.attrs.get("alignscope_audit", {}))
    return summary


def _check_table(table: pd.DataFrame, data: Any) -> None:
    missing = [c for c in AUDIT_COLUMNS if c not in table.columns]
    if missing:
        raise AuditError(f"not an audit table: missing column(s) {', '.join(missing)}")
    n = len(getattr(data, "frame", data))
    if len(table) != n:
        raise AuditError(f"the audit has {len(table):,} rows but the data {n:,} pairs: audit this data again")


# ============================================================================== clean selection
def clean_selection(data: Any, table: pd.DataFrame, drop: Sequence[str] = FLAGS) -> Selection:
    """The pairs that carry none of the ``drop`` flags, as a pair-level
    :class:`~alignscope.select.selection.Selection` (method ``"clean"``; columns ``index, score, selected,
    rank`` + the flags), the same type ``select`` returns.

    ``score`` = 1 for kept and 0 for dropped pairs, minus ½·``flip_score`` to order pairs within
    each, so ``selected`` is exactly the top of the ranking. Raises :class:`AuditError` for an
    unknown flag or when nothing is left.
    """
    drop = tuple(drop)
    unknown = [name for name in drop if name not in FLAGS]
    if unknown:
        raise AuditError(f"unknown flag(s) {', '.join(map(repr, unknown))} to drop; choose from {', '.join(FLAGS)}")
    _check_table(table, data)
    flagged = np.zeros(len(table), dtype=bool)
    for name in drop:
        flagged |= table[name].to_numpy(dtype=bool)
    kept = ~flagged
    if not kept.any():
        raise AuditError(f"every pair carries one of the flags {', '.join(drop)}: nothing is left to keep")
    score = kept.astype(np.float64) - 0.5 * table["flip_score"].to_numpy(dtype=np.float64)
    order = order_by_score(score)
    rank = np.empty(len(score), dtype=np.int64)
    rank[order] = np.arange(1, len(score) + 1)
    out = pd.DataFrame({"index": table["index"].to_numpy(dtype=np.int64), "score": score, "selected": kept,
                        "rank": rank})
    for name in FLAGS:
        out[name] = table[name].to_numpy(dtype=bool)
    audit_config = dict(table.attrs.get("alignscope_audit", {}))
    n_kept = int(kept.sum())
    config = {
        "format_version": SELECTION_FORMAT_VERSION, "method": "clean", "unit": "pair", "k": n_kept,
        "k_requested": None, "fraction": None, "n_points": int(len(out)), "n_selected": n_kept,
        "seed": audit_config.get("seed"), "options": {"drop": list(drop)},
        "dropped": {name: int(table[name].sum()) for name in drop},
        "score": "1 for pairs without the dropped flags, 0 otherwise, minus flip_score/2",
        "encoder": audit_config.get("encoder"), "audit": audit_config, "alignscope_version": _version(),
    }
    return Selection(out, config, getattr(data, "fingerprint", None) or audit_config.get("data_fingerprint"))


# ============================================================================== I/O
def write_audit(table: pd.DataFrame, path: Any) -> Any:
    """Write the audit table to parquet atomically, its config in the schema metadata."""
    import json
    from pathlib import Path

    import pyarrow as pa
    import pyarrow.parquet as pq

    from alignscope.files import atomic_path

    path = Path(path)
    arrow = pa.Table.from_pandas(table, preserve_index=False)
    metadata = dict(arrow.schema.metadata or {})
    metadata[AUDIT_META_KEY] = json.dumps(table.attrs.get("alignscope_audit", {}), default=str).encode("utf-8")
    with atomic_path(path) as tmp:
        pq.write_table(arrow.replace_schema_metadata(metadata), tmp)
    return path


def read_audit(path: Any) -> pd.DataFrame:
    """Read an audit parquet back (config in ``attrs["alignscope_audit"]``)."""
    import json

    import pyarrow.parquet as pq

    try:
        arrow = pq.read_table(path)
    except Exception as exc:  # noqa: BLE001 - pyarrow raises several types for non-parquet input
        raise AuditError(f"{path}: not an audit parquet file ({type(exc).__name__})") from None
    table = arrow.to_pandas()
    raw = (arrow.schema.metadata or {}).get(AUDIT_META_KEY)
    table.attrs["alignscope_audit"] = json.loads(raw.decode("utf-8")) if raw else {}
    missing = [c for c in AUDIT_COLUMNS if c not in table.columns]
    if missing:
        raise AuditError(f"{path}: not an audit table (missing {', '.join(missing)})")
    return table


# ============================================================================== page helpers
def nearest_pairs(chosen: np.ndarray, rejected: np.ndarray, i: int, k: int = 5, *,
                  normalised: bool = False) -> pd.DataFrame:
    """The ``k`` pairs nearest to pair ``i`` by cosine similarity of the pair vector
    ``[ĉ, r̂] / √2`` (unit-normalised completions side by side): ``index``, ``similarity``.
    ``normalised=True``: the rows are already unit vectors (no copy is made)."""
    n = len(chosen)
    if not 0 <= i < n:
        raise AuditError(f"pair {i} is out of range (0..{n - 1})")
    c, r = (chosen, rejected) if normalised else (unit_rows(chosen), unit_rows(rejected))
    sim = (c @ c[i] + r @ r[i]) / 2.0
    sim[i] = -np.inf
    k = min(k, n - 1)
    top = np.argpartition(-sim, k - 1)[:k] if k > 0 else np.array([], dtype=np.int64)
    top = top[np.argsort(-sim[top], kind="stable")]
    return pd.DataFrame({"index": top.astype(np.int64), "similarity": sim[top].astype(np.float64)})


def duplicate_members(table: pd.DataFrame, pair: int) -> list[int]:
    """Every pair of ``pair``'s near-duplicate group, the group's first pair first ([] when it has none)."""
    group = int(table["dup_group"].to_numpy()[pair])
    if group < 0:
        return []
    return sorted(int(i) for i in table.loc[table["dup_group"].to_numpy() == group, "index"])


def keep_duplicates(table: pd.DataFrame, keep: dict[int, int]) -> pd.DataFrame:
    """The audit table with the kept member of some near-duplicate groups chosen by hand:
    ``keep`` maps a group (its ``dup_group``) to the pair to keep; every other member of that group
    becomes ``is_duplicate`` (the rule's default keeps the group's first pair). The result feeds
    :func:`clean_selection` unchanged. Raises :class:`AuditError` when a pair is not in the group."""
    out = table.copy()
    is_duplicate = out["is_duplicate"].to_numpy(dtype=bool).copy()
    groups = out["dup_group"].to_numpy()
    for group, pair in keep.items():
        members = groups == int(group)
        if int(group) < 0 or not 0 <= int(pair) < len(out) or not members[int(pair)]:
            raise AuditError(f"pair {pair} is not in the near-duplicate group {group}")
        is_duplicate[members] = True
        is_duplicate[int(pair)] = False
    out["is_duplicate"] = is_duplicate
    return out


def word_diff(a: str, b: str) -> str:
    """A plain-text word-level diff of ``a`` (chosen) against ``b`` (rejected): runs of words on
    lines prefixed ``"  "`` (both), ``"- "`` (only in chosen) or ``"+ "`` (only in rejected)."""
    wa, wb = a.split(), b.split()
    lines = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(a=wa, b=wb, autojunk=False).get_opcodes():
        if op == "equal":
            lines.append("  " + " ".join(wa[i1:i2]))
            continue
        if i2 > i1:
            lines.append("- " + " ".join(wa[i1:i2]))
        if j2 > j1:
            lines.append("+ " + " ".join(wb[j1:j2]))
    return "\n".join(lines)


def search_pairs(data: Any, query: str, columns: Sequence[str] = ("prompt", "chosen", "rejected")) -> np.ndarray:
    """Pair indices whose prompt or responses contain ``query`` (case-insensitive substring)."""
    frame = getattr(data, "frame", data)
    query = query.strip()
    if not query:
        return np.arange(len(frame), dtype=np.int64)
    hit = np.zeros(len(frame), dtype=bool)
    for column in columns:
        hit |= pd.Series(_texts(data, column)).str.contains(query, case=False, regex=False).to_numpy()
    return np.nonzero(hit)[0].astype(np.int64)


def _version() -> str:
    from alignscope import __version__

    return __version__


"""Near-copies and outliers: the defects a pair has with respect to the OTHER pairs.

``duplicate_groups``: whole-pair near-duplicates within pairs of the same normalised prompt
(embedding cosine, then character 3-shingle Jaccard of both answers; union-find).
``knn_outlier_scores``: robust z-score of the mean cosine distance to the k nearest completions
of a seeded reference sample (Ramaswamy, Rastogi & Shim, SIGMOD 2000; Iglewicz & Hoaglin 1993).
The rules in full are in :mod:`alignscope.audit`'s docstring.
"""
from __future__ import annotations

import re
from typing import Sequence

import numpy as np
import pandas as pd

from alignscope.audit.vectors import unit_rows

__all__ = ["normalise_prompt", "normalise_text", "duplicate_groups", "knn_outlier_scores"]

_NON_ALNUM = re.compile(r"[\W_]+", re.UNICODE)


def normalise_prompt(text: str) -> str:
    """Lower case, every run of non-alphanumeric characters (punctuation, spaces) one space."""
    return _NON_ALNUM.sub(" ", text.lower()).strip()


def normalise_text(text: str) -> str:
    """Lower case with whitespace runs collapsed to one space (the ``identical`` rule)."""
    return " ".join(text.lower().split())


def _shingles(text: str) -> np.ndarray:
    """The distinct character 3-shingles of ``text`` as sorted int64 codes.

    Exact, not hashed: three code points of at most 21 bits each pack into 63 bits. A text of fewer
    than three characters is its own one shingle (a negative code, so it never equals a 3-gram).
    A few kB per text, where a set of 3-character strings took ~100 kB (the audit of 62k AlpacaEval
    pairs peaked at 7.5 GiB with sets, and 250k pairs ran out of memory).
    """
    codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    if len(codes) < 3:
        packed = 0
        for code in codes.tolist():
            packed = (packed << 21) | (code + 1)  # +1: "\0a" and "a" stay apart
        return np.array([-1 - packed], dtype=np.int64)
    return np.unique((codes[:-2] << 42) | (codes[1:-1] << 21) | codes[2:])


def _jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted arrays of distinct codes."""
    both = np.intersect1d(a, b, assume_unique=True).size
    union = a.size + b.size - both
    return 1.0 if union == 0 else both / union


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
    # Shingles by text, kept for one block at a time (candidates never leave their block): memory is
    # bounded by the largest block, and a text repeated across pairs (AlpacaEval: 57 % of the
    # completions) is shingled once per block.
    shingle_cache: dict[str, np.ndarray] = {}

    def shingles(text: str) -> np.ndarray:
        got = shingle_cache.get(text)
        if got is None:
            got = shingle_cache[text] = _shingles(normalise_prompt(text))
        return got

    for rows in blocks.values():
        shingle_cache.clear()
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
                if (_jaccard(shingles(chosen_texts[i]), shingles(chosen_texts[j])) >= text_threshold
                        and _jaccard(shingles(rejected_texts[i]), shingles(rejected_texts[j])) >= text_threshold):
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

"""Helpers of the Audit page's pair view: a word diff, the nearest pairs, a text search."""
from __future__ import annotations

import difflib
from typing import Any, Sequence

import numpy as np
import pandas as pd

from alignscope.audit.config import AuditError
from alignscope.audit.vectors import unit_rows

__all__ = ["nearest_pairs", "word_diff", "search_pairs"]


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
        hit |= pd.Series(_column_texts(data, column)).str.contains(query, case=False, regex=False).to_numpy()
    return np.nonzero(hit)[0].astype(np.int64)




def _column_texts(data: Any, column: str) -> list[str]:
    from alignscope.data.preferences import render_text

    frame = getattr(data, "frame", data)
    return [render_text(v) for v in frame[column].tolist()]

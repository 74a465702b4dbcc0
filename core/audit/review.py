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
    :func:`~alignscope.audit.table.clean_selection` unchanged. Raises :class:`AuditError` when a
    pair is not in the group."""
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

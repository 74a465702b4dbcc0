"""Completion embeddings as the audit reads them: one chosen and one rejected row per pair."""
from __future__ import annotations

from typing import Any

import numpy as np

from alignscope.audit.config import AuditError

__all__ = ["pair_matrices", "unit_rows"]


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

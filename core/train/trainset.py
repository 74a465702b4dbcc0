"""From (data, selection, split) to the rows a run trains on.

* :func:`split_pairs`: the seeded held-out split of ALL pairs (every selection of one data set is
  scored on the same pairs);
* :func:`read_selection_table` / :func:`training_set`: a selection (parquet, Selection or table)
  checked against the data (:meth:`Selection.check_against`) and turned into training rows (one
  per pair for DPO, one per completion for KTO) by the pair rule (:meth:`Selection.pairs`), minus
  the held-out pairs; every check fails with a one-line :class:`~alignscope.train.config.TrainError`;
* :func:`flipped_pairs`: the training pairs a ``label_noise`` run swaps.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alignscope.errors import AlignscopeError
from alignscope.files import jsonable
from alignscope.select.selection import Selection, SelectionError
from alignscope.train.config import METHODS, PAIR_RULES, TrainError

__all__ = ["EvaluationError", "split_pairs", "read_selection_table", "TrainingSet",
           "training_set", "flipped_pairs"]


class EvaluationError(AlignscopeError):
    """Evaluation input that cannot be used (a split, held-out pairs); one line for the user."""


def split_pairs(n_pairs: int, test_fraction: float = 0.2, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Seeded split of pair indices ``0..n_pairs-1`` into sorted ``(train, test)`` arrays.

    ``n_test = round(test_fraction · n_pairs)`` (at least 1 when the fraction is > 0 and there are
    two or more pairs); the permutation comes from ``numpy.random.default_rng(seed)``, so the same
    (n, fraction, seed) always gives the same pairs on every machine.
    """
    n = int(n_pairs)
    if n < 0:
        raise EvaluationError(f"n_pairs must be >= 0, got {n_pairs}")
    if not (isinstance(test_fraction, (int, float)) and 0 <= test_fraction < 1):
        raise EvaluationError(f"test_fraction must be in [0, 1), got {test_fraction!r}")
    n_test = int(round(test_fraction * n))
    if test_fraction > 0 and n >= 2:
        n_test = min(max(n_test, 1), n - 1)
    else:
        n_test = 0 if n < 2 else min(n_test, n - 1)
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_test:]).astype(np.int64), np.sort(order[:n_test]).astype(np.int64)

# --------------------------------------------------------------------------------- selections
def read_selection_table(selection: Any) -> tuple[Selection, str | None]:
    """``(selection, path)`` from a selection parquet path, a :class:`Selection` or a selection
    table (DataFrame); every problem is a one-line :class:`TrainError`."""
    path: str | None = None
    if isinstance(selection, (str, os.PathLike)):
        path = str(Path(selection).expanduser())
        if not Path(path).is_file():
            raise TrainError(f"selection file {path!r} does not exist", field="selection")
    elif not isinstance(selection, (Selection, pd.DataFrame)):
        raise TrainError(f"cannot use a {type(selection).__name__} as a selection: give a selection parquet path, "
                         "a Selection or a DataFrame", field="selection")
    try:
        return Selection.coerce(selection), path
    except SelectionError as exc:
        raise TrainError(str(exc), field="selection") from None


@dataclass
class TrainingSet:
    """What a run trains on, after holding out the test pairs.

    ``rows``: for DPO, one row per pair (``pair``); for KTO, one row per completion (``pair``,
    ``label`` 1 = chosen / desirable, 0 = rejected). ``table`` is the selection table with the
    columns ``in_test`` and ``trained`` added (written as ``selection.parquet``).
    """

    method: str
    rows: pd.DataFrame
    table: pd.DataFrame
    level: str                     # "pair" | "completion" | "all"
    test_pairs: np.ndarray
    n_selected: int
    n_selected_in_test: int
    info: dict[str, Any] = field(default_factory=dict)
    selection: Selection | None = None

    @property
    def pairs(self) -> np.ndarray:
        return np.unique(self.rows["pair"].to_numpy(dtype=np.int64))

    def write_selection(self, path: str | os.PathLike) -> Path:
        """The selection as used (``table``, with ``in_test``/``trained``/``flipped``), its config and
        fingerprint kept: a selection file :meth:`Selection.read` reads back."""
        return self.selection.replace(table=self.table).write(path)


def training_set(data: Any, selection: Any = None, *, method: str = "dpo", test_fraction: float = 0.2,
                 split_seed: int = 0, pair_rule: str = "any") -> TrainingSet:
    """Turn (data, selection, split) into the rows a run trains on; every check of the input
    happens here and fails with a one-line :class:`TrainError`:

    an empty data set, a selection without ``index``/``selected`` columns, a selection made on other
    data (fingerprint mismatch, or indices beyond the data), a selection that selects nothing, and
    one whose selected rows are all held out.
    """
    if method not in METHODS:
        raise TrainError(f"unknown training method {method!r}: use one of {', '.join(METHODS)}")
    if pair_rule not in PAIR_RULES:
        raise TrainError(f"pair_rule must be one of {', '.join(PAIR_RULES)}, got {pair_rule!r}")
    n = len(data)
    if n == 0:
        raise TrainError("the data set has no pairs")
    _, test_pairs = split_pairs(n, test_fraction, split_seed)
    is_test = np.zeros(n, dtype=bool)
    is_test[test_pairs] = True
    info: dict[str, Any] = {"pair_rule": pair_rule}

    if selection is None:
        sel = Selection.from_frame(pd.DataFrame({"index": np.arange(n, dtype=np.int64), "selected": True}),
                                   {"method": "all"}, data.fingerprint)
        level, path = "all", None
    else:
        sel, path = read_selection_table(selection)
        sel.check_against(data, error=TrainError, name=repr(path) if path else None)
        level = sel.unit
        info.update(path=path, fingerprint=sel.fingerprint, meta=jsonable(sel.config))
    table = sel.table
    pairs_all = table["pair_index" if level == "completion" else "index"].to_numpy(dtype=np.int64)
    selected = sel.selected
    n_selected = int(selected.sum())
    if n_selected == 0:
        raise TrainError("the selection is empty: it selects no rows (choose a larger fraction or k)")
    in_test = is_test[pairs_all]
    keep = selected & ~in_test
    n_selected_in_test = int((selected & in_test).sum())
    if not keep.any():
        raise TrainError(f"all {n_selected} selected rows belong to held-out test pairs; nothing is left to train on "
                         f"(use a larger selection or a smaller test_fraction)")

    if level == "completion" and method == "kto":
        labels = table["label"].to_numpy(dtype=np.int64)
        rows = pd.DataFrame({"pair": pairs_all[keep], "label": labels[keep]}).drop_duplicates()
        trained = keep
    else:
        pair_ids = np.setdiff1d(sel.pairs(pair_rule), test_pairs)
        if len(pair_ids) == 0:
            raise TrainError(f"no training pair satisfies pair_rule={pair_rule!r} for this completion-level "
                             "selection; use pair_rule='any'")
        if method == "kto":  # a pair-level selection gives both completions of every kept pair
            rows = pd.DataFrame({"pair": np.concatenate([pair_ids, pair_ids]),
                                 "label": np.concatenate([np.ones(len(pair_ids), np.int64),
                                                          np.zeros(len(pair_ids), np.int64)])})
        else:
            rows = pd.DataFrame({"pair": pair_ids})
        trained = np.isin(pairs_all, pair_ids)
    rows = rows.sort_values(list(rows.columns)).reset_index(drop=True)
    out = table.copy()
    out["in_test"] = in_test
    out["trained"] = trained
    return TrainingSet(method=method, rows=rows, table=out, level=level, test_pairs=test_pairs,
                       n_selected=n_selected, n_selected_in_test=n_selected_in_test, info=info, selection=sel)

def flipped_pairs(train_pairs: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The sorted training pairs whose labels ``label_noise`` swaps: round(fraction · n) of them,
    drawn with ``seed`` (independent of the training seed, so every method sees the same noise)."""
    pairs = np.unique(np.asarray(train_pairs, dtype=np.int64))
    count = int(round(float(fraction) * len(pairs)))
    if count == 0:
        return np.empty(0, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(pairs, size=count, replace=False))

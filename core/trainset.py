"""From (data, selection, split) to the rows a run trains on.

* :func:`split_pairs`: the seeded held-out split of ALL pairs (every selection of one data set is
  scored on the same pairs);
* :func:`read_selection_table` / :func:`training_set`: a selection (parquet or table) checked
  against the data and turned into training rows (one per pair for DPO, one per completion for
  KTO) by the pair rule, minus the held-out pairs; every check fails with a one-line
  :class:`~alignscope.train_config.TrainError`;
* :func:`flipped_pairs`: the training pairs a ``label_noise`` run swaps.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from alignscope.errors import AlignscopeError
from alignscope.train_config import METHODS, PAIR_RULES, TrainError

__all__ = ["EvaluationError", "split_pairs", "read_selection_table", "selection_fingerprint", "TrainingSet",
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
def read_selection_table(selection: Any) -> tuple[pd.DataFrame, dict[str, Any], str | None]:
    """``(table, config, path)`` from a selection parquet path or a selection table (DataFrame).

    Files are read with :func:`alignscope.select.read_selection` (which validates them; its one-line
    error becomes a :class:`TrainError`); the selection's own config is the table's
    ``attrs["alignscope_selection"]`` (for other parquet files: the schema's key-value metadata).
    """
    path: str | None = None
    extra: dict[str, Any] = {}
    if isinstance(selection, (str, os.PathLike)):
        file = Path(selection).expanduser()
        path = str(file)
        if not file.is_file():
            raise TrainError(f"selection file {path!r} does not exist")
        reader = _select_reader()
        try:
            table = reader(file) if reader is not None else pd.read_parquet(file)
        except Exception as exc:  # alignscope.select's SelectionError, or pyarrow on a non-parquet file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise TrainError(first[:300] if path in first else f"cannot read selection {path!r}: {first[:200]}") from None
        extra = _parquet_meta(file)
    elif isinstance(selection, pd.DataFrame):
        table = selection
    else:
        raise TrainError(f"cannot use a {type(selection).__name__} as a selection: give a selection parquet path or a DataFrame")
    config = table.attrs.get("alignscope_selection") if isinstance(table.attrs, Mapping) else None
    if isinstance(config, Mapping) and config:
        meta = jsonable(dict(config))
    else:
        meta = jsonable({**dict(table.attrs), **extra})
    return table.reset_index(drop=True), meta, path


def _select_reader():
    try:
        from alignscope.select import read_selection
    except Exception:  # the selection module may be absent or broken: plain parquet still works
        return None
    return read_selection


def _parquet_meta(file: Path) -> dict[str, Any]:
    try:
        import pyarrow.parquet as pq

        raw = pq.read_schema(file).metadata or {}
    except Exception:
        return {}
    found: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.decode("utf-8", "replace")
        if name in ("pandas", "ARROW:schema"):
            continue
        text = value.decode("utf-8", "replace")
        try:
            found[name] = json.loads(text)
        except ValueError:
            found[name] = text
    return found


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types (anything else as its str)."""
    return json.loads(json.dumps(value, default=str))


def _find_key(obj: Any, name: str, depth: int = 0) -> Any:
    """The first non-empty string value of ``name`` in nested dicts (this level first)."""
    if depth > 6 or not isinstance(obj, Mapping):
        return None
    if isinstance(obj.get(name), str) and obj[name]:
        return obj[name]
    for value in obj.values():
        found = _find_key(value, name, depth + 1)
        if found is not None:
            return found
    return None


def selection_fingerprint(table: pd.DataFrame, meta: Mapping[str, Any]) -> str | None:
    """The data fingerprint a selection was made on, when it recorded one (alignscope.select keeps
    it as ``data_fingerprint`` in the table's config)."""
    found = _find_key(meta, "data_fingerprint") or _find_key(meta, "fingerprint")
    if found is None:
        for column in ("data_fingerprint", "fingerprint"):
            if column in table.columns and table[column].nunique(dropna=True) == 1:
                found = table[column].dropna().iloc[0]
                break
    return None if found is None else str(found)


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

    @property
    def pairs(self) -> np.ndarray:
        return np.unique(self.rows["pair"].to_numpy(dtype=np.int64))


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
        table = pd.DataFrame({"index": np.arange(n, dtype=np.int64), "selected": True})
        level, meta, path = "all", {}, None
    else:
        table, meta, path = read_selection_table(selection)
        name = repr(path) if path else "the selection"
        missing = [c for c in ("index", "selected") if c not in table.columns]
        if missing:
            raise TrainError(f"{name} has no {' or '.join(repr(c) for c in missing)} column: not an alignscope selection table")
        recorded = selection_fingerprint(table, meta)
        if recorded is not None and recorded != data.fingerprint:
            raise TrainError(f"{name} was made on data with fingerprint {recorded}, but this data has fingerprint "
                             f"{data.fingerprint}: select again on this data")
        level = "completion" if {"pair_index", "label"} <= set(table.columns) else "pair"
        info.update(path=path, fingerprint=recorded, meta=jsonable(meta))
    pair_col = "pair_index" if level == "completion" else "index"
    try:
        pairs_all = table[pair_col].to_numpy(dtype=np.int64)
        selected = table["selected"].fillna(False).to_numpy(dtype=bool)
    except (TypeError, ValueError) as exc:
        raise TrainError(f"selection columns {pair_col!r}/'selected' are not integers/booleans: {exc}") from None
    if len(pairs_all) and (pairs_all.min() < 0 or pairs_all.max() >= n):
        bad = int(pairs_all.max() if pairs_all.max() >= n else pairs_all.min())
        raise TrainError(f"the selection refers to pair {bad}, but the data has {n} pairs: it was made on other data")
    n_selected = int(selected.sum())
    if n_selected == 0:
        raise TrainError("the selection is empty: it selects no rows (choose a larger fraction or k)")
    in_test = is_test[pairs_all]
    keep = selected & ~in_test
    n_selected_in_test = int((selected & in_test).sum())
    if not keep.any():
        raise TrainError(f"all {n_selected} selected rows belong to held-out test pairs; nothing is left to train on "
                         f"(use a larger selection or a smaller test_fraction)")

    if level == "completion":
        labels = table["label"].to_numpy(dtype=np.int64)
        if not np.isin(labels, (0, 1)).all():
            raise TrainError("a completion-level selection's 'label' must be 1 (chosen) or 0 (rejected)")
        chosen_sel = np.zeros(n, dtype=bool)
        rejected_sel = np.zeros(n, dtype=bool)
        chosen_sel[pairs_all[keep & (labels == 1)]] = True
        rejected_sel[pairs_all[keep & (labels == 0)]] = True
        if method == "kto":
            rows = pd.DataFrame({"pair": pairs_all[keep], "label": labels[keep]}).drop_duplicates()
            trained = keep
        else:
            pair_mask = {"any": chosen_sel | rejected_sel, "both": chosen_sel & rejected_sel,
                         "chosen": chosen_sel, "rejected": rejected_sel}[pair_rule]
            pair_ids = np.flatnonzero(pair_mask)
            if len(pair_ids) == 0:
                raise TrainError(f"no training pair satisfies pair_rule={pair_rule!r} for this completion-level "
                                 "selection; use pair_rule='any'")
            rows = pd.DataFrame({"pair": pair_ids})
            trained = pair_mask[pairs_all] & ~in_test
    else:
        pair_ids = np.unique(pairs_all[keep])
        if method == "kto":
            rows = pd.DataFrame({"pair": np.concatenate([pair_ids, pair_ids]),
                                 "label": np.concatenate([np.ones(len(pair_ids), np.int64),
                                                          np.zeros(len(pair_ids), np.int64)])})
        else:
            rows = pd.DataFrame({"pair": pair_ids})
        trained = keep
    rows = rows.sort_values(list(rows.columns)).reset_index(drop=True)
    out = table.copy()
    out["in_test"] = in_test
    out["trained"] = trained
    return TrainingSet(method=method, rows=rows, table=out, level=level, test_pairs=test_pairs,
                       n_selected=n_selected, n_selected_in_test=n_selected_in_test, info=info)

def flipped_pairs(train_pairs: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """The sorted training pairs whose labels ``label_noise`` swaps: round(fraction · n) of them,
    drawn with ``seed`` (independent of the training seed, so every method sees the same noise)."""
    pairs = np.unique(np.asarray(train_pairs, dtype=np.int64))
    count = int(round(float(fraction) * len(pairs)))
    if count == 0:
        return np.empty(0, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(pairs, size=count, replace=False))

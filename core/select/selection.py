"""One selection type: what a selector kept, how it was made, and on which data.

A :class:`Selection` is three things that travel together:

``table``
    A ``pandas.DataFrame``, one row per point: ``index`` (the pair for pair-level rows, the row of
    the embedding for completion-level rows), ``score`` (float, higher = keep), ``selected`` (bool),
    ``rank`` (1 = best, a permutation of ``1..n``); completion-level tables add ``pair_index`` and
    ``label`` (1 = chosen, 0 = rejected). Method details (ISA's ``loglik``, ``loglik_scaled``,
    ``delta``, ``component``; density's ``density``; the audit flags...) ride along as more columns.
``config``
    A JSON-friendly dict: ``method``, ``k`` (kept), ``k_requested``, ``fraction`` (requested),
    ``seed``, ``options``, ``unit``, ``encoder``, the package version...
``fingerprint``
    The fingerprint of the preference data the selection was made on (``None`` when unknown, e.g.
    a selection made on a raw ``.npy``).

There is one way to save and load (:meth:`Selection.write` / :meth:`Selection.read`: parquet,
written atomically, the config and the fingerprint as JSON in the schema's key-value metadata under
``alignscope.select.selection``, the fingerprint as ``data_fingerprint`` — the layout earlier versions
wrote, so their files still read), one way to check a selection against data
(:meth:`Selection.check_against`) and one way to turn it into training pairs
(:meth:`Selection.pairs`, :meth:`Selection.pair_selection`) under one of :data:`PAIR_RULES`.

Pair rules (how a completion-level selection becomes pairs for DPO; ISA as published scores
completions, Khera et al. 2024, arXiv:2411.10545):

``any``       keep a pair when its chosen OR its rejected completion is selected (rank by the max)
``both``      keep a pair only when both completions are selected (rank by the min)
``chosen``    the chosen completion decides
``rejected``  the rejected completion decides

``mean`` (rank a pair by the mean of its two scores) is deliberately NOT a rule: a rule must say
which pairs a selection keeps at the selector's own cut-off (training and export use it, without a
new k), and a mean of scores has no such set form — it needs a new k, and it averages numbers that
are only meaningful as ranks within one selector. Earlier versions listed it and failed at export
time; to rank pairs at a new size use ``pair_selection(rule, k=...)``.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from alignscope.errors import AlignscopeError
from alignscope.files import atomic_path, jsonable
from alignscope.options import is_finite, is_int

__all__ = ["Selection", "SelectionError", "PAIR_RULES", "resolve_k", "SELECTION_META_KEY", "SELECTION_FORMAT_VERSION",
           "ISA_COLUMNS", "order_by_score"]

PAIR_RULES = ("any", "both", "chosen", "rejected")
SELECTION_META_KEY = b"alignscope.selection"  # the stored key: unchanged since 0.1, files of every version read
SELECTION_FORMAT_VERSION = 1
ISA_COLUMNS = ("loglik", "loglik_scaled", "delta", "component")
REQUIRED = ("index", "score", "selected", "rank")


class SelectionError(AlignscopeError):
    """Bad selection input or a selection file that does not validate; one line naming what."""


@dataclass(eq=False)
class Selection:
    """A selection: ``table`` (one row per point), ``config`` (how it was made) and ``fingerprint``
    (the data it was made on). The constructor validates the table (required columns and their
    types, distinct indices, ranks a permutation of ``1..n``) and raises :class:`SelectionError`.

    ``selection["score"]`` and ``len(selection)`` read the table.
    """

    table: pd.DataFrame
    config: dict[str, Any] = field(default_factory=dict)
    fingerprint: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.table, pd.DataFrame):
            raise SelectionError(f"a selection table must be a DataFrame, got {type(self.table).__name__}")
        config = dict(self.config or {})
        recorded = config.pop("data_fingerprint", None)
        self.fingerprint = self.fingerprint or (str(recorded) if recorded else None)
        self.config = config
        self.table = self.table.reset_index(drop=True)
        self.table.attrs = {}  # the config lives here, not in the (experimental) DataFrame.attrs
        _validate_table(self.table, "the selection", method=None if config.get("from_unit") else config.get("method"))

    # ---------------------------------------------------------------------------- construction
    @classmethod
    def from_frame(cls, frame: pd.DataFrame, config: Mapping[str, Any] | None = None,
                   fingerprint: str | None = None) -> "Selection":
        """A selection from a hand-made table that may lack ``score``/``rank`` (e.g. a lasso subset,
        or ``DataFrame({"index": ..., "selected": ...})``): ``score`` = 1 for selected rows, 0
        otherwise; ``rank`` by score descending, ties by row."""
        if not isinstance(frame, pd.DataFrame):
            raise SelectionError(f"cannot use a {type(frame).__name__} as a selection: give a selection "
                                 "parquet path, a Selection or a DataFrame")
        missing = [c for c in ("index", "selected") if c not in frame.columns]
        if missing:
            raise SelectionError(f"the selection has no {' or '.join(repr(c) for c in missing)} column: "
                                 "not an alignscope selection table")
        table = frame.reset_index(drop=True).copy()
        try:
            table["selected"] = table["selected"].fillna(False).to_numpy(dtype=bool)
            table["index"] = table["index"].to_numpy(dtype=np.int64)
        except (TypeError, ValueError) as exc:
            raise SelectionError(f"selection columns 'index'/'selected' are not integers/booleans: {exc}") from None
        if "score" not in table.columns:
            table["score"] = table["selected"].astype(np.float64)
        if "rank" not in table.columns:
            rank = np.empty(len(table), dtype=np.int64)
            rank[order_by_score(table["score"].to_numpy(dtype=np.float64))] = np.arange(1, len(table) + 1)
            table["rank"] = rank
        legacy = frame.attrs.get("alignscope_selection") if isinstance(frame.attrs, Mapping) else None
        merged = {**(legacy if isinstance(legacy, Mapping) else {}), **(config or {})}
        return cls(table, merged, fingerprint)

    @classmethod
    def coerce(cls, selection: Any) -> "Selection":
        """A Selection from a Selection (as is), a parquet path (:meth:`read`) or a DataFrame
        (:meth:`from_frame`)."""
        if isinstance(selection, Selection):
            return selection
        if isinstance(selection, (str, os.PathLike)):
            return cls.read(selection)
        return cls.from_frame(selection)

    # ---------------------------------------------------------------------------- views
    @property
    def unit(self) -> str:
        """``"completion"`` (rows carry ``pair_index`` and ``label``) or ``"pair"``."""
        return "completion" if {"pair_index", "label"} <= set(self.table.columns) else "pair"

    @property
    def method(self) -> str | None:
        return self.config.get("method")

    @property
    def selected(self) -> np.ndarray:
        """Boolean mask ``(n,)`` of the kept rows."""
        return self.table["selected"].to_numpy(dtype=bool)

    @property
    def n_selected(self) -> int:
        return int(self.selected.sum())

    def __len__(self) -> int:
        return len(self.table)

    def __getitem__(self, column: str) -> pd.Series:
        return self.table[column]

    def __repr__(self) -> str:
        return (f"Selection(method={self.method!r}, unit={self.unit!r}, n={len(self):,}, "
                f"selected={self.n_selected:,}, fingerprint={self.fingerprint!r})")

    def equals(self, other: Any) -> bool:
        """Same table (values and dtypes), config and fingerprint."""
        return (isinstance(other, Selection) and self.table.equals(other.table) and self.config == other.config
                and self.fingerprint == other.fingerprint)

    def replace(self, **changes: Any) -> "Selection":
        """A copy with ``table``, ``config`` or ``fingerprint`` replaced (validated again)."""
        return dataclasses.replace(self, **changes)

    def top(self, k: int) -> "Selection":
        """The same ranking with the top ``k`` rows (rank ≤ k) selected: a size slider moves only this."""
        if not is_int(k) or not 0 <= k <= len(self):
            raise SelectionError(f"k must be an integer in [0, {len(self)}], got {k!r}")
        table = self.table.copy()
        table["selected"] = table["rank"].to_numpy() <= k
        return self.replace(table=table, config={**self.config, "k": int(k), "n_selected": int(k)})

    def top_pairs(self, k_pairs: int) -> "Selection":
        """The same ranking cut where exactly ``k_pairs`` pairs are kept under the pair rule ``any``
        (a pair is kept when either completion is): the top ``k`` rows, with ``k`` the ``k_pairs``-th
        smallest of the pairs' best ranks. So a size asked in pairs means that many pairs whatever
        the unit. A pair-level selection is :meth:`top` (``k_pairs``). The config records
        ``k_pairs``."""
        if self.unit == "pair":
            cut = self.top(k_pairs)
            return cut.replace(config={**cut.config, "k_pairs": int(k_pairs)})
        pair_index = self.table["pair_index"].to_numpy(dtype=np.int64)
        pair_ids, position = np.unique(pair_index, return_inverse=True)
        if not is_int(k_pairs) or not 0 <= k_pairs <= len(pair_ids):
            raise SelectionError(f"k_pairs must be an integer in [0, {len(pair_ids)}], got {k_pairs!r}")
        best = np.full(len(pair_ids), np.iinfo(np.int64).max)
        np.minimum.at(best, position, self.table["rank"].to_numpy(dtype=np.int64))
        k = 0 if k_pairs == 0 else int(np.partition(best, k_pairs - 1)[k_pairs - 1])
        cut = self.top(k)
        return cut.replace(config={**cut.config, "k_pairs": int(k_pairs)})

    # ---------------------------------------------------------------------------- pairs
    def pairs(self, rule: str = "any") -> np.ndarray:
        """Sorted int64 pair indices this selection keeps under ``rule`` (:data:`PAIR_RULES`); a
        pair-level selection keeps its selected rows whatever the rule."""
        _check_rule(rule)
        if self.unit == "pair":
            return np.unique(self.table["index"].to_numpy(dtype=np.int64)[self.selected])
        pair_ids, _, _, chosen_sel, rejected_sel = self._by_pair()
        return pair_ids[_rule_mask(rule, chosen_sel, rejected_sel)]

    def pair_selection(self, rule: str = "any", *, k: int | None = None,
                       fraction: float | None = None) -> "Selection":
        """The pair-level selection (one row per pair) under ``rule``.

        Each pair's score combines its completion scores by the rule (``any`` → max, ``both`` → min,
        ``chosen``/``rejected`` → that one). Without ``k``/``fraction`` the completion-level
        ``selected`` flags decide (:meth:`pairs`); with them, the top pairs by the combined score.
        Completion-level tables give the columns ``index, score, selected, rank, chosen_score,
        rejected_score, chosen_selected, rejected_selected``. A pair-level selection is returned
        as is (or re-cut at ``k``/``fraction``).
        """
        _check_rule(rule)
        if self.unit == "pair":
            if k is None and fraction is None:
                return self
            return self.top(resolve_k(len(self), k, fraction))
        pair_ids, chosen_score, rejected_score, chosen_sel, rejected_sel = self._by_pair()
        has_c, has_r = ~np.isnan(chosen_score), ~np.isnan(rejected_score)
        with np.errstate(invalid="ignore"):
            if rule == "any":
                combined = np.fmax(chosen_score, rejected_score)
            elif rule == "both":
                combined = np.where(has_c & has_r, np.fmin(chosen_score, rejected_score), -np.inf)
            elif rule == "chosen":
                combined = np.where(has_c, chosen_score, -np.inf)
            else:
                combined = np.where(has_r, rejected_score, -np.inf)
        combined = np.where(np.isnan(combined), -np.inf, combined)
        m = len(pair_ids)
        order = order_by_score(combined)
        if k is None and fraction is None:
            flags = _rule_mask(rule, chosen_sel, rejected_sel)
        else:
            flags = np.zeros(m, dtype=bool)
            flags[order[:resolve_k(m, k, fraction)]] = True
        rank = np.empty(m, dtype=np.int64)
        rank[order] = np.arange(1, m + 1)
        table = pd.DataFrame({
            "index": pair_ids, "score": combined, "selected": flags, "rank": rank,
            "chosen_score": chosen_score, "rejected_score": rejected_score,
            "chosen_selected": chosen_sel, "rejected_selected": rejected_sel,
        })
        n_keep = int(flags.sum())
        config = {**self.config, "unit": "pair", "from_unit": "completion", "pair_rule": rule, "n_points": m,
                  "n_selected": n_keep, "k": n_keep if (k is not None or fraction is not None) else None,
                  "pair_k_requested": None if k is None else int(k),
                  "pair_fraction": None if fraction is None else float(fraction)}
        return Selection(table, config, self.fingerprint)

    def _by_pair(self):
        """``(pair_ids, chosen_score, rejected_score, chosen_selected, rejected_selected)``, one
        entry per distinct pair (NaN score / False where the pair has no such completion)."""
        pair_index = self.table["pair_index"].to_numpy(dtype=np.int64)
        pair_ids = np.unique(pair_index)
        pos = np.searchsorted(pair_ids, pair_index)
        m = len(pair_ids)
        chosen_score, rejected_score = np.full(m, np.nan), np.full(m, np.nan)
        chosen_sel, rejected_sel = np.zeros(m, dtype=bool), np.zeros(m, dtype=bool)
        label = self.table["label"].to_numpy().astype(np.int64)
        score = self.table["score"].to_numpy(dtype=np.float64)
        selected = self.selected
        for value, scores, flags in ((1, chosen_score, chosen_sel), (0, rejected_score, rejected_sel)):
            rows = label == value
            if np.bincount(pos[rows], minlength=m).max(initial=0) > 1:
                raise SelectionError("a pair has two completions with the same label")
            scores[pos[rows]] = score[rows]
            flags[pos[rows]] = selected[rows]
        return pair_ids, chosen_score, rejected_score, chosen_sel, rejected_sel

    # ---------------------------------------------------------------------------- checks
    def check_against(self, data: Any, *, check_fingerprint: bool = True,
                      error: type[AlignscopeError] = SelectionError, name: str | None = None) -> None:
        """Raise ``error`` (one line) when this selection does not fit ``data`` (a
        ``PreferenceData``): made on data with another fingerprint, rows that name pairs beyond the
        data, or more rows than the data has points of this unit."""
        where = name or "the selection"
        if check_fingerprint and self.fingerprint and self.fingerprint != data.fingerprint:
            raise error(f"{where} was made on data with fingerprint {self.fingerprint}, but this data has "
                        f"fingerprint {data.fingerprint}: select again on this data (or use the data it was made on)",
                        field="selection")
        n = len(data)
        column = "pair_index" if self.unit == "completion" else "index"
        values = self.table[column].to_numpy(dtype=np.int64)
        if len(values) and int(values.max()) >= n:
            raise error(f"{where} refers to pair {int(values.max())}, but the data has {n} pairs "
                        f"(column {column!r}): it was made on other data", field="selection")
        limit = 2 * n if self.unit == "completion" else n
        if len(self) > limit:
            raise error(f"{where} has {len(self):,} {self.unit} rows, but the data has only {limit:,}: "
                        "it was made on other data", field="selection")

    # ---------------------------------------------------------------------------- file
    def write(self, path: str | os.PathLike) -> Path:
        """Write to parquet atomically, config + fingerprint in the schema metadata
        (key ``alignscope.selection``, JSON). Returns the path."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        stored = {**self.config, "data_fingerprint": self.fingerprint}
        arrow = pa.Table.from_pandas(self.table, preserve_index=False)
        metadata = dict(arrow.schema.metadata or {})
        metadata[SELECTION_META_KEY] = json.dumps(jsonable(stored), sort_keys=True).encode("utf-8")
        with atomic_path(path) as tmp:
            pq.write_table(arrow.replace_schema_metadata(metadata), tmp)
        return path

    @classmethod
    def read(cls, path: str | os.PathLike) -> "Selection":
        """Read a selection parquet back, validating required columns and their types; errors are
        one line naming the file (and the column)."""
        import pyarrow.parquet as pq

        path = Path(path).expanduser()
        if not path.is_file():
            raise SelectionError(f"{path}: no such selection file", field="selection")
        try:
            arrow = pq.read_table(path)
        except Exception as exc:  # pyarrow raises several types for non-parquet input
            raise SelectionError(f"{path}: not a parquet file ({type(exc).__name__})", field="selection") from None
        raw = (arrow.schema.metadata or {}).get(SELECTION_META_KEY)
        config: dict[str, Any] = {}
        if raw is not None:
            try:
                config = json.loads(raw.decode("utf-8"))
            except ValueError:
                raise SelectionError(f"{path}: the stored selection config is not valid JSON",
                                     field="selection") from None
        table = arrow.to_pandas()
        # ISA's own columns are required of the table ISA produced, not of a derived pair table.
        _validate_table(table, str(path), method=None if config.get("from_unit") else config.get("method"))
        return cls(table, config)


# ============================================================================== helpers
def resolve_k(n: int, k: int | None = None, fraction: float | None = None) -> int:
    """How many of ``n`` points to keep: exactly one of ``k`` (1 ≤ k ≤ n) or ``fraction`` in (0, 1].

    A fraction keeps ``max(1, floor(fraction * n + 0.5))`` points (round half up).
    """
    if (k is None) == (fraction is None):
        raise SelectionError("give exactly one of k (a count) or fraction (in (0, 1])")
    if k is not None:
        if not is_int(k):
            raise SelectionError(f"k must be an integer, got {k!r}", field="k")
        if k < 1:
            raise SelectionError(f"k must be >= 1, got {k}", field="k")
        if k > n:
            raise SelectionError(f"k={k} is larger than the number of points ({n})", field="k")
        return int(k)
    if not is_finite(fraction):
        raise SelectionError(f"fraction must be a number in (0, 1], got {fraction!r}", field="fraction")
    fraction = float(fraction)
    if not (0.0 < fraction <= 1.0):
        raise SelectionError(f"fraction must be in (0, 1], got {fraction}", field="fraction")
    return max(1, min(n, int(math.floor(fraction * n + 0.5))))


def order_by_score(scores: np.ndarray) -> np.ndarray:
    """Indices by score descending; ties by index ascending (deterministic)."""
    return np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")


def distinct_integers(values: np.ndarray) -> bool:
    """Whether non-negative integers are pairwise distinct: one pass over a presence mask when
    they are at most ``8 n`` (row numbers, ranks), a sort otherwise. ``np.unique`` (a hash table)
    took ~0.9 s of a 1M-row selection."""
    values = np.asarray(values)
    n = len(values)
    if n == 0:
        return True
    top = int(values.max())
    if top < 8 * n + 64:
        seen = np.zeros(top + 1, dtype=np.bool_)
        seen[values] = True
        return int(np.count_nonzero(seen)) == n
    ordered = np.sort(values)
    return not bool((ordered[1:] == ordered[:-1]).any())


def _check_rule(rule: str) -> None:
    if rule not in PAIR_RULES:
        raise SelectionError(f"unknown pair rule {rule!r}; choose one of {', '.join(PAIR_RULES)}", field="pair_rule")


def _rule_mask(rule: str, chosen_sel: np.ndarray, rejected_sel: np.ndarray) -> np.ndarray:
    if rule == "any":
        return chosen_sel | rejected_sel
    if rule == "both":
        return chosen_sel & rejected_sel
    return chosen_sel if rule == "chosen" else rejected_sel


def _validate_table(table: pd.DataFrame, where: str, method: str | None = None) -> None:
    def fail(column: str, what: str):
        raise SelectionError(f"{where}: column {column!r} {what}", field=column)

    for column in REQUIRED:
        if column not in table.columns:
            fail(column, "is missing (a selection needs index, score, selected, rank)")
    kinds = {"index": "iu", "rank": "iu", "selected": "b", "score": "f"}
    for column, allowed in kinds.items():
        if table[column].dtype.kind not in allowed:
            fail(column, f"must be {_kind_name(allowed)}, got {table[column].dtype}")
    n = len(table)
    index = table["index"].to_numpy()
    if n and (index.min() < 0 or not distinct_integers(index)):
        fail("index", "must hold distinct non-negative row numbers")
    rank = table["rank"].to_numpy()
    if n and (rank.min() != 1 or rank.max() != n or not distinct_integers(rank)):
        fail("rank", "must be a permutation of 1..n")
    if np.isnan(table["score"].to_numpy(dtype=np.float64)).any():
        fail("score", "contains NaN")
    if ("pair_index" in table.columns) != ("label" in table.columns):
        fail("label" if "pair_index" in table.columns else "pair_index",
             "is missing (completion-level tables need both pair_index and label)")
    if "pair_index" in table.columns:
        if table["pair_index"].dtype.kind not in "iu":
            fail("pair_index", f"must be integer, got {table['pair_index'].dtype}")
        if n and table["pair_index"].min() < 0:
            fail("pair_index", "must be non-negative")
        if table["label"].dtype.kind not in "iub":
            fail("label", f"must be integer 0/1, got {table['label'].dtype}")
        if not np.isin(table["label"].to_numpy().astype(np.int64), (0, 1)).all():
            fail("label", "must hold only 0 (rejected) and 1 (chosen)")
    if method == "isa":
        for column in ISA_COLUMNS:
            if column not in table.columns:
                fail(column, "is missing (an ISA selection records loglik, loglik_scaled, delta, component)")
        for column in ("loglik", "loglik_scaled", "delta"):
            if table[column].dtype.kind != "f":
                fail(column, f"must be float, got {table[column].dtype}")
        if table["component"].dtype.kind not in "iu":
            fail("component", f"must be integer, got {table['component'].dtype}")


def _kind_name(kinds: str) -> str:
    return {"iu": "integer", "b": "boolean", "f": "float"}.get(kinds, kinds)

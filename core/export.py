"""Export the selected preference data in TRL's formats, with the selection config alongside.

Two shapes of output (``kind``):

``"pairs"`` (DPO, ORPO, ...)
    TRL's preference format: one row per selected pair with ``prompt, chosen, rejected`` (strings,
    or message lists for conversational data, exactly as in the canonical data). A completion-level
    selection is first mapped to pairs with a documented rule
    (:meth:`alignscope.select.selection.Selection.pairs`, one of ``PAIR_RULES``; default ``"any"``: keep a
    pair when its chosen or rejected completion was selected).
``"kto"``
    TRL's unpaired preference format: one row per selected completion with ``prompt, completion,
    label`` (``label`` True for a chosen, False for a rejected completion). A pair-level selection
    contributes both completions of every selected pair.

Formats: ``"hf"`` (a ``datasets.save_to_disk`` folder, loadable with ``datasets.load_from_disk``;
``selection_config.json`` inside it), ``"parquet"`` and ``"jsonl"`` (``<out>.selection_config.json``
beside the file). Rows keep the order of the canonical data. Writes are atomic (a temporary
sibling, renamed into place), an existing output is refused unless ``overwrite=True``, and when the
selection stores the fingerprint of the data it was made on, the data passed here must match it.
"""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from alignscope.errors import AlignscopeError
from alignscope.files import atomic_path, atomic_write
from alignscope.select.selection import PAIR_RULES, Selection, SelectionError

__all__ = ["ExportError", "EXPORT_FORMATS", "EXPORT_KINDS", "export_selection", "selected_pairs",
           "selected_completions", "config_path_for", "infer_format"]

EXPORT_FORMATS = ("hf", "parquet", "jsonl")
EXPORT_KINDS = ("pairs", "kto")
CONFIG_NAME = "selection_config.json"


class ExportError(AlignscopeError):
    """An export that cannot be done as asked; the message is one line saying why."""


def infer_format(out: str | os.PathLike) -> str:
    """``parquet`` for ``*.parquet``, ``jsonl`` for ``*.jsonl``, otherwise ``hf`` (a folder)."""
    name = Path(out).name.lower()
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".jsonl"):
        return "jsonl"
    return "hf"


def config_path_for(out: str | os.PathLike, fmt: str) -> Path:
    """Where the selection config of an export lives."""
    out = Path(out)
    return out / CONFIG_NAME if fmt == "hf" else out.with_name(out.name + "." + CONFIG_NAME)


def selected_pairs(data: Any, selection: Selection | pd.DataFrame | str | os.PathLike, *, pair_rule: str = "any",
                   keep_metadata: bool = False, check_fingerprint: bool = True) -> pd.DataFrame:
    """The selected pairs of ``data`` (a ``PreferenceData``) in TRL's preference format.

    ``(n_selected, 3)`` columns ``prompt, chosen, rejected`` (+ the metadata columns and
    ``pair_index`` when ``keep_metadata``), in canonical-data order.
    """
    sel = _load(selection, data, check_fingerprint)
    try:
        rows = sel.pairs(pair_rule)
    except SelectionError as exc:
        raise ExportError(str(exc), field="pair_rule") from None
    frame = data.frame.iloc[rows]
    columns = ["prompt", "chosen", "rejected"]
    if keep_metadata:
        columns += [c for c in data.frame.columns if c not in columns]
    out = frame[columns].reset_index(drop=True)
    if keep_metadata:
        out.insert(len(out.columns), "pair_index", rows.astype(np.int64))
    return out


def selected_completions(data: Any, selection: Selection | pd.DataFrame | str | os.PathLike, *,
                         keep_metadata: bool = False, check_fingerprint: bool = True) -> pd.DataFrame:
    """The selected completions of ``data`` in TRL's unpaired (KTO) format.

    Columns ``prompt, completion, label`` (bool: True = the chosen completion of its pair), plus
    ``pair_index`` and the metadata columns when ``keep_metadata``. Completion-level selections give
    one row per selected completion; pair-level selections give both completions of each selected
    pair (chosen first). Rows are in canonical-data order.
    """
    selection = _load(selection, data, check_fingerprint)
    sel = selection.table.loc[selection.selected]
    if selection.unit == "completion":
        pair_idx = sel["pair_index"].to_numpy().astype(np.int64)
        labels = sel["label"].to_numpy().astype(np.int64) == 1
    else:
        kept = np.sort(sel["index"].to_numpy().astype(np.int64))
        pair_idx = np.repeat(kept, 2)
        labels = np.tile(np.array([True, False]), len(kept))
    order = np.lexsort((~labels, pair_idx))  # by pair, chosen before rejected
    pair_idx, labels = pair_idx[order], labels[order]
    frame = data.frame.iloc[pair_idx].reset_index(drop=True)
    completion = np.where(labels, frame["chosen"].to_numpy(dtype=object),
                          frame["rejected"].to_numpy(dtype=object))
    out = pd.DataFrame({"prompt": frame["prompt"].to_numpy(dtype=object),
                        "completion": completion, "label": labels})
    if keep_metadata:
        out["pair_index"] = pair_idx
        for column in data.frame.columns:
            if column not in ("prompt", "chosen", "rejected"):
                out[column] = frame[column].to_numpy()
    return out


def export_selection(data: Any, selection: Selection | pd.DataFrame | str | os.PathLike,
                     out: str | os.PathLike, *, format: str | None = None, kind: str = "pairs",
                     pair_rule: str = "any", overwrite: bool = False, keep_metadata: bool = False,
                     check_fingerprint: bool = True) -> Path:
    """Write the selected rows of ``data`` to ``out`` and the selection config beside them.

    ``format``: ``hf`` | ``parquet`` | ``jsonl`` (default: from the suffix of ``out``);
    ``kind``: ``pairs`` (TRL preference format, for DPO) or ``kto`` (TRL unpaired format);
    ``pair_rule``: how a completion-level selection becomes pairs (see
    :data:`alignscope.select.selection.PAIR_RULES`). Returns the output path.
    """
    fmt = format or infer_format(out)
    if fmt not in EXPORT_FORMATS:
        raise ExportError(f"unknown export format {fmt!r}; choose one of {', '.join(EXPORT_FORMATS)}")
    if kind not in EXPORT_KINDS:
        raise ExportError(f"unknown export kind {kind!r}; choose 'pairs' (DPO) or 'kto'")
    if pair_rule not in PAIR_RULES:
        raise ExportError(f"unknown pair rule {pair_rule!r}; choose one of {', '.join(PAIR_RULES)}")
    out = Path(out)
    config_file = config_path_for(out, fmt)
    for existing in (out, config_file):
        if (existing.exists() or existing.is_symlink()) and not overwrite:
            raise ExportError(f"{existing} already exists; pass overwrite=True (--force) to replace it")
    sel = _load(selection, data, check_fingerprint)
    source = str(selection) if isinstance(selection, (str, os.PathLike)) else None
    if kind == "pairs":
        frame = selected_pairs(data, sel, pair_rule=pair_rule, keep_metadata=keep_metadata,
                               check_fingerprint=check_fingerprint)
    else:
        frame = selected_completions(data, sel, keep_metadata=keep_metadata,
                                     check_fingerprint=check_fingerprint)
    config = {
        "selection": {**sel.config, "data_fingerprint": sel.fingerprint},
        "selection_file": source,
        "export": {"format": fmt, "kind": kind, "n_rows": int(len(frame)),
                   "columns": list(frame.columns),
                   "pair_rule": pair_rule if kind == "pairs" and sel.unit == "completion" else None,
                   "data_fingerprint": getattr(data, "fingerprint", None),
                   "data_source": getattr(data, "source", None),
                   "data_format": getattr(data, "format", None)},
    }
    config_text = json.dumps(config, indent=2, ensure_ascii=False, default=str) + "\n"
    import pyarrow as pa

    try:
        if fmt == "hf":
            _write_hf(frame, out, config_text, overwrite)
        else:
            _write_file(frame, out, fmt, config_file, config_text)
    except (pa.ArrowException, TypeError) as exc:  # e.g. a metadata column of mixed types
        detail = " ".join(str(exc).split())[:300]
        raise ExportError(f"cannot write {out.name}: {detail}"
                          + ("; try without keep_metadata" if keep_metadata else "")) from None
    return out


# ------------------------------------------------------------------------------------ internals
def _load(selection: Selection | pd.DataFrame | str | os.PathLike, data: Any, check_fingerprint: bool) -> Selection:
    """The selection, read and checked against ``data`` (one-line ExportError)."""
    try:
        sel = Selection.coerce(selection)
        sel.check_against(data, check_fingerprint=check_fingerprint, error=ExportError)
    except SelectionError as exc:
        raise ExportError(str(exc), field="selection") from None
    return sel


def _write_file(frame: pd.DataFrame, out: Path, fmt: str, config_file: Path, config_text: str) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        if fmt == "parquet":
            frame.to_parquet(tmp, index=False)
        else:
            tmp.write_text(frame.to_json(orient="records", lines=True, force_ascii=False),
                           encoding="utf-8")
        # The config lands just before the data file is renamed into place.
        with atomic_write(config_file, "w") as handle:
            handle.write(config_text)


def _write_hf(frame: pd.DataFrame, out: Path, config_text: str, overwrite: bool) -> None:
    import datasets

    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    old = None
    try:
        target = staging / "dataset"
        datasets.Dataset.from_pandas(frame, preserve_index=False).save_to_disk(str(target))
        (target / CONFIG_NAME).write_text(config_text, encoding="utf-8")
        if out.exists() or out.is_symlink():
            if not overwrite:  # appeared while we were writing
                raise ExportError(f"{out} already exists; pass overwrite=True (--force) to replace it")
            old = staging / "previous"
            os.replace(out, old)
        os.replace(target, out)
    except BaseException:
        if old is not None and old.exists() and not out.exists():
            os.replace(old, out)  # put the previous export back
        raise
    finally:
        with contextlib.suppress(OSError):
            shutil.rmtree(staging)

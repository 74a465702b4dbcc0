"""Read preference files into raw records, with 1-based row numbers and one-line errors.

Readers do not interpret columns; ``alignscope.data.preferences`` does. Their only job is to turn bytes into
``(records DataFrame, source row numbers)`` and to fail with a :class:`DataError` that names the
file and row when the bytes are broken (bad JSON, bad UTF-8, truncated gzip, empty file).
"""
from __future__ import annotations

import gzip
import io
import json
import math
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from alignscope.errors import AlignscopeError

SUPPORTED_SUFFIXES = (".jsonl", ".json", ".parquet", ".csv")


class DataError(AlignscopeError):
    """Invalid preference data. ``str(err)`` is one line naming file, row (1-based) and column."""

    def __init__(self, reason: str, *, file: str | None = None, row: int | None = None,
                 column: str | None = None, hint: str | None = None):
        self.reason = reason
        self.file = file
        self.row = row
        self.column = column
        self.hint = hint
        super().__init__(self.line(), field=column or file)

    def line(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column '{self.column}'")
        head = f"{self.file}: " if self.file else ""
        loc = (", ".join(where) + ": ") if where else ""
        tail = f" ({self.hint})" if self.hint else ""
        return f"{head}{loc}{self.reason}{tail}"

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.line(), "file": self.file, "row": self.row, "column": self.column,
                "reason": self.reason}


@dataclass
class RawTable:
    """Records as read from one source, before any interpretation."""

    records: pd.DataFrame
    rows: list[int]  # 1-based row number in the source for each record
    name: str  # how errors refer to the source (file name, "DataFrame", hub id)


def split_compression(path: Path) -> tuple[str, bool]:
    """Return (format suffix, gzipped?) for names like ``x.jsonl.gz``."""
    suffixes = [s.lower() for s in path.suffixes]
    gz = bool(suffixes) and suffixes[-1] == ".gz"
    if gz:
        suffixes = suffixes[:-1]
    fmt = suffixes[-1] if suffixes else ""
    return fmt, gz


def _open_bytes(path: Path, gz: bool) -> io.BufferedIOBase:
    return gzip.open(path, "rb") if gz else open(path, "rb")  # noqa: SIM115 - closed by caller


def _decode(raw: bytes, name: str, row: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start:exc.start + 1].hex()
        raise DataError(
            f"not valid UTF-8 (byte 0x{bad} at position {exc.start})", file=name, row=row,
            hint="re-encode the file as UTF-8") from None


def _gzip_error(exc: Exception, name: str, rows_read: int) -> DataError:
    if isinstance(exc, EOFError):
        reason = f"file is truncated: the gzip stream ends early, after row {rows_read}"
    else:
        reason = f"not a valid gzip file ({exc})"
    return DataError(reason, file=name, row=rows_read + 1 if rows_read else None,
                     hint="re-download or re-compress the file")


def read_jsonl(path: Path, gz: bool) -> RawTable:
    name = path.name
    records: list[Any] = []
    rows: list[int] = []
    line_no = 0
    try:
        with _open_bytes(path, gz) as handle:
            for line_no, raw in enumerate(handle, start=1):
                text = _decode(raw, name, line_no).strip()
                if not text:
                    continue  # blank lines are tolerated (common at end of file)
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise DataError(f"invalid JSON ({exc.msg} at character {exc.pos + 1})",
                                    file=name, row=line_no) from None
                if not isinstance(obj, dict):
                    raise DataError(f"expected a JSON object, got {_json_type(obj)}",
                                    file=name, row=line_no)
                records.append(obj)
                rows.append(line_no)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise _gzip_error(exc, name, line_no) from None
    if not records:
        raise DataError("file is empty (no rows)", file=name)
    return RawTable(pd.DataFrame.from_records(records), rows, name)


def read_json(path: Path, gz: bool) -> RawTable:
    """A JSON array of objects, a ``{"data": [...]}`` wrapper, or a dict of equal-length columns."""
    name = path.name
    try:
        with _open_bytes(path, gz) as handle:
            raw = handle.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise _gzip_error(exc, name, 0) from None
    text = _decode(raw, name, 1).strip() if raw else ""
    if not text:
        raise DataError("file is empty (no rows)", file=name)
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        hint = "one JSON object per line? name the file .jsonl" if exc.msg == "Extra data" else None
        raise DataError(f"invalid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})",
                        file=name, hint=hint) from None
    if isinstance(obj, dict) and len(obj) == 1 and isinstance(next(iter(obj.values())), list):
        obj = next(iter(obj.values()))  # {"data": [...]} / {"train": [...]}
    if isinstance(obj, dict) and obj and all(isinstance(v, list) for v in obj.values()):
        lengths = {len(v) for v in obj.values()}
        if len(lengths) != 1:
            raise DataError("column lists have different lengths", file=name)
        frame = pd.DataFrame(obj)
    elif isinstance(obj, list):
        for i, item in enumerate(obj, start=1):
            if not isinstance(item, dict):
                raise DataError(f"expected a JSON object, got {_json_type(item)}", file=name, row=i)
        frame = pd.DataFrame.from_records(obj)
    else:
        raise DataError(f"expected a JSON array of objects, got {_json_type(obj)}", file=name)
    if frame.empty:
        raise DataError("file is empty (no rows)", file=name)
    return RawTable(frame, list(range(1, len(frame) + 1)), name)


def read_csv(path: Path, gz: bool) -> RawTable:
    name = path.name
    try:
        with _open_bytes(path, gz) as handle:
            raw = handle.read()
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise _gzip_error(exc, name, 0) from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[:exc.start].count(b"\n") + 1
        bad = raw[exc.start:exc.start + 1].hex()
        raise DataError(f"not valid UTF-8 (byte 0x{bad} on line {line})", file=name,
                        row=max(line - 1, 1), hint="re-encode the file as UTF-8") from None
    if not text.strip():
        raise DataError("file is empty (no rows)", file=name)
    try:
        # Everything as strings and no NA guessing: an empty cell is an empty string, which the
        # validator reports by row and column instead of silently becoming NaN.
        frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False, na_filter=False)
    except pd.errors.ParserError as exc:
        raise DataError(f"malformed CSV ({str(exc).strip()})", file=name) from None
    if frame.empty:
        raise DataError("file has a header but no rows", file=name)
    return RawTable(frame, list(range(1, len(frame) + 1)), name)


def read_parquet(path: Path, gz: bool) -> RawTable:
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = path.name
    try:
        if gz:
            with gzip.open(path, "rb") as handle:
                table = pq.read_table(io.BytesIO(handle.read()))
        else:
            table = pq.read_table(path)
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise _gzip_error(exc, name, 0) from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(f"not a readable parquet file ({exc})", file=name) from None
    if table.num_rows == 0:
        raise DataError("file is empty (no rows)", file=name)
    frame = table.to_pandas(types_mapper=None)
    return RawTable(_plain_python(frame), list(range(1, len(frame) + 1)), name)


def read_dataset_folder(path: Path, split: str | None) -> RawTable:
    """A folder written by ``datasets.Dataset.save_to_disk`` (or ``DatasetDict``)."""
    import datasets

    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as exc:  # datasets raises several unrelated types for a bad folder
        raise DataError(f"not a readable datasets folder ({exc})", file=path.name) from None
    return from_hf_dataset(loaded, split, name=path.name)


def from_hf_dataset(loaded: Any, split: str | None, *, name: str) -> RawTable:
    import datasets

    if isinstance(loaded, (datasets.DatasetDict, dict)):
        splits = list(loaded.keys())
        chosen_split = split or ("train" if "train" in splits else (splits[0] if len(splits) == 1 else None))
        if chosen_split is None or chosen_split not in splits:
            raise DataError(f"choose a split: {', '.join(splits)}", file=name,
                            hint="pass --split NAME or use NAME:split")
        loaded = loaded[chosen_split]
    elif split:
        raise DataError(f"has no splits, but split {split!r} was asked for", file=name)
    frame = loaded.to_pandas()
    if frame.empty:
        raise DataError("data set is empty (no rows)", file=name)
    return RawTable(_plain_python(frame), list(range(1, len(frame) + 1)), name)


def read_path(path: Path, split: str | None = None) -> RawTable:
    """Dispatch on the file suffix (optionally ``.gz``) or on a ``save_to_disk`` folder."""
    if path.is_dir():
        return read_dataset_folder(path, split)
    if not path.exists():
        raise DataError("file not found", file=str(path))
    if path.stat().st_size == 0:
        raise DataError("file is empty (0 bytes)", file=path.name)
    fmt, gz = split_compression(path)
    readers = {".jsonl": read_jsonl, ".json": read_json, ".csv": read_csv, ".parquet": read_parquet}
    if fmt not in readers:
        raise DataError(f"unsupported file type {''.join(path.suffixes) or '(none)'}", file=path.name,
                        hint="use .jsonl, .json, .parquet or .csv, each optionally .gz, "
                             "or a datasets save_to_disk folder")
    return readers[fmt](path, gz)


def _json_type(obj: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean",
            type(None): "null"}.get(type(obj), "a number")


def _plain_python(frame: pd.DataFrame) -> pd.DataFrame:
    """Arrow gives numpy arrays for list columns; the canonical form uses Python lists/dicts."""
    import numpy as np

    def convert(value: Any) -> Any:
        if isinstance(value, np.ndarray):
            return [convert(v) for v in value.tolist()]
        if isinstance(value, list):
            return [convert(v) for v in value]
        if isinstance(value, dict):
            return {k: convert(v) for k, v in value.items()}
        return value

    for column in frame.columns:
        if frame[column].dtype == object:
            sample = frame[column].dropna().head(1).tolist()
            if sample and isinstance(sample[0], (np.ndarray, list, dict)):
                frame[column] = [convert(v) for v in frame[column].tolist()]
    return frame


def is_missing(value: Any) -> bool:
    """None or a float NaN (what JSON null and absent keys become in a DataFrame)."""
    return value is None or (isinstance(value, float) and math.isnan(value))

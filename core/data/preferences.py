"""Preference data in one canonical form: ``prompt, chosen, rejected`` + every metadata column.

Accepted inputs (see :func:`load_preferences`):

* TRL's *standard* explicit-prompt format: string columns ``prompt``, ``chosen``, ``rejected``;
* TRL's *conversational* format: the same columns as lists of ``{"role", "content"}`` messages
  (with or without a ``prompt`` column; without one the prompt is the shared message prefix), and
  UltraFeedback's mix of a text ``prompt`` beside whole conversations (the shared leading messages
  are the prompt);
* the *implicit-prompt* format of Anthropic HH: only ``chosen`` and ``rejected``, each a whole
  dialogue; the prompt is the shared prefix up to and including the last ``"\\n\\nAssistant:"``
  and the responses are what follows it, so ``prompt + chosen`` equals the original ``chosen``;
* files ``.jsonl/.json/.parquet/.csv`` (each optionally ``.gz``), a ``datasets.save_to_disk``
  folder, a pandas DataFrame, a Hugging Face ``datasets.Dataset``, a hub id ``org/name[:split]``,
  and ``"demo"`` / ``"demo:N"`` for the built-in synthetic set (:mod:`alignscope.data.demo`).

Every problem raises :class:`DataError`, whose message is one line naming file, row (1-based) and
column; ``drop_invalid=True`` drops such rows instead and reports how many and why.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import socket
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Iterable, Mapping
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from alignscope.data import cache as data_cache
from alignscope.data.demo import DEFAULT_N, demo_frame
from alignscope.data.readers import DataError, RawTable, from_hf_dataset, read_path
from alignscope.data.validation import (CANONICAL, DEFAULT_MAX_ROW_CHARS, RowProblem, ValidationReport, apply_column_map,
                                        detect_format, missing_column_reason, render_text, validate_row)
from alignscope.evaluate.metrics import word_count
from alignscope.files import atomic_path, atomic_write
from alignscope.options import parse_list

__all__ = ["PreferenceData", "ValidationReport", "DataError", "load_preferences", "load_spec", "CANONICAL",
           "FORMATS", "DEFAULT_MAX_ROW_CHARS", "render_text", "parse_column_map", "demo_preferences", "swap_labels"]

FORMATS = ("standard", "conversational", "implicit_prompt")
_DEMO_SOURCE = re.compile(r"demo(?::(\d+))?(?::(\d+))?")  # demo, demo:N, demo:N:SEED
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+(:[\w.-]+)?$")


@dataclass(frozen=True)
class PreferenceData:
    """Validated preference pairs.

    ``frame`` has the canonical columns first (strings, or message lists for the conversational
    format) followed by the metadata columns exactly as they were in the source.
    """

    frame: pd.DataFrame
    format: str
    source: str
    prompt_extracted: bool = False
    report: ValidationReport = field(default_factory=ValidationReport)
    is_demo: bool = False
    load_options: dict[str, Any] = field(default_factory=dict)  # how to load it again (see spec)

    def __len__(self) -> int:
        return len(self.frame)

    @property
    def n_pairs(self) -> int:
        return len(self.frame)

    @property
    def metadata_columns(self) -> list[str]:
        return [c for c in self.frame.columns if c not in CANONICAL]

    @cached_property
    def fingerprint(self) -> str:
        """SHA-256 (first 16 hex digits) of the canonical rows, in order.

        Only ``prompt, chosen, rejected`` enter the hash: the same pairs read from jsonl, parquet or
        a DataFrame share one fingerprint, and metadata edits do not invalidate embedding caches.
        """
        digest = hashlib.sha256()
        for prompt, chosen, rejected in zip(self.frame["prompt"], self.frame["chosen"],
                                            self.frame["rejected"]):
            digest.update(json.dumps([prompt, chosen, rejected], ensure_ascii=False,
                                     separators=(",", ":")).encode("utf-8"))
            digest.update(b"\n")
        return digest.hexdigest()[:16]

    def spec(self) -> dict[str, Any]:
        """Everything another process needs to load exactly this data again (job configs):
        ``{"source", "fingerprint", **load_options}``; see :func:`load_spec`."""
        return {"source": self.source, "fingerprint": self.fingerprint, **self.load_options}

    def info(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "n_pairs": self.n_pairs,
            "format": self.format,
            "prompt_extracted": self.prompt_extracted,
            "columns": list(self.frame.columns),
            "metadata_columns": self.metadata_columns,
            "fingerprint": self.fingerprint,
            "is_demo": self.is_demo,
            "validation": self.report.to_dict(),
        }

    def texts(self, column: str) -> list[str]:
        """A canonical column as plain strings (message lists rendered ``role: content``)."""
        return [render_text(v) for v in self.frame[column].tolist()]

    def to_dataset(self, columns: Iterable[str] = CANONICAL):
        """A ``datasets.Dataset`` in TRL's preference format (prompt/chosen/rejected)."""
        import datasets

        return datasets.Dataset.from_pandas(self.frame[list(columns)], preserve_index=False)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the canonical table atomically; the format follows the suffix (.gz allowed)."""
        return write_table(self.frame, path)


def write_table(frame: pd.DataFrame, path: str | os.PathLike) -> Path:
    """Write a table as .jsonl/.json/.parquet/.csv (optionally .gz), atomically."""
    from alignscope.data.readers import split_compression

    path = Path(path)
    fmt, gz = split_compression(path)
    if fmt == ".parquet":
        if gz:
            raise ValueError("write parquet without .gz: parquet compresses internally")
        with atomic_path(path) as tmp:
            frame.to_parquet(tmp, index=False)
        return path
    if fmt == ".jsonl":
        text = frame.to_json(orient="records", lines=True, force_ascii=False)
    elif fmt == ".json":
        text = frame.to_json(orient="records", force_ascii=False, indent=1)
    elif fmt == ".csv":
        text = frame.to_csv(index=False)
    else:
        raise ValueError(f"cannot write {path.name}: use .jsonl, .json, .parquet or .csv (optionally .gz)")
    data = text.encode("utf-8")
    with atomic_write(path, "wb") as handle:
        handle.write(gzip.compress(data, mtime=0) if gz else data)
    return path


def parse_column_map(items: Iterable[str] | str | None) -> dict[str, str]:
    """``["prompt=question", "chosen=good"]`` or ``"prompt=question,chosen=good"`` → mapping
    canonical name → source column."""
    if not items:
        return {}
    if isinstance(items, str):
        items = [items]
    mapping: dict[str, str] = {}
    for item in items:
        for part in parse_list(item):
            key, sep, value = part.partition("=")
            key, value = key.strip(), value.strip()
            if not sep or key not in CANONICAL or not value:
                raise DataError(f"bad column mapping {part!r}: use prompt=COL, chosen=COL or rejected=COL")
            mapping[key] = value
    return mapping


# ----------------------------------------------------------------------------------------- loading
def load_preferences(
    source: Any,
    *,
    split: str | None = None,
    columns: Mapping[str, str] | None = None,
    drop_invalid: bool = False,
    max_row_chars: int = DEFAULT_MAX_ROW_CHARS,
) -> PreferenceData:
    """Load preference pairs from a path, folder, DataFrame, ``datasets.Dataset``, hub id or
    ``"demo[:N]"`` into canonical form.

    Parameters
    ----------
    source: what to load (see the module docstring).
    split: split of a ``DatasetDict`` folder or hub data set (``org/name:split`` works too).
    columns: canonical name → source column, for data whose columns are named differently.
    drop_invalid: drop invalid rows (reported in ``.report``) instead of raising on the first.
    max_row_chars: rows whose prompt+chosen+rejected exceed this many characters are invalid.

    Raises
    ------
    DataError: with a one-line message naming file, row (1-based) and column.
    """
    if isinstance(source, str) and not Path(source).expanduser().exists():
        demo = _DEMO_SOURCE.fullmatch(source)
        if demo:
            return demo_preferences(n=int(demo.group(1) or DEFAULT_N), seed=int(demo.group(2) or 0))
    options = {"split": split, "columns": dict(columns or {}), "drop_invalid": drop_invalid,
               "max_row_chars": max_row_chars}
    path = Path(source).expanduser() if isinstance(source, (str, os.PathLike)) else None
    if path is not None:
        cached = data_cache.read(path, options)
        if cached is not None:
            frame, info = cached
            data = PreferenceData(frame=frame, format=info["format"], source=info["source"],
                                  prompt_extracted=info["prompt_extracted"], report=ValidationReport(**info["report"]),
                                  load_options=info["load_options"])
            data.__dict__["fingerprint"] = info["fingerprint"]  # the cached_property, as computed at load time
            return data
    raw, label = _read_source(source, split)
    data = canonicalise(raw, source_label=label, columns=columns, drop_invalid=drop_invalid,
                        max_row_chars=max_row_chars)
    data = replace(data, load_options={k: v for k, v in options.items() if v != _DEFAULT_LOAD_OPTIONS[k]})
    if path is not None:
        data_cache.write(path, options, data)
    return data


_DEFAULT_LOAD_OPTIONS = {"split": None, "columns": {}, "drop_invalid": False,
                         "max_row_chars": DEFAULT_MAX_ROW_CHARS}


def demo_preferences(n: int = DEFAULT_N, seed: int = 0, **shares: float) -> PreferenceData:
    """The synthetic demo set (:func:`alignscope.data.demo.demo_frame`) as validated
    :class:`PreferenceData` with ``is_demo=True``."""
    data = load_preferences(demo_frame(n, seed, **shares))
    if shares:  # non-default shares cannot be named by a "demo:N:SEED" source string
        return replace(data, source=f"demo (n={n}, seed={seed}, {shares})", is_demo=True)
    return replace(data, source=f"demo:{n}:{seed}", is_demo=True)


def load_spec(spec: Mapping[str, Any]) -> PreferenceData:
    """Load the data a :meth:`PreferenceData.spec` describes and check it is still the same data
    (a job submitted yesterday must not silently train on an edited file)."""
    options = {k: v for k, v in spec.items() if k in _DEFAULT_LOAD_OPTIONS}
    data = load_preferences(spec["source"], **options)
    expected = spec.get("fingerprint")
    if expected and data.fingerprint != expected:
        raise DataError(f"the data changed since this job was configured (fingerprint {data.fingerprint}, "
                        f"expected {expected})", file=str(spec["source"]))
    return data


def _read_source(source: Any, split: str | None) -> tuple[RawTable, str]:
    import datasets

    if isinstance(source, pd.DataFrame):
        if source.empty:
            raise DataError("DataFrame is empty (no rows)", file="DataFrame")
        frame = source.reset_index(drop=True)
        return RawTable(frame, list(range(1, len(frame) + 1)), "DataFrame"), "DataFrame"
    if isinstance(source, (datasets.Dataset, datasets.DatasetDict)):
        return from_hf_dataset(source, split, name="Dataset"), "Dataset"
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(f"cannot load preference data from a {type(source).__name__}")
    text = str(source)
    path = Path(text).expanduser()
    if path.exists():
        return read_path(path, split), str(path)
    if path.suffix or text.startswith((".", "/", "~")) or not _HUB_ID.match(text):
        raise DataError("file not found", file=text)
    return _read_hub(text, split), text


def _read_hub(hub_id: str, split: str | None) -> RawTable:
    """Load ``org/name[:split]`` with ``datasets.load_dataset``; offline gets a clear message."""
    import datasets

    name, _, id_split = hub_id.partition(":")
    split = split or id_split or None
    unreachable = _hub_unreachable()
    if unreachable:
        raise DataError(f"cannot reach the Hugging Face Hub to load {name!r} ({unreachable})",
                        file=hub_id,
                        hint="if you are offline, save it where you are online with "
                             "datasets.load_dataset(...).save_to_disk(DIR) and load DIR")
    try:
        loaded = datasets.load_dataset(name, split=split)
    except Exception as exc:  # network, auth, missing repo: all become one clear line
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise DataError(
            f"could not load {name!r} from the Hugging Face Hub ({type(exc).__name__}: {first})",
            file=hub_id,
            hint="if you are offline, save it where you are online with "
                 "datasets.load_dataset(...).save_to_disk(DIR) and load DIR") from None
    return from_hf_dataset(loaded, None, name=hub_id)


def _hub_unreachable(timeout: float = 3.0) -> str | None:
    """Why the hub cannot be reached, or None. A 3-second socket check up front, because
    ``datasets`` otherwise retries for ~30 s with a warning per attempt before failing."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return None  # offline mode reads the local cache and fails fast by itself
    if any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy")):
        return None  # behind a proxy a direct socket check says nothing; let datasets try
    endpoint = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout).close()
    except OSError as exc:
        return f"{endpoint.hostname}: {exc.strerror or exc}"
    return None


def canonicalise(
    raw: RawTable,
    *,
    source_label: str,
    columns: Mapping[str, str] | None = None,
    drop_invalid: bool = False,
    max_row_chars: int = DEFAULT_MAX_ROW_CHARS,
) -> PreferenceData:
    """Map, detect the format, validate every row, and build the canonical table."""
    frame = raw.records
    name = raw.name
    frame = apply_column_map(frame, columns or {}, name)
    for required in ("chosen", "rejected"):
        if required not in frame.columns:
            raise DataError(missing_column_reason(required, list(frame.columns)), file=name,
                            row=raw.rows[0], column=required,
                            hint=f"map it with --column {required}=NAME")
    has_prompt = "prompt" in frame.columns
    fmt, first_row = detect_format(frame, raw.rows, has_prompt)

    prompts, chosens, rejecteds, keep = [], [], [], []
    report = ValidationReport(n_read=len(frame))
    columns_in = ["prompt", "chosen", "rejected"] if has_prompt else ["chosen", "rejected"]
    values = {c: frame[c].tolist() for c in columns_in}
    for i, row in enumerate(raw.rows):
        try:
            prompt, chosen, rejected = validate_row(
                {c: values[c][i] for c in columns_in}, fmt=fmt, has_prompt=has_prompt,
                first_row=first_row, max_row_chars=max_row_chars)
        except RowProblem as problem:
            if not drop_invalid:
                raise DataError(problem.reason, file=name, row=row, column=problem.column,
                                hint="or drop invalid rows with --drop-invalid") from None
            report.dropped.append({"row": row, "column": problem.column, "reason": problem.reason})
            continue
        prompts.append(prompt)
        chosens.append(chosen)
        rejecteds.append(rejected)
        keep.append(i)
    if not keep:
        raise DataError(f"no valid rows ({report.summary()})", file=name)
    report.n_kept = len(keep)
    for column, replies in (("chosen", chosens), ("rejected", rejecteds)):
        n_empty = sum(1 for r in replies if isinstance(r, str) and not r.strip())
        if n_empty:
            report.warnings[f"rows with an empty {column} response"] = n_empty
    metadata = frame.drop(columns=[c for c in CANONICAL if c in frame.columns]).iloc[keep]
    canonical = pd.DataFrame({"prompt": prompts, "chosen": chosens, "rejected": rejecteds})
    canonical = pd.concat([canonical, metadata.reset_index(drop=True)], axis=1)
    return PreferenceData(frame=canonical, format=fmt, source=source_label,
                          prompt_extracted=not has_prompt, report=report)


def length_table(data: PreferenceData) -> pd.DataFrame:
    """Words per pair for ``prompt``, ``chosen`` and ``rejected``, shape (n_pairs, 3), counted as
    every score's length rule counts them (:func:`alignscope.evaluate.metrics.word_count`: the
    contents of a message list, not its role labels). Used for length distributions and the
    chosen-is-longer length bias."""
    return pd.DataFrame({column: np.fromiter((word_count(value) for value in data.frame[column].tolist()),
                                             dtype=np.int64, count=len(data))
                         for column in CANONICAL})


def swap_labels(frame: pd.DataFrame, pairs: Any) -> pd.DataFrame:
    """A copy of ``frame`` with ``chosen`` and ``rejected`` exchanged on the rows at ``pairs``
    (positions: an int array or a boolean mask of length ``len(frame)``); every other column and
    row unchanged. The one way label flips are planted, simulated and fixed."""
    out = frame.copy()
    rows = np.flatnonzero(pairs) if np.asarray(pairs).dtype == bool else np.asarray(pairs, dtype=np.int64)
    if len(rows):
        # One column at a time: a 2-D assignment of message-list cells would not swap them.
        chosen = out["chosen"].iloc[rows].to_numpy(copy=True)
        out.iloc[rows, out.columns.get_loc("chosen")] = out["rejected"].iloc[rows].to_numpy()
        out.iloc[rows, out.columns.get_loc("rejected")] = chosen
    return out

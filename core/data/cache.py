"""A disk cache of loaded data sets: the canonical table as parquet plus a small JSON of what
loading found, so that opening a large file a second time (the app's cold start, every job of a
sweep) reads one parquet file instead of parsing, validating and hashing the source again.

Keyed by the file's resolved path, size and modification time, the load options and the
alignscope version: an edited file, other options or a new release miss the cache. Entries are
written atomically, in a background thread (the caller has its data; writing 62k pairs of parquet
took 2 s of the first open); an unreadable or not yet written entry is ignored (the file is loaded
again); :func:`flush` waits for pending writes. Only files of at
least :data:`MIN_BYTES` are cached (small files load faster than the cache would help).
No pickle: parquet and JSON only.
"""
from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, Mapping

from alignscope import __version__, settings
from alignscope.files import atomic_path, write_json

MIN_BYTES = 2 * 1024 * 1024
_pending: list[threading.Thread] = []


def _key(path: Path, options: Mapping[str, Any]) -> str | None:
    try:
        stat = path.stat()
    except OSError:
        return None
    if not path.is_file() or stat.st_size < MIN_BYTES:
        return None
    text = json.dumps([str(path.resolve()), stat.st_size, stat.st_mtime_ns, dict(options), __version__],
                      sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _folder() -> Path:
    return settings.home() / "cache" / "data"


def read(path: Path, options: Mapping[str, Any]) -> tuple[Any, dict[str, Any]] | None:
    """``(frame, info)`` cached for ``path`` loaded with ``options`` (info: format, source,
    prompt_extracted, report, load_options, fingerprint), or None. :mod:`alignscope.data.preferences` builds
    the PreferenceData from them, so this module does not depend on it."""
    import pandas as pd

    key = _key(path, options)
    if key is None:
        return None
    table, meta = _folder() / f"{key}.parquet", _folder() / f"{key}.json"
    try:
        info = json.loads(meta.read_text(encoding="utf-8"))
        frame = pd.read_parquet(table)
        if len(frame) != info["n_pairs"]:
            return None
    except Exception:  # noqa: BLE001 - a missing or damaged entry is a cache miss, never an error
        return None
    return frame, info


def write(path: Path, options: Mapping[str, Any], data) -> None:
    """Store ``data`` in the background (best effort: a full disk or a read-only home only skips
    the cache). Not a daemon thread: a short-lived process (a CLI command, a job) still finishes
    the entry before it exits."""
    key = _key(path, options)
    if key is None or data.format != "standard":  # message lists stay out: parquet would reshape them
        return
    info = {"n_pairs": len(data), "format": data.format, "source": data.source,
            "prompt_extracted": data.prompt_extracted, "report": asdict(data.report),
            "load_options": data.load_options, "fingerprint": data.fingerprint}
    thread = threading.Thread(target=_write_entry, args=(key, data.frame, info), name=f"data-cache-{key}")
    _pending[:] = [t for t in _pending if t.is_alive()] + [thread]
    thread.start()


def _write_entry(key: str, frame: Any, info: dict[str, Any]) -> None:
    try:
        _folder().mkdir(parents=True, exist_ok=True)
        with atomic_path(_folder() / f"{key}.parquet") as tmp:
            frame.to_parquet(tmp, index=False)
        write_json(_folder() / f"{key}.json", info)  # last: an entry without it is a miss
    except (OSError, ValueError, TypeError):
        pass


def flush(timeout: float | None = None) -> None:
    """Wait until every entry started by :func:`write` in this process is on disk."""
    for thread in list(_pending):
        thread.join(timeout)

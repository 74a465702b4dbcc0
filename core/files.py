"""Small file-system helpers shared by every layer: atomic writes, append-only JSONL and data-root
confinement.

Why atomic: a reader (the app, a resumed job) must never see half a file, and a job killed mid-write
must never leave a file that looks complete. Every writer in alignscope goes through ``atomic_write``.
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Iterator, Mapping

from alignscope.errors import AlignscopeError


def _temporary_beside(path: Path) -> tuple[int, str]:
    """A temporary file in ``path``'s folder with the permissions an ordinary ``open`` would give
    (mkstemp makes it 0600, which the rename would carry over to the user's file)."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.fchmod(fd, 0o666 & ~_umask())
    return fd, tmp


def _umask() -> int:
    current = os.umask(0o022)  # reading the umask means setting it; put it straight back
    os.umask(current)
    return current


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; rename it over ``path`` only if the block succeeds.

    The temporary file lives in the same directory so that ``os.replace`` is an atomic rename on
    POSIX. On any exception the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary_beside(path)
    try:
        encoding = None if "b" in mode else "utf-8"
        with os.fdopen(fd, mode, encoding=encoding) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` for libraries that insist on writing by file name
    (``DataFrame.to_parquet``, ``numpy.save``); it is renamed over ``path`` only on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _temporary_beside(path)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def append_jsonl(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Append one JSON object as a line (metrics.jsonl). Append-only files are not rewritten
    atomically; readers use :func:`read_jsonl`, which ignores a half-written last line."""
    line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line)
        handle.flush()


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every complete JSON line of ``path`` ([] if absent); a truncated last line is skipped."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line still being written, or one cut short by a kill
    return records


def count_lines(path: str | os.PathLike) -> int:
    """Complete lines (ending in a newline) of a file, 0 when it does not exist: how many records
    a JSONL file appended with :func:`append_jsonl` holds, without parsing them."""
    try:
        with open(path, "rb") as handle:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON types, the one conversion every JSON file of alignscope goes through:
    dict keys as str, tuples as lists, numpy/pandas/torch scalars and arrays through their
    ``tolist()``, non-finite floats (NaN, ±inf) as None (``null``: strict JSON has no NaN), and
    anything else (paths, timestamps, ...) as its str."""
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [jsonable(v) for v in value]
    if callable(getattr(value, "tolist", None)):  # numpy scalars and arrays, pandas Series, tensors
        return jsonable(value.tolist())
    return str(value)


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as pretty JSON, atomically."""
    with atomic_write(path, "w") as handle:
        json.dump(obj, handle, indent=2, ensure_ascii=False, default=str)
        handle.write("\n")


class PathOutsideRootError(AlignscopeError):
    """A user-typed path that would leave the configured data root."""


def resolve_in_root(root: str | os.PathLike, user_path: str | os.PathLike) -> Path:
    """Resolve ``user_path`` (relative to ``root``) and refuse anything that escapes ``root``.

    ``..`` components, absolute paths elsewhere and symlinks pointing outside are all refused:
    the check runs on the fully resolved path, so a symlink inside the root that points outside
    is caught too.
    """
    root_resolved = Path(root).expanduser().resolve()
    text = str(user_path).strip()
    if not text:
        raise PathOutsideRootError("empty path")
    if "\x00" in text:
        raise PathOutsideRootError("path contains a NUL byte")
    candidate = Path(text).expanduser()
    if not candidate.is_absolute():
        candidate = root_resolved / candidate
    resolved = candidate.resolve()
    if resolved != root_resolved and root_resolved not in resolved.parents:
        raise PathOutsideRootError(
            f"{text!r} is outside the data root {str(root_resolved)!r}; "
            "only files inside the data root can be opened (start the app with --data-root to change it)"
        )
    return resolved

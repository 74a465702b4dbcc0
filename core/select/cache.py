"""A method's full ranking of an embedding file, computed once and found by every later caller.

ISA on 124k AlpacaEval completions fits a Gaussian mixture for seconds; the Select page ranks every
point once and slides a cut-off over the ranking, so the same ranking serves every subset size. It is
kept as an ordinary selection parquet (:meth:`~alignscope.select.selection.Selection.write`) in
``settings.home()/cache/rankings/``, keyed by the embedding file (its path and the time it was
written: a recomputed embedding is a new key), the method, the seed and the options, so a new
session or a restarted server reads it in a fraction of a second instead of fitting again.

One ranking is computed once even when two callers ask at the same time (a page and a prefetch, two
sessions): the second waits for the first and reads its file. :func:`prefetch_ranking` starts the
computation in a background thread, so that a page the user has not opened yet finds it done.
"""
from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any, Callable

from alignscope import settings
from alignscope.select.selection import Selection

__all__ = ["CACHE_VERSION", "MAX_ENTRIES", "ranking_cache_path", "full_ranking", "prefetch_ranking"]

CACHE_VERSION = 1  # bump when a method's scores change for the same inputs
MAX_ENTRIES = 64   # a 124k-point ranking is ~2 MB: the oldest go beyond this
_LOCKS: dict[str, threading.Lock] = {}  # one per cache file: the computation runs once
_LOCKS_GUARD = threading.Lock()
_PREFETCHES: dict[str, threading.Thread] = {}  # the last prefetch of each cache file


def _lock_for(path: Path) -> threading.Lock:
    with _LOCKS_GUARD:
        return _LOCKS.setdefault(str(path), threading.Lock())


def ranking_cache_path(embeddings_path: str | Path, unit: str, method: str, seed: int,
                       options: dict[str, Any]) -> Path:
    """Where the full ranking of this embedding file by ``method`` lives."""
    path = Path(embeddings_path)
    key = {"version": CACHE_VERSION, "file": str(path.resolve()), "written": path.stat().st_mtime_ns, "unit": unit,
           "method": method, "seed": int(seed), "options": options}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return settings.home() / "cache" / "rankings" / f"{method}-{digest}.parquet"


def full_ranking(embeddings, method: str, *, seed: int = 0, options: dict[str, Any] | None = None) -> Selection:
    """Every point of ``embeddings`` (an :class:`~alignscope.embed.embeddings.Embeddings` read from
    a file) ranked by ``method`` (``k = n``): read from the cache when it holds it, else computed
    and kept. Embeddings held only in memory are ranked and not kept."""
    from alignscope.select.selectors import select

    options = dict(options or {})
    path = None
    if embeddings.path is not None:
        try:
            path = ranking_cache_path(embeddings.path, embeddings.unit, method, seed, options)
        except OSError:  # the embedding file went away since it was read: rank what is in memory
            pass
    if path is None:
        return select(embeddings, method, k=len(embeddings), seed=seed, **options)
    with _lock_for(path):  # a second caller of the same ranking waits here, then reads the file
        if path.is_file():
            try:
                found = Selection.read(path)
                if len(found) == len(embeddings):
                    return found
            except Exception:  # noqa: BLE001 - a damaged entry is a miss: recomputed and rewritten
                pass
        ranked = select(embeddings, method, k=len(embeddings), seed=seed, **options)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            ranked.write(path)
            _evict(path.parent)
        except OSError:  # a full or read-only home costs the next caller a recomputation, nothing more
            pass
    return ranked


def prefetch_ranking(embeddings_path: str | Path, unit: str, method: str, *, load: Callable[[], Any],
                     seed: int = 0, options: dict[str, Any] | None = None) -> threading.Thread | None:
    """Start :func:`full_ranking` of the embeddings in ``embeddings_path`` (as ``unit``) in a
    background thread unless its cache file exists or it is being computed; returns the thread (None
    when nothing was started). ``load()`` gives the embeddings, called in the thread: a page that
    prefetches does not wait for the file to be read. Errors are left to the caller that asks for the
    ranking itself (it computes again and reports them)."""
    try:
        path = ranking_cache_path(embeddings_path, unit, method, seed, dict(options or {}))
    except OSError:
        return None

    def run() -> None:
        try:
            full_ranking(load(), method, seed=seed, options=options)
        except Exception:  # noqa: BLE001 - a failed prefetch is a miss, reported when the page asks
            pass

    if path.is_file() or _lock_for(path).locked():
        return None
    with _LOCKS_GUARD:  # one prefetch per ranking, even while it is still reading its embeddings
        running = _PREFETCHES.get(str(path))
        if running is not None and running.is_alive():
            return None
        # Not a daemon: a process that exits while a daemon thread is inside torch aborts ("terminate
        # called without an active exception"); exiting waits for the ranking to be done instead.
        thread = _PREFETCHES[str(path)] = threading.Thread(target=run, name=f"alignscope-prefetch-{method}",
                                                           daemon=False)
    thread.start()
    return thread


def _evict(folder: Path) -> None:
    entries = sorted(folder.glob("*.parquet"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[MAX_ENTRIES:]:
        old.unlink(missing_ok=True)

"""Job kinds: a kind is a name registered to a ``"module:function"`` import string, which the
worker imports and calls as ``fn(config, run_dir, report)``."""
from __future__ import annotations

import importlib
import importlib.util
from typing import Any, Callable

from alignscope.jobs.model import JobError, UnknownKindError

# Kinds are import strings, so that neither the app nor the job system imports torch; the worker
# imports the module. The string is stored with each job, so a kind registered at runtime in the
# submitting process still works in the worker (a fresh interpreter).
_KINDS: dict[str, str] = {
    "selftest": "alignscope.jobs.worker:selftest",
    "embed": "alignscope.embed.tasks:embed_job",
    "map": "alignscope.embed.tasks:map_job",
    "train": "alignscope.train.trainer:run_job",
    "sweep_worker": "alignscope.scaling.measure:worker_job",
    "audit": "alignscope.audit.cache:audit_job",
    "sweep_point": "alignscope.scaling.measure:point_job",  # sweeps of earlier versions: one job per point
}
# Where the built-in kinds pointed before the library moved into subpackages (0.1): job stores
# in existing homes keep these strings, and their queued jobs and re-runs must still start.
_MOVED_TARGETS: dict[str, str] = {
    "alignscope.worker:selftest": "alignscope.jobs.worker:selftest",
    "alignscope.tasks:embed_job": "alignscope.embed.tasks:embed_job",
    "alignscope.tasks:map_job": "alignscope.embed.tasks:map_job",
    "alignscope.train:run_job": "alignscope.train.trainer:run_job",
    "alignscope.sweep:point_job": "alignscope.scaling.measure:point_job",
}


def register_kind(name: str, target: str) -> None:
    """Register (or replace) job kind ``name`` as ``"package.module:function"``."""
    if not name or not name.replace("-", "_").replace(".", "_").isidentifier():
        raise ValueError(f"invalid job kind name {name!r}")
    module, _, function = target.partition(":")
    if not module or not function.isidentifier():
        raise ValueError(f"job kind target must look like 'package.module:function', got {target!r}")
    _KINDS[name] = target


def known_kinds() -> dict[str, str]:
    return dict(_KINDS)


def resolve_kind(kind: str) -> str:
    """The import string of ``kind``; checks that its module exists without importing it."""
    target = _KINDS.get(kind)
    if target is None:
        known = ", ".join(sorted(_KINDS)) or "(none)"
        raise UnknownKindError(f"unknown job kind {kind!r}; known kinds: {known}")
    module = target.partition(":")[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UnknownKindError(f"job kind {kind!r} points at module {module!r}, which is not installed")
    return target


def load_target(target: str) -> Callable[..., Any]:
    """Import ``"module:function"`` and return the function (done in the worker, never the app)."""
    target = _MOVED_TARGETS.get(target, target)
    module_name, _, function_name = target.partition(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, function_name)
    except AttributeError:
        raise JobError(f"module {module_name!r} has no function {function_name!r}") from None


__all__ = ["known_kinds", "load_target", "register_kind", "resolve_kind"]

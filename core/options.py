"""Options declared once: a dataclass field made with :func:`option` carries everything a user
sees of it (help, choices, bounds, what an unset value means, which option it needs), so the
validation, the CLI flags (:mod:`alignscope.cli.config_flags`) and the pages' widgets are all
generated from the one declaration. Used by every config of the library: training, sweeps,
selectors, the audit, the SamS scheduler. Cheap to import (numpy only).
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping

import numpy as np

__all__ = ["option", "flag_name", "field_kind", "range_text", "field_problem", "fields_problem", "is_finite", "is_int"]


# Every option is declared ONCE, as a field of a config dataclass, with its metadata: ``help``
# (one line for the command's ``--help`` and the page's tooltips), ``choices``,
# ``min``/``max`` (``min_open``/``max_open``: the bound itself is excluded), ``default_text`` (what an
# unset None means, e.g. lr), ``requires`` (another option that must be on, e.g. lora_r needs lora).
# ``validate`` methods check types, bounds and choices from it; alignscope.cli.config_flags turns
# it into the CLI's flags (``--`` + the field name with dashes); the Train page reads its widget
# defaults and choices from the same metadata.
def option(default: Any = dataclasses.MISSING, *, help: str, choices: tuple | None = None, min: float | None = None,
           max: float | None = None, min_open: bool = False, max_open: bool = False, default_text: str | None = None,
           requires: str | None = None, default_factory: Any = dataclasses.MISSING) -> Any:
    """A config field with its metadata (see above); ``default`` (or ``default_factory`` for a
    list) is the dataclass default."""
    meta = {"help": help, "choices": choices, "min": min, "max": max, "min_open": min_open, "max_open": max_open,
            "default_text": default_text, "requires": requires}
    meta = {k: v for k, v in meta.items() if v is not None and v is not False}
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def flag_name(name: str) -> str:
    """The CLI flag of a config field: ``max_steps`` → ``--max-steps``."""
    return "--" + name.replace("_", "-")


def field_kind(f: dataclasses.Field) -> tuple[str, bool]:
    """``(kind, nullable)`` of a config field from its annotation: kind is ``int``, ``float``,
    ``bool``, ``str``, ``floats`` (a list of numbers) or ``names`` (a name or a list of names)."""
    parts = [p.strip() for p in str(f.type).split("|")]
    nullable = "None" in parts
    parts = [p for p in parts if p != "None"]
    if len(parts) == 1 and parts[0] in ("int", "float", "bool", "str"):
        return parts[0], nullable
    if parts == ["list[float]"]:
        return "floats", nullable
    if sorted(parts) == ["list[str]", "str"]:
        return "names", nullable
    raise TypeError(f"config field {f.name}: unsupported annotation {f.type!r}")  # pragma: no cover - a new field


def range_text(meta: Mapping[str, Any]) -> str:
    """The bounds of a field in words: ``> 0``, ``>= 1``, ``in [0, 1)``."""
    low, high = meta.get("min"), meta.get("max")
    if low is not None and high is not None:
        return f"in {'(' if meta.get('min_open') else '['}{low:g}, {high:g}{')' if meta.get('max_open') else ']'}"
    if low is not None:
        return f"{'>' if meta.get('min_open') else '>='} {low:g}"
    if high is not None:
        return f"{'<' if meta.get('max_open') else '<='} {high:g}"
    return ""


def field_problem(f: dataclasses.Field, value: Any) -> str | None:
    """Why ``value`` breaks the declared type, bounds or choices of field ``f``, or None."""
    kind, nullable = field_kind(f)
    if value is None and nullable:
        return None
    meta = f.metadata
    bounds = range_text(meta)
    null = " or null" if nullable else ""
    if "choices" in meta:
        if value not in meta["choices"]:
            return f"{f.name} must be one of {', '.join(meta['choices'])}, got {value!r}"
        return None
    if kind == "bool":
        return None if isinstance(value, bool) else f"{f.name} must be true or false, got {value!r}"
    if kind == "int":
        ok = is_int(value)
        what = f"an integer {bounds}".rstrip()
    elif kind == "float":
        ok = is_finite(value)
        what = bounds or "a finite number"
    else:
        return None  # strings and lists: checked by validate() itself
    if ok:
        low, high = meta.get("min"), meta.get("max")
        ok = ((low is None or (value > low if meta.get("min_open") else value >= low)) and
              (high is None or (value < high if meta.get("max_open") else value <= high)))
    return None if ok else f"{f.name} must be {what}{null}, got {value!r}"


def fields_problem(config: Any) -> str | None:
    """The first field of dataclass ``config`` whose value breaks its declared type, bounds or
    choices, as a sentence (None when every field is fine)."""
    for f in dataclasses.fields(config):
        if f.metadata.get("help") is None:
            continue
        problem = field_problem(f, getattr(config, f.name))
        if problem is not None:
            return problem
    return None


def is_finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

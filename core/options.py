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

__all__ = ["option", "flag_name", "field_kind", "range_text", "field_problem", "fields_problem", "option_help",
           "option_default", "parse_list", "is_finite", "is_int"]


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
    ``bool``, ``str``, ``floats`` (a list of numbers), ``ints`` (a list of integers) or ``names``
    (a list of names, or a name or a list of names)."""
    parts = [p.strip() for p in str(f.type).split("|")]
    nullable = "None" in parts
    parts = [p for p in parts if p != "None"]
    if len(parts) == 1 and parts[0] in ("int", "float", "bool", "str"):
        return parts[0], nullable
    if parts == ["list[float]"]:
        return "floats", nullable
    if parts == ["list[int]"]:
        return "ints", nullable
    if sorted(parts) in (["list[str]", "str"], ["list[str]"]):
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
    if kind in ("floats", "ints"):
        item = _item_problem(f, kind, value)
        return None if item is None else f"{f.name} must be {item}{null}, got {value!r}"
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


def _item_problem(f: dataclasses.Field, kind: str, value: Any) -> str | None:
    """What a list field's value must be, when it is not a list of numbers (integers for ``ints``)
    each within the field's bounds."""
    meta = f.metadata
    what = f"a list of {'integers' if kind == 'ints' else 'numbers'}"
    bounds = range_text(meta)
    what += f", each {bounds}" if bounds else ""
    if not isinstance(value, (list, tuple)):
        return what
    check = is_int if kind == "ints" else is_finite
    low, high = meta.get("min"), meta.get("max")
    for item in value:
        if not check(item):
            return what
        if low is not None and not (item > low if meta.get("min_open") else item >= low):
            return what
        if high is not None and not (item < high if meta.get("max_open") else item <= high):
            return what
    return None


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


def option_help(config_class: type, name: str) -> str:
    """The help of option ``name`` of ``config_class`` with its bounds and default, as ``--help``
    prints it: what a page shows as the widget's tooltip."""
    f = config_class.__dataclass_fields__[name]
    meta = f.metadata
    bounds = range_text(meta) if "choices" not in meta else ""
    default = meta.get("default_text") or _default_text(option_default(config_class, name))
    return f"{meta.get('help', '')} ({bounds + '; ' if bounds else ''}default {default})"


def option_default(config_class: type, name: str) -> Any:
    """The dataclass default of option ``name`` (a fresh list for list options)."""
    f = config_class.__dataclass_fields__[name]
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def _default_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(_default_text(v) for v in value)
    if isinstance(value, bool):
        return "on" if value else "off"
    return f"{value:g}" if isinstance(value, float) else str(value)


def parse_list(text: str, kind: type = str) -> list:
    """``"a, b,c"`` → ``["a", "b", "c"]`` (items converted by ``kind``): the one parser of every
    comma-separated flag and form field. A bad item raises ValueError naming the text."""
    try:
        return [kind(part.strip()) for part in str(text).split(",") if part.strip()]
    except ValueError:
        what = {float: "numbers", int: "integers"}.get(kind, "names")
        raise ValueError(f"{text!r} is not a comma-separated list of {what}") from None


def is_finite(value: Any) -> bool:
    """A finite real number: int, float or a numpy one, not a bool, not NaN or ±inf."""
    return (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
            and math.isfinite(value))


def is_int(value: Any) -> bool:
    """An integer, Python's or numpy's, not a bool: the one integer check of alignscope."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)

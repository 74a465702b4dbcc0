"""Command-line flags generated from config dataclasses (options declared once with
:func:`alignscope.options.option`).

Every option of ``alignscope train`` is a field of a config dataclass in
:mod:`alignscope.train.config` (``alignscope sweep``: :class:`alignscope.scaling.sweep.SweepConfig`),
declared there once with its metadata (help, choices, bounds). This
module turns the fields into argparse flags (``--`` + the field name with dashes, the type from the
annotation, ``(default X)`` from the dataclass default) and reads the parsed flags back into the
keyword fields of :func:`alignscope.train.config.train_config`. Every flag defaults to None: an unset
flag means "the config's default", so method-dependent defaults (``lr`` through
:meth:`~alignscope.train.config.TrainConfig.resolved_lr`) stay where they are decided.
"""
from __future__ import annotations

import argparse
import dataclasses
from typing import Any, Iterable

from alignscope.options import field_kind, flag_name, parse_list, range_text
from alignscope.train.config import CONFIG_CLASSES, TrainConfig, TrainError, option_fields, report_to_names

__all__ = ["add_config_arguments", "config_fields_from_args", "fields_from_args", "flag_help"]


def flag_help(f: dataclasses.Field) -> str:
    """The ``--help`` line of a config field: its help, its bounds, ``(default X)``."""
    meta = f.metadata
    kind, _ = field_kind(f)
    parts = [meta.get("help", "")]
    if meta.get("requires"):
        parts.append(f"[with {flag_name(meta['requires'])}]")
    bounds = range_text(meta)
    bounds = f"{'an integer ' if kind == 'int' else ''}{bounds}; " if bounds and "choices" not in meta else ""
    if meta.get("default_text"):
        default = meta["default_text"]
    elif kind == "bool":
        default = "on" if f.default else "off"
    elif isinstance(f.default, float):
        default = f"{f.default:g}"
    elif f.default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:
        default = ",".join(f"{x:g}" if isinstance(x, float) else str(x) for x in f.default_factory())
    else:
        default = str(f.default)
    parts.append(f"({bounds}default {default})")
    return " ".join(p for p in parts if p).replace("%", "%%")  # argparse formats help with %


def _list_type(kind: type):
    def parse(text: str) -> list:
        try:
            return parse_list(text, kind)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
    return parse


def add_config_arguments(parser: argparse.ArgumentParser, config_classes: Iterable[type[TrainConfig]]) -> None:
    """Add one flag per field of ``config_classes`` to ``parser``, in an argument group per class
    (its ``cli_group``); a field shared by several classes gets one flag, in the first class's group."""
    seen: set[str] = set()
    for cls in config_classes:
        group = parser.add_argument_group(getattr(cls, "cli_group", cls.__name__))
        for f in dataclasses.fields(cls):
            if f.name in seen:
                continue
            seen.add(f.name)
            kind, _ = field_kind(f)
            options: dict[str, Any] = {"dest": f.name, "default": None, "help": flag_help(f)}
            if kind == "bool":
                options["action"] = argparse.BooleanOptionalAction
            elif kind == "floats":
                options.update(type=_list_type(float), metavar="X,Y,...")
            elif kind == "ints":
                options.update(type=_list_type(int), metavar="N,M,...")
            elif kind == "names":
                options.update(metavar="NAMES")
            else:
                options["type"] = {"int": int, "float": float, "str": str}[kind]
                if "choices" in f.metadata:
                    options["choices"] = list(f.metadata["choices"])
            group.add_argument(flag_name(f.name), **options)


def config_fields_from_args(args: argparse.Namespace, method: str) -> dict[str, Any]:
    """The config fields the user set on the command line (unset flags are left out, so the config
    default applies). A flag of another method, or one that needs an option left off (``--lora-r``
    without ``--lora``), is a one-line :class:`TrainError`."""
    every = option_fields()
    own = option_fields(method)
    given = {name: getattr(args, name) for name in every if getattr(args, name, None) is not None}
    foreign = [name for name in given if name not in own]
    if foreign:
        def methods_of(name: str) -> list[str]:
            return [m for m in CONFIG_CLASSES if name in option_fields(m)]

        same = [n for n in foreign if methods_of(n) == methods_of(foreign[0])]
        raise TrainError(f"{', '.join(flag_name(n) for n in same)} only apply to --method "
                         f"{', '.join(methods_of(foreign[0]))}")
    for requirement in dict.fromkeys(own[n].metadata["requires"] for n in given if own[n].metadata.get("requires")):
        if not given.get(requirement, own[requirement].default):
            needing = [flag_name(n) for n in given if own[n].metadata.get("requires") == requirement]
            raise TrainError(f"{', '.join(needing)} only apply with {flag_name(requirement)}")
    for name, value in list(given.items()):
        if field_kind(own[name])[0] == "names":
            given[name] = _names(value, own[name].default, report=name == "report_to")
    return given


def fields_from_args(args: argparse.Namespace, config_class: type) -> dict[str, Any]:
    """The fields of ``config_class`` the user set on the command line (unset flags are left out,
    so the config's defaults apply); a list-of-names flag becomes a list."""
    given = {}
    for f in dataclasses.fields(config_class):
        value = getattr(args, f.name, None)
        if value is None:
            continue
        given[f.name] = parse_list(value) if field_kind(f)[0] == "names" and isinstance(value, str) else value
    return given


def _names(text: str, default: Any, *, report: bool) -> str | list[str]:
    """A comma-separated flag value as a list of names; the default's own name stays a string."""
    if report:
        return report_to_names(text) or "none"
    names = parse_list(text)
    return default if names == [default] else names


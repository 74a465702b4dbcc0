"""The audit's options are declared once (AuditConfig, CalibrationConfig): the `alignscope audit`
flags, their defaults and the library's defaults all agree with the dataclass fields."""
from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import pandas as pd
import pytest

from alignscope.audit import AuditConfig, AuditError, CalibrationConfig, audit, audit_option_defaults, audit_option_fields
from alignscope.cli.audit import audit_configs_from_args
from alignscope.cli.parser import build_parser
from alignscope.options import field_kind, flag_name


def _audit_parser() -> argparse.ArgumentParser:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices["audit"]


def _parse(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["audit", "demo:40", "--out", "a.parquet", *flags])


def test_every_option_has_a_flag_with_its_help_bounds_and_default():
    actions = {opt: a for a in _audit_parser()._actions for opt in a.option_strings}
    fields = audit_option_fields()
    assert {"encoder", "folds", "seed", "lexical", "calibrate", "planted_rate", "repeats", "target_precision",
            "fix_threshold"} <= set(fields)
    for name, f in fields.items():
        action = actions.get(flag_name(name))
        assert action is not None, f"no flag for {name}"
        assert action.dest == name and action.default is None  # unset = the dataclass default
        assert f.metadata["help"] in action.help.replace("%%", "%"), name
        assert "default " in action.help, name
        if "choices" in f.metadata:
            assert list(action.choices) == list(f.metadata["choices"]), name
    assert "(an integer in [2, 50]; default 5)" in actions["--folds"].help
    assert "(in (0, 0.25]; default 0.05)" in actions["--planted-rate"].help
    assert "[with --calibrate]" in actions["--repeats"].help


def test_no_flags_give_the_dataclass_defaults_and_the_library_uses_them():
    config, calibration = audit_configs_from_args(_parse())
    assert config == AuditConfig() and calibration == CalibrationConfig()
    defaults = audit_option_defaults()
    assert {**dataclasses.asdict(config), **dataclasses.asdict(calibration)} == defaults
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"prompt": [f"q{i}" for i in range(30)], "chosen": [f"a {i}" for i in range(30)],
                          "rejected": [f"b {i} more" for i in range(30)]})
    table = audit(frame, rng.normal(size=(60, 8)))
    recorded = table.attrs["alignscope_audit"]
    assert {k: recorded[k] for k in audit_option_fields(AuditConfig) if k != "encoder"} == \
        {k: v for k, v in dataclasses.asdict(AuditConfig()).items() if k != "encoder"}


def _other_value(f: dataclasses.Field):
    kind, _ = field_kind(f)
    meta, default = f.metadata, f.default
    if "choices" in meta:
        value = next(c for c in meta["choices"] if c != default)
        return value, value
    if kind == "int":
        value = (default or meta.get("min", 0)) + 1
        return str(value), value
    if kind == "float":
        low, high = meta.get("min", 0.0), meta.get("max")
        value = (low + high) / 2 if high is not None else default + 0.25
        value = value if value != default else (value + high) / 2
        return repr(value), value
    return {"encoder": ("lsa", "lsa"), "second_encoder": ("static", "static")}[f.name]


@pytest.mark.parametrize("name", sorted(audit_option_fields()))
def test_each_flag_reaches_its_option(name):
    f = audit_option_fields()[name]
    kind, _ = field_kind(f)
    if kind == "bool":
        flags, expected = [flag_name(name) if not f.default else "--no-" + name.replace("_", "-")], not f.default
    else:
        text, expected = _other_value(f)
        flags = [flag_name(name), text]
    if f.metadata.get("requires"):
        flags.append(flag_name(f.metadata["requires"]))
    config, calibration = audit_configs_from_args(_parse(*flags))
    owner = config if name in audit_option_fields(AuditConfig) else calibration
    assert getattr(owner, name) == expected != f.default


def test_bad_values_and_missing_switches_are_one_line_errors():
    with pytest.raises(AuditError, match="--target-precision only applies with --calibrate"):
        audit_configs_from_args(_parse("--target-precision", "0.9"))
    with pytest.raises(AuditError, match="folds must be an integer in"):
        audit_configs_from_args(_parse("--folds", "1"))
    with pytest.raises(AuditError, match="fix_threshold must be in"):
        audit_configs_from_args(_parse("--calibrate", "--fix-threshold", "0.3"))
    with pytest.raises(AuditError, match="unknown audit option"):
        audit(pd.DataFrame({"prompt": ["a"], "chosen": ["b"], "rejected": ["c"]}), np.zeros((2, 4)), folds_=3)

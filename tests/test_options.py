"""Training options are declared once (the config dataclasses' fields and metadata): the CLI's
flags, the Train page's widget defaults and sweeps' training configs all agree with them."""
from __future__ import annotations

import argparse
import dataclasses
import importlib.util

import pytest

from alignscope.cli.parser import build_parser
from alignscope.cli.train import train_fields
from alignscope.cli.common import UsageError
from alignscope.options import field_kind, flag_name
from alignscope.train.config import (CONFIG_CLASSES, METHODS, TrainConfig, TrainError, option_defaults, option_fields,
                                     train_config)
from conftest import ROOT


def _train_parser() -> argparse.ArgumentParser:
    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return commands.choices["train"]


def _parse(*flags: str) -> argparse.Namespace:
    return build_parser().parse_args(["train", "demo:40", "--out", "run", *flags])


def test_every_config_field_has_a_flag_with_help_and_its_default():
    actions = {opt: a for a in _train_parser()._actions for opt in a.option_strings}
    fields = option_fields()
    assert len(fields) >= 49 and {"sams_temperature", "sams_pooling", "sams_replay_max_mb"} <= set(fields)
    for name, f in fields.items():
        action = actions.get(flag_name(name))
        assert action is not None, f"no flag for {name}"
        assert action.dest == name and action.default is None  # unset = the config's default
        assert f.metadata.get("help") and f.metadata["help"] in action.help.replace("%%", "%"), name
        assert "default " in action.help, name
        if "choices" in f.metadata:
            assert list(action.choices) == list(f.metadata["choices"]), name
    assert "(an integer >= 8; default 128)" in actions["--max-length"].help
    assert "default 1e-04 for tiny" in actions["--lr"].help or "default 0.0001 for tiny" in actions["--lr"].help


@pytest.mark.parametrize("method", METHODS)
def test_no_flags_give_the_dataclass_defaults(method):
    args = _parse("--method", method)
    assert train_fields(args) == {}
    config = train_config(method, **train_fields(args))
    assert config == CONFIG_CLASSES[method]()
    assert dataclasses.asdict(config) == option_defaults(method)
    assert config.resolved_lr() == 1e-4  # method-independent lr default of the tiny model, through resolved_lr


def _other_value(f: dataclasses.Field):
    """A valid non-default value of a field, as a CLI string and as the config value."""
    kind, _ = field_kind(f)
    meta, default = f.metadata, f.default
    if "choices" in meta:
        value = next(c for c in meta["choices"] if c != default)
        return value, value
    if kind == "int":
        value = (default or meta.get("min", 0)) + 2
        return str(value), value
    if kind == "float":
        low, high = meta.get("min", 0.0), meta.get("max")
        value = (low + high) / 2 if high is not None else (default or low or 0.0) + 0.25
        value = value if value != default else value / 2
        return repr(value), value
    if kind == "floats":
        return "0.5,1", [0.5, 1.0]
    if f.name == "report_to":
        installed = [t for t in ("tensorboard", "mlflow", "wandb", "trackio") if importlib.util.find_spec(t)]
        return (installed[0], [installed[0]]) if installed else (None, None)
    if kind == "names":
        return "q_proj,v_proj", ["q_proj", "v_proj"]
    if f.name == "device":
        return "cpu", "cpu"
    if f.name == "model":
        return "smollm2-135m", "smollm2-135m"
    if f.name == "loss_type":
        return "hinge", "hinge"
    raise AssertionError(f"no test value for {f.name}")  # a new kind of field: teach the test


@pytest.mark.parametrize("name", sorted(option_fields()))
def test_each_flag_reaches_its_config_field(name):
    f = option_fields()[name]
    method = next(m for m in ("dpo", "kto", "dpo-sams") if name in option_fields(m))
    if name == "loss_type":
        method = "dpo"  # dpo-sams accepts the sigmoid loss only
    kind, _ = field_kind(f)
    if kind == "bool":
        flags, expected = [flag_name(name) if not f.default else "--no-" + name.replace("_", "-")], not f.default
    else:
        text, expected = _other_value(f)
        if text is None:
            pytest.skip("no experiment tracker installed")
        flags = [flag_name(name), text]
    if f.metadata.get("requires"):
        flags.append(flag_name(f.metadata["requires"]))
    config = train_config(method, **train_fields(_parse("--method", method, *flags)))
    assert getattr(config, name) == expected != f.default


def test_flags_of_another_method_or_without_their_switch_are_refused():
    with pytest.raises(UsageError, match="--sams-temperature only apply to --method dpo-sams"):
        train_fields(_parse("--method", "dpo", "--sams-temperature", "2"))
    with pytest.raises(UsageError, match="--label-smoothing only apply to --method dpo, dpo-sams"):
        train_fields(_parse("--method", "kto", "--label-smoothing", "0.1"))
    with pytest.raises(UsageError, match="--lora-dropout only apply with --lora"):
        train_fields(_parse("--lora-dropout", "0.1"))
    with pytest.raises(UsageError, match="invalid choice"):  # argparse's own choices check
        _parse("--method", "dpo-sams", "--sams-pooling", "max")
    assert train_fields(_parse("--no-lora")) == {"lora": False}


def test_the_sams_options_are_the_scheduler_config_declared_once():
    """Every field of the torch-free SamsConfig (but the seed: the run's own) is the dpo-sams option
    sams_<name>, with the same default and metadata; the config builds the scheduler's config."""
    from alignscope.train.sams_config import SamsConfig

    scheduler = {f"sams_{f.name}": f for f in dataclasses.fields(SamsConfig) if f.name != "seed"}
    options = {name: f for name, f in option_fields("dpo-sams").items() if name.startswith("sams_")}
    assert list(options) == list(scheduler) and len(options) == 17
    for name, f in options.items():
        assert (f.default, dict(f.metadata), f.type) == (scheduler[name].default, dict(scheduler[name].metadata),
                                                         scheduler[name].type), name
    config = train_config("dpo-sams", sams_ratio=0.25, sams_context="diff", seed=7)
    assert config.sams_config() == SamsConfig(ratio=0.25, context="diff", seed=7)


def test_sweep_points_train_with_the_config_defaults():
    from alignscope.scaling.sweep import SweepConfig, SweepError

    sweep = SweepConfig(evaluator="kto")
    assert (sweep.batch_size, sweep.max_length) == (TrainConfig.batch_size, TrainConfig.max_length)
    point = sweep.point_train_config(3)
    assert point == train_config("kto", model="tiny", max_steps=20, eval_max_pairs=200, seed=3)
    checkpoints = SweepConfig(evaluator="dpo", mode="checkpoints", max_steps=None)
    assert checkpoints.point_train_config(0, **checkpoints.mode_fields()).eval_checkpoints == [0.1, 0.25, 0.5, 0.75, 1.0]
    with pytest.raises(SweepError, match="max_length"):  # a training option that cannot work: refused up front
        SweepConfig(evaluator="dpo", max_length=4).validate()
    with pytest.raises(SweepError, match="max_length must be an integer >= 8"):  # its declared bounds hold for every evaluator
        SweepConfig(evaluator="probe", max_length=4).validate()


def test_submit_training_checks_before_any_job(tmp_path):
    from alignscope.data.preferences import load_preferences
    from alignscope.jobs import JobStore
    from alignscope.train.submit import submit_training, train_job_config

    data, store = load_preferences("demo:40"), JobStore()
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    for kwargs, message in [({"out": tmp_path / "file"}, "is a file"), ({"out": tmp_path / "full"}, "not empty"),
                            ({"selection": tmp_path / "none.parquet"}, "does not exist")]:
        with pytest.raises(ValueError, match=message):
            submit_training(data, train_config("dpo"), store=store, **kwargs)
    with pytest.raises(TrainError, match="training config"):
        submit_training(data, {"method": "dpo"}, store=store)
    with pytest.raises(ValueError, match="gpt-17"):
        submit_training(data, train_config("dpo", model="gpt-17"), store=store)
    assert store.list_jobs() == []
    recorded = train_job_config(data, train_config("kto", seed=4))
    assert recorded["data"]["fingerprint"] == data.fingerprint and recorded["selection"] is None
    assert {k: v for k, v in recorded.items() if k not in ("data", "selection")} == train_config("kto", seed=4).to_dict()


def test_the_train_page_widgets_start_at_the_config_defaults(monkeypatch, tmp_path):
    """Read the page's widgets (AppTest, no browser), then start a run with none of them touched: the
    job records exactly the config `alignscope train DATA --out X` builds with no flags."""
    from streamlit.testing.v1 import AppTest

    from alignscope.data.preferences import load_preferences
    from alignscope.jobs import JobStore
    from alignscope.train.submit import train_job_config

    monkeypatch.setenv("ALIGNSCOPE_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("ALIGNSCOPE_INITIAL_DATA", "demo:120")
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120).run()
    at.switch_page("views/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    defaults = option_defaults()
    numbers = {"train_epochs": "epochs", "train_batch": "batch_size", "train_beta": "beta",
               "train_max_length": "max_length", "train_max_steps": "max_steps", "train_lr": "lr",
               "train_test_fraction": "test_fraction", "train_seed": "seed", "train_eval_max": "eval_max_pairs",
               "train_label_noise": "label_noise", "train_lora_r": "lora_r", "train_lora_alpha": "lora_alpha",
               "train_lora_dropout": "lora_dropout"}
    for key, name in numbers.items():
        assert at.number_input(key=key).value == (defaults[name] or 0), (key, name)  # 0 shows "unset"
    assert at.slider(key="train_sams_ratio").value == defaults["sams_ratio"]
    for name in ("sams_selection", "sams_context", "sams_reward"):
        box = at.selectbox(key=f"train_{name}")
        assert box.value == defaults[name] and list(box.options) == list(option_fields()[name].metadata["choices"])
    assert at.selectbox(key="train_model").value == defaults["model"]
    assert at.checkbox(key="train_lora").value == defaults["lora"]
    assert at.text_input(key="train_lora_targets").value == defaults["lora_target_modules"]
    assert at.multiselect(key="train_report_to").value == []  # report_to "none"
    assert at.radio(key="train_method").value == _parse().method

    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    store = JobStore()
    job = store.list_jobs(kind="train")[0]
    store.cancel(job.id)
    cli_config = train_config(_parse().method, **train_fields(_parse()))
    assert job.config == train_job_config(load_preferences("demo:120"), cli_config)


def test_the_sweep_flags_default_to_the_sweep_config():
    """`alignscope sweep DATA --out X` with no other flag measures exactly SweepConfig()'s defaults."""
    from alignscope.cli.scaling import sweep_config
    from alignscope.scaling.sweep import SweepConfig

    assert sweep_config(build_parser().parse_args(["sweep", "demo:120", "--out", "x"])) == SweepConfig()
    changed = sweep_config(build_parser().parse_args(["sweep", "demo:120", "--out", "x", "--fractions", "0.1,0.5,1",
                                                      "--seeds", "4", "--max-steps", "7"]))
    assert (changed.fractions, changed.seeds, changed.max_steps) == ([0.1, 0.5, 1.0], [4], 7)


def test_every_sweep_option_is_a_flag_with_its_declared_help_and_no_default_of_its_own():
    """SweepConfig declares each sweep option once; `alignscope sweep` generates one flag per field
    whose help is the declared help, and leaves the default to the config (unset flag = None)."""
    from alignscope.options import option_help
    from alignscope.scaling.sweep import SweepConfig

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    actions = {a.dest: a for a in commands.choices["sweep"]._actions}
    for f in dataclasses.fields(SweepConfig):
        action = actions[f.name]
        assert action.option_strings == [flag_name(f.name)] and action.default is None
        assert f.metadata["help"].replace("%", "%%") in action.help
        assert f.metadata["help"] in option_help(SweepConfig, f.name)  # the page's tooltip text
        if "choices" in f.metadata:
            assert list(action.choices) == list(f.metadata["choices"])

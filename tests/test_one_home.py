"""One home for each decision (issue 26): JSON conversion, word counts, device resolution, integer
checks, comma lists and run-file names are each made in one function, used everywhere; the merged
behaviour is checked here and the source is searched for twins."""
from __future__ import annotations

import json
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from alignscope import run_files
from alignscope.data.preferences import length_table, load_preferences
from alignscope.evaluate.metrics import pair_word_lengths, word_count
from alignscope.files import jsonable, write_json
from alignscope.models import ModelError, default_device, resolve_device
from alignscope.options import is_int, parse_list
from alignscope.select.selection import Selection
from alignscope.train.config import report_to_names
from conftest import ROOT


def _sources(*folders: str):
    for folder in folders:
        yield from (ROOT / folder).rglob("*.py")


def test_jsonable_gives_strict_json_with_nan_as_null(tmp_path):
    value = {"nan": float("nan"), "inf": -math.inf, "np_nan": np.float32("nan"), "int": np.int64(7),
             "float": np.float64(0.25), "bool": np.bool_(True), "array": np.arange(3), "tuple": (1, "a"),
             "path": Path("/x/y"), 3: {"nested": [np.nan, 1.5]}, "series": pd.Series([1, 2])}
    out = jsonable(value)
    assert out == {"nan": None, "inf": None, "np_nan": None, "int": 7, "float": 0.25, "bool": True,
                   "array": [0, 1, 2], "tuple": [1, "a"], "path": "/x/y", "3": {"nested": [None, 1.5]},
                   "series": [1, 2]}
    assert type(out["int"]) is int and type(out["bool"]) is bool
    text = json.dumps(out, allow_nan=False)  # strict JSON: no NaN token anywhere
    write_json(tmp_path / "x.json", out)
    assert json.loads((tmp_path / "x.json").read_text()) == json.loads(text)


def test_a_selection_stores_its_config_through_the_same_conversion(tmp_path):
    table = pd.DataFrame({"index": [0, 1, 2], "selected": [True, False, False]})
    sel = Selection.from_frame(table, config={"method": "lasso", "k": np.int64(1), "gap": float("nan")},
                               fingerprint="f")
    back = Selection.read(sel.write(tmp_path / "s.parquet"))
    assert back.config["k"] == 1 and back.config["gap"] is None  # NaN is null, not the string "nan"


def test_word_counts_read_message_contents_and_count_missing_as_zero():
    messages = [{"role": "user", "content": "two words"}, {"role": "assistant", "content": "three more words"}]
    assert word_count(messages) == 5 and word_count("a  b\nc") == 3
    assert word_count(None) == 0 and word_count(float("nan")) == 0 and word_count(np.array(messages)) == 5
    frame = pd.DataFrame({"prompt": [[{"role": "user", "content": "hi there"}], [{"role": "user", "content": "p q"}]],
                          "chosen": [[{"role": "assistant", "content": "one two three"}],
                                     [{"role": "assistant", "content": "x"}]],
                          "rejected": [[{"role": "assistant", "content": "four"}],
                                       [{"role": "assistant", "content": "y z"}]]})
    data = load_preferences(frame)
    table = length_table(data)
    assert table.to_dict("list") == {"prompt": [2, 2], "chosen": [3, 1], "rejected": [1, 2]}  # no role labels
    chosen, rejected = pair_word_lengths(data)
    assert list(chosen) == table["chosen"].tolist() and list(rejected) == table["rejected"].tolist()


def test_device_resolution():
    assert resolve_device(None) == resolve_device("auto") == default_device()
    assert resolve_device("cpu") == "cpu"
    import torch

    if torch.cuda.is_available():
        assert resolve_device("cuda:0") == "cuda:0"
    else:
        with pytest.raises(ModelError, match="no CUDA GPU is visible"):
            resolve_device("cuda")


def test_integers_and_lists():
    assert is_int(3) and is_int(np.int32(3)) and not is_int(True) and not is_int(3.0) and not is_int("3")
    assert parse_list(" a, b ,,c ") == ["a", "b", "c"] and parse_list("0.1,1", float) == [0.1, 1.0]
    with pytest.raises(ValueError, match="comma-separated list of integers"):
        parse_list("1,x", int)
    assert report_to_names(" TensorBoard , wandb") == ["tensorboard", "wandb"] and report_to_names("none") == []


def test_no_twin_of_the_decisions_is_left():
    """The functions above have no second definition in core/ or app/, their idioms are not spelled
    again by hand (an integer check, a comma split, a word count), and no module joins a run file's
    name to a folder instead of using alignscope.run_files."""
    pending: set[str] = set()
    homes = {"core/files.py": {"jsonable"}, "core/evaluate/metrics.py": {"word_count"},
             "core/models.py": {"default_device"}, "core/options.py": {"is_int", "parse_list", "int_check", "split"}}
    twins = {
        "jsonable": re.compile(r"^\s*def _?jsonable\(", re.M),
        "word_count": re.compile(r"^\s*def _?word_count\(|len\(\w+\.split\(\)\)|\.str\.split\(\)\.str\.len\(\)", re.M),
        "default_device": re.compile(r"^\s*def _?default_device\(|\"cuda\" if torch\.cuda\.is_available\(\)", re.M),
        "is_int": re.compile(r"^\s*def _?is_int\(", re.M),
        "int_check": re.compile(r"isinstance\(\w+, bool\) or not isinstance\(\w+, \(?int"),
        "parse_list": re.compile(r"^\s*def _?parse_list\(", re.M),
        "split": re.compile(r"\.split\(\",\"\)"),
    }
    names = "|".join(re.escape(getattr(run_files, n)) for n in run_files.__all__ if n != "TRAINING_ARTEFACTS")
    literal = re.compile(rf"/ \"({names})\"")  # a run-file name joined to a folder by hand
    found = []
    for path in _sources("core", "app"):
        name = path.relative_to(ROOT).as_posix()
        if name in pending:
            continue
        text = path.read_text(encoding="utf-8")
        found += [f"{name}: {what}" for what, pattern in twins.items()
                  if what not in homes.get(name, ()) and pattern.search(text)]
        # model_dir / "config.json" is a Hugging Face model's config, not a run file
        found += [f"{name}: {m}" for m in literal.findall(text)
                  if not (name in ("core/models.py", "core/evaluate/evaluators.py", "core/embed/encoders.py")
                          and m == "config.json")]
    assert found == []

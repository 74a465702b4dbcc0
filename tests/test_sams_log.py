"""Reading a SamS log without torch: the aggregates the Scheduler page draws, on a real
``sams.jsonl`` written by the library's own JSONL writer, and the page's imports left torch-free."""
from __future__ import annotations

import ast
import json
import math
import re
import subprocess
import sys

import pandas as pd
import pytest

from alignscope.files import append_jsonl
from alignscope.run_files import SAMS_LOG
from alignscope.train.sams_config import SamsConfig, SamsError
from alignscope.train.sams_log import (flip_groups, pair_words, read_sams_log, selection_rates, step_decisions,
                                       step_summary, words_selected_vs_skipped)
from conftest import ROOT

STEPS = [  # step 1 is warm-up (every pair selected); rewards arrive one step late
    {"step": 1, "batch": [0, 1, 2, 3], "scores": [0.1, 0.2, 0.3, 0.4], "selected": [0, 1, 2, 3], "loss": 0.7,
     "batch_reward": None, "scheduler_loss": None, "warmup": True},
    {"step": 2, "batch": [4, 1, 2, 0], "scores": [0.9, 0.1, 0.8, 0.2], "selected": [4, 2], "loss": 0.6,
     "rewards": [0.5, -0.5, 0.4, -0.4], "batch_reward": 0.1, "scheduler_loss": 0.03, "warmup": False},
    {"step": 3, "batch": [3, 4, 0, 1], "scores": [0.3, 0.7, 0.6, 0.0], "selected": [4, 0], "loss": 0.5,
     "batch_reward": -0.2, "scheduler_loss": 0.02, "warmup": False},
]


@pytest.fixture
def run_dir(tmp_path):
    for record in STEPS:
        append_jsonl(tmp_path / SAMS_LOG, record)
    return tmp_path


def test_the_log_reads_as_one_row_per_step_and_pair(run_dir):
    log = read_sams_log(run_dir)
    assert len(log) == 12 and log.equals(read_sams_log(run_dir / SAMS_LOG))
    assert log["selected"].sum() == 8 and log["warmup"].sum() == 4
    assert log["reward"].isna().sum() == 8 and math.isclose(log.loc[log["step"] == 2, "reward"].sum(), 0.0, abs_tol=1e-12)
    assert read_sams_log(run_dir / "missing").empty


def test_step_aggregates_and_decisions(run_dir):
    log = read_sams_log(run_dir)
    steps = step_summary(log)
    assert list(steps.index) == [1, 2, 3] and list(steps["batch"]) == [4, 4, 4]
    assert list(steps["selected"]) == [4, 2, 2] and list(steps["loss"]) == [0.7, 0.6, 0.5]
    decisions = step_decisions(log).set_index("step")
    # Pairs are numbered from 1 on the pages, in batch order.
    assert decisions.loc[2, "selected pairs"] == "5, 3" and decisions.loc[2, "skipped pairs"] == "2, 1"
    assert decisions.loc[1, "skipped pairs"] == "" and decisions.loc[3, "batch reward"] == -0.2


def test_rates_leave_warmup_out_and_group_by_flips(run_dir):
    log = read_sams_log(run_dir)
    per_pair = selection_rates(log).set_index("group")
    assert per_pair.loc["4", "seen"] == 2 and per_pair.loc["4", "rate"] == 1.0 and per_pair.loc["1", "rate"] == 0.0
    frame = pd.DataFrame({"is_flipped": [False, True, False, True, False]})
    flips, source = flip_groups(run_dir, frame)
    assert "is_flipped" in source and list(flips) == ["clean", "flipped", "clean", "flipped", "clean"]
    rates = selection_rates(log, flips).set_index("group")
    assert (rates.loc["flipped", "seen"], rates.loc["flipped", "selected"]) == (3, 0)
    assert flip_groups(run_dir) == (None, "")
    # The run's own label noise wins over the data's column.
    pd.DataFrame({"index": [0, 1, 2], "flipped": [True, False, False]}).to_parquet(run_dir / "selection.parquet")
    flips, source = flip_groups(run_dir, frame)
    assert source == "label noise injected by this run" and list(flips) == ["flipped", "clean", "clean"]


def test_pair_words_count_message_contents_not_their_repr(run_dir):
    frame = pd.DataFrame({
        "chosen": ["one two three", [{"role": "assistant", "content": "a b"}], "x", "w w w w", "q"],
        "rejected": ["one", [{"role": "assistant", "content": "c d e f"}], "x y z", "", "q q q"]})
    words = pair_words(frame)
    assert list(words) == [2.0, 3.0, 2.0, 2.0, 2.0]
    lengths, selected, picked, skipped = words_selected_vs_skipped(read_sams_log(run_dir), words)
    assert len(lengths) == 8 and selected.sum() == 4  # warm-up rows left out
    assert picked == pytest.approx((2 + 2 + 2 + 2) / 4) and skipped == pytest.approx((3 + 2 + 2 + 3) / 4)


def test_sams_config_is_validated_from_its_declarations():
    SamsConfig().validate()
    for fields, needle in [({"ratio": 0}, "ratio must be in (0, 1]"), ({"width": 0}, "width must be an integer >= 1"),
                           ({"selection": "best"}, "selection must be one of topk"),
                           ({"standardize": "yes"}, "standardize must be true or false"),
                           ({"seed": 1.5}, "seed must be an integer")]:
        with pytest.raises(SamsError, match="^" + re.escape(f"sams config: {needle}")):
            SamsConfig(**fields).validate()


def test_the_scheduler_page_imports_no_torch():
    """The page's own imports (its library functions, the charts, the app state) in a fresh
    interpreter: torch stays out, so a first visit does not pay seconds for it."""
    tree = ast.parse((ROOT / "app" / "views" / "scheduler.py").read_text(encoding="utf-8"))
    modules = sorted({node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.module
                      and node.module.startswith("alignscope")} |
                     {f"{node.module}.{alias.name}" for node in tree.body if isinstance(node, ast.ImportFrom)
                      and node.module == "alignscope.app" for alias in node.names})
    assert "alignscope.train.sams_log" in modules
    script = ("import importlib, json, sys\n"
              f"for name in {modules!r}:\n"
              "    importlib.import_module(name)\n"
              "print(json.dumps(sorted(m for m in ('torch', 'transformers', 'trl') if m in sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []

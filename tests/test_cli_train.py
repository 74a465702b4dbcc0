"""`alignscope train | eval | eval-probe` for real: TRL on the tiny model, a real job, real files."""
from __future__ import annotations

import json

from conftest import run_cli


def test_train_then_eval_reports_the_same_held_out_accuracy(tmp_path):
    run = tmp_path / "run"
    trained = run_cli("train", "demo:120", "--method", "dpo", "--model", "tiny", "--max-steps", "2",
                      "--max-length", "32", "--eval-max-pairs", "8", "--out", run, "--json", timeout=900)
    assert trained.returncode == 0, trained.stderr
    result = json.loads(trained.stdout)
    assert 0 <= result["accuracy"] <= 1 and result["n_pairs"] == 8
    low, high = result["accuracy_ci95"]
    assert low <= result["accuracy"] <= high
    for name in ("config.json", "status.json", "metrics.jsonl", "eval.json", "log.txt"):
        assert (run / name).exists(), name
    config = json.loads((run / "config.json").read_text())
    assert config["split"]["seed"] == 0 and config["data"]["fingerprint"]
    evaluated = run_cli("eval", run, "--json")
    assert evaluated.returncode == 0 and json.loads(evaluated.stdout)["accuracy"] == result["accuracy"]
    listed = json.loads(run_cli("jobs", "list", "--json").stdout)
    assert listed[0]["kind"] == "train" and listed[0]["status"] == "succeeded"


def test_train_bad_input_exits_2_before_any_job(tmp_path):
    run = tmp_path / "run"
    missing = run_cli("train", "demo:120", "--selection", tmp_path / "none.parquet", "--out", run)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    bad_value = run_cli("train", "demo:120", "--beta", "-1", "--out", run)
    assert bad_value.returncode == 2 and len(bad_value.stderr.strip().splitlines()) == 1
    assert not run.exists()
    assert json.loads(run_cli("jobs", "list", "--json").stdout) == []
    not_a_run = run_cli("eval", tmp_path)
    assert not_a_run.returncode == 2 and "not a run directory" in not_a_run.stderr


def test_eval_probe_is_a_labelled_proxy(tmp_path):
    result = run_cli("eval-probe", "demo:150", "--json", timeout=600)
    assert result.returncode == 0, result.stderr
    probe = json.loads(result.stdout)
    assert probe["accuracy"] > 0.6 and "proxy" in json.dumps(probe).lower()

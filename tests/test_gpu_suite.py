"""benchmarks.gpu_suite: the dry run goes through every section on the CPU and writes each one's
status; the budget and a failing section are recorded, never fatal. benchmarks.gpu_data: the
extract and the bundles a lent GPU machine gets."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys

import pytest

from conftest import ROOT, STANDARD_ROWS, write_jsonl

SECTIONS = ("environment", "embed", "isa", "sams_overhead", "label_noise", "lm_margin", "remove_vs_fix", "scaling")


def _suite(*args, timeout: float = 600):
    return subprocess.run([sys.executable, "-m", "benchmarks.gpu_suite", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


@pytest.mark.slow
def test_dry_run_goes_through_every_section(tmp_path):
    out = tmp_path / "suite.json"
    done = _suite("--dry-run", "--out", out)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["mode"] == "dry-run" and result["benchmark"] == "gpu_suite"
    assert list(result["sections"]) == list(SECTIONS)
    failed = {name: s.get("error") or s.get("reason") for name, s in result["sections"].items() if s["status"] != "ok"}
    assert not failed, failed
    assert result["complete"] is True and result["machine"]["cpu_count"] >= 1
    assert result["data"]["kind"] in ("shared", "extract", "demo")
    figures = {name: s["figures"] for name, s in result["sections"].items()}
    assert all(s["wall_s"] >= 0 for s in result["sections"].values())
    assert figures["environment"]["torch"] and figures["environment"]["device"] == "cpu"
    minilm = figures["embed"]["minilm"]
    assert minilm["dim"] == 384 and minilm["finite"] and minilm["texts_per_s"] > 0
    assert figures["embed"]["lm_last_token"]["encoder"] == "lm-last-token:tiny"
    assert "static" in figures["embed"]  # measured, or skipped with the reason
    for run in figures["isa"]["runs"]:
        compare = run["sample"]["cpu_vs_sklearn"]
        assert 0 <= compare["overlap"] <= 1 and compare["speedup"] > 0
    overhead = figures["sams_overhead"]
    assert overhead["time_ratio_sams_over_dpo"] > 0 and overhead["runs"]["dpo"][0]["steps"] == 2
    noise = figures["label_noise"]
    assert {r["method"] for r in noise["runs"]} == {"dpo", "dpo-sams", "dpo-random50"}
    for run in noise["runs"]:
        low, high = run["accuracy_ci95"]
        assert low <= run["accuracy"] <= high and run["n_pairs"] == 8
    assert set(noise["summary"]) >= {"dpo", "dpo-sams", "dpo-random50", "dpo-sams_minus_dpo"}
    lm = figures["lm_margin"]
    assert lm["pairs_per_s"] > 0 and 0 <= lm["zero_shot_reward"]["accuracy"] <= 1
    assert set(lm["dpo"]) == {"lm-margin-easy-25pct", "random-25pct"} and "dpo_accuracy_lm_margin_minus_random" in lm
    fix = figures["remove_vs_fix"]
    assert fix["n_flipped"] == round(0.2 * fix["n_training_pairs"]) and 0 <= fix["flip_auc"] <= 1
    assert set(fix["dpo"]) == {"noisy", "remove", "fix", "original_labels"}
    scaling = figures["scaling"]
    assert len(scaling["points"]) >= 3 and scaling["jobs"][0]["status"] == "succeeded"
    assert "r" in scaling["fit"] or "error" in scaling["fit"]


def test_budget_skips_sections_with_a_reason_and_keeps_the_file(tmp_path):
    out = tmp_path / "suite.json"
    done = _suite("--dry-run", "--budget-s", "1", "--out", out, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert list(result["sections"]) == list(SECTIONS)
    for name, section in result["sections"].items():
        assert section["status"] == "skipped" and "budget left" in section["reason"], (name, section)
    assert result["complete"] is False


def test_a_failing_section_is_one_line_and_the_suite_goes_on(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "hh_harmless_test.jsonl.gz").write_bytes(gzip.compress(b'{"chosen": "no rejected column"}\n'))
    out = tmp_path / "suite.json"
    done = _suite("--dry-run", "--data-dir", data, "--sections", "sams_overhead,environment", "--out", out, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(out.read_text())
    assert list(result["sections"]) == ["environment", "sams_overhead"]  # suite order, not argument order
    assert result["sections"]["environment"]["status"] == "ok"
    failed = result["sections"]["sams_overhead"]
    assert failed["status"] == "failed" and "\n" not in failed["error"] and "rejected" in failed["error"]
    assert result["data"] == {"dir": str(data), "kind": "given", "hh": str(data / "hh_harmless_test.jsonl.gz"),
                              "alpaca": None}
    bad = _suite("--sections", "nope", "--out", out, timeout=120)
    assert bad.returncode == 2 and "unknown section" in bad.stderr


def test_gpu_data_extract_and_bundles_round_trip(tmp_path):
    from benchmarks import gpu_data

    source = tmp_path / "shared"
    source.mkdir()
    hh = source / "hh_harmless_test.jsonl.gz"
    hh.write_bytes(gzip.compress(b'{"chosen": "\\n\\nHuman: hi\\n\\nAssistant: a", "rejected": "\\n\\nHuman: hi\\n\\nAssistant: b"}\n'))
    rows = STANDARD_ROWS + [dict(STANDARD_ROWS[0], rejected="3.")]  # chosen "4." again: stored once
    write_jsonl(source / "alpaca_eval_pairs.jsonl.gz", rows, gz=True)
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "fake-1.0-py3-none-any.whl").write_bytes(os.urandom(3000))
    target = tmp_path / "gpu_data"
    info = gpu_data.prepare(source, target, wheels_from=wheels, bundle_mib=0.002)
    assert (target / "hh_harmless_test.jsonl.gz").read_bytes() == hh.read_bytes()
    with gzip.open(target / "alpaca_eval_texts.jsonl.gz", "rt") as handle:
        texts = [json.loads(line) for line in handle]
    expected = {(r["prompt"], c) for r in rows for c in (r["chosen"], r["rejected"])}
    assert {(t["prompt"], t["completion"]) for t in texts} == expected and len(texts) == len(expected)
    assert info["n_bundles"] >= 2 and all(b["bytes"] <= 0.002 * 2**20 for b in info["bundles"])
    # The device side: join the bundles and unpack them somewhere else; same files, same bytes.
    device = tmp_path / "device"
    device.mkdir()
    for bundle in info["bundles"]:
        (device / bundle["name"]).mkdir()
        for part in (target / bundle["name"]).iterdir():
            (device / bundle["name"] / part.name).write_bytes(part.read_bytes())
    unpacked = gpu_data.unpack(device)
    assert (unpacked / "wheels" / "fake-1.0-py3-none-any.whl").read_bytes() == \
        (wheels / "fake-1.0-py3-none-any.whl").read_bytes()
    assert (unpacked / "alpaca_eval_texts.jsonl.gz").read_bytes() == (target / "alpaca_eval_texts.jsonl.gz").read_bytes()
    (device / info["bundles"][-1]["name"]).rename(device / "elsewhere")
    with pytest.raises(SystemExit, match="missing"):
        gpu_data.unpack(device)

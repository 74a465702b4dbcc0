"""Evaluation you can trust: every score beside the length rule, length-controlled and continuous
metrics, intervals that are honest about the sample, method-vs-random verdicts."""
from __future__ import annotations

import json

import numpy as np
import pytest

from alignscope.evaluate.metrics import LengthRule, pair_word_lengths, preference_metrics, success
from alignscope.scaling.fit import fit_points, read_points
from tests.conftest import run_cli, write_jsonl

ISA_TABLE_2 = "percent,score\n0,18.27\n10,78.73\n25,81.32\n50,81.60\n75,83.17\n100,82.71\n"


def _lengths(n: int, seed: int = 0, ties: int = 30):
    rng = np.random.default_rng(seed)
    chosen, rejected = rng.integers(1, 400, n), rng.integers(1, 400, n)
    rejected[:ties] = chosen[:ties]
    return chosen, rejected


@pytest.mark.parametrize("scorer", [lambda c, r: c - r, lambda c, r: r - c, lambda c, r: np.log(c) - np.log(r),
                                    lambda c, r: np.tanh((c - r) / 50.0) * 3])
def test_a_length_only_scorer_gets_length_controlled_accuracy_one_half(scorer):
    chosen, rejected = _lengths(5000)
    rule = LengthRule.fit(chosen, rejected)
    result = preference_metrics(scorer(chosen.astype(float), rejected.astype(float)), chosen, rejected, rule, n_boot=50)
    assert abs(result["length_controlled_accuracy"] - 0.5) < 1e-9
    assert result["length_groups"]["ties"] == int((chosen == rejected).sum()) >= 30


def test_a_content_scorer_is_seen_through_the_length_control():
    chosen, rejected = _lengths(4000, seed=1)
    rng = np.random.default_rng(2)
    truth = rng.random(4000) < 0.8              # the content says "chosen is better" on 80 % of pairs
    margin = np.where(truth, 1.0, -1.0) + 0.002 * (chosen - rejected)  # length nudges, never decides
    rule = LengthRule.fit(chosen, rejected)
    result = preference_metrics(margin, chosen, rejected, rule, n_boot=200)
    assert result["length_controlled_ci95"][0] > 0.7 and result["content_signal"]
    low, high = result["accuracy_ci95"]
    assert low < result["accuracy"] < high and high - low > 0


def test_length_baseline_is_the_length_rule_learned_on_training_pairs_only(tmp_path):
    """eval-probe's length_baseline, recomputed here from the texts: direction from the training pool
    (every pair not held out), accuracy on the held-out pairs, ties ½."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(200):
        short, long_ = "ok " * int(rng.integers(1, 5)), "this is a longer answer " * int(rng.integers(1, 6))
        chosen_long = rng.random() < 0.7
        rows.append({"prompt": f"question {i}?", "chosen": long_ if chosen_long else short,
                     "rejected": short if chosen_long else long_})
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    done = run_cli("eval-probe", path, "--json", timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    for key in ("accuracy", "accuracy_ci95", "log_loss", "log_loss_ci95", "length_baseline", "length_baseline_direction",
                "length_controlled_accuracy", "length_controlled_ci95", "beats_length_baseline", "n_heldout"):
        assert key in result, key
    from alignscope.data.preferences import load_preferences
    from alignscope.evaluate.evaluators import split_pairs

    data = load_preferences(path)
    train, test = split_pairs(len(data), 0.2, 0)
    c_train, r_train = pair_word_lengths(data, train)
    direction = 1 if (c_train > r_train).sum() >= (c_train < r_train).sum() else -1
    c_test, r_test = pair_word_lengths(data, test)
    expected = success(direction * (c_test - r_test)).mean()
    assert result["length_baseline"] == pytest.approx(expected, abs=1e-12)
    assert result["length_baseline_direction"] == ("longer" if direction > 0 else "shorter")
    assert result["n_heldout"] == len(test) == 40
    assert result["beats_length_baseline"] == (result["accuracy_ci95"][0] > result["length_baseline"])


def test_isa_table_2_gets_intervals_of_nonzero_width_and_a_baseline_verdict(tmp_path):
    csv = tmp_path / "isa_table2.csv"
    csv.write_text(ISA_TABLE_2)
    done = run_cli("scaling", "fit", csv, "--json")
    assert done.returncode == 0, done.stderr
    fit = json.loads(done.stdout)
    for key in ("r_ci95", "a_ci95", "b_ci95", "recommended_fraction_ci95"):
        low, high = fit[key]
        assert high - low > 0, key
    assert fit["interval_method"].startswith("residual bootstrap")
    high = json.loads(run_cli("scaling", "fit", csv, "--baseline", "90", "--json").stdout)
    assert high["beats_baseline"] is False and any("does not beat the baseline 90" in w for w in high["warnings"])
    low = json.loads(run_cli("scaling", "fit", csv, "--baseline", "10", "--json").stdout)
    assert low["beats_baseline"] is True
    text = run_cli("scaling", "fit", csv, "--baseline", "90")
    assert "No recommended size" in text.stdout and "does not beat the baseline 90.000" in text.stdout


def test_three_points_cannot_have_an_interval_and_say_so():
    points = read_points_from_text("fraction,score\n0.1,0.6\n0.5,0.7\n1.0,0.72\n")
    fit = fit_points(points)["all"]
    assert fit.r_ci95 is None and fit.interval_method == "none"
    assert any("noise cannot be estimated" in w for w in fit.warnings)


def read_points_from_text(text: str):
    import tempfile
    from pathlib import Path

    path = Path(tempfile.mkdtemp()) / "points.csv"
    path.write_text(text)
    return read_points(path)


def test_bad_scaling_values_get_one_line_and_exit_2(tmp_path):
    csv = tmp_path / "p.csv"
    csv.write_text(ISA_TABLE_2)
    bad_baseline = tmp_path / "bad.csv"
    bad_baseline.write_text("fraction,score,baseline\n0.1,0.5,0.6\n0.5,0.6,high\n1.0,0.7,0.6\n")
    for args, needle in [(["--baseline", "abc"], "'abc'"), (["--metric", "f1"], "'f1'"),
                         (["--metric", "log_loss"], "use --target gain")]:
        done = run_cli("scaling", "fit", csv, *args)
        assert done.returncode == 2 and needle in done.stderr and "Traceback" not in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1
    done = run_cli("scaling", "fit", bad_baseline)
    assert done.returncode == 2 and "'high'" in done.stderr and "baseline" in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv", "p.csv"]  # nothing written


def test_lower_is_better_metrics_fit_the_gain():
    x = np.repeat([0.05, 0.1, 0.25, 0.5, 1.0], 3)
    rng = np.random.default_rng(0)
    loss = 0.45 + 0.25 * np.exp(-6 * x) + rng.normal(0, 0.005, len(x))
    import pandas as pd

    fit = fit_points(pd.DataFrame({"fraction": x, "score": loss, "seed": np.tile([0, 1, 2], 5)}), target="gain",
                     higher_is_better=False, baseline=0.69)["all"]
    assert fit.r < fit.a and fit.beats_baseline is True and fit.recommended_fraction is not None
    assert fit.interval_method == "bootstrap over seeds (whole curves)"

"""The headline of a sweep, decided once (alignscope.scaling.recommend): ties said as ties and the size
read from the random curve, a clear winner named, method − random verdicts corrected for the number
of comparisons (Holm), the ranking in fit.json, and the same sentences from the CLI and the page.
Synthetic sweep directories with known skills (tests/synthetic_sweep.py): seconds, no job."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from alignscope.data.preferences import load_preferences
from alignscope.scaling.recommend import BETTER, UNRESOLVED, holm, percent_text, size_text
from alignscope.scaling.results import compare_with_random, fit_sweep, sweep_fits, verdict_lines
from conftest import ROOT
from synthetic_sweep import write_sweep
from tests.conftest import run_cli

MAIN = str(ROOT / "app" / "main.py")


def test_equal_methods_tie_and_the_size_comes_from_the_random_curve(tmp_path):
    sweep = write_sweep(tmp_path / "tie", {"isa": 0.8, "density": 0.8, "random": 0.8})
    summary = sweep_fits(sweep, n_boot=200)["summary"]
    headline = summary["recommendation"]
    assert headline["tie"] is True and headline["winner"] is None
    assert headline["lines"][0].startswith("These methods tie: ") and set(headline["tied"]) == {"isa", "density", "random"}
    assert headline["curve"] == "random"  # the simplest tied curve, not the highest plateau
    assert any("read from the random curve" in line for line in headline["lines"])
    # The size in pairs and as a share, with its interval, of the 2,400 training pairs.
    assert headline["n_pool"] == 2400 and summary["n_training_pairs"] == 2400
    if headline["fraction"] is not None:
        assert f"≈ {round(headline['fraction'] * 2400):,} [" in " ".join(headline["lines"])
    assert any("a proxy, not a trained model's" in line for line in headline["lines"])
    ranking = summary["ranking"]
    assert set(ranking["cannot_tell"]) == {"isa", "density"} and not ranking["beat"] and not ranking["lost"]
    assert "cannot be told apart from random at this sample size" in ranking["sentence"]


def test_a_clearly_better_method_is_named_and_beats_random(tmp_path):
    # Without the shared all-data points the curves can differ in their plateau.
    sweep = write_sweep(tmp_path / "winner", {"isa": 1.5, "random": 0.3}, fractions=[0.01, 0.02, 0.05, 0.1, 0.25, 0.5],
                        n_heldout=600)
    summary = fit_sweep(sweep, n_boot=200)
    headline = summary["recommendation"]
    assert headline["tie"] is False and headline["winner"] == "isa" and headline["curve"] == "isa"
    assert headline["lines"][0].startswith("isa has the highest plateau")
    ranking = summary["ranking"]
    assert ranking["beat"] == ["isa"] and ranking["tally"]["isa"]["better"] >= 4
    assert ranking["sentence"].startswith("After correcting for 6 comparisons (Holm): isa beat random (at ")
    for step in ranking["by_fraction"]:  # one method: rank 1 everywhere, with its interval
        assert [entry["rank"] for entry in step["methods"]] == [1] and step["methods"][0]["ci95"] is not None
    written = json.loads((sweep / "fit.json").read_text())
    assert written["ranking"]["sentence"] == ranking["sentence"] and written["recommendation"]["winner"] == "isa"


def _marginal_curves(n_fractions: int) -> pd.DataFrame:
    """isa − random over five seeds: about +0.025 ± 0.011 at the first fraction (p ≈ 0.03 alone),
    noise around 0 at the others."""
    rows = []
    diffs = [[0.05, -0.01, 0.04, 0.0, 0.045]] + [[0.01, -0.01, 0.0, 0.005, -0.005]] * (n_fractions - 1)
    for i, fraction in enumerate([0.01, 0.02, 0.05, 0.1, 0.25, 0.5][:n_fractions]):
        for seed, diff in enumerate(diffs[i]):
            rows.append({"method": "random", "fraction": fraction, "seed": seed, "score": 0.6})
            rows.append({"method": "isa", "fraction": fraction, "seed": seed, "score": 0.6 + diff})
    return pd.DataFrame(rows)


def test_holm_correction_turns_a_marginal_verdict_into_no_resolved_difference():
    alone = compare_with_random(_marginal_curves(1), "accuracy", None, n_boot=2000)["isa"][0]
    assert 0.001 < alone["p_value"] < 0.05 and alone["verdict"] == BETTER and alone["n_comparisons"] == 1
    many = compare_with_random(_marginal_curves(6), "accuracy", None, n_boot=2000)["isa"]
    first = many[0]
    assert first["p_value"] == pytest.approx(alone["p_value"])  # the same comparison …
    assert first["p_holm"] > 0.05 and first["verdict"] == UNRESOLVED  # … no longer resolved among six
    assert first["verdict_uncorrected"] in (BETTER, UNRESOLVED) and first["n_comparisons"] == 6
    line = verdict_lines({"isa": many}, "accuracy")[0]
    assert "better than random at 0 of 6 fractions" in line and "Holm-corrected over 6 comparisons" in line


def test_holm_matches_its_definition():
    rejected, adjusted = holm([0.01, 0.04, 0.03, 0.005])
    assert adjusted.tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert rejected.tolist() == [True, False, False, True]
    assert holm([])[0].size == 0


def test_sizes_are_shares_and_pairs():
    assert size_text(0.056, [0.018, 1.0], 2400) == "5.6 % [1.8 %, 100 %] ≈ 134 [43, 2,400] of 2,400 training pairs"
    assert size_text(0.25, None, None) == "25 % of the training pairs"
    assert [percent_text(f) for f in (0.005, 0.01, 0.0125, 0.145)] == ["0.5 %", "1 %", "1.25 %", "14.5 %"]


def test_the_cli_and_the_scaling_page_show_the_same_headline(tmp_path, isolated_home, monkeypatch):
    data = load_preferences("demo:120")
    sweep = write_sweep(isolated_home / "sweeps" / "20250101-000000", {"isa": 0.8, "kcenter": 0.8, "random": 0.8},
                        fingerprint=data.fingerprint, metric="length_controlled_accuracy", seeds=(0, 1))
    done = run_cli("scaling", "fit", sweep, "--n-boot", "200")
    assert done.returncode == 0, done.stderr
    expected = sweep_fits(sweep, n_boot=200)["summary"]
    lines = expected["recommendation"]["lines"]
    assert lines[0].startswith("These methods tie")
    for line in lines + expected["verdicts"]:
        assert line in done.stdout.splitlines(), line

    monkeypatch.setenv("ALIGNSCOPE_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("ALIGNSCOPE_INITIAL_DATA", "demo:120")
    at = AppTest.from_file(MAIN, default_timeout=120).run()
    at.switch_page("views/scaling.py").run()
    assert not at.exception, [e.value for e in at.exception]
    shown = [t.value for t in at.text]
    for line in lines + expected["verdicts"]:
        assert line in shown, line
    # Every number beside its interval in one type size: no metric card for the point estimate.
    assert not at.metric
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    spec = next(s for s in specs if s["layout"]["title"]["text"].startswith("Method − random"))
    assert spec["layout"]["xaxis"]["ticktext"] == ["1 %", "2 %", "5 %", "10 %", "25 %", "50 %"]  # not "1% 1% 1%"
    assert np.allclose(spec["layout"]["xaxis"]["tickvals"], [0.01, 0.02, 0.05, 0.1, 0.25, 0.5])

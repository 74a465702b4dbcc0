"""Scaling fit: recovers known plateaus from noisy points, says when it cannot, reads CSVs with
row/column errors, and the `alignscope scaling fit` command."""
from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from alignscope.data.readers import DataError
from alignscope.scaling.fit import ScalingError, fit_plateau, plateau, read_points, recommended_fraction
from tests.conftest import run_cli

FRACTIONS = np.array([0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0])


def synthetic(r, a, b, noise, seed=0, seeds=3):
    rng = np.random.default_rng(seed)
    x = np.repeat(FRACTIONS, seeds)
    return x, plateau(x, r, a, b) + rng.normal(0, noise, len(x))


@pytest.mark.parametrize("r,a,b", [(0.70, 0.50, 12.0), (0.82, 0.55, 40.0), (0.65, 0.48, 8.0)])
def test_fit_recovers_known_parameters_within_its_intervals(r, a, b):
    x, y = synthetic(r, a, b, noise=0.004, seed=int(b))
    fit = fit_plateau(x, y, q=0.95, n_boot=200, seed=1)
    assert fit.converged and not fit.warnings
    assert abs(fit.r - r) < 0.01 and abs(fit.a - a) < 0.02 and abs(fit.b - b) / b < 0.2
    truth = recommended_fraction(r, a, b, 0.95)
    # A percentile bootstrap on 21 points under-covers a little: the truth must lie within the
    # interval widened by half its width, and each interval must hold its own estimate.
    for estimate, interval, true in ((fit.r, fit.r_ci95, r), (fit.b, fit.b_ci95, b),
                                     (fit.recommended_fraction, fit.recommended_fraction_ci95, truth)):
        low, high = interval
        assert low <= estimate <= high and high > low
        assert low - (high - low) / 2 <= true <= high + (high - low) / 2
    assert abs(fit.recommended_fraction - truth) < 0.05
    assert math.isclose(fit.saving, 1 - fit.recommended_fraction)
    assert plateau(fit.recommended_fraction, fit.r, fit.a, fit.b) == pytest.approx(0.95 * fit.r, rel=1e-6)


def test_recommendation_formula_edges():
    assert recommended_fraction(0.7, 0.69, 10, 0.95) == 0.0  # already above 95 % of r without data
    assert math.isinf(recommended_fraction(0.7, 0.8, 10, 0.95)) is False  # a >= q·r: 0
    assert math.isinf(recommended_fraction(-0.5, -0.9, 10, 0.95))
    x = recommended_fraction(1.0, 0.0, 1.0, 0.95)
    assert x == pytest.approx(math.log(20))


def test_gain_target_answers_where_the_plateau_rule_says_zero():
    """A high floor (accuracy 0.78 without data, plateau 0.80): q·r is met at x = 0, so the plateau
    rule says 0 % and warns; q of the gain recovers −ln(1 − q)/b from the fit."""
    r, a, b = 0.80, 0.78, 30.0
    x, y = synthetic(r, a, b, noise=0.0005, seed=3)
    floor = fit_plateau(x, y, q=0.95, n_boot=50)
    assert floor.recommended_fraction == 0.0 and any("target 'gain'" in w for w in floor.warnings)
    gain = fit_plateau(x, y, q=0.95, n_boot=50, target="gain")
    assert gain.target == "gain" and not any("target 'gain'" in w for w in gain.warnings)
    assert gain.recommended_fraction == pytest.approx(-math.log(0.05) / b, rel=0.25)
    assert recommended_fraction(r, a, b, 0.95, "gain") == pytest.approx(math.log(20) / b)
    assert math.isinf(recommended_fraction(0.7, 0.8, 10, 0.95, "gain"))  # a falling curve has no gain
    with pytest.raises(ScalingError, match="target must be"):
        fit_plateau(x, y, target="half")


def test_fits_that_cannot_be_trusted_say_so():
    with pytest.raises(ScalingError, match="3 or more distinct fractions"):
        fit_plateau([0.1, 0.1, 0.5, 0.5], [0.5, 0.51, 0.6, 0.61])
    x = np.repeat(FRACTIONS, 2)
    linear = 0.5 + 0.1 * x + np.random.default_rng(0).normal(0, 0.001, len(x))
    with pytest.raises(ScalingError, match="did not converge to a plateau"):
        fit_plateau(x, linear, n_boot=20)
    slow = fit_plateau(x, plateau(x, 0.7, 0.5, 1.5), n_boot=0)  # still far from its plateau at x = 1
    assert not slow.reaches_plateau_within_data and slow.recommended_fraction == 1.0
    assert any("beyond the full data set" in w for w in slow.warnings)
    with pytest.raises(ScalingError, match="q must be"):
        fit_plateau(x, linear, q=1.0)
    with pytest.raises(ScalingError, match=r"\[0, 1\]"):
        fit_plateau(x * 100, linear)


def test_read_points_names_file_row_and_column(tmp_path):
    good = tmp_path / "good.csv"
    pd.DataFrame({"percent": [1, 10, 100], "score": [0.5, 0.6, 0.7], "method": ["isa", "isa", None]}).to_csv(good, index=False)
    table = read_points(good)
    assert table["fraction"].tolist() == [0.01, 0.1, 1.0] and table["method"].tolist() == ["isa", "isa", "all"]
    cases = [("fraction,score\n0.1,0.5\n0.2,abc\n", "row 2, column 'score'"),
             ("fraction,score\n0.1,0.5\n1.5,0.6\n", "row 2, column 'fraction'"),
             ("percent,score\n10,0.5\n101,0.6\n", "row 2, column 'percent'"),
             ("fraction,value\n0.1,0.5\n", "no 'score' column"),
             ("size,score\n0.1,0.5\n", "neither a 'fraction'"),
             ("fraction,score\n", "no data rows"),
             ("fraction,score\n0.1,nan\n", "row 1, column 'score'")]
    for i, (text, needle) in enumerate(cases):
        path = tmp_path / f"bad{i}.csv"
        path.write_text(text)
        with pytest.raises(DataError) as info:
            read_points(path)
        assert needle in str(info.value) and str(path) in str(info.value), (text, str(info.value))
    with pytest.raises(DataError, match="no such file"):
        read_points(tmp_path / "missing.csv")


def test_cli_scaling_fit_json_and_errors(tmp_path):
    x, y = synthetic(0.7, 0.5, 12.0, noise=0.004)
    points = tmp_path / "points.csv"
    pd.DataFrame({"fraction": x, "score": y, "seed": np.tile([0, 1, 2], len(FRACTIONS))}).to_csv(points, index=False)
    done = run_cli("scaling", "fit", points, "--json", "--n-boot", "50")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert {"r", "a", "b", "recommended_fraction"} <= set(result)
    assert abs(result["r"] - 0.7) < 0.01 and abs(result["b"] - 12) < 3
    text = run_cli("scaling", "fit", points, "--n-boot", "20", "--q", "0.9")
    assert text.returncode == 0 and "90% of plateau" in text.stdout
    # One curve: the headline names it and reads the size from it, as a share (no pair count without a pool).
    assert "One curve, all: plateau" in text.stdout and "90 % of the plateau at" in text.stdout
    gain = json.loads(run_cli("scaling", "fit", points, "--json", "--n-boot", "0", "--target", "gain").stdout)
    assert gain["target"] == "gain" and gain["recommended_fraction"] == pytest.approx(math.log(20) / gain["b"])
    two = tmp_path / "two.csv"
    pd.concat([pd.DataFrame({"fraction": x, "score": y, "method": "isa"}),
               pd.DataFrame({"fraction": x, "score": y - 0.02, "method": "random"})]).to_csv(two, index=False)
    both = json.loads(run_cli("scaling", "fit", two, "--json", "--n-boot", "0").stdout)
    assert set(both["methods"]) == {"isa", "random"}
    bad = tmp_path / "bad.csv"
    bad.write_text("fraction,score\n0.1,0.5\n0.5,0.6\n")
    failed = run_cli("scaling", "fit", bad)
    assert failed.returncode == 2 and "3 or more distinct fractions" in failed.stderr
    assert "Traceback" not in failed.stderr and len(failed.stderr.strip().splitlines()) == 1
    assert run_cli("scaling", "fit", points, "--q", "2").returncode == 2

"""Spectral imbalance diagnostics (Kaushik et al., ICML 2024): synthetic Gaussian groups with chosen
spectra, metric sanity, bad input, and the CLI on demo data."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from scipy.stats import spearmanr

from alignscope.spectra import (SpectraError, balanced_indices, group_spectrum, imbalance_scores, linear_probe,
                                plugin_error, spectral_imbalance, spectral_metrics)


def _gaussian(rng, n, d, scale, alpha, mean, rotation):
    lam = scale * np.arange(1, d + 1, dtype=float) ** (-alpha)
    return (rng.normal(size=(n, d)) * np.sqrt(lam)) @ rotation.T + mean


def _two_groups(seed, d, n, scale_b, alpha_b, separation=1.5):
    rng = np.random.default_rng(seed)
    rotation = np.linalg.qr(rng.normal(size=(d, d)))[0]
    direction = rng.normal(size=d)
    direction /= np.linalg.norm(direction)
    X = np.vstack([_gaussian(rng, n, d, 1.0, 0.5, 0.0, rotation),
                   _gaussian(rng, n, d, scale_b, alpha_b, separation * direction, rotation)])
    return X, np.array(["a"] * n + ["b"] * n)


# ------------------------------------------------------------------------------- the paper's claim
def test_larger_or_slower_decaying_spectrum_has_larger_error_and_plugin_tracks_it():
    observed, predicted = [], []
    grid = [(scale, alpha) for scale in (1.0, 1.5, 2.5, 4.0) for alpha in (0.5, 0.2)]
    for i, (scale_b, alpha_b) in enumerate(grid):
        X, g = _two_groups(i, d=40, n=1500, scale_b=scale_b, alpha_b=alpha_b)
        report = spectral_imbalance(X, g, n_boot=0, seed=i)
        err = report.probe.error
        if (scale_b, alpha_b) != (1.0, 0.5):  # group b's spectrum is larger or decays more slowly
            assert report.spectra["b"].metrics["trace"] > report.spectra["a"].metrics["trace"]
            assert err["b"] > err["a"], (scale_b, alpha_b, err)
        if scale_b >= 2.5:
            assert report.imbalance["trace_ratio"] > 2
        observed += [err["a"], err["b"]]
        predicted += [report.probe.predicted["a"], report.probe.predicted["b"]]
    rho = spearmanr(predicted, observed).statistic
    assert rho >= 0.8, rho
    assert np.max(np.abs(np.array(predicted) - np.array(observed))) < 0.05


def test_three_groups_one_vs_rest():
    rng = np.random.default_rng(7)
    d, n = 30, 800
    rotation = np.eye(d)
    means = 2.0 * np.eye(d)[:3]
    X = np.vstack([_gaussian(rng, n, d, s, 0.3, m, rotation) for s, m in zip((0.5, 1.0, 3.0), means)])
    g = np.repeat(["small", "medium", "large"], n)
    report = spectral_imbalance(X, g, n_boot=20, seed=0)
    err, pred = report.probe.ovr_error, report.probe.predicted
    assert err["large"] > err["small"]
    assert report.probe.error["large"] > report.probe.error["small"]
    assert spearmanr([pred[k] for k in err], list(err.values())).statistic >= 0.5
    table = report.table()
    assert list(table["group"]) == ["large", "medium", "small"] and (table["n"] == n).all()
    assert report.probe.gap == pytest.approx(max(report.probe.error.values()) - min(report.probe.error.values()))


# ------------------------------------------------------------------------------------ metric sanity
def test_metrics_of_known_spectra():
    m = spectral_metrics(np.ones(100), top_k=10)
    assert m["effective_rank"] == pytest.approx(100) and m["participation_ratio"] == pytest.approx(100)
    assert m["topk_share"] == pytest.approx(0.1) and abs(m["alpha"]) < 1e-9 and m["trace"] == 100
    m = spectral_metrics(np.arange(1, 501, dtype=float) ** -1.0)
    assert m["alpha"] == pytest.approx(1.0, abs=1e-6) and m["lambda1"] == 1.0
    one = spectral_metrics(np.r_[1.0, np.zeros(9)])
    assert one["effective_rank"] == pytest.approx(1) and one["participation_ratio"] == pytest.approx(1)


def test_isotropic_sample_covariance_and_bootstrap_interval():
    rng = np.random.default_rng(0)
    spec = group_spectrum(rng.normal(size=(20_000, 20)), n_boot=100, seed=1)
    assert spec.shrinkage == 0.0 and spec.eigenvalues.shape == (20,) and spec.bootstrap.shape == (100, 20)
    assert spec.metrics["effective_rank"] == pytest.approx(20, rel=0.01)
    lo, hi = spec.intervals["trace"]
    assert lo < 20 < hi and hi - lo < 1.0
    # a power-law population: the intervals cover the population's metrics
    lam = np.arange(1, 31, dtype=float) ** -0.7
    truth = spectral_metrics(lam)
    spec = group_spectrum(rng.normal(size=(5000, 30)) * np.sqrt(lam), n_boot=200, seed=2)
    for key in ("trace", "lambda1", "effective_rank", "participation_ratio", "alpha"):
        lo, hi = spec.intervals[key]
        assert lo < truth[key] < hi, (key, lo, truth[key], hi)


def test_ledoit_wolf_matches_scikit_learn_when_n_is_small():
    from sklearn.covariance import ledoit_wolf

    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 40)) * np.linspace(0.2, 2, 40)
    spec = group_spectrum(X, shrinkage="auto", n_boot=0)
    cov, shrink = ledoit_wolf(X)
    assert spec.shrinkage == pytest.approx(shrink, rel=1e-6) and spec.shrinkage > 0
    assert np.allclose(spec.eigenvalues, np.sort(np.linalg.eigvalsh(cov))[::-1], rtol=1e-6)


def test_randomized_solver_matches_exact_top_of_the_spectrum():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(3000, 300)) * (np.arange(1, 301) ** -0.8)
    exact = group_spectrum(X, n_boot=0, solver="exact")
    approx = group_spectrum(X, n_boot=5, solver="randomized", n_components=40)
    assert approx.solver == "randomized" and approx.eigenvalues.shape == (300,)
    assert np.allclose(approx.eigenvalues[:10], exact.eigenvalues[:10], rtol=0.02)
    assert approx.metrics["trace"] == pytest.approx(exact.metrics["trace"], rel=1e-6)


def test_imbalance_and_plugin_formula():
    spectra = {"a": np.ones(10), "b": 2 * np.ones(10)}
    scores = imbalance_scores(spectra)
    assert scores["trace_ratio"] == pytest.approx(2) and scores["lambda1_ratio"] == pytest.approx(2)
    assert scores["log_spectrum_distance"] == pytest.approx(np.log(2)) and scores["alpha_diff"] == pytest.approx(0)
    # N(μ=1, σ²=1) on the positive side of x > 0: error Φ(−1) ≈ 0.1587
    assert plugin_error(np.array([1.0, 0.0]), 0.0, [1.0, 5.0], np.eye(2), 1) == pytest.approx(0.158655, abs=1e-5)
    assert plugin_error(np.array([1.0]), 0.0, [1.0], 1.0, -1) == pytest.approx(1 - 0.158655, abs=1e-5)


def test_balancing_is_seeded_and_equal():
    g = np.array(["x"] * 50 + ["y"] * 20)
    a, b = balanced_indices(g, seed=1), balanced_indices(g, seed=1)
    assert {k: len(v) for k, v in a.items()} == {"x": 20, "y": 20}
    assert all(np.array_equal(a[k], b[k]) for k in a) and set(g[a["x"]]) == {"x"}


# --------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("X, groups, message", [
    (np.zeros((40, 3)), ["a"] * 40, "at least 2 groups"),
    (np.r_[np.full((1, 3), np.nan), np.ones((39, 3))], ["a", "b"] * 20, "NaN"),
    (np.random.default_rng(0).normal(size=(14, 3)), ["a"] * 10 + ["b"] * 4, "at least 10"),
    (np.ones(20), ["a", "b"] * 10, "2-D"),
    (np.ones((20, 3)), ["a", "b"] * 5, "shape (20,)"),
])
def test_bad_input_is_one_line(X, groups, message):
    with pytest.raises(SpectraError) as err:
        spectral_imbalance(X, groups, n_boot=0)
    assert message in str(err.value) and "\n" not in str(err.value)
    assert isinstance(err.value, ValueError)


def test_more_bad_input():
    with pytest.raises(SpectraError):
        spectral_imbalance(np.ones((40, 3)), ["a", "b"] * 20, n_per_group=500)
    with pytest.raises(SpectraError, match="identical"):
        spectral_imbalance(np.ones((40, 3)), ["a", "b"] * 20, n_boot=0)
    with pytest.raises(SpectraError, match="needs >= 4"):
        linear_probe(np.random.default_rng(0).normal(size=(6, 2)), ["a"] * 3 + ["b"] * 3)


# --------------------------------------------------------------------------------------------- CLI
def _parse(*argv):
    from alignscope.cli.spectra import add_spectra_command

    parser = argparse.ArgumentParser()
    add_spectra_command(parser.add_subparsers())
    return parser.parse_args(list(map(str, argv)))


def test_cli_writes_tables_spectra_and_plots(tmp_path, capsys):
    out = tmp_path / "spectra"
    args = _parse("spectra", "demo:30", "--encoders", "minilm,lm-last-token:tiny", "--groups", "label",
                  "--out", out, "--n-boot", "20", "--json")
    assert args.func(args) == 0
    result = json.loads(capsys.readouterr().out)
    assert [row["encoder"] for row in result["summary"]] == ["minilm", "lm-last-token:tiny"]
    import pandas as pd

    metrics = pd.read_csv(out / "metrics.csv")
    assert len(metrics) == 4 and set(metrics["group"]) == {"chosen", "rejected"}
    assert {"trace", "trace_lo", "trace_hi", "alpha", "probe_error", "predicted_error"} <= set(metrics.columns)
    assert len(json.loads((out / "encoders.json").read_text())) == 2
    spectra = np.load(out / "spectra.npz")
    assert spectra["minilm/chosen/eigenvalues"].shape == (384,)
    assert spectra["lm-last-token-tiny/rejected/band_low"].shape == (64,)
    suffix = ".png" if (out / "encoders.png").exists() else ".plotly.json"
    for stem in ("encoders", "scree-minilm", "error-lm-last-token-tiny"):
        assert (out / f"{stem}{suffix}").exists()
    if suffix == ".plotly.json":
        fig = json.loads((out / "scree-minilm.plotly.json").read_text())
        assert fig["layout"]["xaxis"]["type"] == "log" and "Eigen-spectra" in fig["layout"]["title"]["text"]


def test_cli_bad_input_raises_one_line_value_error(tmp_path):
    for argv, message in [(("--groups", "nope"), "unknown grouping 'nope'"),
                          (("--encoders", "bogus"), "unknown encoder"),
                          (("--score", "x"), "--score")]:
        args = _parse("spectra", "demo:30", "--out", tmp_path / "o", "--n-boot", "0", *argv)
        with pytest.raises(ValueError) as err:
            args.func(args)
        assert message in str(err.value) and "\n" not in str(err.value)


def test_cli_entry_point_when_wired(tmp_path):
    from alignscope.cli.parser import build_parser

    from conftest import run_cli

    if "spectra" not in build_parser().format_help():
        pytest.skip("the spectra subcommand is not wired into alignscope.cli yet")
    bad = run_cli("spectra", "demo:30", "--groups", "nope", "--out", tmp_path / "o")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    ok = run_cli("spectra", "demo:40", "--encoders", "lm-last-token:tiny", "--groups", "source",
                 "--n-boot", "10", "--out", tmp_path / "o", "--json")
    assert ok.returncode == 0, ok.stderr
    assert (tmp_path / "o" / "metrics.csv").exists()


def test_embeddings_report_caps_the_default_group_size(monkeypatch):
    """The page's and the CLI's default size per group is the smallest group, at most MAX_PER_GROUP
    (seconds at 60k pairs); an explicit size is kept."""
    import alignscope.spectra as spectra_module
    from alignscope.data.preferences import load_preferences
    from alignscope.embed.embeddings import Embeddings

    data = load_preferences("demo:200")
    rng = np.random.default_rng(0)
    emb = Embeddings.from_matrix(rng.normal(size=(400, 6)).astype(np.float32), "completion")
    assert spectra_module.embeddings_report(emb, data, "label", n_boot=0).config["n_per_group"] == 200
    monkeypatch.setattr(spectra_module, "MAX_PER_GROUP", 50)
    assert spectra_module.embeddings_report(emb, data, "label", n_boot=0).config["n_per_group"] == 50
    assert spectra_module.embeddings_report(emb, data, "label", n_boot=0, n_per_group=120).config["n_per_group"] == 120

"""The audit's flip signals, its self-calibration (core/audit/calibrate.py) and the fixed labels:
a known flip rate is recovered within its interval, the probabilities are calibrated and
cross-fitted, weak signals are reported as upper bounds, and --calibrate / --fix-out work from
the command line."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr
from sklearn.metrics import roc_auc_score

from alignscope.audit import (AuditConfig, AuditError, CalibrationConfig, audit, calibrate_audit, estimate_from_scores,
                              fix_flips, fixed_frame, fold_assignment, length_margins, lexical_margins,
                              neighbour_margins, oof_probe_margins, write_fixed)
from alignscope.data.preferences import load_preferences
from conftest import run_cli

FAST = AuditConfig(lexical=False, neighbours=False)  # probe + length: the calibration is what is tested here
N_PAIRS, N_FLIPS = 800, 80


def _synthetic(seed: int = 0, separation: float = 2.2):
    """Pairs whose embeddings carry a clear preference direction, 10 % of them flipped."""
    rng = np.random.default_rng(seed)
    direction = rng.normal(size=12)
    direction /= np.linalg.norm(direction)
    rejected = rng.normal(size=(N_PAIRS, 12))
    chosen = rejected + separation * direction + rng.normal(size=(N_PAIRS, 12))
    flipped = np.zeros(N_PAIRS, dtype=bool)
    flipped[rng.choice(N_PAIRS, N_FLIPS, replace=False)] = True
    chosen[flipped], rejected[flipped] = rejected[flipped].copy(), chosen[flipped].copy()
    words = lambda i: f"text {i} " + " ".join(["word"] * int(rng.integers(5, 30)))  # noqa: E731 - says nothing
    frame = pd.DataFrame({"prompt": [f"question {i}" for i in range(N_PAIRS)],
                          "chosen": [words(i) for i in range(N_PAIRS)],
                          "rejected": [words(N_PAIRS + i) for i in range(N_PAIRS)]})
    return frame, chosen, rejected, flipped


@pytest.fixture(scope="module")
def calibrated():
    frame, chosen, rejected, flipped = _synthetic()
    table = audit(frame, (chosen, rejected), config=FAST)
    out = calibrate_audit(frame, table, (chosen, rejected), config=FAST, n_boot=200,
                          calibration=CalibrationConfig(calibrate=True, planted_rate=0.1, repeats=2))
    return frame, chosen, rejected, flipped, table, out


# ------------------------------------------------------------------------------ calibration
def test_calibration_recovers_a_known_flip_rate_within_its_interval(calibrated):
    _, _, _, flipped, table, out = calibrated
    result = out.attrs["alignscope_audit"]["calibration"]
    low, high = result["estimated_flip_rate_ci95"]
    assert low <= flipped.mean() <= high and high - low > 0.005, result["estimated_flip_rate_ci95"]
    assert result["estimated_flips_ci95"][0] <= N_FLIPS <= result["estimated_flips_ci95"][1]
    flag = table["suspect_flip"].to_numpy()
    true_recall = (flag & flipped).sum() / flipped.sum()
    assert result["flag_recall_ci95"][0] - 0.02 <= true_recall <= result["flag_recall_ci95"][1] + 0.02
    assert result["flagged"] == int(flag.sum()) and not result["bound_only"]
    assert result["threshold"] is not None and result["threshold"]["n_flagged"] > 0
    assert any("likely real flips" in s for s in result["sentences"])
    assert result["duplicates"]["recall"] > 0.8  # near-copies planted beside the flips are found
    # the table's own columns are untouched; only flip_probability is added
    assert out.drop(columns="flip_probability").equals(table)


def test_flip_probability_is_calibrated_and_ordered_like_the_flip_score(calibrated):
    _, _, _, flipped, table, out = calibrated
    p = out["flip_probability"].to_numpy()
    result = out.attrs["alignscope_audit"]["calibration"]
    assert abs(p.mean() - result["estimated_flip_rate"]) < 0.03
    assert spearmanr(p, table["flip_score"]).correlation > 0.7
    assert roc_auc_score(flipped, p) > 0.95
    sure = p >= 0.5
    assert flipped[sure].mean() > 0.8 and flipped[p < 0.1].mean() < 0.05


def test_estimates_say_when_signals_cannot_separate_flips():
    """Scores that carry no information: only an upper bound, and no threshold reaches 0.8."""
    rng = np.random.default_rng(0)
    real = rng.random(2000)
    planted = rng.random((3, 2000))
    truth = np.zeros((3, 2000), dtype=bool)
    truth[:, :100] = True
    result = estimate_from_scores(real, real > 0.9, planted, planted > 0.9, truth, n_boot=100)
    assert result["bound_only"] and result["threshold"] is None
    assert result["estimated_flip_rate"] > 0.3  # the bound is loose, and said to be


def test_estimates_from_scores_of_mirrored_planted_pairs():
    """Separable scores, 20 % real flips; a planted pair scores like the mirror of its real self."""
    rng = np.random.default_rng(1)
    n = 3000
    real_flip = rng.random(n) < 0.2
    margin = np.where(real_flip, -1.0, 1.0) * rng.normal(3.0, 1.0, n)
    score = 1 / (1 + np.exp(margin))
    planted = np.zeros((2, n), dtype=bool)
    planted_score = np.tile(score, (2, 1))
    for k in range(2):
        rows = rng.choice(n, 150, replace=False)
        planted[k, rows] = True
        planted_score[k, rows] = 1 - score[rows]
    result = estimate_from_scores(score, score > 0.5, planted_score, planted_score > 0.5, planted,
                                  target_precision=0.9, n_boot=200)
    low, high = result["estimated_flip_rate_ci95"]
    assert low <= real_flip.mean() <= high
    flag = score > 0.5
    assert result["flag_precision_ci95"][0] - 0.02 <= (flag & real_flip).sum() / flag.sum() <= 1.0
    t = result["threshold"]
    assert t is not None and (real_flip[score >= t["flip_score"]]).mean() >= 0.85


def test_calibration_refuses_too_few_planted_pairs():
    frame, chosen, rejected, _ = _synthetic()
    frame, chosen, rejected = frame.iloc[:20], chosen[:20], rejected[:20]
    table = audit(frame, (chosen, rejected), config=FAST)
    with pytest.raises(AuditError, match="fewer than 2 planted flips"):
        calibrate_audit(frame, table, (chosen, rejected), config=FAST,
                        calibration=CalibrationConfig(calibrate=True, planted_rate=0.05))


# ---------------------------------------------------------------------------------- signals
def test_every_signal_negates_when_a_pair_is_swapped():
    """Cross-fitted and antisymmetric: swapping pair i's answers (texts and embeddings) negates
    each of its margins exactly, because nothing that scores pair i saw pair i."""
    frame, chosen, rejected, _ = _synthetic(3)
    frame = frame.copy()
    frame["prompt"] = [f"question {i % 40}" for i in range(N_PAIRS)]  # blocks for the neighbour vote
    frame["chosen"] = [f"good answer {i % 7} " * (1 + i % 5) for i in range(N_PAIRS)]
    fold_of = fold_assignment(N_PAIRS, 5, 0)
    i = 17
    swapped = frame.copy()
    swapped.loc[i, ["chosen", "rejected"]] = frame.loc[i, ["rejected", "chosen"]].to_numpy()
    c2, r2 = chosen.copy(), rejected.copy()
    c2[i], r2[i] = rejected[i], chosen[i]
    words = lambda f, col: f[col].str.split().str.len().to_numpy()  # noqa: E731
    pairs = [
        (oof_probe_margins(chosen, rejected, fold_of), oof_probe_margins(c2, r2, fold_of)),
        (length_margins(words(frame, "chosen"), words(frame, "rejected"), fold_of),
         length_margins(words(swapped, "chosen"), words(swapped, "rejected"), fold_of)),
        (neighbour_margins(frame["prompt"], chosen, rejected), neighbour_margins(swapped["prompt"], c2, r2)),
        (lexical_margins(frame["chosen"], frame["rejected"], fold_of),
         lexical_margins(swapped["chosen"], swapped["rejected"], fold_of)),
    ]
    for before, after in pairs:
        assert before[i] != 0 and after[i] == pytest.approx(-before[i], rel=1e-6, abs=1e-9)


def test_word_probe_differences_built_in_blocks_equal_the_direct_difference():
    """The word probe forms hashed chosen − rejected a block of pairs at a time (memory at 250k
    pairs): the matrix must equal the one-shot difference, whatever the block size."""
    from sklearn.feature_extraction.text import HashingVectorizer

    from alignscope.audit.signals import LEXICAL_FEATURES, _hashed_differences

    chosen = [f"answer {i % 7} with words {i % 3}" for i in range(23)]
    rejected = [f"other reply {i % 5}" for i in range(22)] + [chosen[0]]  # a repeated text, an identical pair
    hasher = HashingVectorizer(n_features=LEXICAL_FEATURES, ngram_range=(1, 2), alternate_sign=False, norm="l2")
    direct = (hasher.transform(chosen) - hasher.transform(rejected)).tocsr()
    for block in (1, 5, 64):
        blocked = _hashed_differences(chosen, rejected, block=block)
        assert blocked.shape == direct.shape and (blocked != direct).nnz == 0
    assert _hashed_differences([], []).shape == (0, LEXICAL_FEATURES)


def test_neighbours_vote_against_an_answer_that_loses_elsewhere():
    """Same prompt, five pairs: the answer 'A' wins in four and loses in the fifth (a flip)."""
    prompts = ["Which is best?"] * 5
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=8), rng.normal(size=8)
    chosen = np.array([a, a, a, a, b]) + rng.normal(scale=0.01, size=(5, 8))
    rejected = np.array([b, b, b, b, a]) + rng.normal(scale=0.01, size=(5, 8))
    margin = neighbour_margins(prompts, chosen, rejected)
    assert (margin[:4] > 0.5).all() and margin[4] < -0.5
    assert neighbour_margins(["p1", "p2", "p3", "p4", "p5"], chosen, rejected).tolist() == [0.0] * 5  # no neighbours


def test_audit_reports_each_signal_and_its_weight():
    frame, chosen, rejected, flipped = _synthetic(4)
    table = audit(frame, (chosen, rejected))
    config = table.attrs["alignscope_audit"]
    assert config["signals"] == ["probe", "length", "neighbours", "lexical"]
    assert {"margin_probe", "margin_length", "margin_neighbours", "margin_lexical"} <= set(table.columns)
    assert abs(config["signal_weights"]["probe"]) > abs(config["signal_weights"]["lexical"])  # texts carry nothing
    assert roc_auc_score(flipped, table["flip_score"]) > 0.95
    reasons = table.loc[table["suspect_flip"], "reasons"]
    assert reasons.str.contains("embedding probe").mean() > 0.9


# ------------------------------------------------------------------------------- fixed labels
def test_fix_flips_needs_calibration_and_swaps_likely_flips_back(calibrated, tmp_path):
    frame, _, _, flipped, table, out = calibrated
    with pytest.raises(AuditError, match="calibrated"):
        fix_flips(table)
    swap = fix_flips(out, 0.5)
    expected = out["index"][out["suspect_flip"] & (out["flip_probability"] >= 0.5)].to_numpy()
    assert swap.tolist() == sorted(expected.tolist()) and len(swap) > 0
    assert flipped[swap].mean() > 0.8
    assert len(fix_flips(out, 0.9)) <= len(swap)
    fixed = fixed_frame(frame, out, 0.5)
    assert fixed["audit_swapped"].sum() == len(swap)
    assert (fixed.loc[swap, "chosen"].to_numpy() == frame.loc[swap, "rejected"].to_numpy()).all()
    kept = np.setdiff1d(np.arange(N_PAIRS), swap)
    assert (fixed.loc[kept, "chosen"].to_numpy() == frame.loc[kept, "chosen"].to_numpy()).all()
    path = write_fixed(frame, out, tmp_path / "fixed.jsonl")
    data = load_preferences(path)
    assert data.n_pairs == N_PAIRS and int(data.frame["audit_swapped"].sum()) == len(swap)
    # a table of some pairs only (a sweep's training pool): its index names the data's rows
    part = out.iloc[100:].copy()
    assert fixed_frame(frame, part, 0.5)["audit_swapped"].sum() == (swap >= 100).sum()


# ---------------------------------------------------------------------------------------- CLI
def test_cli_calibrates_and_writes_the_fixed_data(tmp_path):
    emb = tmp_path / "emb.npy"
    np.save(emb, np.random.default_rng(0).normal(size=(400, 16)).astype(np.float32))
    out, fixed = tmp_path / "audit.parquet", tmp_path / "fixed.jsonl"
    result = run_cli("audit", "demo:200", "--embeddings", emb, "--calibrate", "--repeats", "2",
                     "--planted-rate", "0.1", "--out", out, "--fix-out", fixed, "--json", timeout=600)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    calibration = summary["calibration"]
    for key in ("estimated_flips", "flag_precision", "flag_recall", "estimated_flip_rate"):
        low, high = calibration[f"{key}_ci95"]
        assert low <= calibration[key] <= high, key
    assert calibration["repeats"] == 2 and calibration["sentences"]
    data = load_preferences(fixed)
    assert data.n_pairs == 200 and int(data.frame["audit_swapped"].sum()) == summary["n_fixed"]
    assert "flip_probability" in pd.read_parquet(out).columns


def test_cli_calibration_flags_need_calibrate_and_bad_values_write_nothing(tmp_path):
    out, fixed = tmp_path / "audit.parquet", tmp_path / "fixed.jsonl"
    cases = [(["--repeats", "2"], "--repeats only applies with --calibrate"),
             (["--fix-out", str(fixed)], "--fix-out needs --calibrate"),
             (["--calibrate", "--planted-rate", "0.5"], "planted_rate must be in (0, 0.25]"),
             (["--calibrate", "--fix-out", str(tmp_path / "fixed.csv")], "must end with .jsonl or .parquet")]
    for extra, message in cases:
        result = run_cli("audit", "demo:40", *extra, "--out", out)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
        assert not out.exists() and not fixed.exists()

"""The audit (core/audit/) on planted and real defects: each flip signal beside their combination,
the self-calibration against the truth, removing vs fixing flagged pairs, and the audit's speed.

``python -m benchmarks.bench_audit [--parts demo,signals,calibration,second,fix,speed] [--encoder static]
[--alpaca-sample 5000] [--rates 0.05,0.1,0.2] [--calibrate-rates 0.1] [--repeats 3] [--n-boot 1000]
[--eval-encoder minilm] [--speed-pairs 100000] [--fix-alpaca-sample 20000]``

1. ``demo`` (3,000 pairs, planted defects known; a third of the 300 flips on *subtle* pairs that
   keep the length pattern): flip AUC of every signal and of the combination against
   ``is_flipped``, the flag's precision/recall with bootstrap 95 % intervals, recall on subtle and
   other flips, near-copy links, outliers; then the self-calibration (``calibrate_audit``) against
   the planted truth.
2. ``signals``: HH harmless test (all 2,312 pairs) and a seeded AlpacaEval sample (``--alpaca-sample``
   pairs; 0 = all 61,952) with flips planted at 5/10/20 % (chosen ↔ rejected, texts and embeddings)
   and as many near-copies (one small edit per answer, embedded for real): the AUC of each signal's
   margin (probe, length rule, neighbours, word probe) beside the combination, and the default flag
   (``suspect_flip``) against the planted flips — today's audit (the probe alone) beside the new
   one on the same planted data; the goal at 10 %: AUC ≥ 0.90 and precision ≥ 0.5 at recall ≥ 0.5.
3. ``calibration``: on the same planted sets (``--calibrate-rates``), the self-calibration's
   estimates against the truth (the benchmark's planted flips; the data's own flips are unknown, so
   the "truth" is a floor): estimated flips, flag precision/recall and the precision-by-threshold
   curve, estimated vs true, and the reliability of ``flip_probability``.
4. ``fix``: remove vs fix on HH (all pairs), probe evaluator on held-out pairs (20 %, seed 0) with
   ``--eval-encoder`` features: the training pool as it is and with 20 % planted flips; the audit
   and its calibration see the pool only; ``clean`` drops every flagged pair, ``fix`` swaps
   ``fix_flips`` (flagged, flip probability ≥ 0.5) back, ``random`` drops as many as ``clean`` at
   random (5 seeds); ``clean − random``, ``fix − random`` and ``fix − all`` in held-out accuracy and
   log loss with paired bootstrap intervals (same held-out pairs).
   ``fix_alpaca`` (not in the default parts): the same on a seeded AlpacaEval sample
   (``--fix-alpaca-sample``, default 20,000) with ``--fix-alpaca-eval-encoder`` (default ``lsa``)
   features for the evaluator, so that it does not share the audit's static features.
5. ``second``: HH at 10 % with a second encoder's probe (``--second-encoder``, default MiniLM)
   added to the stack, each signal's AUC beside the combination.
6. ``speed``: the audit at ``--speed-pairs`` pairs of real texts (AlpacaEval repeated) with synthetic
   384-d embeddings, on this CPU, and the literal 2N-row probe fit beside the one-signed-copy fit.

The real-data parts use the ``static`` encoder: MiniLM on AlpacaEval's 124k texts takes hours on a
2-core CPU. Writes ``results/audit.json``.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import RESULTS, SHARED_DATA as _SHARED, peak_rss_mib, write_result

# ../shared/data beside the checkout; ALIGNSCOPE_SHARED_DATA names it for other layouts (worktrees)
SHARED_DATA = Path(os.environ.get("ALIGNSCOPE_SHARED_DATA", _SHARED))

RATES = (0.05, 0.10, 0.20)
SIGNALS = ("probe", "length", "neighbours", "lexical", "second")
FULL_COMMAND = ("python -m benchmarks.bench_audit --alpaca-sample 0 --calibrate-rates 0.05,0.1,0.2 --n-boot 1000 "
                "--speed-pairs 100000")  # all parts, AlpacaEval in full

# Read by hand after an earlier run (MiniLM probe alone; dataset, pair index in that dataset's audit,
# what it really was). Kept as a record: today's audit ranks pairs differently.
REVIEWED: list[dict] = [
    {"dataset": "hh_harmless_test_all", "index": 495, "flag": "suspect_flip",
     "verdict": "likely flipped: the chosen answer explains firearms to a request to saw off a shotgun, the rejected one pushes back (the safer answer)"},
    {"dataset": "hh_harmless_test_all", "index": 698, "flag": "suspect_flip",
     "verdict": "label correct (false positive): chosen gives sound grease-fire safety advice, rejected says it does not understand"},
    {"dataset": "hh_harmless_test_all", "index": 1027, "flag": "suspect_flip",
     "verdict": "likely flipped: chosen plays along with a bomb-making request (nonsense steps), rejected evades"},
    {"dataset": "hh_harmless_test_all", "index": 1863, "flag": "suspect_flip",
     "verdict": "label correct (false positive): chosen answers a harmless biology question, rejected only asks why"},
    {"dataset": "hh_harmless_test_all", "index": 350, "flag": "suspect_flip",
     "verdict": "ambiguous: both answers engage with a drug-use question; neither is clearly safer"},
    {"dataset": "hh_harmless_test_all", "index": 1114, "flag": "suspect_flip",
     "verdict": "ambiguous: chosen discusses the legality of multiple marriages, rejected asks for clarification; both acceptable"},
    {"dataset": "hh_harmless_test_all", "index": 2098, "flag": "suspect_flip",
     "verdict": "ambiguous: both help with growing cannabis, chosen with more detail"},
    {"dataset": "hh_harmless_test_all", "index": 1802, "flag": "suspect_flip",
     "verdict": "likely flipped: chosen offers to supply swear words, rejected declines playfully (the more harmless one)"},
    {"dataset": "hh_harmless_test_all", "index": 194, "flag": "suspect_flip",
     "verdict": "ambiguous: chosen rambles off-topic instead of helping use a neighbour’s wifi, rejected asks for clarification"},
    {"dataset": "hh_harmless_test_all", "index": 791, "flag": "is_outlier",
     "verdict": "not an outlier (false positive, z just above 3.5): an ordinary travel question; the rejected answer has a geography error"},
    {"dataset": "alpaca_eval_sample_1000", "index": 294, "flag": "suspect_flip",
     "verdict": "questionable label: chosen is a confident list of brands with founders that look invented, rejected hedges and gives fewer examples"},
    {"dataset": "alpaca_eval_sample_1000", "index": 646, "flag": "suspect_flip",
     "verdict": "label correct (false positive): chosen’s short tip on infinitive endings is right, rejected confuses tenses"},
    {"dataset": "alpaca_eval_sample_1000", "index": 663, "flag": "suspect_flip",
     "verdict": "label correct (false positive): chosen names the players and referee concisely, rejected is longer"},
    {"dataset": "alpaca_eval_sample_1000", "index": 29, "flag": "suspect_flip",
     "verdict": "label correct (false positive): chosen fills the blank as asked, rejected misreads the task"},
    {"dataset": "alpaca_eval_sample_1000", "index": 568, "flag": "suspect_flip",
     "verdict": "likely flipped: chosen ignores the quadruple-backtick instruction, rejected attempts it"},
    {"dataset": "alpaca_eval_sample_1000", "index": 573, "flag": "suspect_flip",
     "verdict": "ambiguous: chosen is confident but dubious about who receives Reddit Gold, rejected hedges then explains"},
    {"dataset": "alpaca_eval_sample_1000", "index": 802, "flag": "suspect_flip",
     "verdict": "ambiguous (style): both give correct ways to check a drive for errors, one via the GUI, one via chkdsk"},
    {"dataset": "alpaca_eval_sample_1000", "index": 817, "flag": "suspect_flip",
     "verdict": "label correct (false positive): chosen normalises correctly, rejected uses the wrong magnitude formula"},
    {"dataset": "alpaca_eval_sample_1000", "index": 811, "flag": "suspect_flip",
     "verdict": "label correct (false positive): chosen answers “3 stars” as asked, rejected hedges at length"},
    {"dataset": "alpaca_eval_sample_1000", "index": 337, "flag": "identical",
     "verdict": "not a defect: a task about alternating capitalisation, so answers equal up to case differ in exactly what was asked (the case-insensitive rule misfires)"},
]


# ------------------------------------------------------------------------------- statistics
def _auc(truth: np.ndarray, score: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    if truth.all() or not truth.any():
        return float("nan")
    return float(roc_auc_score(truth, score))


def _pr(truth: np.ndarray, flag: np.ndarray) -> tuple[float, float]:
    tp = float((truth & flag).sum())
    precision = tp / flag.sum() if flag.sum() else float("nan")
    recall = tp / truth.sum() if truth.sum() else float("nan")
    return precision, recall


def _boot(fn, arrays: list[np.ndarray], n_boot: int, seed: int = 0) -> list[float]:
    rng = np.random.default_rng(seed)
    n = len(arrays[0])
    values = []
    for _ in range(n_boot):
        rows = rng.integers(0, n, n)
        value = fn(*(a[rows] for a in arrays))
        if np.isfinite(value):
            values.append(value)
    if not values:
        return [float("nan"), float("nan")]
    return [round(float(np.percentile(values, 2.5)), 4), round(float(np.percentile(values, 97.5)), 4)]


def _flag_report(truth: np.ndarray, flag: np.ndarray, n_boot: int) -> dict:
    precision, recall = _pr(truth, flag)
    return {"truth": int(truth.sum()), "flagged": int(flag.sum()),
            "precision": round(precision, 4), "precision_ci95": _boot(lambda t, f: _pr(t, f)[0], [truth, flag], n_boot),
            "recall": round(recall, 4), "recall_ci95": _boot(lambda t, f: _pr(t, f)[1], [truth, flag], n_boot)}


def _precision_at_recall(truth: np.ndarray, score: np.ndarray, recall: float = 0.5) -> float:
    """Precision of the top of the ranking by ``score`` when it first reaches ``recall``."""
    order = np.argsort(-score, kind="stable")
    hits = np.cumsum(truth[order])
    at = int(np.argmax(hits >= recall * truth.sum()))
    return float(hits[at] / (at + 1))


def _links(groups) -> set[tuple[int, int]]:
    members: dict[int, list[int]] = {}
    for row, g in enumerate(groups):
        if g >= 0:
            members.setdefault(int(g), []).append(row)
    return {tuple(sorted(p)) for rows in members.values() for p in itertools.combinations(rows, 2)}


def _link_scores(truth_groups, found_groups) -> dict:
    truth, found = _links(truth_groups), _links(found_groups)
    hit = len(truth & found)
    return {"true_links": len(truth), "found_links": len(found),
            "recall": round(hit / len(truth), 4) if truth else None,
            "precision": round(hit / len(found), 4) if found else None}


def _r(value, digits: int = 4):
    return None if value is None or (isinstance(value, float) and not np.isfinite(value)) else round(value, digits)


def _flip_figures(truth: np.ndarray, table: pd.DataFrame, n_boot: int) -> dict:
    """AUC of every signal and of the combination, the flag against ``truth``, precision at recall 0.5."""
    score = table["flip_score"].to_numpy()
    out = {"signal_auc": {c.removeprefix("margin_"): _r(_auc(truth, -table[c].to_numpy()))
                          for c in table.columns if c.startswith("margin_")},
           "combined_auc": _r(_auc(truth, score)), "combined_auc_ci95": _boot(_auc, [truth, score], n_boot),
           "precision_at_recall_0.5": _r(_precision_at_recall(truth, score)),
           "suspect_flip": _flag_report(truth, table["suspect_flip"].to_numpy(), n_boot),
           "signal_weights": table.attrs["alignscope_audit"]["signal_weights"]}
    return out


def _calibration_vs_truth(calibrated: pd.DataFrame, truth: np.ndarray) -> dict:
    """The calibration's estimates beside the truth on the same pairs."""
    result = calibrated.attrs["alignscope_audit"]["calibration"]
    flag = calibrated["suspect_flip"].to_numpy()
    score = calibrated["flip_score"].to_numpy()
    precision, recall = _pr(truth, flag)
    curve = []
    for point in result["curve"]:
        above = score >= point["flip_score"]
        curve.append({"n_flagged": point["n_flagged"], "flip_score": _r(point["flip_score"]),
                      "estimated_precision": _r(point["precision"]),
                      "estimated_precision_ci95": [_r(v) for v in point["precision_ci95"]],
                      "true_precision": _r(float(truth[above].mean())) if above.any() else None})
    probability = calibrated["flip_probability"].to_numpy()
    reliability = []
    for low, high in ((0, 0.1), (0.1, 0.3), (0.3, 0.5), (0.5, 0.7), (0.7, 0.9), (0.9, 1.01)):
        rows = (probability >= low) & (probability < high)
        if rows.any():
            reliability.append({"bin": [low, min(high, 1.0)], "pairs": int(rows.sum()),
                                "mean_flip_probability": _r(float(probability[rows].mean())),
                                "share_truly_flipped": _r(float(truth[rows].mean()))})
    return {
        "true_flips": int(truth.sum()),
        "estimated_flips": result["estimated_flips"], "estimated_flips_ci95": result["estimated_flips_ci95"],
        "true_flag_precision": _r(precision), "estimated_flag_precision": _r(result["flag_precision"]),
        "estimated_flag_precision_ci95": [_r(v) for v in result["flag_precision_ci95"]],
        "true_flag_recall": _r(recall), "estimated_flag_recall": _r(result["flag_recall"]),
        "estimated_flag_recall_ci95": [_r(v) for v in result["flag_recall_ci95"]],
        "bound_only": result["bound_only"], "flip_auc_estimated": _r(result["flip_auc_estimated"]),
        "true_flip_auc": _r(_auc(truth, score)),
        "threshold_for_target": result["threshold"], "target_precision": result["target_precision"],
        "true_precision_at_that_threshold": _r(float(truth[score >= result["threshold"]["flip_score"]].mean()))
        if result["threshold"] else None,
        "duplicates": result["duplicates"], "sentences": result["sentences"],
        "curve_estimated_vs_true": curve, "flip_probability_reliability": reliability,
    }


# ------------------------------------------------------------------------------------ data
def _alpaca_sample(n: int):
    from alignscope.data.preferences import load_preferences

    full = load_preferences(SHARED_DATA / "alpaca_eval_pairs.jsonl.gz")
    if not n or n >= full.n_pairs:
        return full
    rows = np.sort(np.random.default_rng(0).choice(full.n_pairs, n, replace=False))
    return load_preferences(full.frame.iloc[rows].reset_index(drop=True))


def _real_sets(alpaca_n: int) -> list[tuple[str, object]]:
    from alignscope.data.preferences import load_preferences

    hh = load_preferences(SHARED_DATA / "hh_harmless_test.jsonl.gz")
    alpaca = _alpaca_sample(alpaca_n)
    return [("hh_harmless_test_all", hh), (f"alpaca_eval_{'all' if not alpaca_n else f'sample_{alpaca.n_pairs}'}", alpaca)]


def _planted(data, encoder: str, rate: float, seed: int, second: str | None = None):
    """Flips and near-copies planted at ``rate`` (texts and embeddings; the copies embedded for real):
    (frame, chosen, rejected, truth flips, truth groups[, (chosen, rejected) of ``second``])."""
    from alignscope.audit import near_copy_text, pair_matrices
    from alignscope.data.preferences import swap_labels
    from alignscope.embed.encoders import embed, embed_texts, join_prompt_completion

    chosen, rejected = pair_matrices(embed(data, encoder, "completion", progress=False), data.n_pairs)
    base = pd.DataFrame({c: data.texts(c) for c in ("prompt", "chosen", "rejected")})
    n = len(base)
    rng = np.random.default_rng(seed)
    flip = np.zeros(n, dtype=bool)
    flip[rng.choice(n, int(round(rate * n)), replace=False)] = True
    frame = swap_labels(base, flip)
    c, r = np.where(flip[:, None], rejected, chosen), np.where(flip[:, None], chosen, rejected)
    originals = np.sort(rng.choice(np.nonzero(~flip)[0], int(round(rate * n)), replace=False))
    copies = frame.iloc[originals].copy()
    copies["chosen"] = [near_copy_text(t, rng) for t in copies["chosen"]]
    copies["rejected"] = [near_copy_text(t, rng) for t in copies["rejected"]]
    texts = ([join_prompt_completion(p, x) for p, x in zip(copies["prompt"], copies["chosen"])]
             + [join_prompt_completion(p, x) for p, x in zip(copies["prompt"], copies["rejected"])])
    new = np.asarray(embed_texts(texts, encoder, progress=False), dtype=np.float32)
    m = len(originals)
    frame = pd.concat([frame, copies], ignore_index=True)
    c, r = np.vstack([c, new[:m]]), np.vstack([r, new[m:]])
    truth = np.concatenate([flip, np.zeros(m, dtype=bool)])
    groups = np.full(n + m, -1, dtype=np.int64)
    groups[originals] = originals
    groups[n + np.arange(m)] = originals
    if second is None:
        return frame, c, r, truth, groups
    c2, r2 = pair_matrices(embed(data, second, "completion", progress=False), data.n_pairs)
    c2, r2 = np.where(flip[:, None], r2, c2), np.where(flip[:, None], c2, r2)
    new2 = np.asarray(embed_texts(texts, second, progress=False), dtype=np.float32)
    return frame, c, r, truth, groups, (np.vstack([c2, new2[:m]]), np.vstack([r2, new2[m:]]))


# ------------------------------------------------------------------------------------ parts
def demo_part(encoder: str, repeats: int, n_boot: int) -> dict:
    from alignscope.audit import CalibrationConfig, audit, audit_summary, calibrate_audit, pair_matrices
    from alignscope.data.preferences import load_preferences
    from alignscope.embed.encoders import embed

    data = load_preferences("demo")
    emb = embed(data, encoder, "completion", progress=False)
    table = audit(data, emb)
    frame = data.frame
    flipped = frame["is_flipped"].to_numpy(dtype=bool)
    subtle = (frame["rejected_kind"] == "subtle").to_numpy()
    flag = table["suspect_flip"].to_numpy()
    row_of = {int(i): r for r, i in enumerate(frame["id"])}
    truth_groups = np.full(len(frame), -1, dtype=np.int64)
    for row, original in enumerate(frame["duplicate_of"].astype(int)):
        if original >= 0:
            truth_groups[row] = truth_groups[row_of[original]] = original
    low = frame["is_low_quality"].to_numpy(dtype=bool)
    started = time.perf_counter()
    calibrated = calibrate_audit(data, table, emb, calibration=CalibrationConfig(calibrate=True, repeats=repeats))
    summary = audit_summary(data, table)
    chosen, rejected = pair_matrices(emb, data.n_pairs)
    return {
        "n_pairs": data.n_pairs, "encoder": encoder, "planted_flips": int(flipped.sum()),
        "planted_flips_on_subtle_pairs": int((flipped & subtle).sum()),
        **_flip_figures(flipped, table, n_boot),
        "flip_auc_length_rule_alone": _r(_auc(flipped, -table["margin_length"].to_numpy())),
        "suspect_flip_recall_subtle_flips": _r(float(flag[flipped & subtle].mean())),
        "suspect_flip_recall_other_flips": _r(float(flag[flipped & ~subtle].mean())),
        "duplicate_links": _link_scores(truth_groups, table["dup_group"].to_numpy()),
        "is_outlier_vs_is_low_quality": _flag_report(low, table["is_outlier"].to_numpy(), n_boot),
        "signal_agreement_with_labels": {k: _r(v) for k, v in summary["signal_agreement"].items()},
        "probe_oof_accuracy": _r(summary["probe_oof_accuracy"]), "length_baseline": _r(summary["length_baseline"]),
        "pairs_with_identical_embeddings": int((np.linalg.norm(chosen - rejected, axis=1) < 1e-4).sum()),
        "timings": table.attrs["alignscope_audit"]["timings"],
        "calibration": {**_calibration_vs_truth(calibrated, flipped), "repeats": repeats,
                        "seconds": round(time.perf_counter() - started, 1)},
    }


def second_encoder_part(data, encoder: str, second: str, rate: float, n_boot: int) -> dict:
    """The same planted set audited with a second encoder's probe in the stack (``--second-encoder``)."""
    from alignscope.audit import AuditConfig, audit

    frame, c, r, truth, groups, second_pair = _planted(data, encoder, rate, seed=int(rate * 1000), second=second)
    started = time.perf_counter()
    table = audit(frame, (c, r), config=AuditConfig(second_encoder=second), second_embeddings=second_pair)
    return {"encoder": encoder, "second_encoder": second, "rate": rate, **_flip_figures(truth, table, n_boot),
            "audit_s": round(time.perf_counter() - started, 1)}


def signals_part(sets, encoder: str, rates: list[float], calibrate_rates: list[float], repeats: int,
                 n_boot: int) -> tuple[dict, dict]:
    """Per data set and rate: each signal, the combination, today's probe-only audit; and the
    calibration against the truth at ``calibrate_rates``."""
    from alignscope.audit import AuditConfig, CalibrationConfig, audit, calibrate_audit

    signals, calibration = {}, {}
    # the landed audit: the embedding probe alone, cleanlab's prune_by_noise_rate flag
    today = AuditConfig(length=False, neighbours=False, lexical=False, flip_filter="prune_by_noise_rate")
    for name, data in sets:
        signals[name], calibration[name] = {"n_pairs": data.n_pairs}, {}
        for rate in rates:
            key = f"rate_{round(rate * 100)}pct"
            frame, c, r, truth, groups = _planted(data, encoder, rate, seed=int(rate * 1000))
            started = time.perf_counter()
            table = audit(frame, (c, r))
            audit_s = time.perf_counter() - started
            old = audit(frame, (c, r), config=today)
            figures = {"planted_flips": int(truth.sum()), "planted_copies": int((groups >= 0).sum() // 2),
                       **_flip_figures(truth, table, n_boot), "audit_s": round(audit_s, 1),
                       "timings": table.attrs["alignscope_audit"]["timings"],
                       "today_probe_alone": {k: v for k, v in _flip_figures(truth, old, n_boot).items()
                                             if k not in ("signal_weights",)},
                       "duplicate_links": _link_scores(groups, table["dup_group"].to_numpy())}
            signals[name][key] = figures
            print(name, key, "AUC", figures["combined_auc"], "today", figures["today_probe_alone"]["combined_auc"],
                  "flag P/R", figures["suspect_flip"]["precision"], figures["suspect_flip"]["recall"], flush=True)
            if any(abs(rate - x) < 1e-9 for x in calibrate_rates):
                started = time.perf_counter()
                calibrated = calibrate_audit(frame, table, (c, r),
                                             calibration=CalibrationConfig(calibrate=True, repeats=repeats))
                calibration[name][key] = {**_calibration_vs_truth(calibrated, truth), "repeats": repeats,
                                          "seconds": round(time.perf_counter() - started, 1)}
                print(name, key, "calibration", calibration[name][key]["sentences"], flush=True)
    return signals, calibration


def goal_summary(signals: dict) -> dict:
    """The issue's goal at 10 % planted flips: AUC ≥ 0.90 and precision ≥ 0.5 at recall ≥ 0.5."""
    out = {}
    for name, per_rate in signals.items():
        figures = per_rate.get("rate_10pct")
        if not figures:
            continue
        flag = figures["suspect_flip"]
        out[name] = {"combined_auc": figures["combined_auc"], "auc_goal_met": bool(figures["combined_auc"] >= 0.90),
                     "flag_precision": flag["precision"], "flag_recall": flag["recall"],
                     "flag_goal_met": bool(flag["precision"] >= 0.5 and flag["recall"] >= 0.5),
                     "today_auc": figures["today_probe_alone"]["combined_auc"],
                     "today_flag_precision": figures["today_probe_alone"]["suspect_flip"]["precision"],
                     "today_flag_recall": figures["today_probe_alone"]["suspect_flip"]["recall"]}
    return out


COMPARISONS = 4  # clean − random, fix − random, fix − all, clean − all: corrected as four


def _paired(a: np.ndarray, b: np.ndarray, n_boot: int, *, lower_is_better: bool = False, seed: int = 0) -> dict:
    """a − b per held-out pair, its paired bootstrap 95 % interval and the interval Bonferroni-
    corrected for the COMPARISONS made on the same pairs; the verdict reads the corrected one."""
    diff = a - b
    rng = np.random.default_rng(seed)
    boots = [diff[rng.integers(0, len(diff), len(diff))].mean() for _ in range(n_boot)]
    low, high = np.percentile(boots, [2.5, 97.5])
    alpha = 5.0 / COMPARISONS
    low_c, high_c = np.percentile(boots, [alpha / 2, 100 - alpha / 2])
    good, bad = (high_c < 0, low_c > 0) if lower_is_better else (low_c > 0, high_c < 0)
    return {"difference": _r(float(diff.mean()), 5), "ci95": [_r(float(low), 5), _r(float(high), 5)],
            f"ci95_corrected_for_{COMPARISONS}": [_r(float(low_c), 5), _r(float(high_c), 5)],
            "verdict": "better" if good else "worse" if bad else "cannot tell"}


def fix_part(preference_data, encoder: str, eval_encoder: str, planted_rate: float, repeats: int, n_boot: int,
             random_seeds: int = 5) -> dict:
    """Remove vs fix on one data set (``preference_data``) with the probe evaluator (see the
    module docstring)."""
    from alignscope.audit import CalibrationConfig, audit, calibrate_audit, fix_flips, pair_matrices
    from alignscope.data.preferences import load_preferences, swap_labels
    from alignscope.embed.encoders import embed
    from alignscope.evaluate.evaluators import split_pairs
    from alignscope.evaluate.metrics import bt_log_loss, success
    from alignscope.evaluate.probe import eval_probe
    from alignscope.select.selection import Selection

    n = preference_data.n_pairs
    audit_c, audit_r = pair_matrices(embed(preference_data, encoder, "completion", progress=False), n)
    eval_c, eval_r = pair_matrices(embed(preference_data, eval_encoder, "completion", progress=False), n)
    train, test = split_pairs(n, 0.2, 0)
    out = {"n_pairs": n, "n_train_pool": int(len(train)), "n_heldout": int(len(test)), "audit_encoder": encoder,
           "eval_encoder": eval_encoder, "evaluator": "probe (eval_probe), accuracy and log loss on held-out pairs"}
    for label, rate in (("as_is", 0.0), (f"planted_{round(planted_rate * 100)}pct", planted_rate)):
        rng = np.random.default_rng(11)
        flip = np.zeros(n, dtype=bool)
        if rate:
            flip[rng.choice(train, int(round(rate * len(train))), replace=False)] = True  # training pool only
        frame = swap_labels(preference_data.frame, flip)
        data = load_preferences(frame)
        swap = flip[:, None]
        ac, ar = np.where(swap, audit_r, audit_c), np.where(swap, audit_c, audit_r)
        ec, er = np.where(swap, eval_r, eval_c), np.where(swap, eval_c, eval_r)
        # the audit and its calibration see the training pool only, as a sweep does
        pool = data.frame.iloc[train].reset_index(drop=True)
        table = audit(pool, (ac[train], ar[train]))
        calibrated = calibrate_audit(pool, table, (ac[train], ar[train]),
                                     calibration=CalibrationConfig(calibrate=True, repeats=repeats))
        flagged = np.zeros(len(train), dtype=bool)
        for name in ("suspect_flip", "is_duplicate", "is_outlier", "identical"):
            flagged |= calibrated[name].to_numpy(dtype=bool)
        fixed_pool = fix_flips(calibrated, 0.5)
        fixed = train[fixed_pool]
        margins = {}

        def run(name: str, keep: np.ndarray, c=ec, r=er, d=data) -> None:
            selection = Selection.from_frame(pd.DataFrame({"index": np.arange(n), "selected": keep}), {"method": name},
                                             d.fingerprint)
            result = eval_probe(d, selection, embeddings=(c, r), test_fraction=0.2, seed=0, with_margins=True,
                                n_boot=200)
            margins[name] = (result["heldout_pairs"], result["heldout_margin"], result)

        everything = np.ones(n, dtype=bool)
        run("all", everything)
        keep_clean = everything.copy()
        keep_clean[train[flagged]] = False
        run("clean", keep_clean)
        # fix: the pool's likely flips swapped back (texts and features); held-out pairs untouched
        fixed_data = load_preferences(swap_labels(data.frame, fixed))
        back = np.zeros(n, dtype=bool)
        back[fixed] = True
        fc, fr = np.where(back[:, None], er, ec), np.where(back[:, None], ec, er)
        run("fix", everything, fc, fr, fixed_data)
        for seed in range(random_seeds):
            keep = everything.copy()
            keep[np.random.default_rng(100 + seed).choice(train, int(flagged.sum()), replace=False)] = False
            run(f"random_{seed}", keep)
        pairs = margins["all"][0]
        assert all((m[0] == pairs).all() for m in margins.values())  # the same held-out pairs everywhere
        acc = {k: success(m[1]) for k, m in margins.items()}
        loss = {k: bt_log_loss(m[1]) for k, m in margins.items()}
        acc["random"] = np.mean([acc[f"random_{s}"] for s in range(random_seeds)], axis=0)
        loss["random"] = np.mean([loss[f"random_{s}"] for s in range(random_seeds)], axis=0)
        truth_pool = flip[train]
        out[label] = {
            "planted_flips_in_pool": int(flip.sum()), "dropped_by_clean": int(flagged.sum()),
            "swapped_by_fix": int(len(fixed)),
            "swapped_that_were_planted": int(flip[fixed].sum()) if rate else None,
            "clean_drops_that_were_planted": int((flagged & truth_pool).sum()) if rate else None,
            "accuracy": {k: _r(float(acc[k].mean())) for k in ("all", "clean", "fix", "random")},
            "log_loss": {k: _r(float(loss[k].mean())) for k in ("all", "clean", "fix", "random")},
            "length_baseline": _r(margins["all"][2].get("length_baseline")),
            "clean_minus_random": {"accuracy": _paired(acc["clean"], acc["random"], n_boot),
                                   "log_loss": _paired(loss["clean"], loss["random"], n_boot, lower_is_better=True)},
            "fix_minus_random": {"accuracy": _paired(acc["fix"], acc["random"], n_boot),
                                 "log_loss": _paired(loss["fix"], loss["random"], n_boot, lower_is_better=True)},
            "fix_minus_all": {"accuracy": _paired(acc["fix"], acc["all"], n_boot),
                              "log_loss": _paired(loss["fix"], loss["all"], n_boot, lower_is_better=True)},
            "clean_minus_all": {"accuracy": _paired(acc["clean"], acc["all"], n_boot),
                                "log_loss": _paired(loss["clean"], loss["all"], n_boot, lower_is_better=True)},
            "calibration_sentences": calibrated.attrs["alignscope_audit"]["calibration"]["sentences"],
        }
        print("fix", label, out[label]["accuracy"], out[label]["fix_minus_random"]["accuracy"], flush=True)
    out["note"] = ("log_loss: lower is better, so a negative difference favours the method. random drops as many "
                   "pool pairs as clean, 5 seeds averaged per held-out pair. The verdicts read the intervals "
                   f"corrected for the {COMPARISONS} comparisons on the same held-out pairs.")
    return out


def speed_part(n: int) -> dict:
    from alignscope.audit import audit, fit_bt_probe
    from alignscope.data.preferences import load_preferences

    full = load_preferences(SHARED_DATA / "alpaca_eval_pairs.jsonl.gz")
    base = np.arange(min(n, full.n_pairs))
    extra = np.random.default_rng(0).choice(full.n_pairs, max(0, n - full.n_pairs), replace=False)
    frame = full.frame.iloc[np.concatenate([base, extra])].reset_index(drop=True)
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(50, 384)).astype(np.float32)

    def sample(m: int) -> np.ndarray:
        X = centres[rng.integers(0, 50, m)] + 0.7 * rng.normal(size=(m, 384)).astype(np.float32)
        return X / np.linalg.norm(X, axis=1, keepdims=True)

    chosen, rejected = sample(n), sample(n)
    started = time.perf_counter()
    table = audit(frame, (chosen, rejected))
    total = time.perf_counter() - started
    diff = (chosen - rejected)[:min(n, 80_000)]
    t0 = time.perf_counter()
    w_half = fit_bt_probe(diff)
    half_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    w_full = fit_bt_probe(diff, symmetric=True)
    full_s = time.perf_counter() - t0
    return {"n_pairs": n, "dim": 384, "texts": f"AlpacaEval ({min(n, full.n_pairs):,} pairs + {max(0, n - full.n_pairs):,} repeated)",
            "embeddings": f"synthetic {2 * n:,} x 384 unit rows (50 centres), not MiniLM",
            "audit_s": round(total, 2), "timings": table.attrs["alignscope_audit"]["timings"],
            "probe_fit_one_signed_copy_s": round(half_s, 2), "probe_fit_literal_2n_rows_s": round(full_s, 2),
            "probe_fit_speedup": round(full_s / half_s, 2),
            "probe_weights_max_abs_difference": float(np.abs(w_half - w_full).max()),
            "peak_rss_mib": round(peak_rss_mib(), 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="demo,signals,calibration,second,fix,speed")
    parser.add_argument("--encoder", default="static", help="features of the audit on real data (default static)")
    parser.add_argument("--demo-encoder", default="minilm", help="the demo's encoder (the app's default for it)")
    parser.add_argument("--eval-encoder", default="minilm", help="the probe evaluator's features in the fix part")
    parser.add_argument("--alpaca-sample", type=int, default=5000, help="AlpacaEval pairs (0 = all 61,952)")
    parser.add_argument("--rates", default="0.05,0.1,0.2")
    parser.add_argument("--calibrate-rates", default="0.1")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--fix-alpaca-sample", type=int, default=20000,
                        help="part fix_alpaca: AlpacaEval pairs (0 = all 61,952)")
    parser.add_argument("--fix-alpaca-eval-encoder", default="lsa",
                        help="part fix_alpaca: the probe evaluator's features (MiniLM on AlpacaEval is hours here)")
    parser.add_argument("--fix-rate", type=float, default=0.2, help="flips planted in the training pool (fix part)")
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--speed-pairs", type=int, default=100_000)
    parser.add_argument("--second-encoder", default="minilm",
                        help="part 'second': HH at 10 %% with this encoder's probe added to the stack")
    parser.add_argument("--merge", action="store_true",
                        help="keep the parts of results/audit.json that this run does not redo")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    rates = [float(x) for x in args.rates.split(",")]
    calibrate_rates = [float(x) for x in args.calibrate_rates.split(",")] if "calibration" in parts else []
    started = time.perf_counter()
    figures: dict = {}
    if args.merge and (RESULTS / "audit.json").exists():
        figures = json.loads((RESULTS / "audit.json").read_text())["figures"]
    figures.setdefault("sizes", {})
    for part in parts:
        figures["sizes"][part] = {k: v for k, v in vars(args).items() if k not in ("parts", "merge")}
    figures["full_size_command"] = FULL_COMMAND
    if "demo" in parts:
        figures["demo"] = demo_part(args.demo_encoder, args.repeats, args.n_boot)
        print("demo", figures["demo"]["combined_auc"], figures["demo"]["suspect_flip"], flush=True)
    if parts & {"signals", "calibration"}:
        signals, calibration = signals_part(_real_sets(args.alpaca_sample), args.encoder, rates, calibrate_rates,
                                            args.repeats, args.n_boot)
        figures["signals"] = signals
        figures["goal_at_10pct"] = goal_summary(signals)
        if calibration and any(calibration.values()):
            figures["calibration"] = calibration
    if "second" in parts:
        from alignscope.data.preferences import load_preferences

        hh = load_preferences(SHARED_DATA / "hh_harmless_test.jsonl.gz")
        figures["second_encoder_hh"] = second_encoder_part(hh, args.encoder, args.second_encoder, 0.1, args.n_boot)
        print("second", figures["second_encoder_hh"]["signal_auc"], figures["second_encoder_hh"]["combined_auc"])
    if "fix" in parts:
        from alignscope.data.preferences import load_preferences

        hh = load_preferences(SHARED_DATA / "hh_harmless_test.jsonl.gz")
        figures["remove_vs_fix_hh"] = fix_part(hh, args.encoder, args.eval_encoder, args.fix_rate, args.repeats,
                                               args.n_boot)
    if "fix_alpaca" in parts:
        alpaca = _alpaca_sample(args.fix_alpaca_sample)
        figures["remove_vs_fix_alpaca"] = {
            "alpaca_sample": alpaca.n_pairs,
            **fix_part(alpaca, args.encoder, args.fix_alpaca_eval_encoder, args.fix_rate, args.repeats, args.n_boot)}
    if "speed" in parts:
        figures["speed"] = speed_part(args.speed_pairs)
        print("speed", figures["speed"]["audit_s"], figures["speed"]["timings"], flush=True)
    figures["reviewed_examples"] = REVIEWED
    figures.setdefault("wall_s", {})
    if not isinstance(figures["wall_s"], dict):
        figures["wall_s"] = {}
    for key in [k for k in figures["wall_s"] if set(k.split(",")) & parts]:  # runs whose figures this one redid
        figures["wall_s"].pop(key)
    figures["wall_s"][",".join(sorted(parts))] = round(time.perf_counter() - started, 1)
    write_result("audit", figures)


if __name__ == "__main__":
    main()

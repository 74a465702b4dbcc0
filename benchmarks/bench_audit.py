"""The audit (core/audit.py) on planted and real defects, and its speed.

``python -m benchmarks.bench_audit [--alpaca-sample 1000] [--hh-plant-sample 1000] [--n-boot 1000]``

1. Demo data (3,000 pairs, planted defects known): flip AUC of ``flip_score`` against
   ``is_flipped`` and precision/recall of every flag with bootstrap 95 % intervals, beside the
   obvious alternatives: the same probe scored IN-sample (not cross-fitted), the length rule as a
   flip score, and exact-match deduplication of the normalised texts.
2. Real data: HH harmless test (all 2,312 pairs) and a seeded AlpacaEval sample (default 1,000
   pairs = 2,000 completions: MiniLM embeds ~10-20 long AlpacaEval texts/s on this shared 2-core
   CPU, so all 124k completions would take hours): counts per flag.
3. Planted defects in a seeded HH sample (default 1,000 pairs) at rates 5/10/20 %: flipped labels
   (chosen and rejected swapped, embeddings swapped with them) and near-copies (a pair repeated with
   one small edit per response: a word dropped, a word doubled or punctuation changed; the copies
   are embedded for real). Flip AUC against the planted flips, suspect-flip precision/recall,
   near-copy recall/precision (pair links).
4. Speed at 100k pairs: real texts (all 61,952 AlpacaEval pairs + 38,048 of them again) with a
   synthetic 200k × 384 completion matrix (MiniLM-like: unit rows around 50 centres), on this CPU;
   and the literal 2N-row probe fit beside the one-signed-copy fit the audit uses (same minimiser).

The 20 reviewed real pairs (``reviewed_examples``) were read by hand after a run: the audit is
seeded, so the same indices come back.

Writes ``results/audit.json``.
"""
from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import SHARED_DATA as _SHARED, peak_rss_mib, write_result

# ../shared/data beside the checkout; ALIGNSCOPE_SHARED_DATA names it for other layouts (worktrees)
SHARED_DATA = Path(os.environ.get("ALIGNSCOPE_SHARED_DATA", _SHARED))

RATES = (0.05, 0.10, 0.20)

# Read by hand after a run (dataset, pair index in that dataset's audit, what it really was).
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


def _counts(table: pd.DataFrame, summary: dict) -> dict:
    keys = ("n_pairs", "suspect_flip", "duplicates", "dup_groups", "outliers", "identical", "suspect_flip_rate",
            "duplicate_rate", "outlier_rate", "chosen_longer_share", "length_baseline", "length_baseline_direction",
            "mean_flip_score", "probe_oof_accuracy")
    out = {k: (round(summary[k], 4) if isinstance(summary[k], float) else summary[k]) for k in keys}
    out["timings"] = table.attrs["alignscope_audit"]["timings"]
    return out


# ------------------------------------------------------------------------------------ parts
def demo_part(n_boot: int) -> dict:
    from alignscope.audit import audit, audit_summary, fit_bt_probe, normalise_prompt, pair_matrices
    from alignscope.data.preferences import load_preferences
    from alignscope.embed.encoders import embed

    data = load_preferences("demo")
    emb = embed(data, "minilm", "completion", progress=False)
    table = audit(data, emb)
    frame = data.frame
    flipped = frame["is_flipped"].to_numpy(dtype=bool)
    flip_score = table["flip_score"].to_numpy()
    chosen, rejected = pair_matrices(emb, data.n_pairs)
    diff = chosen - rejected
    in_sample = 1.0 / (1.0 + np.exp(diff @ fit_bt_probe(diff)))
    length_flip = (table["rejected_words"] - table["chosen_words"]).to_numpy(dtype=float)  # shorter chosen = suspect
    # planted near-copies: truth groups (original's id) and the representative rule of the audit
    row_of = {int(i): r for r, i in enumerate(frame["id"])}
    truth_groups = np.full(len(frame), -1, dtype=np.int64)
    for row, original in enumerate(frame["duplicate_of"].astype(int)):
        if original >= 0:
            truth_groups[row] = truth_groups[row_of[original]] = original
    truth_dup = np.zeros(len(frame), dtype=bool)
    for g in np.unique(truth_groups[truth_groups >= 0]):
        members = np.nonzero(truth_groups == g)[0]
        truth_dup[members[1:]] = True  # all but the lowest index, as the audit keeps the lowest
    keys = [(normalise_prompt(p), normalise_prompt(c), normalise_prompt(r))
            for p, c, r in zip(data.texts("prompt"), data.texts("chosen"), data.texts("rejected"))]
    first: dict = {}
    exact = np.array([first.setdefault(k, i) for i, k in enumerate(keys)])
    exact_groups = np.where(pd.Series(exact).map(pd.Series(exact).value_counts()) > 1, exact, -1)
    low = frame["is_low_quality"].to_numpy(dtype=bool)
    return {
        "n_pairs": data.n_pairs,
        "flip_auc": round(_auc(flipped, flip_score), 4),
        "flip_auc_ci95": _boot(_auc, [flipped, flip_score], n_boot),
        "flip_auc_in_sample_probe": round(_auc(flipped, in_sample), 4),
        "flip_auc_length_rule": round(_auc(flipped, length_flip), 4),
        "suspect_flip_vs_is_flipped": _flag_report(flipped, table["suspect_flip"].to_numpy(), n_boot),
        "is_duplicate_vs_planted_copies": _flag_report(truth_dup, table["is_duplicate"].to_numpy(), n_boot),
        "duplicate_links": _link_scores(truth_groups, table["dup_group"].to_numpy()),
        "duplicate_links_exact_normalised_text": _link_scores(truth_groups, exact_groups),
        "is_outlier_vs_is_low_quality": _flag_report(low, table["is_outlier"].to_numpy(), n_boot),
        "outlier_score_auc_vs_is_low_quality": round(_auc(low, table["outlier_score"].to_numpy()), 4),
        "outliers_by_rejected_kind": {str(k): int(v) for k, v in
                                      frame.loc[table["is_outlier"].to_numpy(), "rejected_kind"].value_counts().items()},
        "identical": int(table["identical"].sum()),
        "summary": _counts(table, audit_summary(data, table)),
    }


def _alpaca_sample(n: int):
    from alignscope.data.preferences import load_preferences

    full = load_preferences(SHARED_DATA / "alpaca_eval_pairs.jsonl.gz")
    rows = np.sort(np.random.default_rng(0).choice(full.n_pairs, n, replace=False))
    return full, load_preferences(full.frame.iloc[rows].reset_index(drop=True))


def real_part(alpaca_n: int) -> tuple[dict, dict]:
    from alignscope.audit import audit, audit_summary
    from alignscope.data.preferences import load_preferences
    from alignscope.embed.encoders import embed

    out, tables = {}, {}
    hh = load_preferences(SHARED_DATA / "hh_harmless_test.jsonl.gz")
    _, alpaca = _alpaca_sample(alpaca_n)
    for name, data in (("hh_harmless_test_all", hh), (f"alpaca_eval_sample_{alpaca_n}", alpaca)):
        started = time.perf_counter()
        emb = embed(data, "minilm", "completion", progress=False)
        embed_s = time.perf_counter() - started
        table = audit(data, emb)
        summary = audit_summary(data, table)
        out[name] = {**_counts(table, summary), "embed_s_or_cache": round(embed_s, 1)}
        from alignscope.audit import pair_matrices

        chosen, rejected = pair_matrices(emb, data.n_pairs)
        # MiniLM keeps the first 256 tokens of prompt + answer: long prompts push the answer out
        out[name]["pairs_with_identical_embeddings"] = int((np.linalg.norm(chosen - rejected, axis=1) < 1e-4).sum())
        if "source" in summary["by_column"]:
            out[name]["by_source"] = [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()
                                       if k in ("value", "n_pairs", "suspect_flip_rate", "duplicate_rate",
                                                "outlier_rate", "chosen_longer_share", "length_baseline")}
                                      for row in summary["by_column"]["source"]]
        tables[name] = (data, table)
    return out, tables


def _edit(text: str, rng: np.random.Generator) -> str:
    """One small edit: drop a word, double a word, or change punctuation."""
    words = text.split(" ")
    kind = int(rng.integers(3))
    if kind == 2 or len(words) < 3:
        for old, new in ((".", "!"), (",", ";"), ("?", "?!")):
            if old in text:
                return text.replace(old, new, 1)
        return text + "."
    i = int(rng.integers(len(words)))
    if kind == 0:
        return " ".join(words[:i] + words[i + 1:])
    return " ".join(words[:i + 1] + [words[i]] + words[i + 1:])


def plant_part(sample_n: int, n_boot: int) -> dict:
    from alignscope.audit import audit, pair_matrices
    from alignscope.data.preferences import load_preferences
    from alignscope.embed.encoders import embed, embed_texts, join_prompt_completion

    hh = load_preferences(SHARED_DATA / "hh_harmless_test.jsonl.gz")
    emb = embed(hh, "minilm", "completion", progress=False)
    chosen_all, rejected_all = pair_matrices(emb, hh.n_pairs)
    rows = np.sort(np.random.default_rng(1).choice(hh.n_pairs, min(sample_n, hh.n_pairs), replace=False))
    base = hh.frame.iloc[rows][["prompt", "chosen", "rejected"]].reset_index(drop=True)
    base_c, base_r = chosen_all[rows], rejected_all[rows]
    out = {"sample_pairs": int(len(base))}
    # the unplanted sample: what the audit already flags there (natural noise)
    natural = audit(base, (base_c, base_r))
    for rate in RATES:
        rng = np.random.default_rng(int(rate * 1000))
        n = len(base)
        n_flip, n_copy = int(round(rate * n)), int(round(rate * n))
        flip = np.zeros(n, dtype=bool)
        flip[rng.choice(n, n_flip, replace=False)] = True
        frame = base.copy()
        c, r = base_c.copy(), base_r.copy()
        frame.loc[flip, ["chosen", "rejected"]] = frame.loc[flip, ["rejected", "chosen"]].to_numpy()
        c[flip], r[flip] = base_r[flip], base_c[flip]
        originals = rng.choice(np.nonzero(~flip)[0], n_copy, replace=False)
        copies = frame.iloc[originals].copy()
        copies["chosen"] = [_edit(t, rng) for t in copies["chosen"]]
        copies["rejected"] = [_edit(t, rng) for t in copies["rejected"]]
        texts = ([join_prompt_completion(p, x) for p, x in zip(copies["prompt"], copies["chosen"])]
                 + [join_prompt_completion(p, x) for p, x in zip(copies["prompt"], copies["rejected"])])
        started = time.perf_counter()
        new = embed_texts(texts, "minilm", progress=False)
        new = getattr(new, "matrix", new)
        embed_s = time.perf_counter() - started
        planted = pd.concat([frame, copies], ignore_index=True)
        pc = np.vstack([c, new[:n_copy]])
        pr = np.vstack([r, new[n_copy:]])
        table = audit(planted, (pc, pr))
        truth_flip = np.concatenate([flip, np.zeros(n_copy, dtype=bool)])
        truth_groups = np.full(len(planted), -1, dtype=np.int64)
        truth_groups[originals] = originals
        truth_groups[n + np.arange(n_copy)] = originals
        flag = table["suspect_flip"].to_numpy()
        score = table["flip_score"].to_numpy()
        # natural suspects of the unplanted sample are not counted against precision: report both
        natural_suspect = np.concatenate([natural["suspect_flip"].to_numpy(), np.zeros(n_copy, dtype=bool)])
        out[f"rate_{int(rate * 100)}pct"] = {
            "planted_flips": n_flip, "planted_copies": n_copy,
            "flip_auc": round(_auc(truth_flip, score), 4),
            "flip_auc_ci95": _boot(_auc, [truth_flip, score], n_boot),
            "suspect_flip": _flag_report(truth_flip, flag, n_boot),
            "suspect_flip_precision_excluding_natural_suspects": round(
                _pr(truth_flip[~natural_suspect | truth_flip], flag[~natural_suspect | truth_flip])[0], 4),
            "duplicate_links": _link_scores(truth_groups, table["dup_group"].to_numpy()),
            "copies_embedded_s": round(embed_s, 1),
        }
    out["natural_suspect_flip_rate_unplanted"] = round(float(natural["suspect_flip"].mean()), 4)
    out["natural_duplicates_unplanted"] = int(natural["is_duplicate"].sum())
    return out


def speed_part() -> dict:
    from alignscope.audit import audit, fit_bt_probe
    from alignscope.data.preferences import load_preferences

    full = load_preferences(SHARED_DATA / "alpaca_eval_pairs.jsonl.gz")
    n = 100_000
    extra = np.random.default_rng(0).choice(full.n_pairs, n - full.n_pairs, replace=False)
    frame = full.frame.iloc[np.concatenate([np.arange(full.n_pairs), extra])].reset_index(drop=True)
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(50, 384)).astype(np.float32)

    def sample(m: int) -> np.ndarray:
        X = centres[rng.integers(0, 50, m)] + 0.7 * rng.normal(size=(m, 384)).astype(np.float32)
        return X / np.linalg.norm(X, axis=1, keepdims=True)

    chosen, rejected = sample(n), sample(n)
    started = time.perf_counter()
    table = audit(frame, (chosen, rejected))
    total = time.perf_counter() - started
    diff = (chosen - rejected)[:80_000]
    t0 = time.perf_counter()
    w_half = fit_bt_probe(diff)
    half_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    w_full = fit_bt_probe(diff, symmetric=True)
    full_s = time.perf_counter() - t0
    return {"n_pairs": n, "dim": 384, "texts": "AlpacaEval (61,952 pairs + 38,048 repeated)",
            "embeddings": "synthetic 200k x 384 unit rows (50 centres), not MiniLM",
            "audit_s": round(total, 2), "timings": table.attrs["alignscope_audit"]["timings"],
            "probe_fit_80k_one_signed_copy_s": round(half_s, 2), "probe_fit_80k_literal_2n_rows_s": round(full_s, 2),
            "probe_fit_speedup": round(full_s / half_s, 2),
            "probe_weights_max_abs_difference": float(np.abs(w_half - w_full).max()),
            "peak_rss_mib": round(peak_rss_mib(), 1)}


def review_candidates(tables: dict, per_set: int = 22) -> list[dict]:
    """The top flagged pairs of each real set (for the hand review)."""
    from alignscope.data.preferences import render_text

    out = []
    for name, (data, table) in tables.items():
        flagged = table[table["reasons"] != ""]
        picks = pd.concat([flagged[flagged["suspect_flip"]].nlargest(per_set // 2, "flip_score"),
                           flagged[~flagged["suspect_flip"]].head(per_set // 2)])
        for i in picks["index"].tolist():
            out.append({"dataset": name, "index": int(i), "reasons": table.at[i, "reasons"],
                        "prompt": render_text(data.frame.at[i, "prompt"])[-400:],
                        "chosen": render_text(data.frame.at[i, "chosen"])[:400],
                        "rejected": render_text(data.frame.at[i, "rejected"])[:400]})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpaca-sample", type=int, default=1000)
    parser.add_argument("--hh-plant-sample", type=int, default=1000)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--candidates", default=None, help="write the flagged real pairs to review here (JSON)")
    args = parser.parse_args()
    started = time.perf_counter()
    figures: dict = {}
    figures["demo"] = demo_part(args.n_boot)
    print("demo", figures["demo"]["flip_auc"], figures["demo"]["duplicate_links"], flush=True)
    figures["real"], tables = real_part(args.alpaca_sample)
    print("real", {k: (v["suspect_flip"], v["duplicates"], v["outliers"]) for k, v in figures["real"].items()}, flush=True)
    figures["planted_hh"] = plant_part(args.hh_plant_sample, args.n_boot)
    print("planted", {k: v for k, v in figures["planted_hh"].items() if k.startswith("rate")}, flush=True)
    figures["speed_100k"] = speed_part()
    print("speed", figures["speed_100k"]["audit_s"], figures["speed_100k"]["timings"], flush=True)
    figures["reviewed_examples"] = REVIEWED
    flips = [r["verdict"].split(":")[0].split(" (")[0] for r in REVIEWED if r["flag"] == "suspect_flip"]
    figures["reviewed_suspect_flips"] = {
        "n": len(flips), "likely_flipped_or_questionable": sum(v in ("likely flipped", "questionable label") for v in flips),
        "ambiguous": flips.count("ambiguous"), "label_correct": flips.count("label correct")}
    figures["wall_s"] = round(time.perf_counter() - started, 1)
    if args.candidates:
        import json

        Path(args.candidates).write_text(json.dumps(review_candidates(tables), indent=1, ensure_ascii=False))
    path = write_result("audit", figures)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()

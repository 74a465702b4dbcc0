"""The pair selectors (length, margin, rds, lm-margin) against random at the same size, on HH and AlpacaEval.

    python -m benchmarks.bench_selectors [--datasets hh,alpaca] [--alpaca-sample 10000] [--hh-sample 0]
        [--fractions 0.1,0.25,0.5] [--seeds 0,1,2] [--encoder static] [--eval-encoder static]
        [--variants length,length:chosen,margin:easy,margin:hard,margin:middle,rds,rds:prompt+chosen]
        [--lm-sample 300] [--lm-model tiny] [--lm-max-length 256] [--lm-device cuda|cpu] [--n-boot 2000]
        [--name selectors] [--merge]

Data: ../shared/data/hh_harmless_test.jsonl.gz (all 2,312 pairs by default) and a seeded sample of
../shared/data/alpaca_eval_pairs.jsonl.gz (skipped with a message when absent).

On each data set: ONE seeded 80/20 split (``test_fraction=0.2``, ``split_seed=0``, as training,
``eval-probe`` and sweeps use); every variant ranks all pairs with
:func:`alignscope.select.selectors.select_data` (completion embeddings computed once with
``--encoder`` and passed in as ``embeddings=``), and at each fraction the top
``round(fraction · n_pool)`` TRAINING pairs are kept (held-out pairs never, exactly as a sweep point
does with :func:`alignscope.scaling.sweep.training_pairs_table`), so every variant and random train on
the same number of pairs. Each subset is scored by the probe evaluator
(:func:`alignscope.evaluate.probe.eval_probe`: a Bradley–Terry linear reward model on frozen
``--eval-encoder`` embeddings of the selected pairs, scored on every held-out pair): a PROXY for
training, seconds on a CPU.

Differences to random are paired: each of ``--n-boot`` replicates resamples the held-out pairs and
the seeds together (the same resample for the variant and for random), in three metrics (accuracy,
length-controlled accuracy, log loss). Two intervals per difference: the plain 95 % one, and one
corrected for the number of comparisons of that data set and metric (Bonferroni: level
``1 − 0.05/m``); the verdict ("better than random", "worse than random", "no resolved difference")
uses the corrected one.

Circularity: ``margin`` fits the same kind of probe the evaluator fits; when ``--encoder`` equals
``--eval-encoder`` its features are the evaluator's, and the selection and this file say
``circular: true`` (a circular "win" is not evidence). ``rds`` reads the same encoder's prompt
embeddings, which the evaluator does not read (it reads completion differences), so eval_probe's
own ``circular`` flag (same encoder name) is recorded beside it for the reader to judge.

``lm-margin`` runs on a seeded ``--lm-sample`` of HH pairs (its own split and probe, same protocol)
with ``--lm-model`` (GPU when present; on a CPU the benchmark lifts ``cpu_max_pairs`` to the sample). The ``tiny`` model has RANDOM weights: this proves the plumbing
(batched log-probabilities, the cache, the ETA, the selection → probe path), not the method.

Writes ``results/<--name>.json`` ({"benchmark", "machine", "figures"}). Embeddings and the lm-margin
cache live under ``$ALIGNSCOPE_HOME``.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, SHARED_DATA, peak_rss_mib, write_result

HH = SHARED_DATA / "hh_harmless_test.jsonl.gz"
ALPACA = SHARED_DATA / "alpaca_eval_pairs.jsonl.gz"
TEST_FRACTION = 0.2
SPLIT_SEED = 0
METRICS = ("accuracy", "length_controlled_accuracy", "log_loss")
LOWER_IS_BETTER = {"log_loss"}
DEFAULT_VARIANTS = "length,length:chosen,margin:easy,margin:hard,margin:middle,rds,rds:prompt+chosen"


def _list(text: str, cast=str) -> list:
    return [cast(part) for part in str(text).replace(" ", "").split(",") if part]


def variant_options(label: str, eval_encoder: str) -> tuple[str, dict[str, Any]]:
    """``"margin:hard"`` → ``("margin", {"keep": "hard", "eval_encoder": ...})`` and so on."""
    method, _, variant = label.partition(":")
    if method == "length":
        return method, {"by": variant or "gap"}
    if method == "margin":
        return method, {"keep": variant or "easy", "eval_encoder": eval_encoder}
    if method == "rds":
        return method, {"query": variant or "prompt"}
    if method == "lm-margin":
        return method, {"keep": variant or "easy"}
    raise SystemExit(f"unknown variant {label!r}")


def load(path, sample: int):
    from alignscope.data.preferences import load_preferences

    data = load_preferences(str(path))
    if sample and sample < len(data):
        rows = np.sort(np.random.default_rng(0).choice(len(data), size=sample, replace=False))
        data = load_preferences(data.frame.iloc[rows].reset_index(drop=True))
    return data


def paired_comparisons(margins: dict, length_diff: np.ndarray, variants: list[str], fractions: list[float],
                       seeds: list[int], n_boot: int) -> dict[str, Any]:
    """Variant − random at each fraction, per metric: the seed-mean difference, its 95 % interval and
    its Bonferroni-corrected interval over the ``len(variants) · len(fractions)`` comparisons, from
    replicates that resample held-out pairs and seeds together."""
    from alignscope.evaluate.metrics import metric_values, resampled_metric

    rng = np.random.default_rng(12345)
    n = len(length_diff)
    weights = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)]).astype(float)
    seed_draws = rng.integers(0, len(seeds), size=(n_boot, len(seeds)))
    m = len(variants) * len(fractions)
    level = 0.05 / m
    out: dict[str, Any] = {"n_comparisons": m, "corrected_level": 1 - level, "metrics": {}}
    for metric in METRICS:
        lower = metric in LOWER_IS_BETTER
        per_metric: dict[str, Any] = {}

        def replicate_means(label, fraction):
            values = np.stack([resampled_metric(margins[(label, fraction, s)], length_diff, metric, weights)
                               for s in seeds])  # (seeds, B)
            return values[seed_draws, np.arange(n_boot)[:, None]].mean(axis=1)  # (B,)

        for label in variants:
            rows = []
            for fraction in fractions:
                point = [metric_values(margins[(label, fraction, s)], length_diff, metric) for s in seeds]
                base = [metric_values(margins[("random", fraction, s)], length_diff, metric) for s in seeds]
                draws = replicate_means(label, fraction) - replicate_means("random", fraction)
                ci = [float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))]
                wide = [float(np.quantile(draws, level / 2)), float(np.quantile(draws, 1 - level / 2))]
                better = wide[1] < 0 if lower else wide[0] > 0
                worse = wide[0] > 0 if lower else wide[1] < 0
                rows.append({"fraction": fraction, "score": float(np.mean(point)), "random": float(np.mean(base)),
                             "difference": float(np.mean(point) - np.mean(base)), "ci95": ci, "ci_corrected": wide,
                             "verdict": "better than random" if better else "worse than random" if worse
                             else "no resolved difference"})
            per_metric[label] = rows
        out["metrics"][metric] = per_metric
    return out


def verdict_lines(comparisons: dict[str, Any], metric: str) -> list[str]:
    lines = []
    for label, rows in comparisons["metrics"][metric].items():
        parts = [f"{r['fraction']:.0%}: {r['difference']:+.3f} [{r['ci_corrected'][0]:+.3f}, {r['ci_corrected'][1]:+.3f}]"
                 f"{'' if r['verdict'].startswith('no') else ' ' + r['verdict'].split(' ')[0].upper()}" for r in rows]
        lines.append(f"{label} − random ({metric}, corrected intervals): " + "; ".join(parts))
    return lines


def run_dataset(name: str, data, *, variants: list[str], fractions: list[float], seeds: list[int], encoder: str,
                eval_encoder: str, n_boot: int, lm_model: str | None = None, lm_max_length: int = 256,
                lm_device: str | None = None) -> dict[str, Any]:
    from alignscope.embed.encoders import embed
    from alignscope.evaluate.evaluators import split_pairs
    from alignscope.evaluate.probe import eval_probe
    from alignscope.evaluate.metrics import pair_word_lengths
    from alignscope.scaling.measure import training_pairs_table
    from alignscope.scaling.sweep import pair_count
    from alignscope.select.selectors import select_data

    started = time.perf_counter()
    n = len(data)
    _, test_pairs = split_pairs(n, TEST_FRACTION, SPLIT_SEED)
    n_pool = n - len(test_pairs)
    timings: dict[str, float] = {}
    t = time.perf_counter()
    features = embed(data, encoder, "completion", progress=False)
    judge = features if eval_encoder == encoder else embed(data, eval_encoder, "completion", progress=False)
    timings["embed_s"] = round(time.perf_counter() - t, 2)

    def probe(selection):
        result = eval_probe(data, selection, embeddings=judge, test_fraction=TEST_FRACTION, seed=SPLIT_SEED,
                            n_boot=200, with_margins=True)
        return result, result.pop("heldout_margin"), result.pop("heldout_pairs")

    reference, _, heldout = probe(None)  # every training pair: the ceiling of this protocol
    chosen_words, rejected_words = pair_word_lengths(data, heldout)
    length_diff = chosen_words.astype(float) - rejected_words.astype(float)
    margins: dict[tuple, np.ndarray] = {}
    info: dict[str, Any] = {}
    labels = ["random", *variants]
    for label in labels:
        method, options = ("random", {}) if label == "random" else variant_options(label, eval_encoder)
        if method == "lm-margin":
            options.update(model=lm_model, max_length=lm_max_length, device=lm_device, cpu_max_pairs=max(n, 1))
        t = time.perf_counter()
        for seed in seeds:
            messages: list[str] = []
            unit = "pair" if method == "random" else None
            ranking = select_data(data, method, encoder=encoder, unit=unit, embeddings=features, k=n, seed=seed,
                                  on_progress=lambda fraction, message: messages.append(message), **options)
            for fraction in fractions:
                table = training_pairs_table(ranking, test_pairs, n, pair_count(fraction, n_pool))
                result, margin, pairs = probe(table)
                if not np.array_equal(pairs, heldout):
                    raise SystemExit("the held-out pairs differ between points")
                margins[(label, fraction, seed)] = margin
                entry = info.setdefault(label, {"method": method, "options": {k: v for k, v in options.items()},
                                                "selection_circular": ranking.config.get("circular"),
                                                "probe_circular": result["circular"], "n_train_pairs": {}})
                entry["n_train_pairs"][str(fraction)] = result["n_train"]
            if method == "lm-margin" and "lm" not in info[label]:  # the first seed: the model pass (or the cache)
                info[label]["lm"] = ranking.config.get("lm")
                info[label]["eta_messages"] = [m for m in messages if "about" in m][:1]
        timings[f"{label}_s"] = round(time.perf_counter() - t, 2)
    comparisons = paired_comparisons(margins, length_diff, variants, fractions, seeds, n_boot)
    return {
        "n_pairs": n, "n_heldout": len(heldout), "n_pool": n_pool, "encoder": encoder, "eval_encoder": eval_encoder,
        "fractions": fractions, "seeds": seeds,
        "all_training_pairs": {k: reference.get(k) for k in ("accuracy", "accuracy_ci95", "length_controlled_accuracy",
                                                              "length_controlled_ci95", "log_loss", "length_baseline",
                                                              "length_baseline_direction", "length_baseline_log_loss")},
        "variants": info, "comparisons": comparisons,
        "verdicts": {metric: verdict_lines(comparisons, metric) for metric in METRICS},
        "timings_s": timings, "wall_s": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_selectors")
    parser.add_argument("--datasets", default="hh,alpaca")
    parser.add_argument("--hh-sample", type=int, default=0, help="pairs drawn (seed 0) from HH; 0 = all 2,312")
    parser.add_argument("--alpaca-sample", type=int, default=10000, help="pairs drawn (seed 0) from AlpacaEval")
    parser.add_argument("--fractions", default="0.1,0.25,0.5")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--encoder", default="static", help="the selectors' features")
    parser.add_argument("--eval-encoder", default="static", help="the probe evaluator's features")
    parser.add_argument("--variants", default=DEFAULT_VARIANTS)
    parser.add_argument("--lm-sample", type=int, default=300, help="HH pairs for lm-margin (0 = skip)")
    parser.add_argument("--lm-model", default="tiny")
    parser.add_argument("--lm-max-length", type=int, default=256)
    parser.add_argument("--lm-device", default=None, help="torch device for lm-margin (default: a GPU when present)")
    parser.add_argument("--n-boot", type=int, default=2000)
    parser.add_argument("--name", default="selectors")
    parser.add_argument("--merge", action="store_true",
                        help="keep the data sets (and lm-margin part) an earlier run wrote to the same file and add this "
                             "run's: a long benchmark in pieces of a few minutes each")
    args = parser.parse_args(argv)
    fractions, seeds, variants = _list(args.fractions, float), _list(args.seeds, int), _list(args.variants)
    common = dict(fractions=fractions, seeds=seeds, encoder=args.encoder, eval_encoder=args.eval_encoder,
                  n_boot=args.n_boot)
    started = time.perf_counter()
    figures: dict[str, Any] = {
        "command": "python -m benchmarks.bench_selectors " + " ".join(sys.argv[1:] if argv is None else argv),
        "protocol": "probe evaluator (a proxy for training) on one 80/20 split; every variant and random train on the "
                    "same number of pairs; paired bootstrap over held-out pairs and seeds; verdicts on intervals "
                    "Bonferroni-corrected over the comparisons of a data set and metric",
        "datasets": {}, "skipped": []}
    sources = {"hh": (HH, args.hh_sample), "alpaca": (ALPACA, args.alpaca_sample)}
    for name in _list(args.datasets):
        path, sample = sources[name]
        if not path.exists():
            figures["skipped"].append(f"{name}: {path} is absent")
            continue
        t = time.perf_counter()
        data = load(path, sample)
        print(f"{name}: {len(data):,} pairs loaded in {time.perf_counter() - t:.1f} s", file=sys.stderr)
        figures["datasets"][name] = run_dataset(name, data, variants=variants, **common)
        for line in figures["datasets"][name]["verdicts"]["length_controlled_accuracy"]:
            print("  " + line, file=sys.stderr)
    if args.lm_sample and HH.exists():
        data = load(HH, args.lm_sample)
        result = run_dataset("hh-lm", data, variants=["lm-margin:easy", "lm-margin:hard"], lm_model=args.lm_model,
                             lm_max_length=args.lm_max_length, lm_device=args.lm_device, **common)
        device = result["variants"]["lm-margin:easy"]["lm"].get("device", "?")
        result["note"] = (f"{args.lm_model} on {device}, {len(data)} HH pairs. The tiny model has random weights: this "
                          "proves the path (batched log-probabilities, cache, measured ETA, selection → probe), "
                          "not the method." if args.lm_model == "tiny" else f"{args.lm_model} on {device}")
        figures["lm_margin"] = result
    figures["wall_s"] = round(time.perf_counter() - started, 1)
    figures["peak_rss_mib"] = round(peak_rss_mib(), 1)
    earlier = RESULTS / f"{args.name}.json"
    if args.merge and earlier.exists():
        before = json.loads(earlier.read_text())["figures"]
        figures["datasets"] = {**before.get("datasets", {}), **figures["datasets"]}
        if "lm_margin" not in figures and "lm_margin" in before:
            figures["lm_margin"] = before["lm_margin"]
        figures["command"] = [*([before["command"]] if isinstance(before["command"], str) else before["command"]),
                              figures["command"]]
        figures["wall_s"] = round(before.get("wall_s", 0) + figures["wall_s"], 1)
    write_result(args.name, figures)


if __name__ == "__main__":
    main()

"""Spectral imbalance (Kaushik et al., ICML 2024, arXiv:2402.11742) on the AlpacaEval pairs.

``python -m benchmarks.bench_spectra [--per-source N] [--encoders a,b]``

1. Speed: the full metric computation (balancing, covariance, eigen-spectra, 100 bootstrap
   replicates per group, imbalance scores; with and without the probe) on 50,000 × 384 random
   float32 rows in 2 groups.
2. AlpacaEval pairs grouped by ``source`` (5 values): a seeded sample of N pairs per source
   (default 1,000 pairs = 2,000 completions per source, 10,000 completions per encoder; embedding
   all 123,904 completions with MiniLM takes hours on this shared 2-core CPU), embedded with each
   encoder (default ``minilm`` and ``lm-last-token:tiny``), then ``spectral_imbalance`` over
   ``source`` with 100 bootstrap replicates. ``lm-last-token:tiny`` is a random-init 2-layer model:
   a control, not a real encoder.

Writes ``results/spectra_alpaca.json`` and the tables/plots of ``alignscope spectra`` under
``results/spectra_alpaca/``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import RESULTS, SHARED_DATA, peak_rss_mib, write_result


def time_random(n: int = 50_000, d: int = 384, seed: int = 0) -> dict:
    from alignscope.spectra import spectral_imbalance

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)).astype(np.float32)
    groups = np.array(["a", "b"])[rng.integers(0, 2, n)]
    out = {"n": n, "d": d, "groups": 2, "n_boot": 100}
    for probe in (False, True):
        started = time.perf_counter()
        report = spectral_imbalance(X, groups, n_boot=100, probe=probe, seed=seed)
        out[f"seconds_{'with' if probe else 'without'}_probe"] = round(time.perf_counter() - started, 2)
    out["trace_ratio_on_iid_data"] = round(report.imbalance["trace_ratio"], 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--per-source", type=int, default=1000, help="pairs per source (default 1000)")
    parser.add_argument("--encoders", default="minilm,lm-last-token:tiny")
    args = parser.parse_args()
    figures: dict = {"random_50k_x_384": time_random()}
    print(figures)
    path = SHARED_DATA / "alpaca_eval_pairs.jsonl.gz"
    if not path.exists():
        figures["alpaca"] = f"skipped: {path} is absent"
        write_result("spectra_alpaca", figures)
        return
    from alignscope.data.preferences import load_preferences
    from alignscope.spectra import sample_pairs
    from alignscope.cli.spectra import run_spectra

    data = load_preferences(str(path))
    sample = sample_pairs(data, "source", args.per_source, seed=0)
    encoders = [e for e in args.encoders.split(",") if e]
    per_encoder = {}
    for name in encoders:  # embed first, timed separately (cached for run_spectra)
        from alignscope.embed.encoders import embed

        started = time.perf_counter()
        emb = embed(sample, name, "completion", progress=False)
        per_encoder[name] = {"embed_seconds": round(time.perf_counter() - started, 1), "dim": emb.dim,
                             "from_cache": emb.from_cache}
    started = time.perf_counter()
    result = run_spectra(sample, encoders, "source", RESULTS / "spectra_alpaca", n_boot=100, seed=0)
    import pandas as pd

    metrics = pd.read_csv(RESULTS / "spectra_alpaca" / "metrics.csv")
    for row in result["summary"]:
        name = row["encoder"]
        groups = metrics[metrics["encoder"] == name]
        per_encoder[name].update({k: row[k] for k in row if k not in ("encoder",)})
        per_encoder[name]["per_source"] = groups[["group", "trace", "lambda1", "effective_rank", "alpha",
                                                  "probe_error", "ovr_error", "predicted_error"]] \
            .round(4).to_dict(orient="records")
    figures["alpaca"] = {"pairs_total": data.n_pairs, "sample": f"{args.per_source} pairs per source, seed 0",
                         "completions_per_encoder": 2 * sample.n_pairs,
                         "sources": sorted(sample.frame["source"].astype(str).unique().tolist()),
                         "analysis_seconds_all_encoders": round(time.perf_counter() - started, 1),
                         "encoders": per_encoder, "files": result["files"]}
    figures["peak_rss_mib"] = round(peak_rss_mib(), 1)
    write_result("spectra_alpaca", figures)


if __name__ == "__main__":
    main()

"""2-D maps at scale: how long each projection takes and how faithful it is (issue 30).

    python -m benchmarks.bench_projection [--n 123904] [--fit 20000] [--sample 5000] [--methods pca,umap]

Reads the completion embedding of the AlpacaEval pairs (the static-encoder job that
``benchmarks.bench_pages`` computes in ``$ALIGNSCOPE_HOME``; ``--synthetic N`` uses seeded clustered
vectors instead, e.g. a million), takes ``--n`` rows and times each projection of
:mod:`alignscope.embed.projection`:

* ``pca``: two principal components (what the Map shows at once);
* ``umap``: UMAP fitted on a seeded sample of ``--fit`` rows, every other row placed by
  ``UMAP.transform`` in chunks (what the Map's ``map`` job computes);
* ``umap-full`` (only when ``--n`` ≤ 30,000): UMAP fitted on every row, the reference.

Quality: trustworthiness (Venna & Kaski 2001; ``sklearn.manifold.trustworthiness``, 10 neighbours)
of each map on the same seeded sample of ``--sample`` rows, against the 50-dimensional PCA of the
embedding that UMAP itself reads, on 5 seeded samples of ``--sample`` rows (mean, and mean ±
1.96·sd/√5 as a 95 % interval), beside the trivial baseline (random 2-D coordinates) it must beat. Writes
``results/projection.json`` (``projection_<n>.json`` for other sizes).
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

from benchmarks.common import write_result


def _embedding(n: int, synthetic: int | None, seed: int = 0) -> tuple[np.ndarray, str]:
    if synthetic:
        rng = np.random.default_rng(seed)
        centres = rng.normal(scale=3.0, size=(24, 64)).astype(np.float32)
        matrix = centres[rng.integers(0, 24, synthetic)] + rng.normal(size=(synthetic, 64)).astype(np.float32)
        return matrix[:n], f"synthetic clustered gaussian, {synthetic:,} × 64"
    from alignscope.data.preferences import load_preferences
    from alignscope.embed.tasks import load_embed_result
    from alignscope.jobs import JobStore

    from benchmarks.common import SHARED_DATA

    data = load_preferences(str(SHARED_DATA / "alpaca_eval_pairs.jsonl.gz"))
    job = next((j for j in JobStore().list_jobs(kind="embed", limit=500)
                if j.status == "succeeded" and j.config.get("data", {}).get("fingerprint") == data.fingerprint
                and j.config.get("encoder") == "static" and j.config.get("unit") == "completion"), None)
    if job is None:
        raise SystemExit("no static embedding of AlpacaEval: run python -m benchmarks.bench_pages first")
    matrix = load_embed_result(job.run_dir).matrix
    rows = np.sort(np.random.default_rng(seed).choice(len(matrix), size=min(n, len(matrix)), replace=False))
    return matrix[rows], f"AlpacaEval completions, static encoder, {len(rows):,} of {len(matrix):,}"


def _trust(reference: np.ndarray, coords: np.ndarray, samples: list[np.ndarray]) -> dict:
    """Trustworthiness on each seeded sample of rows: the mean and mean ± 1.96·sd/√k (k samples)."""
    from sklearn.manifold import trustworthiness

    values = [float(trustworthiness(reference[rows], coords[rows], n_neighbors=10)) for rows in samples]
    mean, half = statistics.mean(values), 1.96 * statistics.stdev(values) / np.sqrt(len(values))
    return {"trustworthiness": round(mean, 4), "interval_95": [round(float(mean - half), 4), round(float(mean + half), 4)],
            "per_sample": [round(v, 4) for v in values]}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_projection")
    parser.add_argument("--n", type=int, default=123_904)
    parser.add_argument("--synthetic", type=int, default=None, help="seeded clustered vectors instead of AlpacaEval")
    parser.add_argument("--fit", type=int, default=20_000, help="rows UMAP is fitted on")
    parser.add_argument("--sample", type=int, default=5_000, help="rows trustworthiness is measured on")
    parser.add_argument("--methods", default="pca,umap")
    args = parser.parse_args(argv)
    from alignscope.embed.projection import pca_2d, umap_2d

    matrix, source = _embedding(args.n, args.synthetic)
    n = len(matrix)
    figures: dict = {"source": source, "n": n, "fit_rows": args.fit, "sample": args.sample,
                     "load_average_before": [round(x, 2) for x in os.getloadavg()], "methods": {}}
    started = time.perf_counter()
    reference = pca_2d(matrix, n_components=50) if matrix.shape[1] > 50 else matrix
    figures["pca50_s"] = round(time.perf_counter() - started, 2)
    samples = [np.sort(np.random.default_rng(seed).choice(n, size=min(args.sample, n), replace=False))
               for seed in range(1, 6)]
    figures["random_baseline"] = _trust(reference, np.random.default_rng(0).normal(size=(n, 2)), samples)
    # numba compiles UMAP's and NN-descent's functions on first use (tens of seconds): once, untimed.
    warm = np.random.default_rng(3).normal(size=(600, matrix.shape[1])).astype(np.float32)
    umap_2d(warm, max_fit=300)
    methods = [m for m in args.methods.split(",") if m]
    if n <= 30_000 and "umap-full" not in methods:
        methods.append("umap-full")
    for method in methods:
        started = time.perf_counter()
        if method == "pca":
            coords = pca_2d(matrix)
        elif method == "umap-full":
            coords = umap_2d(matrix, max_fit=n)
        else:
            coords = umap_2d(matrix, max_fit=args.fit)
        seconds = time.perf_counter() - started
        figures["methods"][method] = {"seconds": round(seconds, 1), "per_million_s": round(seconds / n * 1e6, 1),
                                      **_trust(reference, coords, samples)}
        print(method, figures["methods"][method], flush=True)
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    write_result("projection" if n == 123_904 and not args.synthetic else f"projection_{n}", figures)


if __name__ == "__main__":
    main()

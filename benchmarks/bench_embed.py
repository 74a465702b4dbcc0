"""Encoders side by side: the static encoder vs plain model2vec, its tokenizer, MiniLM and sentence-transformers.

    python -m benchmarks.bench_embed [--alpaca-pairs 2000] [--hh-pairs N] [--time-share 0.1] [--st-share 0.05]
                                     [--chunks 4] [--skip-all] [--speed-only]

Full size (a quiet machine; MiniLM embeds both samples once for the quality figures, then they
are cached): ``python -m benchmarks.bench_embed``. Speed only, under 3 minutes on 2 cores:
``python -m benchmarks.bench_embed --speed-only --alpaca-pairs 1000`` (no HH set, no quality
figures, no run on all AlpacaEval completions).

Data (../shared/data, skipped with a message when absent): a seeded sample of ``--alpaca-pairs``
AlpacaEval pairs (2 completions each) and ALL 2,312 HH-harmless test pairs. Texts are the element
texts of :func:`alignscope.embed.encoders.element_texts` (prompt + completion); every encoder is timed on
the same DISTINCT texts of each set (what alignscope encodes since it deduplicates).

Measured in one run, on the same texts, model loading excluded:

* ``static``: the product's path, ``embed_texts(texts, "static")`` (Model2Vec distilled once from
  the packaged all-MiniLM-L6-v2; its one-time distillation time is read from the model folder, or
  measured now when this machine has not built it yet);
* ``model2vec``: plain ``StaticModel.encode(texts)`` of the same model at its defaults;
  ``model2vec_threads``: with its threaded batches (``use_multiprocessing``) forced on (it sets
  ``TOKENIZERS_PARALLELISM=false`` for the process; the benchmark restores the variable after it);
* ``tokenizer``: the model's own Rust tokenizer, ``encode_batch_fast`` of the texts cut as model2vec
  cuts them and truncated at 512 tokens, nothing else: the limit of any static encoder here;
* ``minilm``: the product's MiniLM path, ``embed_texts(texts, "minilm")`` (bf16 on AMX CPUs);
* ``st_fp32``: ``SentenceTransformer(<packaged MiniLM>).encode(texts, batch_size=32)`` in fp32.
  The transformer encoders are timed on the first ``--time-share`` (MiniLM) and ``--st-share``
  (sentence-transformers) of every chunk only: they are 30-100x slower and a rate needs no more;
* ``static`` on ALL 123,904 AlpacaEval completions through ``embed()`` (dedupe included; the
  target is 60 s on 2 cores), unless ``--skip-all``.

Methods take turns chunk by chunk (the machine is shared; its load average is recorded). Quality
of static against MiniLM on each set uses every completion, embedded through ``embed()`` and its
cache under ``ALIGNSCOPE_HOME`` (so a rerun does not embed the whole sample with MiniLM again):
kNN@10 agreement (share of the 10 cosine neighbours of a distinct text that both encoders find;
chance = 10/(n-1)), overlap of the ISA subsets at 10 %
(``select(emb, "isa", fraction=0.1)``; chance = 0.10), and a Bradley–Terry linear probe on
``e_c - e_r`` (symmetric logistic regression without intercept, C = 1, as
``alignscope.evaluate.probe.probe_accuracy``) fitted on a seeded 80/20 split of pairs (the same split for
both encoders), scored with ``alignscope.evaluate.metrics.preference_metrics``: accuracy and
length-controlled accuracy with paired bootstrap intervals, beside the length rule learned from
the training pairs. Writes ``benchmarks/results/embed_static.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

from benchmarks.common import SHARED_DATA, peak_rss_mib, write_result

ALPACA = SHARED_DATA / "alpaca_eval_pairs.jsonl.gz"
HH = SHARED_DATA / "hh_harmless_test.jsonl.gz"
K = 10


def _load(path, pairs: int | None, seed: int):
    from alignscope.data.preferences import load_preferences

    data = load_preferences(path)
    if pairs is None or pairs >= data.n_pairs:
        return data
    rows = np.sort(np.random.default_rng(seed).choice(data.n_pairs, size=pairs, replace=False))
    return load_preferences(data.frame.iloc[rows].reset_index(drop=True))


def _knn(matrix: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k nearest rows by cosine, self excluded: int ``(n, k)``."""
    x = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    out = np.empty((len(x), k), dtype=np.int64)
    for start in range(0, len(x), 2048):
        sims = x[start:start + 2048] @ x.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf
        part = np.argpartition(-sims, k, axis=1)[:, :k]
        out[start:start + len(sims)] = part
    return out


def _knn_agreement(a: np.ndarray, b: np.ndarray, k: int = K) -> float:
    na, nb = _knn(a, k), _knn(b, k)
    return float(np.mean([len(np.intersect1d(x, y)) / k for x, y in zip(na, nb)]))


def _isa_overlap(a, b, fraction: float = 0.1) -> dict:
    from alignscope.select.selectors import select

    sa = np.flatnonzero(select(a, "isa", fraction=fraction, seed=0)["selected"].to_numpy())
    sb = np.flatnonzero(select(b, "isa", fraction=fraction, seed=0)["selected"].to_numpy())
    return {"k": int(len(sa)), "overlap": round(len(np.intersect1d(sa, sb)) / max(1, len(sa)), 4),
            "chance": fraction}


def _probe(emb, data, train: np.ndarray, test: np.ndarray) -> dict:
    from sklearn.linear_model import LogisticRegression

    from alignscope.evaluate.metrics import LengthRule, pair_word_lengths, preference_metrics

    n = data.n_pairs
    m = emb.matrix.astype(np.float64)
    diff = m[:n] - m[n:]
    x = np.vstack([diff[train], -diff[train]])
    y = np.concatenate([np.ones(len(train)), np.zeros(len(train))])
    w = LogisticRegression(fit_intercept=False, C=1.0, max_iter=5000, random_state=0).fit(x, y).coef_.ravel()
    rule = LengthRule.fit(*pair_word_lengths(data, train))
    chosen_words, rejected_words = pair_word_lengths(data, test)
    metrics = preference_metrics(diff[test] @ w, chosen_words, rejected_words, rule, n_boot=1000, seed=0)
    keep = ("n_heldout", "accuracy", "accuracy_ci95", "length_controlled_accuracy", "length_controlled_ci95",
            "length_baseline", "length_baseline_direction", "log_loss", "beats_length_baseline", "content_signal")
    return {key: (round(v, 4) if isinstance(v, float) else [round(t, 4) for t in v] if isinstance(v, list) else v)
            for key, v in metrics.items() if key in keep}


def _bench_set(name: str, data, st_model, args) -> dict:
    from alignscope.embed import encoders as E

    texts = E.element_texts(data)
    unique, inverse = E.distinct_texts(texts)
    chunks = np.array_split(np.arange(len(unique)), args.chunks)
    methods = {
        "static": lambda t: E.embed_texts(t, "static", dedupe=False),
        "model2vec": lambda t: _model2vec(t, threads=False),
        "model2vec_threads": lambda t: _model2vec(t, threads=True),
        "tokenizer": _tokenizer_only,
        "minilm": lambda t: E.embed_texts(t, "minilm", dedupe=False),
        "st_fp32": lambda t: st_model.encode(t, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                                             show_progress_bar=False),
    }
    share = {"static": 1.0, "model2vec": 1.0, "model2vec_threads": 1.0, "tokenizer": 1.0,
             "minilm": args.time_share, "st_fp32": args.st_share}
    for fn in methods.values():  # warm-up: lazy initialisation, kernel selection
        fn(unique[:16])
    seconds = {key: 0.0 for key in methods}
    cpu = {key: 0.0 for key in methods}
    counts = {key: 0 for key in methods}
    for i, rows in enumerate(chunks):
        for key, fn in methods.items():
            batch = [unique[j] for j in rows[:max(1, int(round(len(rows) * share[key])))]]
            started, cpu_started = time.perf_counter(), time.process_time()
            fn(batch)
            seconds[key] += time.perf_counter() - started
            cpu[key] += time.process_time() - cpu_started
            counts[key] += len(batch)
        print(f"{name} chunk {i + 1}/{len(chunks)}: " + ", ".join(f"{k} {v:.1f}s" for k, v in seconds.items()),
              flush=True)
    rate = {key: round(counts[key] / seconds[key], 1) for key in methods}
    speed = {
        "pairs": data.n_pairs, "completions": len(texts), "distinct_texts": len(unique),
        "repeat_share": round(1 - len(unique) / len(texts), 4),
        "mean_chars": round(float(np.mean([len(t) for t in unique])), 1),
        "texts_per_s": rate, "seconds": {k: round(v, 2) for k, v in seconds.items()}, "texts_timed": counts,
        "texts_per_cpu_s": {key: round(counts[key] / cpu[key], 1) for key in methods},
        "cores_busy": {key: round(cpu[key] / seconds[key], 2) for key in methods},
        "ratio_static_vs_model2vec": round(rate["static"] / rate["model2vec"], 2),
        "ratio_static_vs_model2vec_threads": round(rate["static"] / rate["model2vec_threads"], 2),
        "ratio_static_vs_tokenizer": round(rate["static"] / rate["tokenizer"], 2),
        "ratio_static_vs_minilm": round(rate["static"] / rate["minilm"], 1),
        "ratio_static_vs_st_fp32": round(rate["static"] / rate["st_fp32"], 1),
        "ratio_minilm_vs_st_fp32": round(rate["minilm"] / rate["st_fp32"], 2),
        "targets": {"static_texts_per_s": 2000, "static_vs_model2vec": 2.0},
        "targets_met": {"static_texts_per_s": bool(rate["static"] >= 2000),
                        "static_vs_model2vec": bool(rate["static"] >= 2 * rate["model2vec"])},
    }
    print(f"{name}: texts/s {rate}", flush=True)
    if args.speed_only:
        return speed
    # Quality on every completion: both encoders through embed() and its cache (a rerun of this
    # benchmark does not embed the whole sample with MiniLM again; the rates above are always new).
    started = time.perf_counter()
    emb = {key: E.embed(data, key, progress=False) for key in ("static", "minilm")}
    embed_s = time.perf_counter() - started
    first = np.unique(inverse, return_index=True)[1]  # the first row of each distinct text
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(data.n_pairs)
    n_test = int(round(0.2 * data.n_pairs))
    test, train = np.sort(order[:n_test]), np.sort(order[n_test:])
    started = time.perf_counter()
    quality = {
        "knn10_agreement_static_vs_minilm": round(_knn_agreement(emb["static"].matrix[first],
                                                                 emb["minilm"].matrix[first]), 4),
        "knn10_chance": round(K / (len(unique) - 1), 5),
        "isa_10pct_static_vs_minilm": _isa_overlap(emb["static"], emb["minilm"]),
        "probe": {"static": _probe(emb["static"], data, train, test), "minilm": _probe(emb["minilm"], data, train, test),
                  "split": {"train_pairs": int(len(train)), "test_pairs": int(len(test)), "seed": args.seed}},
    }
    print(f"{name}: quality {json.dumps(quality)[:400]}", flush=True)
    return {
        **speed,
        "quality_embeddings_from_cache": {key: e.from_cache for key, e in emb.items()},
        "quality_embed_s": round(embed_s, 1),
        "quality": quality, "quality_s": round(time.perf_counter() - started, 1),
    }


def _static_backend():
    from alignscope.embed import encoders as E

    device = E.default_device()
    return E._get_backend("static", E._encoder_info("static", None, device).folder, device)


def _model2vec(texts, *, threads: bool):
    """Plain model2vec ``encode`` of the product's model (its defaults; ``threads`` forces its
    threaded batches, which set TOKENIZERS_PARALLELISM=false for the process: restored here)."""
    from alignscope.embed import encoders as E

    model = _static_backend().model
    if not threads:
        return model.encode(texts, max_length=E.STATIC_SETTINGS["max_length"])
    before = os.environ.get("TOKENIZERS_PARALLELISM")
    try:
        return model.encode(texts, max_length=E.STATIC_SETTINGS["max_length"], use_multiprocessing=True,
                            multiprocessing_threshold=1)
    finally:
        if before is None:
            os.environ.pop("TOKENIZERS_PARALLELISM", None)
        else:
            os.environ["TOKENIZERS_PARALLELISM"] = before


def _tokenizer_only(texts):
    """The tokenizer alone, as model2vec feeds it (texts cut at max_length x median token length
    characters, truncation at max_length): the floor of any static encoder's time."""
    from alignscope.embed import encoders as E

    model = _static_backend().model
    max_length = E.STATIC_SETTINGS["max_length"]
    cut = max_length * int(model.median_token_length)
    model.tokenizer.enable_truncation(max_length)
    return model.tokenizer.encode_batch_fast([t[:cut] for t in texts], add_special_tokens=False)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpaca-pairs", type=int, default=2000, help="seeded sample of AlpacaEval pairs")
    parser.add_argument("--hh-pairs", type=int, default=None, help="HH pairs (default all 2,312)")
    parser.add_argument("--time-share", type=float, default=0.1, help="share of each chunk MiniLM is timed on")
    parser.add_argument("--st-share", type=float, default=0.05, help="share of each chunk sentence-transformers runs")
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-all", action="store_true", help="skip static on all AlpacaEval completions")
    parser.add_argument("--speed-only", action="store_true",
                        help="AlpacaEval sample speeds only: no HH set, no quality figures, no run on all completions")
    args = parser.parse_args(argv)
    if args.speed_only:
        args.skip_all = True
    if not (ALPACA.exists() and HH.exists()):
        print(f"skipped: {SHARED_DATA} lacks the AlpacaEval / HH files (not part of a user's checkout)")
        return 0
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as the alignscope command sets it, before torch loads
    started_all = time.perf_counter()
    load_start = os.getloadavg()

    from sentence_transformers import SentenceTransformer

    from alignscope.embed import encoders as E

    device = E.default_device()
    folder = E.static_folder(device, create=False)
    built_now = not (folder / "model.safetensors").is_file()
    started = time.perf_counter()
    E.static_folder(device, create=True)
    distill = json.loads((folder / "alignscope_static.json").read_text())
    distill_info = {"seconds": distill.get("distill_s"), "measured_in_this_run": built_now,
                    "settings": {k: distill[k] for k in ("pca_dims", "sif_coefficient", "quantize_to", "max_length")},
                    "folder": folder.name}
    if built_now:
        distill_info["seconds"] = round(time.perf_counter() - started, 1)
    st_model = SentenceTransformer(str(E.minilm_folder()), device=device)

    sets = {"alpaca_eval_sample": _bench_set("alpaca", _load(ALPACA, args.alpaca_pairs, args.seed), st_model, args)}
    if not args.speed_only:
        sets["hh_harmless_test"] = _bench_set("hh", _load(HH, args.hh_pairs, args.seed), st_model, args)

    all_figures = None
    if not args.skip_all:
        full = _load(ALPACA, None, args.seed)
        started, cpu_started = time.perf_counter(), time.process_time()
        emb = E.embed(full, "static", cache=False, progress=False)
        seconds, cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
        unique, _ = E.distinct_texts(E.element_texts(full))
        all_figures = {"completions": len(emb), "distinct_texts": len(unique), "seconds": round(seconds, 1),
                       "cpu_seconds": round(cpu_s, 1), "cores": len(os.sched_getaffinity(0)),
                       "completions_per_s": round(len(emb) / seconds, 1),
                       "distinct_texts_per_s": round(len(unique) / seconds, 1),
                       "target_s": 60, "target_met": bool(seconds <= 60),
                       "note": "embed() end to end: element texts, dedupe, encode, scatter (data load and model "
                               "load excluded). cpu_seconds / cores is the wall time on idle cores"}
        print(f"static on all AlpacaEval: {all_figures}", flush=True)

    figures = {
        "device": device, "distillation": distill_info, "sets": sets, "static_all_alpaca_eval": all_figures,
        "tokenizers_parallelism_env": os.environ.get("TOKENIZERS_PARALLELISM"),
        "load_average_start": [round(v, 2) for v in load_start],
        "load_average_end": [round(v, 2) for v in os.getloadavg()],
        "wall_s": round(time.perf_counter() - started_all, 1), "peak_rss_mib": round(peak_rss_mib(), 1),
        "args": vars(args),
    }
    suffix = ("" if device == "cpu" else f"_{device.split(':')[0]}") + ("_speed" if args.speed_only else "")
    write_result("embed_static", figures, suffix=suffix)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Encoder throughput on real completions: alignscope's ``minilm`` path vs sentence-transformers.

    python -m benchmarks.bench_embed [--n 5000] [--chunks 5] [--fp32-chunks 1] [--device cpu]

Texts: ``n`` element texts (prompt + completion, as :func:`alignscope.embed.element_texts` builds
them) drawn at random (seed 0) from ../shared/data/alpaca_eval_pairs.jsonl.gz. Skipped with a
message when that file is absent.

Compared on the same texts in the same process:

* ``st``: ``SentenceTransformer(<packaged all-MiniLM-L6-v2>).encode(texts, batch_size=32,
  normalize_embeddings=True)``, sentence-transformers' own pipeline at its defaults;
* ``ours``: ``alignscope.embed.embed_texts(texts, "minilm")`` at its defaults (exact token-length
  bucketing, batch 64, one tokenizer call, bf16 autocast where the hardware has native bf16 —
  AMX on CPU — else fp32);
* ``ours_fp32``: the same path forced to fp32, on the first ``--fp32-chunks`` chunks only (it shows
  how much of the speed-up is precision and how much is the pipeline);
* ``lm-last-token:tiny`` on all texts.

The machine is shared and its load drifts, so the texts are split into ``--chunks`` chunks and the
methods take turns chunk by chunk; each method's time is the sum over its chunks. Model loading and
a 32-text warm-up are excluded. Cosines are per vector against ``st``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import SHARED_DATA, peak_rss_mib, write_result

DATA_FILE = SHARED_DATA / "alpaca_eval_pairs.jsonl.gz"


def _sample_texts(n: int, seed: int) -> list[str]:
    from alignscope.data import load_preferences
    from alignscope.embed import element_texts

    texts = element_texts(load_preferences(DATA_FILE))
    rows = np.random.default_rng(seed).choice(len(texts), size=min(n, len(texts)), replace=False)
    return [texts[i] for i in rows]


def _timed(fn, texts):
    wall, cpu = time.perf_counter(), time.process_time()
    out = fn(texts)
    return out, time.perf_counter() - wall, time.process_time() - cpu


def _cosine_summary(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    cos = (a * b).sum(axis=1)
    return {"min": round(float(cos.min()), 6), "p001": round(float(np.quantile(cos, 0.001)), 6),
            "mean": round(float(cos.mean()), 7), "share_ge_0.999": float((cos >= 0.999).mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="number of completions (default 5000)")
    parser.add_argument("--chunks", type=int, default=5)
    parser.add_argument("--fp32-chunks", type=int, default=1, help="chunks also run by ours in fp32")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not DATA_FILE.exists():
        print(f"skipped: {DATA_FILE} is absent (../shared/data is not part of a user's checkout)")
        return 0

    import torch
    from sentence_transformers import SentenceTransformer

    from alignscope import embed as E
    from alignscope.models import default_device, resolve_model

    device = args.device or default_device()
    texts = _sample_texts(args.n, args.seed)
    chunks = np.array_split(np.arange(len(texts)), args.chunks)

    load = time.perf_counter()
    st_model = SentenceTransformer(str(E.minilm_folder()), device=device)
    st_load_s = time.perf_counter() - load
    load = time.perf_counter()
    backend = E._get_backend("minilm", None, device)
    ours_load_s = time.perf_counter() - load
    tiny = f"lm-last-token:{resolve_model('tiny')}"
    bf16 = E._resolve_precision("auto", device)

    methods = {
        "st": lambda t: st_model.encode(t, batch_size=32, normalize_embeddings=True, convert_to_numpy=True,
                                        show_progress_bar=False),
        "ours": lambda t: E.embed_texts(t, "minilm", device=device),
        "ours_fp32": lambda t: E.embed_texts(t, "minilm", device=device, precision="fp32"),
        "tiny": lambda t: E.embed_texts(t, tiny, device=device),
    }
    for fn in methods.values():  # warm-up: lazy inits, oneDNN/cuDNN kernel selection
        fn(texts[:32])

    vectors = {name: [] for name in methods}
    seconds = {name: [0.0, 0.0] for name in methods}  # wall, cpu
    fp32_rows = np.concatenate(chunks[:args.fp32_chunks])
    st_wall_on_fp32_rows = st_cpu_on_fp32_rows = 0.0
    for i, rows in enumerate(chunks):
        chunk = [texts[j] for j in rows]
        for name, fn in methods.items():
            if name == "ours_fp32" and i >= args.fp32_chunks:
                continue
            out, wall, cpu = _timed(fn, chunk)
            vectors[name].append(out)
            seconds[name][0] += wall
            seconds[name][1] += cpu
            if name == "st" and i < args.fp32_chunks:
                st_wall_on_fp32_rows += wall
                st_cpu_on_fp32_rows += cpu
        print(f"chunk {i + 1}/{len(chunks)}: " + ", ".join(f"{k} {v[0]:.1f}s" for k, v in seconds.items()),
              flush=True)
    matrices = {name: np.concatenate(v) for name, v in vectors.items()}

    n = len(texts)
    token_lengths = np.array([len(ids) for ids in backend._tokenize(texts, 10**6)])
    rate = {name: round(len(matrices[name]) / seconds[name][0], 2) for name in methods}
    figures = {
        "data": DATA_FILE.name, "n_texts": n, "device": device, "chunks": args.chunks,
        "minilm_precision_auto": "bf16" if bf16 else "fp32",
        "mean_words": round(float(np.mean([len(t.split()) for t in texts])), 1),
        "minilm_tokens_mean_untruncated": round(float(token_lengths.mean()), 1),
        "minilm_share_truncated_at_256": round(float((token_lengths > 256).mean()), 3),
        "texts_per_s": rate,
        "wall_s": {name: round(v[0], 2) for name, v in seconds.items()},
        "cpu_s": {name: round(v[1], 2) for name, v in seconds.items()},
        "speedup_ours_vs_st": round(seconds["st"][0] / seconds["ours"][0], 3),
        "speedup_ours_vs_st_cpu_time": round(seconds["st"][1] / seconds["ours"][1], 3),
        "fp32_subset": {
            "n_texts": int(len(fp32_rows)),
            "speedup_ours_fp32_vs_st": round(st_wall_on_fp32_rows / seconds["ours_fp32"][0], 3),
            "speedup_ours_fp32_vs_st_cpu_time": round(st_cpu_on_fp32_rows / seconds["ours_fp32"][1], 3),
            "cosine_ours_fp32_vs_st": _cosine_summary(matrices["ours_fp32"], matrices["st"][:len(fp32_rows)]),
        },
        "cosine_ours_vs_st": _cosine_summary(matrices["ours"], matrices["st"]),
        "target": "ours >= 1.3x st texts/s, cosine >= 0.999 per vector",
        "target_met": bool(seconds["st"][0] / seconds["ours"][0] >= 1.3
                           and _cosine_summary(matrices["ours"], matrices["st"])["min"] >= 0.999),
        "model_load_s": {"st": round(st_load_s, 2), "ours": round(ours_load_s, 2)},
        "tiny_max_length": E.LM_DEFAULT_MAX_LENGTH,
        "torch_threads": torch.get_num_threads(),
        "peak_rss_mib": round(peak_rss_mib(), 1),
    }
    suffix = "" if device == "cpu" else f"_{device.split(':')[0]}"
    write_result("embed_throughput", figures, suffix=suffix)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

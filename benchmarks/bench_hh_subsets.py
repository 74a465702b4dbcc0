"""DPO and the embedding probe on ISA / random subsets of the HH harmless pairs (issue 4's experiment).

    python -m benchmarks.bench_hh_subsets [--max-steps 12] [--max-length 256] [--eval-max-pairs 200]
                                          [--seeds 0] [--probe-seeds 0,1,2] [--model tiny]
                                          [--out benchmarks/results/hh_subsets.json] [--quick] [--probe-only]

Data: ../shared/data/hh_harmless_test.jsonl.gz (2,312 pairs; skipped with a message when absent).

Grid: ISA 3.5 % and 10 %, random 3.5 % and 10 %, and all pairs (100 %). ISA and random select
*completions* (the ISA paper's unit: 2 per pair, MiniLM ``completion`` embeddings, the product's
defaults), and a pair is trained on when either of its completions is selected (pair rule ``any``),
so the number of pairs of a subset is recorded, not assumed.

The held-out pairs are ONE seeded 80/20 split of all pairs (``test_fraction=0.2``,
``split_seed=0``), the same for every subset and both evaluators; selected pairs that fall in it are
dropped from training.

* DPO (``alignscope.train.trainer.train``): the same ``--max-steps`` for every subset (equal compute; the
  epochs this means for each subset are recorded), batch 8, the product's default learning rate;
  held-out implicit-reward preference accuracy (bootstrap 95 % interval) and mean margin on the same
  ``--eval-max-pairs`` held-out pairs for every run. TRL drops training pairs whose prompt alone
  fills ``--max-length`` tokens (counted here with the model's tokenizer); at evaluation such a pair
  has no completion tokens and scores as a tie. ``--seeds`` seeds both the selection and
  training (random subsets differ by seed; ISA's mixture init too).
* Probe (``alignscope.evaluate.probe.eval_probe``): a Bradley–Terry linear reward model on the frozen
  MiniLM embeddings of the selected training pairs, scored on ALL held-out pairs; ``--probe-seeds``
  selection seeds. A proxy, seconds on CPU.

Embeddings, the ``tiny`` model and run directories live under ``$ALIGNSCOPE_HOME`` (set it to a
scratch folder). Writes ``--out`` (JSON: ``{"benchmark", "machine", "figures"}``) and a PNG beside
it (plotly + kaleido when kaleido is installed, else matplotlib, else no PNG, recorded as such).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import RESULTS, SHARED_DATA, machine_info, peak_rss_mib, write_result

NAME = "hh_subsets"
DATA_FILE = SHARED_DATA / "hh_harmless_test.jsonl.gz"
GRID = (("isa", 0.035), ("isa", 0.10), ("random", 0.035), ("random", 0.10), ("all", 1.0))
ENCODER = "minilm"
TEST_FRACTION = 0.2
SPLIT_SEED = 0
BATCH_SIZE = 8


def _seeds(text: str) -> list[int]:
    return [int(s) for s in str(text).replace(" ", "").split(",") if s != ""]


def _label(method: str, fraction: float) -> str:
    return "all 100%" if method == "all" else f"{method} {fraction * 100:g}%"


def _key(method: str, fraction: float, seed: int) -> str:
    return f"{method}_{fraction * 100:g}pct_s{seed}"


def _r(x: Any, nd: int = 4) -> Any:
    if x is None:
        return None
    if isinstance(x, (list, tuple)):
        return [_r(v, nd) for v in x]
    return round(float(x), nd)


# ----------------------------------------------------------------------------------- selections
def _token_lengths(data, model: str) -> dict[str, np.ndarray]:
    """Untruncated token counts of every prompt / chosen / rejected text (the model's tokenizer).

    Used for two checks: TRL's DPOTrainer drops training pairs whose prompt alone fills
    ``max_length`` (and at evaluation such a pair's completions get no tokens: margin 0, a tie
    scored 0.5); and a length-only baseline (``chosen is shorter``) on the held-out pairs.
    """
    from transformers import AutoTokenizer

    from alignscope.models import resolve_model

    tokenizer = AutoTokenizer.from_pretrained(str(resolve_model(model)))
    return {c: np.array([len(tokenizer(str(t))["input_ids"]) for t in data.frame[c]]) for c in
            ("prompt", "chosen", "rejected")}


def _shorter_rule(tokens_chosen, tokens_rejected) -> float:
    """Accuracy of 'the chosen completion is the one with fewer tokens' (equal lengths: 0.5)."""
    d = np.asarray(tokens_rejected, dtype=float) - np.asarray(tokens_chosen, dtype=float)
    return float(np.where(d > 0, 1.0, np.where(d < 0, 0.0, 0.5)).mean())


def _make_selections(data, emb, fractions_seeds: list[tuple[str, float, int]], folder: Path,
                     fits: np.ndarray | None = None) -> dict[str, dict]:
    """Write one completion-level selection parquet per (method, fraction, seed); describe each."""
    from alignscope.select.selectors import select
    from alignscope.train.trainset import training_set

    folder.mkdir(parents=True, exist_ok=True)
    frame = data.frame if hasattr(data, "frame") else None
    out: dict[str, dict] = {}
    for method, fraction, seed in fractions_seeds:
        key = _key(method, fraction, seed)
        if method == "all":
            path, started = None, time.perf_counter()
            n_completions = 2 * len(data)
        else:
            started = time.perf_counter()
            table = select(emb, method, fraction=fraction, seed=seed)
            path = folder / f"{key}.parquet"
            table.write(path)
            n_completions = table.n_selected
            pairs = table.pair_selection("any")
        select_s = time.perf_counter() - started
        tset = training_set(data, None if path is None else str(path), method="dpo", test_fraction=TEST_FRACTION,
                            split_seed=SPLIT_SEED, pair_rule="any")
        if method == "all":
            n_pairs = len(data)
            both = len(data)
        else:
            n_pairs = int(pairs["selected"].sum())
            both = int((pairs["chosen_selected"] & pairs["rejected_selected"]).sum())
        trained = tset.pairs
        info = {"method": method, "fraction": fraction, "seed": seed, "selection_path": None if path is None else str(path),
                "n_completions_selected": n_completions, "n_pairs_selected": n_pairs,
                "n_pairs_both_completions_selected": both,
                "n_pairs_selected_in_test": n_pairs - int(len(trained)),
                "n_pairs_trained": int(len(trained)), "select_s": round(select_s, 3)}
        if fits is not None:
            info["n_pairs_trained_prompt_fits"] = int(fits[trained].sum())
        if frame is not None:
            lengths = (frame["chosen"].astype(str).str.len() + frame["rejected"].astype(str).str.len()) / 2
            prompt_len = frame["prompt"].astype(str).str.len()
            info["mean_completion_chars_trained"] = round(float(lengths.iloc[trained].mean()), 1)
            info["mean_prompt_chars_trained"] = round(float(prompt_len.iloc[trained].mean()), 1)
        out[key] = info
    return out


# ----------------------------------------------------------------------------------- evaluators
def _probe(data, emb, sel: dict) -> dict[str, Any]:
    from alignscope.evaluate.probe import eval_probe

    started = time.perf_counter()
    res = eval_probe(data, sel["selection_path"], encoder=ENCODER, test_fraction=TEST_FRACTION, seed=SPLIT_SEED,
                     embeddings=emb)
    return {"accuracy": _r(res["accuracy"]), "accuracy_ci95": _r(res["accuracy_ci95"]),
            "train_accuracy": _r(res["train_accuracy"]), "margin_mean": _r(res["margin_mean"]),
            "n_train": res["n_train"], "n_test": res["n_test"], "wall_s": round(time.perf_counter() - started, 3)}


RUN_RECORD = "bench_hh_subsets.json"


def _dpo(data, sel: dict, args, run_dir: Path) -> dict[str, Any]:
    """One DPO run; its figures are also saved in the run directory so that ``--resume`` can reuse a
    finished run (the directory name encodes model, steps, length, eval size, subset and seed)."""
    from alignscope.files import write_json
    from alignscope.train.config import train_config
    from alignscope.train.trainer import train

    record = run_dir / RUN_RECORD
    if args.resume and record.is_file():
        saved = json.loads(record.read_text(encoding="utf-8"))
        if saved.get("selection") == {k: sel[k] for k in ("method", "fraction", "seed", "n_pairs_trained")}:
            print(f"  reusing the finished run in {run_dir}")
            return {**saved["dpo"], "reused": True}
    record.unlink(missing_ok=True)

    config = train_config("dpo", model=args.model, max_steps=args.max_steps, max_length=args.max_length,
                          eval_max_pairs=args.eval_max_pairs, batch_size=BATCH_SIZE, seed=sel["seed"],
                          split_seed=SPLIT_SEED, test_fraction=TEST_FRACTION)
    started = time.perf_counter()
    summary = train(data, selection=sel["selection_path"], config=config, run_dir=run_dir,
                    data_source=str(DATA_FILE), progress_bar=False)
    wall = time.perf_counter() - started
    ev, tr = summary["eval"], summary["training"]
    n_train = tr["n_train_pairs"]
    import pandas as pd

    per_pair = pd.read_parquet(run_dir / "eval_pairs.parquet")
    margin = per_pair["margin"].to_numpy()
    dlen = (per_pair["tokens_rejected"] - per_pair["tokens_chosen"]).to_numpy(dtype=float)
    nz = margin != 0
    corr = float(np.corrcoef(margin[nz], dlen[nz])[0, 1]) if nz.sum() > 2 and margin[nz].std() > 0 else None
    result = {
        "accuracy": _r(ev["accuracy"]), "accuracy_ci95": _r(ev["accuracy_ci95"]),
        "margin_mean": _r(ev["margin_mean"], 6), "margin_ci95": _r(ev["margin_ci95"], 6),
        "policy_logp_accuracy": _r(ev["policy_logp"]["accuracy"]),
        "policy_logp_accuracy_ci95": _r(ev["policy_logp"]["ci95"]),
        "reference_logp_accuracy": _r(ev["reference_logp"]["accuracy"]),
        "n_eval_pairs": ev["n_pairs"], "eval_pairs_sha256": ev["pairs_sha256"],
        "n_completions_truncated": ev["truncation"]["n_completions_truncated"],
        "n_eval_completions_without_tokens": ev["truncation"]["n_completions_without_tokens"],
        "n_eval_pairs_tied": int((~nz).sum()),
        # corr(margin, tokens_rejected - tokens_chosen) over non-tied pairs (tokens after truncation):
        # > 0 = the implicit reward favours the shorter completion
        "margin_length_corr": _r(corr, 3),
        "shorter_rule_accuracy_eval_pairs": _r(_shorter_rule(per_pair["tokens_chosen"], per_pair["tokens_rejected"])),
        "n_train_pairs": n_train, "n_train_pairs_prompt_fits": sel.get("n_pairs_trained_prompt_fits"),
        "steps": tr["steps"],
        # epochs = steps x batch / the pairs TRL iterates (those whose prompt fits max_length)
        "epochs": _r(tr["steps"] * BATCH_SIZE / max(sel.get("n_pairs_trained_prompt_fits") or n_train, 1), 3),
        "epochs_trainer_state": _r(tr["epochs"], 3),
        "lr": tr["lr"], "final_loss": _r(tr["final_loss"]), "train_loss": _r(tr["train_loss"]),
        "train_runtime_s": tr["train_runtime_s"], "s_per_step": tr["s_per_step"],
        "eval_s": _r(ev.get("elapsed_s"), 2), "wall_s": round(wall, 2), "run_dir": str(run_dir),
    }
    write_json(record, {"selection": {k: sel[k] for k in ("method", "fraction", "seed", "n_pairs_trained")},
                        "dpo": result})
    return result


# ----------------------------------------------------------------------------------- summary
def _mean_over_seeds(rows: list[dict], field: str) -> dict[str, float | None]:
    out: dict[str, float | None] = {}
    for method, fraction in GRID:
        vals = [r[field]["accuracy"] for r in rows
                if r["method"] == method and r["fraction"] == fraction and r.get(field)]
        out[_label(method, fraction)] = _r(np.mean(vals)) if vals else None
    return out


def _notes(rows: list[dict], args) -> str:
    """Plain statements derived from the numbers (no tuning happened between runs)."""
    parts = []
    dpo = [r for r in rows if r.get("dpo")]
    if dpo:
        excl = [r for r in dpo if r["dpo"]["accuracy_ci95"][0] > 0.5 or r["dpo"]["accuracy_ci95"][1] < 0.5]
        accs = [r["dpo"]["accuracy"] for r in dpo]
        parts.append(
            f"DPO {args.model}, {args.max_steps} steps x batch {BATCH_SIZE} for every subset (equal compute: "
            f"{min(r['dpo']['epochs'] for r in dpo):.2f} to {max(r['dpo']['epochs'] for r in dpo):.2f} epochs "
            f"depending on subset size), evaluated on the same {dpo[0]['dpo']['n_eval_pairs']} "
            f"held-out pairs: implicit-reward accuracy ranges {min(accs):.3f}-{max(accs):.3f}; "
            f"{len(excl)} of {len(dpo)} runs has a 95% interval that excludes 0.5"
            + (" (" + ", ".join(f"{_label(r['method'], r['fraction'])} s{r['seed']}: {r['dpo']['accuracy']:.3f}"
                                for r in excl) + ")" if excl else "")
            + f". The intervals' mean half-width is {np.mean([(r['dpo']['accuracy_ci95'][1] - r['dpo']['accuracy_ci95'][0]) / 2 for r in dpo]):.3f}"
              " at this eval size, so differences between subsets smaller than that are not resolved.")
        ref = sorted({r["dpo"]["reference_logp_accuracy"] for r in dpo})
        margins = [abs(r["dpo"]["margin_mean"]) for r in dpo]
        ties = dpo[0]["dpo"]["n_eval_completions_without_tokens"]
        parts.append(f"Mean implicit-reward margins are at most {max(margins):.2g} in absolute value. "
                     f"The untrained reference's log-prob preference accuracy (chosen more likely than rejected) "
                     f"on the same pairs is {ref[0]:.3f}. {ties} evaluated completions have no tokens left "
                     f"after truncation to max_length (their pairs score as ties, 0.5).")
        corrs = [r["dpo"]["margin_length_corr"] for r in dpo if r["dpo"]["margin_length_corr"] is not None]
        if corrs:
            parts.append(f"A length-only rule (chosen = the completion with fewer tokens) scores "
                         f"{dpo[0]['dpo']['shorter_rule_accuracy_eval_pairs']:.3f} on the same eval pairs; the "
                         f"correlation of a run's margin with the token-length difference (rejected - chosen) ranges "
                         f"{min(corrs):+.2f} to {max(corrs):+.2f} across runs"
                         + (", so at this budget part of the implicit reward is a length effect whose sign "
                            "changes between runs." if max(abs(c) for c in corrs) >= 0.3 else "."))
    probe = [r for r in rows if r.get("probe")]
    if probe:
        means = _mean_over_seeds(rows, "probe")
        parts.append("Probe (linear Bradley-Terry on frozen MiniLM embeddings, all "
                     f"{probe[0]['probe']['n_test']} held-out pairs), mean over selection seeds: "
                     + ", ".join(f"{k} {v:.3f}" for k, v in means.items() if v is not None) + ".")
        isa_r = [(means.get(_label("isa", f)), means.get(_label("random", f))) for f in (0.035, 0.10)]
        for f, (a, b) in zip((0.035, 0.10), isa_r):
            if a is not None and b is not None:
                parts.append(f"At {f * 100:g}% ISA {'>' if a > b else '<=' if a < b else '='} random on the probe "
                             f"({a:.3f} vs {b:.3f}).")
    sel = [r for r in rows if r["method"] == "isa"]
    if sel:
        r0 = sel[0]
        rnd = [r for r in rows if r["method"] == "random" and r["fraction"] == r0["fraction"]]
        if rnd and "mean_prompt_chars_trained" in r0:
            parts.append(f"ISA {r0['fraction'] * 100:g}% trained pairs: mean prompt {r0['mean_prompt_chars_trained']:.0f} "
                         f"chars, completions {r0['mean_completion_chars_trained']:.0f} chars (random: "
                         f"{np.mean([r['mean_prompt_chars_trained'] for r in rnd]):.0f} / "
                         f"{np.mean([r['mean_completion_chars_trained'] for r in rnd]):.0f}).")
        parts.append(f"ISA (published rule: keeps the lowest-likelihood completions) at {r0['fraction'] * 100:g}% "
                     f"selects {r0['n_completions_selected']} completions = {r0['n_pairs_selected']} pairs "
                     f"({r0['n_pairs_both_completions_selected']} with both completions), so its pair counts differ "
                     f"from random's at the same fraction.")
    parts.append("The probe is a proxy for training, not a trained policy's accuracy.")
    return " ".join(parts)


# ----------------------------------------------------------------------------------- plot
def _plot(rows: list[dict], png: Path, title: str) -> str:
    labels = [_label(m, f) for m, f in GRID]

    def series(field: str):
        xs, ys, lo, hi = [], [], [], []
        for r in rows:
            if not r.get(field):
                continue
            xs.append(_label(r["method"], r["fraction"]) + ("" if r["seed"] == 0 else f" (s{r['seed']})"))
            a, (l, h) = r[field]["accuracy"], r[field]["accuracy_ci95"]
            ys.append(a), lo.append(a - l), hi.append(h - a)
        return xs, ys, lo, hi

    try:
        import kaleido  # noqa: F401
        import plotly.graph_objects as go
        from plotly.subplots import make_subplots

        fig = make_subplots(rows=1, cols=2, subplot_titles=("DPO held-out implicit-reward accuracy",
                                                            "probe held-out accuracy"))
        for col, field in ((1, "dpo"), (2, "probe")):
            xs, ys, lo, hi = series(field)
            fig.add_trace(go.Scatter(x=xs, y=ys, mode="markers", showlegend=False,
                                     error_y=dict(type="data", symmetric=False, array=hi, arrayminus=lo)), 1, col)
            fig.add_hline(y=0.5, line_dash="dot", row=1, col=col)
        fig.update_layout(title=title, width=1100, height=450)
        fig.write_image(str(png))
        return "plotly+kaleido"
    except ImportError:
        pass
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "skipped: neither kaleido (for plotly) nor matplotlib is installed in this environment"
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, field, name in ((axes[0], "dpo", "DPO held-out implicit-reward accuracy"),
                            (axes[1], "probe", "probe held-out accuracy")):
        xs, ys, lo, hi = series(field)
        ax.errorbar(range(len(xs)), ys, yerr=[lo, hi], fmt="o", capsize=3)
        ax.set_xticks(range(len(xs)), xs, rotation=45, ha="right")
        ax.axhline(0.5, ls=":", c="gray")
        ax.set_title(name)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(png, dpi=120)
    return "matplotlib"


# ----------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-steps", type=int, default=None, help="DPO steps for every subset (default 12; quick 2)")
    parser.add_argument("--max-length", type=int, default=None, help="max tokens per sequence (default 256; quick 64)")
    parser.add_argument("--eval-max-pairs", type=int, default=None,
                        help="held-out pairs scored per DPO run, the same for every run (default 200; quick 16)")
    parser.add_argument("--seeds", default=None, help="DPO seeds, comma-separated (default 0)")
    parser.add_argument("--probe-seeds", default="0,1,2", help="probe selection seeds (default 0,1,2)")
    parser.add_argument("--model", default="tiny", help="tiny (CPU) or smollm2-135m (GPU)")
    parser.add_argument("--out", default=None, help=f"results JSON (default benchmarks/results/{NAME}.json; "
                                                     f"quick: {NAME}_quick.json)")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 2 steps, 16 eval pairs, length 64")
    parser.add_argument("--probe-only", action="store_true", help="skip DPO (the probe grid only)")
    parser.add_argument("--resume", action="store_true",
                        help="reuse DPO runs this benchmark already finished with the same caps (their recorded "
                             "figures and wall times) instead of training them again")
    args = parser.parse_args(argv)
    defaults = dict(max_steps=2, max_length=64, eval_max_pairs=16) if args.quick else \
        dict(max_steps=12, max_length=256, eval_max_pairs=200)
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    dpo_seeds = _seeds(args.seeds or "0")
    probe_seeds = _seeds(args.probe_seeds)
    out = Path(args.out) if args.out else RESULTS / f"{NAME}{'_quick' if args.quick else ''}.json"
    if not DATA_FILE.exists():
        print(f"skipped: {DATA_FILE} is absent (../shared/data is not part of a user's checkout)")
        return 0
    if "ALIGNSCOPE_HOME" not in os.environ:
        print("note: ALIGNSCOPE_HOME is unset; models, embeddings and runs go to ~/.cache/alignscope")

    from alignscope import settings
    from alignscope.data.preferences import load_preferences
    from alignscope.embed.encoders import embed

    t_all = time.perf_counter()
    work = settings.home() / "bench_hh_subsets"
    caps = {"model": args.model, "max_steps": args.max_steps, "batch_size": BATCH_SIZE, "max_length": args.max_length,
            "eval_max_pairs": args.eval_max_pairs, "dpo_seeds": dpo_seeds, "probe_seeds": probe_seeds,
            "test_fraction": TEST_FRACTION, "split_seed": SPLIT_SEED, "pair_rule": "any", "encoder": ENCODER,
            "selection_unit": "completion", "quick": args.quick, "dpo": not args.probe_only}
    print("caps:", json.dumps(caps))

    data = load_preferences(DATA_FILE)
    started = time.perf_counter()
    emb = embed(data, ENCODER, "completion", progress=False)
    embed_s = time.perf_counter() - started
    print(f"{len(data)} pairs; embeddings {emb.matrix.shape} in {embed_s:.1f}s "
          f"({'cache' if getattr(emb, 'from_cache', False) else 'computed'})")

    seeds_all = sorted(set(dpo_seeds) | set(probe_seeds))
    todo = [(m, f, s) for s in seeds_all for m, f in GRID]
    lengths = _token_lengths(data, args.model)
    fits = lengths["prompt"] < args.max_length
    from alignscope.evaluate.evaluators import split_pairs

    _, test_pairs = split_pairs(len(data), TEST_FRACTION, SPLIT_SEED)
    selections = _make_selections(data, emb, todo, work / "selections", fits)
    rows: list[dict] = []
    for m, f, s in todo:
        sel = selections[_key(m, f, s)]
        row = {k: v for k, v in sel.items() if k != "selection_path"}
        row["probe"] = _probe(data, emb, sel) if s in probe_seeds else None
        row["dpo"] = None
        rows.append(row)
        if row["probe"]:
            p = row["probe"]
            print(f"probe {_key(m, f, s):22s} pairs {sel['n_pairs_selected']:5d} trained {p['n_train']:5d} "
                  f"acc {p['accuracy']:.3f} [{p['accuracy_ci95'][0]:.3f}, {p['accuracy_ci95'][1]:.3f}]")

    if not args.probe_only:
        tag = f"{args.model}_steps{args.max_steps}_len{args.max_length}_eval{args.eval_max_pairs}"
        for row in rows:
            if row["seed"] not in dpo_seeds:
                continue
            sel = selections[_key(row["method"], row["fraction"], row["seed"])]
            run_dir = work / "runs" / tag / _key(row["method"], row["fraction"], row["seed"])
            print(f"DPO {_key(row['method'], row['fraction'], row['seed'])}: {sel['n_pairs_trained']} training pairs, "
                  f"{args.max_steps} steps", flush=True)
            row["dpo"] = _dpo(data, sel, args, run_dir)
            d = row["dpo"]
            print(f"DPO {_key(row['method'], row['fraction'], row['seed']):22s} acc {d['accuracy']:.3f} "
                  f"[{d['accuracy_ci95'][0]:.3f}, {d['accuracy_ci95'][1]:.3f}] margin {d['margin_mean']:+.5f} "
                  f"epochs {d['epochs']:.2f} loss {d['final_loss']} wall {d['wall_s']:.0f}s", flush=True)

    total_s = time.perf_counter() - t_all
    png = out.with_suffix(".png")
    title = (f"HH harmless, {len(data)} pairs, held-out 20% (split seed 0); DPO {args.model} "
             f"{args.max_steps} steps, eval {args.eval_max_pairs} pairs")
    plot = _plot(rows, png, title)
    print(f"plot: {plot}" + (f" -> {png}" if not plot.startswith("skipped") else ""))
    figures = {
        "data": {"file": DATA_FILE.name, "n_pairs": len(data), "fingerprint": data.fingerprint,
                 "n_test_pairs": int(round(TEST_FRACTION * len(data)))},
        "caps": caps,
        "baselines": {
            "shorter_rule_accuracy_all_heldout": _r(_shorter_rule(lengths["chosen"][test_pairs], lengths["rejected"][test_pairs])),
            "n_heldout_pairs_prompt_fills_max_length": int((~fits[test_pairs]).sum()),
            "note": "shorter rule: chosen = the completion with fewer (untruncated) tokens, ties 0.5",
        },
        "runs": rows,
        "probe_mean_accuracy_over_seeds": _mean_over_seeds(rows, "probe"),
        "dpo_mean_accuracy_over_seeds": _mean_over_seeds(rows, "dpo"),
        "embed_s": round(embed_s, 2), "embeddings_from_cache": bool(getattr(emb, "from_cache", False)),
        "dpo_wall_s": round(sum(r["dpo"]["wall_s"] for r in rows if r["dpo"]), 1),
        "total_wall_s": round(total_s, 1), "peak_rss_mib": round(peak_rss_mib(), 1),
        "plot": plot if plot.startswith("skipped") else str(png.name),
        "notes": _notes(rows, args),
    }
    if out.resolve().parent == RESULTS.resolve() and out.stem.startswith(NAME) and out.suffix == ".json":
        write_result(NAME, figures, suffix=out.stem[len(NAME):])
    else:
        from alignscope.files import write_json

        write_json(out, {"benchmark": NAME, "machine": machine_info(), "figures": figures})
        print(json.dumps(figures, indent=2, default=str))
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

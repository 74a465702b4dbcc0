"""Which CPU evaluator sees content where the probe sees length?

``python -m benchmarks.bench_evaluators [--alpaca-pairs 2000] [--encoders minilm,lm-last-token:smollm2-135m]``

On the shared AlpacaEval pairs (a seeded sample) and the HH harmless pairs: for every encoder, a
Bradley–Terry head on frozen features of each completion (prompt + answer), fitted on 80 % of the
pairs and scored on the 20 % held out (:func:`alignscope.evaluate.evaluators.split_pairs`, seed 0):

* ``linear``: the product's probe (logistic regression on e_c − e_r, no intercept, symmetric);
* ``mlp``: a small MLP on the same differences, made antisymmetric (margin = ½·(f(d) − f(−d))).

Each is reported with :func:`alignscope.evaluate.metrics.preference_metrics`: accuracy beside the length
rule (direction learned on the training pairs), length-controlled accuracy (0.5 = length only) and
log loss, all with 95 % bootstrap intervals. Results: ``benchmarks/results/evaluators.json``.
"""
from __future__ import annotations

import argparse
import time

import numpy as np

from benchmarks.common import SHARED_DATA, write_result

LM_MAX_LENGTH = 256


def _sample(path, n_pairs: int | None, seed: int = 0):
    from alignscope.data.preferences import load_preferences

    data = load_preferences(str(path))
    if n_pairs is None or n_pairs >= len(data):
        return data
    rows = np.sort(np.random.default_rng(seed).choice(len(data), size=n_pairs, replace=False))
    return load_preferences(data.frame.iloc[rows].reset_index(drop=True))


def _mlp_margins(chosen, rejected, train, test, seed: int) -> np.ndarray:
    from sklearn.neural_network import MLPClassifier

    diff = chosen[train] - rejected[train]
    X = np.vstack([diff, -diff])
    y = np.concatenate([np.ones(len(diff)), np.zeros(len(diff))])
    model = MLPClassifier(hidden_layer_sizes=(128,), alpha=1e-3, max_iter=300, early_stopping=True,
                          random_state=seed).fit(X, y)
    test_diff = chosen[test] - rejected[test]

    def logit(p):
        p = np.clip(p, 1e-7, 1 - 1e-7)
        return np.log(p / (1 - p))

    return 0.5 * (logit(model.predict_proba(test_diff)[:, 1]) - logit(model.predict_proba(-test_diff)[:, 1]))


def evaluate_encoders(name: str, data, encoders: list[str], seed: int = 0) -> dict:
    from alignscope.embed.encoders import embed
    from alignscope.evaluate.evaluators import heldout_length_rule, split_pairs
    from alignscope.evaluate.probe import _pair_matrices, probe_margins
    from alignscope.evaluate.metrics import pair_word_lengths, preference_metrics

    train, test = split_pairs(len(data), 0.2, seed)
    rule = heldout_length_rule(data, test)
    lengths = pair_word_lengths(data, test)
    out = {"data": name, "n_pairs": len(data), "n_train": int(len(train)), "n_heldout": int(len(test)),
           "length_rule": rule.to_dict(), "encoders": {}}
    for encoder in encoders:
        started = time.monotonic()
        # Causal-LM features read the last 256 tokens (the answer's end, left truncation): a 2-core CPU
        # cannot afford 1,024-token contexts for thousands of texts.
        options = {"max_length": LM_MAX_LENGTH} if encoder.startswith("lm-last-token:") else {}
        emb = embed(data, encoder, "completion", progress=True, **options)
        embed_s = time.monotonic() - started
        chosen, rejected = _pair_matrices(emb)
        heads = {"linear": probe_margins(emb, train, test, seed)[0],
                 "mlp": _mlp_margins(chosen, rejected, train, test, seed)}
        out["encoders"][encoder] = {"embed_s": round(embed_s, 1), "dim": emb.dim, "max_length": emb.max_length,
                                    "heads": {}}
        for head, margin in heads.items():
            metrics = preference_metrics(margin, *lengths, rule, n_boot=1000, seed=seed)
            keep = ("accuracy", "accuracy_ci95", "length_baseline", "length_baseline_direction",
                    "length_controlled_accuracy", "length_controlled_ci95", "log_loss", "log_loss_ci95",
                    "length_baseline_log_loss", "beats_length_baseline", "content_signal", "length_groups")
            out["encoders"][encoder]["heads"][head] = {k: metrics[k] for k in keep}
            print(f"{name} · {encoder} · {head}: acc {metrics['accuracy']:.3f} (length rule "
                  f"{metrics['length_baseline']:.3f}), LC {metrics['length_controlled_accuracy']:.3f} "
                  f"{[round(v, 3) for v in metrics['length_controlled_ci95']]}, log loss {metrics['log_loss']:.3f}",
                  flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alpaca-pairs", type=int, default=2000)
    parser.add_argument("--encoders", default="minilm,lm-last-token:smollm2-135m")
    parser.add_argument("--data-dir", default=str(SHARED_DATA))
    args = parser.parse_args(argv)
    encoders = [e for e in args.encoders.split(",") if e]
    from pathlib import Path

    folder = Path(args.data_dir)
    figures = {"runs": []}
    for name, path, n in (("hh_harmless", folder / "hh_harmless_test.jsonl.gz", None),
                          ("alpaca_eval", folder / "alpaca_eval_pairs.jsonl.gz", args.alpaca_pairs)):
        if not path.exists():
            print(f"skipping {name}: {path} is absent")
            continue
        figures["runs"].append(evaluate_encoders(name if n is None else f"{name} (sample of {n:,})", _sample(path, n),
                                                 encoders))
        write_result("evaluators", figures)
    print(write_result("evaluators", figures))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

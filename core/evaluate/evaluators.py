"""Evaluations: held-out preference accuracy of a trained policy (here) and the fast embedding
probe (:mod:`alignscope.evaluate.probe`).

Two evaluators, both on held-out pairs drawn by :func:`split_pairs` (seeded, from the whole data
set, so every selection of the same data is scored on the same pairs):

* :func:`evaluate_pairs` / :func:`evaluate_run`: the real thing. For each held-out pair, the sum of
  the completion's token log-probabilities under the trained policy π and under the reference
  π_ref (the model before training), tokenised and truncated as TRL does in training. Reported:

  - **implicit-reward accuracy** (the headline ``accuracy``): share of pairs where
    β·(log π(y_c|x) − log π_ref(y_c|x)) > β·(log π(y_r|x) − log π_ref(y_r|x)), i.e. where DPO's
    implicit reward ranks the chosen completion above the rejected one; the mean reward margin;
  - the policy's own **log-prob preference accuracy** (log π(y_c|x) > log π(y_r|x)), also per token
    (length-normalised), and the same for the reference as the before-training baseline.

  A tie counts as half a success, so an untrained policy (π = π_ref: every margin exactly 0) scores
  0.5. Every share and mean comes with a seeded percentile-bootstrap 95 % interval over pairs.
  Batched, under ``torch.inference_mode``.

* :func:`~alignscope.evaluate.probe.probe_accuracy` / :func:`~alignscope.evaluate.probe.eval_probe`
  (in :mod:`alignscope.evaluate.probe`): a Bradley–Terry linear reward model on FROZEN
  sentence embeddings (see their docstrings). Seconds on a CPU, no training of the language model:
  it is a PROXY for training, useful for fast interactive scaling curves, not a substitute for the
  preference accuracy of a trained policy.

A judge (win rate of generations judged by an LLM) is not implemented yet.

This module never imports ``trl``.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from alignscope.evaluate.metrics import LengthRule, pair_word_lengths, preference_metrics, success
from alignscope.files import atomic_path, write_json
from alignscope.models import ModelError, load_causal_lm, resolve_device
from alignscope.run_files import CONFIG_FILE, EVAL_FILE, EVAL_PAIRS_FILE, STATUS_FILE
from alignscope.train.trainset import EvaluationError, split_pairs

__all__ = ["EVAL_FILE", "EVAL_PAIRS_FILE", "EvaluationError", "split_pairs", "bootstrap_ci", "share_ci", "heldout_length_rule",
           "preference_frame", "encode_completion", "sequence_logprobs", "evaluate_pairs", "write_eval", "evaluate_run"]

DEFAULT_N_BOOT = 1000

# ------------------------------------------------------------------------------ split, bootstrap
def bootstrap_ci(values: Sequence[float] | np.ndarray, *, n_boot: int = DEFAULT_N_BOOT, confidence: float = 0.95,
                 seed: int = 0, statistic: Callable[[np.ndarray], np.ndarray] | None = None) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (or of ``statistic(samples, axis=1)``).

    Resamples the values with replacement ``n_boot`` times with ``default_rng(seed)``; returns
    ``(nan, nan)`` for no values and ``(x, x)`` for one value or ``n_boot == 0``.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        return (math.nan, math.nan)
    point = float(x.mean()) if statistic is None else float(statistic(x[None, :])[0])
    if x.size == 1 or n_boot <= 0:
        return (point, point)
    rng = np.random.default_rng(seed)
    stats = np.empty(n_boot, dtype=np.float64)
    chunk = max(1, min(n_boot, 2_000_000 // x.size))
    for start in range(0, n_boot, chunk):
        stop = min(n_boot, start + chunk)
        sample = x[rng.integers(0, x.size, size=(stop - start, x.size))]
        stats[start:stop] = sample.mean(axis=1) if statistic is None else statistic(sample)
    alpha = (1 - confidence) / 2
    low, high = np.quantile(stats, [alpha, 1 - alpha])
    return (float(low), float(high))


def share_ci(diff: np.ndarray, n_boot: int, seed: int) -> tuple[float, list[float]]:
    """The share of wins of ``diff`` (a tie counts ½) and its bootstrap 95 % interval."""
    wins = success(diff)
    return float(wins.mean()), list(bootstrap_ci(wins, n_boot=n_boot, seed=seed))


def _mean(values: np.ndarray, n_boot: int, seed: int) -> tuple[float, list[float]]:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()), list(bootstrap_ci(values, n_boot=n_boot, seed=seed))


# ------------------------------------------------------------------------------- log-probs
def _ids(encoded: Any) -> list[int]:
    if isinstance(encoded, Mapping) or hasattr(encoded, "keys"):
        encoded = encoded["input_ids"]
    if hasattr(encoded, "tolist"):
        encoded = encoded.tolist()
    if encoded and isinstance(encoded[0], list):  # a batch of one
        encoded = encoded[0]
    return list(encoded)


def _tokenize(tokenizer: Any, text: Any, *, generation_prompt: bool = False) -> list[int]:
    """As TRL tokenises a training example: chat template for message lists, plain call for text."""
    if isinstance(text, (list, tuple)) or (hasattr(text, "tolist") and not isinstance(text, str)):
        messages = [dict(m) for m in (text.tolist() if hasattr(text, "tolist") else text)]
        return _ids(tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True,
                                                  add_generation_prompt=generation_prompt))
    return _ids(tokenizer(text=str(text)))


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def encode_completion(tokenizer: Any, prompt: Any, completions: Sequence[Any], max_length: int | None) -> list[tuple[list[int], int]]:
    """Token ids of ``prompt + completion`` for each completion, with the number of prompt tokens.

    Mirrors TRL's DPO/KTO preprocessing: EOS appended to text completions, the prompt is the common
    prefix of the tokenised prompt and each prompt+completion (shared by all completions of the
    prompt), and the sequence is cut to ``max_length`` from the right (``keep_start``).
    """
    conversational = isinstance(prompt, (list, tuple)) or (hasattr(prompt, "tolist") and not isinstance(prompt, str))
    eos = tokenizer.eos_token or ""
    prompt_ids = _tokenize(tokenizer, prompt, generation_prompt=True)
    fulls = []
    for completion in completions:
        if conversational:
            as_list = completion.tolist() if hasattr(completion, "tolist") else list(completion)
            as_prompt = prompt.tolist() if hasattr(prompt, "tolist") else list(prompt)
            fulls.append(_tokenize(tokenizer, as_prompt + as_list))
        else:
            text = str(completion)
            if eos and not text.endswith(eos):
                text += eos
            fulls.append(_tokenize(tokenizer, str(prompt) + text))
    n_prompt = min([_common_prefix(prompt_ids, full) for full in fulls] or [0])
    out = []
    for full in fulls:
        ids = prompt_ids[:n_prompt] + full[n_prompt:]
        if max_length is not None:
            ids = ids[:max_length]
        out.append((ids, min(n_prompt, len(ids))))
    return out


def _resolve_device(model: Any, device: str | None) -> Any:
    """The device asked for (checked by :func:`alignscope.models.resolve_device`), else the model's own."""
    import torch

    if device is not None:
        return torch.device(resolve_device(device))
    try:
        return next(model.parameters()).device
    except StopIteration:  # pragma: no cover - a model without parameters
        return torch.device("cpu")


def sequence_logprobs(model: Any, sequences: Sequence[tuple[list[int], int]], *, pad_token_id: int,
                      batch_size: int = 8, device: str | None = None,
                      progress: Callable[[int], None] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Sum of log p(token | previous tokens) over the completion tokens of each ``(ids, n_prompt)``,
    and the number of those tokens. Sequences are batched by length (right padding), in
    ``torch.inference_mode``; results are float64 in the input order. ``progress(n_done)`` is called
    after each batch."""
    import torch

    dev = _resolve_device(model, device)
    was_training = getattr(model, "training", False)
    model.eval()
    n = len(sequences)
    sums = np.zeros(n, dtype=np.float64)
    counts = np.zeros(n, dtype=np.int64)
    order = sorted(range(n), key=lambda i: -len(sequences[i][0]))
    done = 0
    try:
        with torch.inference_mode():
            for start in range(0, n, max(1, batch_size)):
                batch = order[start:start + batch_size]
                width = max(len(sequences[i][0]) for i in batch)
                if width < 2:
                    done += len(batch)
                    continue
                ids = torch.full((len(batch), width), int(pad_token_id), dtype=torch.long)
                mask = torch.zeros((len(batch), width), dtype=torch.long)
                target = torch.zeros((len(batch), width - 1), dtype=torch.bool)
                for row, i in enumerate(batch):
                    seq, n_prompt = sequences[i]
                    ids[row, :len(seq)] = torch.tensor(seq, dtype=torch.long)
                    mask[row, :len(seq)] = 1
                    # position t predicts token t+1: count it when token t+1 is a completion token
                    first = max(int(n_prompt), 1)
                    if len(seq) > first:
                        target[row, first - 1:len(seq) - 1] = True
                logits = model(input_ids=ids.to(dev), attention_mask=mask.to(dev)).logits[:, :-1]
                labels = ids[:, 1:].to(dev)
                for row, i in enumerate(batch):
                    keep = target[row].to(dev)
                    if not bool(keep.any()):
                        continue
                    row_logits = logits[row][keep].float()
                    token_lp = row_logits.gather(-1, labels[row][keep][:, None]).squeeze(-1) - torch.logsumexp(row_logits, -1)
                    sums[i] = float(token_lp.double().sum())
                    counts[i] = int(keep.sum())
                del logits
                done += len(batch)
                if progress is not None:
                    progress(done)
    finally:
        if was_training:
            model.train()
    return sums, counts


def _load_model(spec: Any, device: str | None):
    return load_causal_lm(str(spec), device=device)


def preference_frame(data: Any) -> pd.DataFrame:
    """The table of a PreferenceData (or a DataFrame) with prompt, chosen and rejected, else EvaluationError."""
    frame = getattr(data, "frame", data)
    if not isinstance(frame, pd.DataFrame) or not {"prompt", "chosen", "rejected"} <= set(frame.columns):
        raise EvaluationError("evaluation data must be a PreferenceData or a DataFrame with prompt, chosen and rejected")
    return frame


def evaluate_pairs(policy: Any, reference: Any, tokenizer: Any, data: Any, pairs: Sequence[int] | np.ndarray | None = None,
                   *, beta: float = 0.1, max_length: int | None = 256, batch_size: int = 8,
                   max_pairs: int | None = None, n_boot: int = DEFAULT_N_BOOT, seed: int = 0,
                   device: str | None = None, report: Callable[[float], None] | None = None,
                   length_rule: LengthRule | None = None) -> tuple[dict[str, Any], pd.DataFrame]:
    """Held-out preference evaluation of ``policy`` against ``reference`` on ``pairs`` of ``data``.

    ``policy``/``reference``: loaded causal LMs, or model specs (``tiny``, a folder...) loaded here;
    pass the same object twice to evaluate an untrained policy (every margin is then exactly 0).
    ``tokenizer``: the policy's (None: loaded with a spec policy). ``pairs``: row indices (None: all);
    ``max_pairs``: a seeded subset of at most that many. Returns ``(summary, per_pair)``: the
    summary dict written to eval.json (see the module docstring) and one row per pair with both
    models' log-probs and the implicit rewards. ``length_rule``: the length baseline's rule (None:
    fitted on every pair of ``data`` outside ``pairs``, i.e. the training pool of a held-out split).
    The summary carries :func:`alignscope.evaluate.metrics.preference_metrics` of the implicit-reward margin
    (length baseline, length-controlled accuracy, log loss) at its top level.
    """
    started = time.monotonic()
    frame = preference_frame(data)
    if isinstance(policy, (str, os.PathLike)):
        policy, loaded_tokenizer = _load_model(policy, device)
        tokenizer = tokenizer or loaded_tokenizer
    if isinstance(reference, (str, os.PathLike)):
        reference, _ = _load_model(reference, device)
    if tokenizer is None:
        raise EvaluationError("a tokenizer is needed when the policy is given as a loaded model")
    if not (isinstance(beta, (int, float)) and beta > 0):
        raise EvaluationError(f"beta must be > 0, got {beta!r}")
    pairs = np.arange(len(frame), dtype=np.int64) if pairs is None else np.asarray(pairs, dtype=np.int64)
    if pairs.size == 0:
        raise EvaluationError("no pairs to evaluate")
    if pairs.min() < 0 or pairs.max() >= len(frame):
        raise EvaluationError(f"pair index {int(pairs.max())} is out of range for {len(frame)} pairs")
    if length_rule is None:
        length_rule = heldout_length_rule(frame, pairs)
    if max_pairs is not None and pairs.size > max_pairs:
        pairs = np.sort(np.random.default_rng(seed).choice(pairs, size=int(max_pairs), replace=False))

    sequences: list[tuple[list[int], int]] = []
    untruncated = 0
    for p in pairs:
        row = frame.iloc[int(p)]
        encoded = encode_completion(tokenizer, row["prompt"], [row["chosen"], row["rejected"]], None)
        for ids, n_prompt in encoded:
            if max_length is not None and len(ids) > max_length:
                untruncated += 1
            sequences.append((ids[:max_length] if max_length else ids, min(n_prompt, max_length or n_prompt)))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    total = 2 * len(sequences) if reference is not policy else len(sequences)

    def tick(offset: int) -> Callable[[int], None]:
        return lambda done: report((offset + done) / total) if report else None

    pol_sum, n_tokens = sequence_logprobs(policy, sequences, pad_token_id=pad, batch_size=batch_size, device=device,
                                          progress=tick(0))
    if reference is policy:
        ref_sum = pol_sum.copy()
    else:
        ref_sum, _ = sequence_logprobs(reference, sequences, pad_token_id=pad, batch_size=batch_size, device=device,
                                       progress=tick(len(sequences)))
    pol_c, pol_r = pol_sum[0::2], pol_sum[1::2]
    ref_c, ref_r = ref_sum[0::2], ref_sum[1::2]
    tok_c, tok_r = n_tokens[0::2], n_tokens[1::2]
    reward_c = beta * (pol_c - ref_c)
    reward_r = beta * (pol_r - ref_r)
    margin = reward_c - reward_r
    per_tok = lambda s, t: np.divide(s, np.maximum(t, 1))  # noqa: E731

    metrics = preference_metrics(margin, *pair_word_lengths(frame, pairs), length_rule, n_boot=n_boot, seed=seed)
    accuracy, accuracy_ci = metrics["accuracy"], metrics["accuracy_ci95"]
    margin_mean, margin_ci = metrics["mean_margin"], metrics["margin_ci95"]
    pol_acc, pol_ci = share_ci(pol_c - pol_r, n_boot, seed)
    pol_tok_acc, pol_tok_ci = share_ci(per_tok(pol_c, tok_c) - per_tok(pol_r, tok_r), n_boot, seed)
    ref_acc, ref_ci = share_ci(ref_c - ref_r, n_boot, seed)
    ref_tok_acc, ref_tok_ci = share_ci(per_tok(ref_c, tok_c) - per_tok(ref_r, tok_r), n_boot, seed)
    summary = {
        "n_pairs": int(len(pairs)),
        "pairs_sha256": hashlib.sha256(pairs.tobytes()).hexdigest()[:16],
        "beta": float(beta), "max_length": max_length, "n_boot": int(n_boot), "seed": int(seed),
        "ties": "a tie counts as 0.5",
        **metrics,
        "margin_mean": margin_mean,
        "implicit_reward": {"accuracy": accuracy, "ci95": accuracy_ci, "margin_mean": margin_mean,
                            "margin_ci95": margin_ci, "chosen_mean": float(reward_c.mean()),
                            "rejected_mean": float(reward_r.mean())},
        "policy_logp": {"accuracy": pol_acc, "ci95": pol_ci, "per_token_accuracy": pol_tok_acc,
                        "per_token_ci95": pol_tok_ci, "chosen_mean": float(pol_c.mean()),
                        "rejected_mean": float(pol_r.mean())},
        "reference_logp": {"accuracy": ref_acc, "ci95": ref_ci, "per_token_accuracy": ref_tok_acc,
                           "per_token_ci95": ref_tok_ci, "chosen_mean": float(ref_c.mean()),
                           "rejected_mean": float(ref_r.mean())},
        "truncation": {"n_completions_truncated": int(untruncated),
                       "n_completions_without_tokens": int((n_tokens == 0).sum())},
        "elapsed_s": round(time.monotonic() - started, 3),
    }
    per_pair = pd.DataFrame({"pair": pairs, "policy_logp_chosen": pol_c, "policy_logp_rejected": pol_r,
                             "ref_logp_chosen": ref_c, "ref_logp_rejected": ref_r, "tokens_chosen": tok_c,
                             "tokens_rejected": tok_r, "reward_chosen": reward_c, "reward_rejected": reward_r,
                             "margin": margin})
    return summary, per_pair


def write_eval(run_dir: str | os.PathLike, summary: Mapping[str, Any], per_pair: pd.DataFrame | None = None) -> Path:
    """eval.json (and eval_pairs.parquet) in ``run_dir``, atomically."""
    run_dir = Path(run_dir)
    if per_pair is not None:
        with atomic_path(run_dir / EVAL_PAIRS_FILE) as tmp:
            per_pair.to_parquet(tmp, index=False)
    write_json(run_dir / EVAL_FILE, dict(summary))
    return run_dir / EVAL_FILE


def evaluate_run(run_dir: str | os.PathLike, *, recompute: bool = False, data: Any = None, batch_size: int | None = None,
                 device: str | None = None, max_pairs: int | None = None, write: bool = True) -> dict[str, Any]:
    """The held-out evaluation of a training run directory (``alignscope eval RUN_DIR``).

    Returns eval.json when it exists, unless ``recompute``; recomputing needs the run's saved
    ``model/`` and reloads the data from config.json (or ``data``), checks its fingerprint, redraws
    the same held-out pairs and writes eval.json again (keeping its ``training`` block).
    """
    run_dir = Path(run_dir).expanduser()
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise EvaluationError(f"{str(run_dir)!r} is not a run directory (no config.json)")
    existing = None
    with contextlib.suppress(FileNotFoundError, ValueError):
        existing = json.loads((run_dir / EVAL_FILE).read_text(encoding="utf-8"))
    if existing is not None and not recompute:
        return existing
    config = json.loads(config_path.read_text(encoding="utf-8"))
    train_config = config.get("train_config")
    if not isinstance(train_config, Mapping):
        raise EvaluationError(f"{str(run_dir)!r} is not a training run (config.json has no train_config)")
    model_dir = run_dir / "model"
    if not (model_dir / "config.json").is_file():
        status = _status(run_dir)
        raise EvaluationError(f"{str(run_dir)!r} has no saved model (status: {status}); train with save_model=True "
                              "to evaluate it later")
    from alignscope.data.preferences import load_preferences

    if data is None:
        source = (config.get("data") or {}).get("reload")
        if not source:
            raise EvaluationError("the run's data cannot be reloaded from config.json; pass data=")
        data = load_preferences(source)
    elif not hasattr(data, "fingerprint"):
        data = load_preferences(data)
    expected = (config.get("data") or {}).get("fingerprint")
    if expected and data.fingerprint != expected:
        raise EvaluationError(f"the data's fingerprint {data.fingerprint} differs from the run's {expected}")
    split = config.get("split") or {}
    _, test = split_pairs(len(data), float(split.get("test_fraction", train_config.get("test_fraction", 0.2))),
                          int(split.get("seed", train_config.get("split_seed", 0))))
    if len(test) == 0:
        raise EvaluationError("the run held out no pairs (test_fraction 0): nothing to evaluate")
    reference = (config.get("model") or {}).get("folder") or train_config.get("model")
    if reference and not Path(str(reference)).exists():
        reference = train_config.get("model")
    try:
        policy, tokenizer = _load_model(model_dir, device)
        reference_model, _ = _load_model(reference, device)
    except ModelError as exc:
        raise EvaluationError(str(exc)) from None
    summary, per_pair = evaluate_pairs(policy, reference_model, tokenizer, data, test,
                                       beta=float(train_config.get("beta", 0.1)),
                                       max_length=train_config.get("max_length"),
                                       batch_size=int(batch_size or train_config.get("eval_batch_size", 8)),
                                       max_pairs=max_pairs if max_pairs is not None else train_config.get("eval_max_pairs"),
                                       n_boot=int(train_config.get("n_boot", DEFAULT_N_BOOT)),
                                       seed=int(train_config.get("split_seed", 0)), device=device)
    if existing and "training" in existing:
        summary["training"] = existing["training"]
    if write:
        write_eval(run_dir, summary, per_pair)
    return summary


def _status(run_dir: Path) -> str:
    with contextlib.suppress(OSError, ValueError):
        return str(json.loads((run_dir / STATUS_FILE).read_text(encoding="utf-8")).get("status"))
    return "unknown"


def heldout_length_rule(data: Any, heldout_pairs: Sequence[int] | np.ndarray) -> LengthRule:
    """The length rule learned from the pairs that are NOT held out (the training pool)."""
    frame = preference_frame(data)
    train = np.setdiff1d(np.arange(len(frame), dtype=np.int64), np.asarray(heldout_pairs, dtype=np.int64))
    return LengthRule.fit(*pair_word_lengths(data, train if len(train) else None))

"""Evaluations: held-out preference accuracy of a trained policy, and the fast embedding probe.

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

* :func:`probe_accuracy` / :func:`eval_probe`: a Bradley–Terry linear reward model on FROZEN
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

from alignscope.embed.encoders import embed
from alignscope.evaluate.metrics import LengthRule, pair_word_lengths, preference_metrics, success
from alignscope.files import atomic_path, write_json
from alignscope.models import ModelError, load_causal_lm, resolve_device
from alignscope.run_files import CONFIG_FILE, EVAL_FILE, EVAL_PAIRS_FILE, STATUS_FILE
from alignscope.train.trainset import EvaluationError, split_pairs, training_set

__all__ = ["EVAL_FILE", "EVAL_PAIRS_FILE", "EvaluationError", "split_pairs", "bootstrap_ci", "encode_completion",
           "sequence_logprobs", "evaluate_pairs", "write_eval", "evaluate_run", "heldout_length_rule", "ProbeEvaluator",
           "probe_margins", "probe_accuracy", "eval_probe", "PROBE_NOTE"]

DEFAULT_N_BOOT = 1000
PROBE_NOTE = ("proxy: a linear Bradley-Terry reward model on frozen sentence embeddings of the selected pairs; "
              "it predicts which subsets carry a learnable preference signal, it is not the accuracy of a trained policy")


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


def _share(diff: np.ndarray, n_boot: int, seed: int) -> tuple[float, list[float]]:
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


def _frame_of(data: Any) -> pd.DataFrame:
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
    frame = _frame_of(data)
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
    pol_acc, pol_ci = _share(pol_c - pol_r, n_boot, seed)
    pol_tok_acc, pol_tok_ci = _share(per_tok(pol_c, tok_c) - per_tok(pol_r, tok_r), n_boot, seed)
    ref_acc, ref_ci = _share(ref_c - ref_r, n_boot, seed)
    ref_tok_acc, ref_tok_ci = _share(per_tok(ref_c, tok_c) - per_tok(ref_r, tok_r), n_boot, seed)
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


# ------------------------------------------------------------------------------------- probe
def _pair_matrices(embeddings: Any) -> tuple[np.ndarray, np.ndarray]:
    """(chosen, rejected) matrices, one row per pair, from an Embeddings object (``matrix``,
    ``pair_index``, ``label``), a ``(2N, d)`` array (rows 0..N-1 chosen, N..2N-1 rejected) or a
    ``(chosen, rejected)`` tuple."""
    if isinstance(embeddings, tuple) and len(embeddings) == 2:
        chosen, rejected = (np.asarray(m, dtype=np.float64) for m in embeddings)
    else:
        matrix = np.asarray(getattr(embeddings, "matrix", embeddings), dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] % 2:
            raise EvaluationError(f"completion embeddings must be a (2N, d) matrix, got shape {matrix.shape}")
        pair_index = getattr(embeddings, "pair_index", None)
        label = getattr(embeddings, "label", None)
        n = matrix.shape[0] // 2
        if pair_index is not None and label is not None:
            pair_index = np.asarray(pair_index, dtype=np.int64)
            label = np.asarray(label, dtype=np.int64)
            chosen = np.full((n, matrix.shape[1]), np.nan)
            rejected = np.full((n, matrix.shape[1]), np.nan)
            chosen[pair_index[label == 1]] = matrix[label == 1]
            rejected[pair_index[label == 0]] = matrix[label == 0]
            if np.isnan(chosen).any() or np.isnan(rejected).any():
                raise EvaluationError("the embeddings do not hold both completions of every pair (unit must be 'completion')")
        else:
            chosen, rejected = matrix[:n], matrix[n:]
    if chosen.shape != rejected.shape or chosen.ndim != 2:
        raise EvaluationError(f"chosen and rejected embeddings differ in shape: {chosen.shape} vs {rejected.shape}")
    return chosen, rejected


def heldout_length_rule(data: Any, heldout_pairs: Sequence[int] | np.ndarray) -> LengthRule:
    """The length rule learned from the pairs that are NOT held out (the training pool)."""
    frame = _frame_of(data)
    train = np.setdiff1d(np.arange(len(frame), dtype=np.int64), np.asarray(heldout_pairs, dtype=np.int64))
    return LengthRule.fit(*pair_word_lengths(data, train if len(train) else None))


class ProbeEvaluator:
    """The Bradley–Terry probe of :func:`probe_accuracy`, prepared once for one data set and one
    held-out split and then fitted on many training subsets (a sweep's points): the pair matrices,
    the held-out pairs' word lengths and the length rule are computed once.

    ``embeddings``: completion embeddings as :func:`_pair_matrices` reads them (``(2N, d)`` or an
    Embeddings object or a ``(chosen, rejected)`` tuple); ``test_pairs``: held-out pair indices
    ``(n_test,)``; ``data``: the pairs' texts, for the length baseline and the metrics that control
    for length (without it only accuracy is reported); ``length_rule``: default learned from every
    pair that is not held out.
    """

    def __init__(self, embeddings: Any, test_pairs: Sequence[int] | np.ndarray, *, data: Any = None,
                 length_rule: LengthRule | None = None, seed: int = 0, C: float = 1.0, n_boot: int = DEFAULT_N_BOOT):
        self.chosen, self.rejected = _pair_matrices(embeddings)
        self.test_pairs = np.asarray(test_pairs, dtype=np.int64).ravel()
        if self.test_pairs.size == 0:
            raise EvaluationError("the probe has no held-out pairs")
        n = self.chosen.shape[0]
        if self.test_pairs.min() < 0 or self.test_pairs.max() >= n:
            raise EvaluationError(f"held-out pair index out of range for {n} pairs")
        self.seed, self.C, self.n_boot = int(seed), float(C), int(n_boot)
        self.test_diff = self.chosen[self.test_pairs] - self.rejected[self.test_pairs]
        self.rule = self.test_words = None
        if data is not None:
            self.rule = length_rule or heldout_length_rule(data, self.test_pairs)
            self.test_words = pair_word_lengths(data, self.test_pairs)

    def margins(self, train_pairs: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Fit on ``train_pairs``; returns (held-out margins (n_test,), training margins (n_train,),
        weights (d,))."""
        from sklearn.linear_model import LogisticRegression

        train_pairs = np.asarray(train_pairs, dtype=np.int64).ravel()
        if train_pairs.size == 0:
            raise EvaluationError("the probe has no training pairs")
        n = self.chosen.shape[0]
        if train_pairs.min() < 0 or train_pairs.max() >= n:
            raise EvaluationError(f"training pair index out of range for {n} pairs")
        overlap = np.intersect1d(train_pairs, self.test_pairs)
        if overlap.size:
            raise EvaluationError(f"{overlap.size} pairs are both training and held-out pairs")
        diff = self.chosen[train_pairs] - self.rejected[train_pairs]
        X = np.vstack([diff, -diff])
        y = np.concatenate([np.ones(len(diff), dtype=np.int64), np.zeros(len(diff), dtype=np.int64)])
        model = LogisticRegression(fit_intercept=False, C=self.C, max_iter=5000, random_state=self.seed)
        model.fit(X, y)
        w = model.coef_.ravel()
        return self.test_diff @ w, diff @ w, w

    def evaluate(self, train_pairs: Sequence[int] | np.ndarray, *, with_margins: bool = False) -> dict[str, Any]:
        """The probe's scores on the held-out pairs after fitting on ``train_pairs`` (the keys of
        :func:`probe_accuracy`); ``with_margins`` adds the arrays ``heldout_pairs`` and
        ``heldout_margin`` (not JSON)."""
        started = time.monotonic()
        test_scores, train_scores, w = self.margins(train_pairs)
        if self.rule is not None:
            result = preference_metrics(test_scores, *self.test_words, self.rule, n_boot=self.n_boot, seed=self.seed)
        else:
            accuracy, ci = _share(test_scores, self.n_boot, self.seed)
            result = {"accuracy": accuracy, "accuracy_ci95": ci, "n_heldout": int(self.test_pairs.size)}
        result.update({
            "train_accuracy": float(success(train_scores).mean()),
            "margin_mean": float(test_scores.mean()),
            "n_train": int(len(train_scores)), "n_test": int(self.test_pairs.size), "dim": int(len(w)),
            "C": self.C, "weight_norm": float(np.linalg.norm(w)), "n_boot": self.n_boot, "seed": self.seed,
            "elapsed_s": round(time.monotonic() - started, 3), "note": PROBE_NOTE,
        })
        if with_margins:
            result["heldout_pairs"], result["heldout_margin"] = self.test_pairs, test_scores
        return result


def probe_margins(embeddings: Any, train_pairs: Sequence[int] | np.ndarray, test_pairs: Sequence[int] | np.ndarray,
                  seed: int = 0, *, C: float = 1.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fit the Bradley–Terry probe of :func:`probe_accuracy`; returns (held-out margins (n_test,),
    training margins (n_train,), weights (d,))."""
    return ProbeEvaluator(embeddings, test_pairs, seed=seed, C=C).margins(train_pairs)


def probe_accuracy(embeddings: Any, train_pairs: Sequence[int] | np.ndarray, test_pairs: Sequence[int] | np.ndarray,
                   seed: int = 0, *, C: float = 1.0, n_boot: int = DEFAULT_N_BOOT, data: Any = None,
                   length_rule: LengthRule | None = None) -> dict[str, Any]:
    """Held-out pairwise accuracy of a Bradley–Terry linear reward model on frozen embeddings.

    The reward is r(y) = w·e(y). P(chosen ≻ rejected) = σ(w·(e_c − e_r)); w is fitted by L2
    logistic regression WITHOUT intercept on the differences of the ``train_pairs`` (each
    difference also enters negated with the opposite label, which makes the fit symmetric: swapping
    chosen and rejected flips the prediction). Scored on ``test_pairs``: share with
    w·(e_c − e_r) > 0 (ties 0.5), with a seeded bootstrap 95 % interval. With ``data`` (the pairs'
    texts), the result also carries :func:`alignscope.evaluate.metrics.preference_metrics` of the held-out
    margins: the length baseline (rule ``length_rule``, default: learned from every pair that is not
    held out), length-controlled accuracy and log loss. Many subsets of one data set:
    :class:`ProbeEvaluator` prepares the shared parts once.

    This is a PROXY for training: it says whether the selected pairs carry a preference signal a
    linear model of the embeddings can learn, in seconds; it is not what DPO/KTO would reach.
    """
    return ProbeEvaluator(embeddings, test_pairs, data=data, length_rule=length_rule, seed=seed, C=C,
                          n_boot=n_boot).evaluate(train_pairs)


def eval_probe(data: Any, selection: Any = None, *, encoder: str = "minilm", test_fraction: float = 0.2,
               seed: int = 0, pair_rule: str = "any", embeddings: Any = None, C: float = 1.0,
               n_boot: int = DEFAULT_N_BOOT, with_margins: bool = False, **embed_options: Any) -> dict[str, Any]:
    """The probe on a selection (``alignscope eval-probe DATA --selection SEL [--eval-encoder E]``).

    Held-out pairs come from :func:`split_pairs` (``test_fraction``, ``seed``) over the whole data,
    as in training; the probe is fitted on the SELECTED pairs that are not held out (a
    completion-level selection keeps a pair by ``pair_rule``, as DPO training does) and scored on
    every held-out pair, beside the length baseline (see :func:`probe_accuracy`). ``encoder``: the
    probe's own features (the *evaluation* encoder); ``embeddings``: precomputed completion
    embeddings, else ``alignscope.embed.encoders.embed(data, encoder=encoder, unit="completion", **embed_options)``.
    When the selection was made with the same encoder, ``circular`` is True: the selector and the
    judge see the same features. ``with_margins``: also return the held-out pairs and their margins
    as arrays (``heldout_pairs``, ``heldout_margin``; not JSON). A proxy for training.
    """
    from alignscope.data.preferences import PreferenceData, load_preferences

    if not isinstance(data, PreferenceData):
        data = load_preferences(data)
    tset = training_set(data, selection, method="dpo", test_fraction=test_fraction, split_seed=seed,
                        pair_rule=pair_rule)
    if len(tset.test_pairs) == 0:
        raise EvaluationError("test_fraction must be > 0: the probe needs held-out pairs")
    used_encoder = getattr(embeddings, "encoder", None)
    if embeddings is None:
        embeddings = embed(data, encoder=encoder, unit="completion", **embed_options)
        used_encoder = getattr(embeddings, "encoder", None) or encoder
    result = ProbeEvaluator(embeddings, tset.test_pairs, data=data, seed=seed, C=C, n_boot=n_boot).evaluate(
        tset.pairs, with_margins=with_margins)
    selection_encoder = _selection_encoder(tset.info.get("meta"))
    result.update({"encoder": used_encoder, "eval_encoder": used_encoder, "selection_encoder": selection_encoder,
                   "circular": bool(selection_encoder is not None and selection_encoder == used_encoder),
                   "data_fingerprint": data.fingerprint,
                   "selection": tset.info.get("path"), "selection_level": tset.level,
                   "n_selected": tset.n_selected, "n_selected_in_test": tset.n_selected_in_test,
                   "test_fraction": test_fraction, "pair_rule": pair_rule})
    if result["circular"]:
        result["circular_note"] = (f"the selection and the probe both use {used_encoder} features: the probe may "
                                   "favour what the selector saw; judge with another --eval-encoder")
    return result


def _selection_encoder(meta: Any) -> str | None:
    """The encoder a selection's recorded config names (None for random or unknown)."""
    if not isinstance(meta, Mapping) or meta.get("method") == "random":  # random reads no features
        return None
    for key in ("encoder",):
        if isinstance(meta.get(key), str) and meta[key]:
            return meta[key]
    for value in meta.values():
        found = _selection_encoder(value) if isinstance(value, Mapping) else None
        if found:
            return found
    return None

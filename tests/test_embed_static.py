"""The static encoder (Model2Vec distilled from the packaged MiniLM), distinct-text embedding,
measured time estimates and embedding on Ray. Real models, real processes; nothing mocked.

The static model is distilled at most once per test session, into the session's models folder
(``ALIGNSCOPE_MODELS``, tests/conftest.py: minutes on a loaded 2-core CPU), where every test's own
ALIGNSCOPE_HOME finds it, as every home on a machine does; the determinism test distils it a
second time in a models folder of its own and is marked slow.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

from pathlib import Path

import numpy as np
import pytest

from alignscope.embed import encoders as E
from alignscope.cli import main
from alignscope.data.preferences import load_preferences
from alignscope.data.preferences import demo_preferences


@pytest.fixture
def static_home(isolated_home, static_model, monkeypatch):
    """This test's own home; the session's static model is found in the shared models folder."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert E.static_folder("cpu", create=False) == static_model
    E._get_backend.cache_clear()
    return isolated_home


def _planted_repeats() -> "object":
    """Demo pairs where some completions (with their prompts) repeat exactly, as in AlpacaEval."""
    frame = demo_preferences(n=40, seed=3).frame[["prompt", "chosen", "rejected"]].copy()
    for i in range(10, 20):  # pairs 10..19 repeat pairs 0..9 (prompt and chosen): 10 repeated texts
        frame.loc[i, ["prompt", "chosen"]] = frame.loc[i - 10, ["prompt", "chosen"]].to_numpy()
        if frame.loc[i, "chosen"] == frame.loc[i, "rejected"]:
            frame.loc[i, "rejected"] += " (other)"
    frame.loc[25, "rejected"] = frame.loc[25, "chosen"] + " "  # near, not exact: a distinct text
    return load_preferences(frame)


# ------------------------------------------------------------------------------------------- names
def test_static_is_a_known_encoder_with_one_output():
    assert E.parse_encoder(" static ") == ("static", None)
    with pytest.raises(E.EmbeddingError, match="layer applies to lm-last-token"):
        E.embed_texts(["a"], "static", layer=1)
    with pytest.raises(E.EmbeddingError, match="'static'"):
        E.parse_encoder("statik")


# ---------------------------------------------------------------------------------------------- CLI
def test_cli_embeds_demo_offline_with_n_dim_seconds_then_reuses_the_cache(static_home, tmp_path):
    out = tmp_path / "x.npy"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, "-m", "alignscope.cli", "embed", "demo:200", "--encoder", "static", "--json",
               "--out", str(out)]
    first = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert first.returncode == 0, first.stderr
    info = json.loads(first.stdout)
    assert (info["n"], info["dim"], info["encoder"], info["from_cache"]) == (400, 256, "static", False)
    assert info["seconds"] > 0
    matrix = np.load(out)
    assert matrix.shape == (400, 256) and matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-5)
    encoders = static_home / "cache" / "encoders"
    assert not encoders.exists() or not [p for p in encoders.iterdir() if p.name.startswith("static")]
    assert "distilling" not in first.stderr  # the shared model: nothing distilled again

    second = subprocess.run(command + ["--force"], capture_output=True, text=True, env=env, timeout=300)
    assert second.returncode == 0, second.stderr
    assert json.loads(second.stdout)["from_cache"] is True
    np.testing.assert_array_equal(np.load(out), matrix)


def test_two_alignscope_homes_share_one_distilled_model(static_model, tmp_path):
    """Two homes, one machine: both find the model distilled once in ALIGNSCOPE_MODELS (as two
    projects find one Hugging Face cache); neither distils or copies one of its own."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    vectors = []
    for name in ("home-a", "home-b"):
        home = tmp_path / name
        out = tmp_path / f"{name}.npy"
        done = subprocess.run([sys.executable, "-m", "alignscope.cli", "embed", "demo:30", "--encoder", "static",
                               "--json", "--out", str(out)], capture_output=True, text=True, timeout=300,
                              env={**env, "ALIGNSCOPE_HOME": str(home)})
        assert done.returncode == 0, done.stderr
        assert "distilling" not in done.stderr
        assert not list(home.rglob("model.safetensors"))  # no model inside either home
        vectors.append(np.load(out))
    np.testing.assert_array_equal(vectors[0], vectors[1])
    assert static_model.parent == Path(os.environ["ALIGNSCOPE_MODELS"])
    assert [p.name for p in static_model.parent.iterdir() if p.name.startswith("static-")] == [static_model.name]


def test_a_model_distilled_by_an_earlier_version_in_a_home_is_moved_not_distilled_again(
        static_model, isolated_home, isolated_models, monkeypatch, caplog):
    """Earlier versions distilled into ALIGNSCOPE_HOME/cache/encoders/: that copy is adopted."""
    import shutil

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    legacy = isolated_home / "cache" / "encoders" / static_model.name
    shutil.copytree(static_model, legacy)
    with caplog.at_level("WARNING"):
        adopted = E.static_folder("cpu", create=True)
    assert adopted == isolated_models / static_model.name
    assert "moving" in caplog.text and "distilling" not in caplog.text
    assert (adopted / "model.safetensors").read_bytes() == (static_model / "model.safetensors").read_bytes()
    assert not [p for p in isolated_models.iterdir() if p.name.startswith(".")]  # no temporary folder left


def test_cli_rejects_ray_options_without_the_ray_executor(static_home, tmp_path, capsys):
    out = tmp_path / "x.npy"
    assert main(["embed", "demo:30", "--encoder", "static", "--workers", "2", "--out", str(out)]) == 2
    assert "--executor ray" in capsys.readouterr().err
    assert not out.exists()


# -------------------------------------------------------------------------------------------- cache
def test_static_embeddings_use_the_shared_cache_and_units(static_home):
    data = demo_preferences(n=30, seed=1)
    first = E.embed(data, "static", progress=False)
    second = E.embed(data, "static", progress=False)
    assert not first.from_cache and second.from_cache
    np.testing.assert_array_equal(first.matrix, second.matrix)
    assert first.matrix.shape == (60, 256) and first.info()["max_length"] == 512
    pair = E.embed(data, "static", "pair", progress=False)
    assert pair.from_cache and pair.matrix.shape == (30, 512)
    np.testing.assert_array_equal(pair.matrix, E.pair_vectors(first.matrix))
    # Another encoder never reads static's entry.
    assert not E.embed(data, "minilm", progress=False).from_cache


# ------------------------------------------------------------------------------------------- dedupe
def test_distinct_texts_keep_first_appearance_and_scatter_back():
    unique, inverse = E.distinct_texts(["b", "a", "b", "c", "a"])
    assert unique == ["b", "a", "c"]
    assert inverse.tolist() == [0, 1, 0, 2, 1]
    assert [unique[i] for i in inverse] == ["b", "a", "b", "c", "a"]


@pytest.mark.parametrize("encoder", ["static", "minilm"])
def test_deduplicated_embedding_equals_embedding_every_row(static_home, encoder):
    data = _planted_repeats()
    texts = E.element_texts(data)
    unique, _ = E.distinct_texts(texts)
    assert len(unique) == len(texts) - 10
    calls = []
    emb = E.embed(data, encoder, precision="fp32", cache=False, progress=False,
                  on_progress=lambda done, total: calls.append(total))
    assert calls[-1] == len(unique)  # each distinct text encoded once
    every_row = E.embed_texts(texts, encoder, precision="fp32", dedupe=False)
    if encoder == "static":  # a lookup table: bitwise
        np.testing.assert_array_equal(emb.matrix, every_row)
    else:  # other batch compositions: float32 rounding only
        np.testing.assert_allclose(emb.matrix, every_row, rtol=0, atol=2e-6)
    np.testing.assert_array_equal(emb.matrix[10:20], emb.matrix[0:10])  # the repeats share their vectors


def _awkward_texts() -> list[str]:
    """Texts that exercise every branch of the static path: long ones (cut at a space and still
    max_length tokens; cut without a space; cut to too few tokens, so tokenised again with
    model2vec's cut), empty and whitespace-only ones, unknown tokens only, CJK, control characters."""
    rng = np.random.default_rng(0)
    words = ["preference", "data", "alignment", "the", "a", "model", "photosynthesis", "x", "naïve", "Zürich"]
    texts = [" ".join(rng.choice(words, size=int(size))) for size in rng.integers(1, 1500, size=60)]
    texts += [e for e in E.element_texts(demo_preferences(n=50, seed=1))]
    texts += ["", "   ", "\n\n", "🙂" * 40, "⁂ ⁂ ⁂", "日本語のテキストです。" * 300, "x" * 6000,
              "supercalifragilisticexpialidocious " * 200, ("a" * 90 + " ") * 80, "tab\tseparated\u0000text",
              "word " * 3000, "Short.", "UPPER lower MiXeD"]
    return texts


def test_static_vectors_equal_plain_model2vec_for_every_text(static_home, monkeypatch):
    """The product's static path (first cut at a space, one batched tokenizer call, embedding_bag
    mean) gives model2vec's own ``encode`` vectors: cosine >= 0.999 for every text (in fact equal
    to float32 rounding), zero vectors where model2vec gives zeros."""
    texts = _awkward_texts()
    ours = E.embed_texts(texts, "static", dedupe=False)
    backend = E._get_backend("static", None, "cpu")
    theirs = backend.model.encode(texts, max_length=E.STATIC_SETTINGS["max_length"], use_multiprocessing=False)
    assert ours.shape == theirs.shape == (len(texts), 256) and ours.dtype == np.float32
    norms_ours, norms_theirs = np.linalg.norm(ours, axis=1), np.linalg.norm(theirs, axis=1)
    np.testing.assert_array_equal(norms_ours == 0, norms_theirs == 0)
    real = norms_theirs > 0
    cosine = (ours[real] * theirs[real]).sum(1) / (norms_ours[real] * norms_theirs[real])
    assert cosine.min() >= 0.999
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
    # The first cut did apply (texts much longer than 512 tokens could be) and changed nothing.
    assert sum(len(t) > E.STATIC_CUT_CHARS_PER_TOKEN * E.STATIC_SETTINGS["max_length"] for t in texts) >= 5
    # Across tokenizer calls (several chunks) the rows are the same as in one call.
    monkeypatch.setattr(E, "STATIC_CHUNK", 7)
    np.testing.assert_array_equal(E.embed_texts(texts, "static", dedupe=False), ours)


# ----------------------------------------------------------------------------------------- estimate
def test_estimate_is_measured_here_and_counts_distinct_texts(static_home):
    texts = E.element_texts(demo_preferences(n=200, seed=0))
    assert E.estimate_seconds("static", texts, calibrate=False) is None
    assert "no rate measured" in E.describe_estimate("static", texts)
    rate = E.calibrate("static", texts)
    assert rate > 0
    stored = json.loads(E.rates_path().read_text())
    assert any(key.startswith("static|") for key in stored["rates"])
    one = E.estimate_seconds("static", texts[:100], calibrate=False)
    repeated = E.estimate_seconds("static", texts[:100] * 5, calibrate=False)
    two = E.estimate_seconds("static", texts[:200], calibrate=False)
    assert one > 0 and repeated == pytest.approx(one)  # repeats cost nothing
    distinct = lambda rows: list(dict.fromkeys(rows))  # noqa: E731 - estimates count each distinct text once
    assert two == pytest.approx(one * E._effective_chars(distinct(texts[:200]), 512)
                                / E._effective_chars(distinct(texts[:100]), 512))
    line = E.describe_estimate("static", texts)
    assert line.startswith("about ") and "texts/s on this machine" in line
    # A rates file measured on another machine is not trusted.
    E.rates_path().write_text(json.dumps({**stored, "machine": "another machine"}))
    assert E.estimate_seconds("static", texts, calibrate=False) is None


def test_estimates_never_build_a_model(isolated_home, isolated_models):
    line = E.describe_estimate("static", ["a text", "another text"], calibrate=True)
    assert "one-time distillation" in line
    assert not E.static_folder("cpu", create=False).exists()
    # A causal LM is not built or downloaded for an estimate either (the app asks on every page view).
    assert "no rate measured" in E.describe_estimate("lm-last-token:smollm2-135m", ["a text"])
    from alignscope.models import models_dir

    assert not models_dir().exists() or not list(models_dir().iterdir())


def test_estimate_calibrates_a_missing_rate_on_request(static_home):
    texts = [f"text number {i} about something" for i in range(80)]
    seconds = E.estimate_seconds("static", texts)  # calibrate=True: measures ~64 texts first
    assert seconds is not None and seconds > 0


# ------------------------------------------------------------------------------------- determinism
@pytest.mark.slow
def test_two_distillations_give_identical_vectors(static_model, isolated_home, isolated_models, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    E._get_backend.cache_clear()
    again = E.static_folder("cpu", create=True)  # a second, independent distillation in its own models folder
    assert again != static_model and again.name == static_model.name
    from model2vec import StaticModel

    texts = E.element_texts(demo_preferences(n=50, seed=2))
    a = StaticModel.from_pretrained(str(static_model)).encode(texts)
    b = StaticModel.from_pretrained(str(again)).encode(texts)
    np.testing.assert_array_equal(a, b)
    assert (again / "model.safetensors").read_bytes() == (static_model / "model.safetensors").read_bytes()
    assert not [p for p in again.parent.iterdir() if p.name.startswith(".")]  # no temporary folder left


# --------------------------------------------------------------------------------------------- ray
def test_ray_embedding_writes_the_same_cache_entry_as_a_local_run(static_home):
    pytest.importorskip("ray")
    import ray

    from alignscope.embed.ray import embed_ray

    data = _planted_repeats()
    try:
        remote = embed_ray(data, "static", workers=2, shards=3, progress=False)
    finally:
        ray.shutdown()
    assert not remote.from_cache
    local = E.embed(data, "static", cache=False, progress=False)
    np.testing.assert_array_equal(remote.matrix, local.matrix)
    cached = E.embed(data, "static", progress=False)  # reads the entry the Ray run wrote
    assert cached.from_cache
    np.testing.assert_array_equal(cached.matrix, local.matrix)
    assert remote.info() | {"from_cache": True} == cached.info()

"""alignscope.embed.encoders: real encoders (packaged MiniLM, the tiny Llama) on demo data; no mocks."""
from __future__ import annotations

import json

import numpy as np
import pytest

from alignscope.embed import encoders as E
from alignscope.data.preferences import demo_preferences
from alignscope.embed.encoders import EmbeddingError, embed, embed_texts
from alignscope.embed.embeddings import Embeddings

N = 50


@pytest.fixture(scope="module")
def data():
    return demo_preferences(n=N, seed=0)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny Llama built once for this module (its own home), used as ``lm-last-token:<folder>``."""
    from alignscope.models import resolve_model

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ALIGNSCOPE_HOME", str(tmp_path_factory.mktemp("tiny-home")))
        return f"lm-last-token:{resolve_model('tiny')}"


def _cache_files():
    return sorted(E.cache_dir().glob("*.npy")), sorted(E.cache_dir().glob("*.json"))


# ------------------------------------------------------------------------------------------ minilm
def test_minilm_completion_rows_equal_sentence_transformers_encode(data):
    emb = embed(data, encoder="minilm", precision="fp32", progress=False)
    assert emb.matrix.shape == (2 * N, 384) and emb.matrix.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb.matrix, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(emb.pair_index, np.r_[np.arange(N), np.arange(N)])
    np.testing.assert_array_equal(emb.label, np.r_[np.ones(N), np.zeros(N)])
    assert (emb.encoder, emb.unit, emb.layer, emb.fingerprint) == ("minilm", "completion", None, data.fingerprint)

    # Reference: sentence-transformers' own pipeline on texts built here from the raw frame.
    from sentence_transformers import SentenceTransformer

    frame = data.frame
    assert not any(p[-1].isspace() for p in frame["prompt"])  # so the join is prompt + "\n" + completion
    texts = [f"{p}\n{c}" for p, c in zip(frame["prompt"], frame["chosen"])] + \
            [f"{p}\n{r}" for p, r in zip(frame["prompt"], frame["rejected"])]
    model = SentenceTransformer(str(E.minilm_folder()), device="cpu")
    reference = model.encode(texts, batch_size=32, convert_to_numpy=True, normalize_embeddings=True)
    assert (emb.matrix * reference).sum(axis=1).min() >= 0.999

    # "auto" runs bf16 on CPUs with AMX; either way the vectors must stay within the same bound.
    auto = embed(data, encoder="minilm", progress=False)
    assert (auto.matrix * reference).sum(axis=1).min() >= 0.999

    # The pair unit is [(c + r) / 2, c - r] of the completion rows.
    pair = embed(data, encoder="minilm", unit="pair", precision="fp32", progress=False)
    assert pair.matrix.shape == (N, 768) and pair.label is None and pair.from_cache
    c, r = emb.matrix[:N], emb.matrix[N:]
    np.testing.assert_allclose(pair.matrix, np.c_[(c + r) / 2, c - r], atol=1e-7)


def test_cache_is_used_on_the_second_call_and_corrupt_files_are_recomputed():
    data = demo_preferences(n=20, seed=1)
    n = data.n_pairs
    seen = []
    first = embed(data, encoder="minilm", progress=False, batch_size=8, on_progress=lambda d, t: seen.append((d, t)))
    assert not first.from_cache
    assert len(seen) == 5 and seen[-1] == (2 * n, 2 * n) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    (npy,), (meta,) = _cache_files()
    assert json.loads(meta.read_text())["key"]["fingerprint"] == data.fingerprint

    # Prove the second call reads the file (plant a different valid matrix there) and never even
    # asks for the model, so a fresh process gets its cached vectors without a model load.
    np.save(npy, first.matrix[::-1].copy())
    lookups = E._get_backend.cache_info()
    second = embed(data, encoder="minilm", progress=False)
    assert second.from_cache
    np.testing.assert_array_equal(second.matrix, first.matrix[::-1])
    after = E._get_backend.cache_info()
    assert after.hits + after.misses == lookups.hits + lookups.misses

    # Garbage bytes: detected, recomputed (identical to the first run), cache repaired.
    npy.write_bytes(b"\x93NUMPY garbage")
    third = embed(data, encoder="minilm", progress=False, batch_size=8)
    assert not third.from_cache
    np.testing.assert_array_equal(third.matrix, first.matrix)  # same arguments: same bits
    np.testing.assert_array_equal(np.load(npy, allow_pickle=False), first.matrix)

    # Metadata that does not match the matrix: recomputed too.
    record = json.loads(meta.read_text())
    record["shape"] = [3, 384]
    meta.write_text(json.dumps(record))
    assert not embed(data, encoder="minilm", progress=False).from_cache

    # cache=False neither reads nor writes.
    for path in _cache_files()[0] + _cache_files()[1]:
        path.unlink()
    assert not embed(data, progress=False, cache=False).from_cache
    assert _cache_files() == ([], [])


def test_bad_arguments_raise_embedding_errors(data):
    with pytest.raises(EmbeddingError, match="unknown encoder"):
        embed(data, encoder="word2vec")
    with pytest.raises(EmbeddingError, match="unit"):
        embed(data, unit="sentence")
    with pytest.raises(EmbeddingError, match="layer applies"):
        embed(data, layer=3)
    with pytest.raises(EmbeddingError, match="batch_size"):
        embed(data, batch_size=0)
    with pytest.raises(EmbeddingError, match="precision"):
        embed(data, precision="int8")


# ------------------------------------------------------------------------------- lm-last-token:tiny
def test_last_token_encoder_shapes_layers_and_padding(data, tiny):
    emb = embed(data, encoder=tiny, precision="fp32", progress=False)
    assert emb.matrix.shape == (2 * N, 64) and emb.layer == 2 and np.isfinite(emb.matrix).all()
    assert embed(data, encoder=tiny, layer=-1, precision="fp32", progress=False).from_cache  # -1 == 2

    layer1 = embed(data, encoder=tiny, layer=1, precision="fp32", progress=False)
    assert layer1.layer == 1 and not np.allclose(layer1.matrix, emb.matrix)
    with pytest.raises(EmbeddingError, match="out of range"):
        embed(data, encoder=tiny, layer=3)

    # Batched (right-padded, mixed lengths) equals one text at a time: padding never leaks in.
    texts = E.element_texts(data)[:12]
    batched = embed_texts(texts, tiny, batch_size=6, precision="fp32")
    single = embed_texts(texts, tiny, batch_size=1, precision="fp32")
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(batched, emb.matrix[:12], atol=1e-5)

    pair = embed(data, encoder=tiny, unit="pair", precision="fp32", progress=False)
    assert pair.matrix.shape == (N, 128) and pair.pair_index.tolist() == list(range(N))


def test_long_inputs_keep_their_end_for_the_last_token(tiny):
    # With room for only the last few tokens, texts that differ only at the start embed identically.
    ending = " and that is why the sky looks blue on a clear afternoon."
    a, b = embed_texts(["Cats are great" + ending, "Completely different opening words" + ending],
                       tiny, max_length=6, precision="fp32")
    np.testing.assert_array_equal(a, b)
    full = embed_texts(["Cats are great" + ending, "Completely different opening words" + ending],
                       tiny, precision="fp32")
    assert not np.allclose(full[0], full[1])


# ------------------------------------------------------------------------------------- raw .npy files
def test_save_and_load_raw_matrices_round_trip(tmp_path):
    matrix = np.random.default_rng(0).normal(size=(7, 5))  # float64 in, float32 out
    path = Embeddings.from_matrix(matrix, None).save(tmp_path / "emb.npy")
    loaded = Embeddings.load(path).matrix
    assert loaded.dtype == np.float32 and loaded.shape == (7, 5)
    np.testing.assert_allclose(loaded, matrix, rtol=1e-6)


@pytest.mark.parametrize("array, fragment", [
    (np.array([[0.0, 1.0], [2.0, np.nan], [np.inf, 0.0]], dtype=np.float32), "row 1 .*NaN"),
    (np.array([[0.0, 1.0], [np.inf, 0.0]]), "row 1 .*inf"),
    (np.array([[1e300, 0.0]]), "row 0 .*inf"),  # finite float64 that overflows float32
    (np.zeros(4, dtype=np.float32), "2-D"),
    (np.zeros((3, 2), dtype=np.int64), "floating point"),
    (np.zeros((0, 4), dtype=np.float32), "empty"),
])
def test_load_embeddings_rejects_bad_matrices_naming_file_and_row(tmp_path, array, fragment):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(EmbeddingError, match=fragment) as info:
        Embeddings.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)


def test_load_embeddings_never_unpickles(tmp_path):
    path = tmp_path / "objects.npy"
    np.save(path, np.array([[{"evil": 1}]], dtype=object), allow_pickle=True)
    with pytest.raises(EmbeddingError, match="pickle"):
        Embeddings.load(path)
    np.savez(tmp_path / "archive.npz", a=np.zeros((2, 2)))
    with pytest.raises(EmbeddingError, match="npz"):
        Embeddings.load(tmp_path / "archive.npz")
    with pytest.raises(EmbeddingError, match="no such"):
        Embeddings.load(tmp_path / "missing.npy")

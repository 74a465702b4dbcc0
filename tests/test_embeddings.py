"""alignscope.embed.embeddings: one type, one file format (PATH.npy + PATH.npy.json), earlier files still load."""
from __future__ import annotations

import json

import numpy as np
import pytest

from alignscope.embed import encoders as E
from alignscope.data.preferences import demo_preferences
from alignscope.embed.embeddings import FORMAT, EmbeddingError, Embeddings, completion_layout, pair_vectors, sidecar_path


def _completion(n_pairs: int = 6, dim: int = 4, seed: int = 0, **info) -> Embeddings:
    matrix = np.random.default_rng(seed).normal(size=(2 * n_pairs, dim)).astype(np.float32)
    fields = {"encoder": "minilm", "fingerprint": "f" * 16, "max_length": 256, **info}
    return Embeddings.from_matrix(matrix, "completion", **fields)


# ------------------------------------------------------------------------------------- round trip
def test_save_load_round_trip_keeps_rows_and_what_they_are(tmp_path):
    emb = _completion()
    path = emb.save(tmp_path / "emb.npy", extra={"data": {"source": "demo:6"}})
    meta = json.loads(sidecar_path(path).read_text())
    assert sidecar_path(path).name == "emb.npy.json"
    assert (meta["format"], meta["shape"], meta["unit"], meta["data"]) == (FORMAT, [12, 4], "completion",
                                                                         {"source": "demo:6"})
    assert "pair_index" not in meta and "label" not in meta  # the standard layout is not spelled out
    np.testing.assert_array_equal(np.load(path, allow_pickle=False), emb.matrix)  # a plain .npy for other tools

    loaded = Embeddings.load(path)
    np.testing.assert_array_equal(loaded.matrix, emb.matrix)
    assert loaded.info() == {**emb.info(), "from_cache": True}
    np.testing.assert_array_equal(loaded.pair_index, np.r_[np.arange(6), np.arange(6)])
    np.testing.assert_array_equal(loaded.label, np.r_[np.ones(6), np.zeros(6)])
    assert loaded.extra == {"data": {"source": "demo:6"}} and loaded.path == path


def test_pair_unit_and_a_non_standard_layout_round_trip(tmp_path):
    emb = _completion()
    pair = emb.to_unit("pair")
    np.testing.assert_array_equal(pair.matrix, pair_vectors(emb.matrix))
    assert (pair.unit, pair.label, len(pair), pair.dim) == ("pair", None, 6, 8)
    loaded = Embeddings.load(pair.save(tmp_path / "pair.npy"))
    assert loaded.unit == "pair" and loaded.label is None and loaded.pair_index.tolist() == list(range(6))

    # Rows of pairs 4, 1, 1 (a subset in another order): the layout is stored, and comes back.
    rows = np.array([4, 1, 7])
    subset = Embeddings(emb.matrix[rows], emb.pair_index[rows], emb.label[rows], encoder="minilm",
                        unit="completion", layer=None, fingerprint="f" * 16)
    assert not subset.has_standard_layout()
    back = Embeddings.load(subset.save(tmp_path / "subset.npy"))
    assert back.pair_index.tolist() == [4, 1, 1] and back.label.tolist() == [1, 1, 0]
    with pytest.raises(EmbeddingError, match="layout"):
        subset.to_unit("pair")


def test_a_raw_npy_loads_as_rows_of_the_unit_the_caller_gives(tmp_path):
    np.save(tmp_path / "raw.npy", np.ones((10, 3)))  # float64, no sidecar: made elsewhere
    raw = Embeddings.load(tmp_path / "raw.npy")
    assert (raw.unit, raw.pair_index, raw.label, raw.encoder, raw.fingerprint) == (None, None, None, None, None)
    assert raw.matrix.dtype == np.float32
    as_completion = Embeddings.load(tmp_path / "raw.npy", unit="completion")
    np.testing.assert_array_equal(as_completion.pair_index, completion_layout(5)[0])
    np.save(tmp_path / "odd.npy", np.ones((7, 3), np.float32))
    with pytest.raises(EmbeddingError, match=r"odd\.npy.*2N rows"):
        Embeddings.load(tmp_path / "odd.npy", unit="completion")


# --------------------------------------------------------------------------------- bad metadata
def test_metadata_that_does_not_describe_the_matrix_is_refused(tmp_path):
    path = _completion().save(tmp_path / "emb.npy")
    sidecar = sidecar_path(path)
    good = json.loads(sidecar.read_text())
    with pytest.raises(EmbeddingError, match="not pair"):
        Embeddings.load(path, unit="pair")
    for change, fragment in (({"shape": [3, 4]}, "shape"), ({"n": 99}, "shape"), ({"version": 99}, "newer"),
                             ({"format": "something-else"}, "not alignscope"), ({"unit": "sentence"}, "unit"),
                             ({"encoder": 5}, "string"), ({"pair_index": list(range(12)), "label": [1, 0]}, "label"),
                             ({"label": [1] * 12}, "pair_index")):
        sidecar.write_text(json.dumps({**good, **change}))
        with pytest.raises(EmbeddingError, match=fragment) as info:
            Embeddings.load(path)
        assert "emb.npy" in str(info.value) and "\n" not in str(info.value)
    sidecar.write_text("{not json")
    with pytest.raises(EmbeddingError, match="emb.npy.json"):
        Embeddings.load(path)


def test_reserved_keys_cannot_be_overwritten_by_extra(tmp_path):
    with pytest.raises(EmbeddingError, match="reserved"):
        _completion().save(tmp_path / "emb.npy", extra={"unit": "pair"})
    assert not (tmp_path / "emb.npy").exists()


# ------------------------------------------------------------------------------------ atomicity
def test_a_failed_write_leaves_no_half_file_and_no_wrong_description(tmp_path, monkeypatch):
    first = _completion(seed=1)
    path = first.save(tmp_path / "emb.npy")
    bad = _completion(seed=2)
    bad.matrix[3, 0] = np.nan
    with pytest.raises(EmbeddingError, match="row 3"):  # refused before anything is touched
        bad.save(path)
    np.testing.assert_array_equal(Embeddings.load(path).matrix, first.matrix)

    def crash(handle, *args, **kwargs):
        handle.write(b"\x93NUMPY half")
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        _completion(n_pairs=3, seed=3, encoder="static").save(path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["emb.npy"]  # no temp file, the old sidecar gone
    survivor = Embeddings.load(path)
    np.testing.assert_array_equal(survivor.matrix, first.matrix)  # the old matrix, intact
    assert survivor.unit is None and survivor.encoder is None  # never described as the new one


# ----------------------------------------------------------------------- files of earlier versions
def test_the_embed_commands_earlier_sidecar_still_loads(tmp_path):
    emb = _completion()
    np.save(tmp_path / "emb.npy", emb.matrix)
    (tmp_path / "emb.npy.json").write_text(json.dumps({  # what `alignscope embed` wrote before the format key
        "out": str(tmp_path / "emb.npy"), "n": 12, "dim": 4, "encoder": "minilm", "unit": "completion",
        "layer": None, "fingerprint": "f" * 16, "precision": "fp32", "max_length": 256, "from_cache": False,
        "seconds": 1.5, "executor": "local", "data": {"source": "demo:6"}}))
    loaded = Embeddings.load(tmp_path / "emb.npy")
    assert loaded.info() == {**emb.info(), "from_cache": True}
    assert loaded.extra["data"] == {"source": "demo:6"} and loaded.extra["executor"] == "local"


def test_an_earlier_embed_job_run_directory_still_loads(tmp_path):
    from alignscope.embed.tasks import load_embed_result

    emb = _completion()
    np.save(tmp_path / "embeddings.npy", emb.matrix)
    np.save(tmp_path / "pair_index.npy", emb.pair_index)
    np.save(tmp_path / "label.npy", emb.label)
    (tmp_path / "embeddings.json").write_text(json.dumps({**emb.info(), "data": {"source": "demo:6"}}))
    loaded = load_embed_result(tmp_path)
    np.testing.assert_array_equal(loaded.pair_index, np.load(tmp_path / "pair_index.npy"))
    np.testing.assert_array_equal(loaded.label, np.load(tmp_path / "label.npy"))
    assert (loaded.unit, loaded.encoder, loaded.extra["data"]) == ("completion", "minilm", {"source": "demo:6"})


def test_an_unrelated_json_beside_a_raw_npy_is_not_taken_for_metadata(tmp_path):
    np.save(tmp_path / "vectors.npy", np.ones((4, 2), np.float32))
    (tmp_path / "vectors.json").write_text(json.dumps({"unit": "pair", "note": "mine"}))
    assert Embeddings.load(tmp_path / "vectors.npy").unit is None


def test_an_earlier_cache_entry_is_read_without_the_model_and_then_rewritten_in_the_format():
    data = demo_preferences(n=20, seed=3)
    _, info, layer, max_length, _, use_bf16 = E._resolve_options("minilm", None, None, None, None, "auto")
    key = E.cache_key(data, "minilm", info, layer, max_length, use_bf16)
    npy = E._cache_path(key)
    npy.parent.mkdir(parents=True)
    planted = np.random.default_rng(0).normal(size=(40, 384)).astype(np.float32)
    np.save(npy, planted)  # exactly what the earlier cache wrote: <key>.npy + <key>.json
    npy.with_suffix(".json").write_text(json.dumps({"key": key, "shape": [40, 384], "dtype": "float32"}))

    lookups = E._get_backend.cache_info()
    emb = E.embed(data, encoder="minilm", progress=False)
    assert emb.from_cache and E._get_backend.cache_info() == lookups  # no model was asked for
    np.testing.assert_array_equal(emb.matrix, planted)
    assert (emb.encoder, emb.fingerprint, emb.unit) == ("minilm", data.fingerprint, "completion")

    # A mismatching earlier entry is not trusted: recomputed, and stored in the one format.
    npy.with_suffix(".json").write_text(json.dumps({"key": {**key, "n_rows": 99}, "shape": [40, 384]}))
    fresh = E.embed(data, encoder="minilm", progress=False)
    assert not fresh.from_cache and not np.allclose(fresh.matrix, planted)
    assert sorted(p.name for p in npy.parent.iterdir()) == [npy.name, npy.name + ".json"]
    again = E.embed(data, encoder="minilm", progress=False)
    assert again.from_cache and json.loads(sidecar_path(npy).read_text())["key"] == key


# ------------------------------------------------------------------------------------------ CLI
def test_select_embeddings_checks_the_unit_against_the_sidecar(tmp_path, monkeypatch, capsys):
    from alignscope.cli import main
    from alignscope.select.selection import Selection

    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")  # main() sets it; keep the test process as it was
    path = _completion(n_pairs=20, dim=6).save(tmp_path / "emb.npy")
    assert main(["select", "--embeddings", str(path), "--unit", "pair", "--k", "3", "--out",
                 str(tmp_path / "a.parquet")]) == 2
    assert "completion-unit" in capsys.readouterr().err and not (tmp_path / "a.parquet").exists()
    assert main(["select", "--embeddings", str(path), "--k", "5", "--out", str(tmp_path / "b.parquet")]) == 0
    selection = Selection.read(tmp_path / "b.parquet")
    assert (selection.unit, selection.config["encoder"], selection.fingerprint) == ("completion", "minilm", "f" * 16)
    assert selection["pair_index"].max() == 19 and selection["selected"].sum() == 5

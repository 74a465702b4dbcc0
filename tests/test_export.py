"""Export of selected rows in TRL's formats: real files, loaded back with datasets and pandas."""
from __future__ import annotations

import json

import datasets
import numpy as np
import pandas as pd
import pytest

from alignscope.data.preferences import load_preferences
from alignscope.data.preferences import demo_preferences
from alignscope.export import ExportError, config_path_for, export_selection, selected_completions
from alignscope.select.selectors import select


@pytest.fixture(scope="module")
def data():
    return demo_preferences(60, seed=0)


def features(n, seed=0, d=6):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


@pytest.fixture(scope="module")
def pair_selection(data):
    return select(features(data.n_pairs), "isa", k=12, data_fingerprint=data.fingerprint)


@pytest.fixture(scope="module")
def completion_selection(data):
    return select(features(2 * data.n_pairs, seed=1), "random", k=15, seed=3, unit="completion",
                  data_fingerprint=data.fingerprint)


def kept_pairs(table):
    return sorted(table.table.loc[table["selected"], "index"].tolist())


def test_hf_folder_loads_back_in_trl_format(tmp_path, data, pair_selection):
    out = export_selection(data, pair_selection, tmp_path / "subset")
    ds = datasets.load_from_disk(str(out))
    assert ds.column_names == ["prompt", "chosen", "rejected"]
    rows = kept_pairs(pair_selection)
    assert len(ds) == 12
    assert ds["prompt"] == data.frame["prompt"].iloc[rows].tolist()
    assert ds["rejected"] == data.frame["rejected"].iloc[rows].tolist()
    config = json.loads((out / "selection_config.json").read_text())
    assert config["selection"]["method"] == "isa" and config["selection"]["k"] == 12
    assert config["export"] == {**config["export"], "format": "hf", "kind": "pairs", "n_rows": 12,
                                "data_fingerprint": data.fingerprint}


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_file_formats_load_back_with_pandas(tmp_path, data, pair_selection, fmt):
    out = export_selection(data, pair_selection, tmp_path / f"subset.{fmt}")
    frame = pd.read_parquet(out) if fmt == "parquet" else pd.read_json(out, lines=True)
    assert list(frame.columns) == ["prompt", "chosen", "rejected"]
    assert frame["chosen"].tolist() == data.frame["chosen"].iloc[kept_pairs(pair_selection)].tolist()
    config = json.loads(config_path_for(out, fmt).read_text())
    assert config_path_for(out, fmt).name == f"subset.{fmt}.selection_config.json"
    assert config["export"]["format"] == fmt
    # and TRL-style loading through datasets works on the file too
    ds = datasets.load_dataset(fmt if fmt == "parquet" else "json", data_files=str(out), split="train")
    assert len(ds) == 12


def test_completion_selection_to_pairs_uses_the_rule(tmp_path, data, completion_selection):
    expected_any = kept_pairs(completion_selection.pair_selection("any"))
    out = export_selection(data, completion_selection, tmp_path / "any.jsonl")
    frame = pd.read_json(out, lines=True)
    assert frame["prompt"].tolist() == data.frame["prompt"].iloc[expected_any].tolist()
    assert json.loads(config_path_for(out, "jsonl").read_text())["export"]["pair_rule"] == "any"
    chosen_only = kept_pairs(completion_selection.pair_selection("chosen"))
    out2 = export_selection(data, completion_selection, tmp_path / "chosen.jsonl", pair_rule="chosen")
    assert len(pd.read_json(out2, lines=True)) == len(chosen_only) < len(expected_any)


def test_kto_export_one_row_per_selected_completion(tmp_path, data, completion_selection):
    out = export_selection(data, completion_selection, tmp_path / "kto", kind="kto")
    ds = datasets.load_from_disk(str(out))
    assert ds.column_names == ["prompt", "completion", "label"]
    assert len(ds) == 15
    assert ds.features["label"].dtype == "bool"
    sel = completion_selection[completion_selection["selected"]]
    for row in ds:
        # every exported completion is the chosen (label True) or rejected (False) of its prompt
        match = data.frame[data.frame["prompt"] == row["prompt"]]
        column = "chosen" if row["label"] else "rejected"
        assert row["completion"] in match[column].tolist()
    assert sum(ds["label"]) == int((sel["label"] == 1).sum())


def test_kto_export_from_pairs_gives_both_completions(data, pair_selection):
    frame = selected_completions(data, pair_selection, keep_metadata=True)
    assert len(frame) == 24
    assert frame["label"].tolist() == [True, False] * 12
    first = frame["pair_index"].iloc[0]
    assert frame["completion"].iloc[0] == data.frame["chosen"].iloc[first]
    assert frame["completion"].iloc[1] == data.frame["rejected"].iloc[first]
    assert "topic" in frame.columns


def test_conversational_data_keeps_messages(tmp_path):
    rows = [{"prompt": [{"role": "user", "content": f"q{i}"}],
             "chosen": [{"role": "assistant", "content": f"good {i}"}],
             "rejected": [{"role": "assistant", "content": f"bad {i}"}]} for i in range(10)]
    conv = load_preferences(pd.DataFrame(rows))
    table = select(features(10), "random", k=3, data_fingerprint=conv.fingerprint)
    out = export_selection(conv, table, tmp_path / "conv")
    ds = datasets.load_from_disk(str(out))
    assert ds[0]["chosen"][0]["role"] == "assistant" and ds[0]["chosen"][0]["content"].startswith("good")
    kto = export_selection(conv, table, tmp_path / "conv_kto.jsonl", kind="kto")
    first = json.loads(kto.read_text().splitlines()[0])
    assert first["completion"][0]["role"] == "assistant" and first["label"] is True


def test_selection_file_path_as_input(tmp_path, data, pair_selection):
    path = pair_selection.write(tmp_path / "sel.parquet")
    out = export_selection(data, path, tmp_path / "from_file.parquet")
    config = json.loads(config_path_for(out, "parquet").read_text())
    assert config["selection_file"] == str(path)
    assert len(pd.read_parquet(out)) == 12


def test_refuses_to_overwrite_unless_asked(tmp_path, data, pair_selection, completion_selection):
    for name in ("subset", "subset.parquet"):
        out = export_selection(data, pair_selection, tmp_path / name)
        with pytest.raises(ExportError, match="already exists.*overwrite"):
            export_selection(data, pair_selection, tmp_path / name)
        export_selection(data, completion_selection, tmp_path / name, overwrite=True, kind="kto")
        frame = (datasets.load_from_disk(str(out)).to_pandas() if name == "subset"
                 else pd.read_parquet(out))
        assert list(frame.columns) == ["prompt", "completion", "label"] and len(frame) == 15
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "subset", "subset.parquet", "subset.parquet.selection_config.json"]


def test_failed_export_leaves_the_previous_one_intact(tmp_path):
    rows = [{"prompt": f"p{i}", "chosen": "a", "rejected": "b", "meta": v}
            for i, v in enumerate([1, "x", {"k": 1}, 2.5, None, 3, 4, 5])]  # not one arrow type
    mixed = load_preferences(pd.DataFrame(rows))
    table = select(features(8), "random", k=8, data_fingerprint=mixed.fingerprint)
    out = export_selection(mixed, table, tmp_path / "subset")  # canonical columns only: fine
    before = sorted(p.name for p in out.iterdir())
    with pytest.raises(ExportError, match="cannot write subset: .*meta.*without keep_metadata"):
        export_selection(mixed, table, tmp_path / "subset", overwrite=True, keep_metadata=True)
    assert sorted(p.name for p in out.iterdir()) == before
    assert len(datasets.load_from_disk(str(out))) == 8
    assert [p.name for p in tmp_path.iterdir()] == ["subset"]  # no temporary folder left behind
    with pytest.raises(ExportError, match="meta"):
        export_selection(mixed, table, tmp_path / "new.parquet", keep_metadata=True)
    assert [p.name for p in tmp_path.iterdir()] == ["subset"]  # neither data nor config written


def test_fingerprint_mismatch_is_refused(tmp_path, pair_selection):
    other = demo_preferences(60, seed=1)
    with pytest.raises(ExportError, match="fingerprint .* but this data has fingerprint"):
        export_selection(other, pair_selection, tmp_path / "x")
    assert not (tmp_path / "x").exists()
    # without a stored fingerprint the row count is still checked
    small = demo_preferences(20, seed=0)
    table = select(features(60), "random", k=40)
    with pytest.raises(ExportError, match="the data has 20 pairs"):
        export_selection(small, table, tmp_path / "y")


def test_bad_arguments(tmp_path, data, pair_selection):
    with pytest.raises(ExportError, match="format"):
        export_selection(data, pair_selection, tmp_path / "x", format="csv")
    with pytest.raises(ExportError, match="kind"):
        export_selection(data, pair_selection, tmp_path / "x", kind="dpo")
    with pytest.raises(ExportError, match="pair rule"):
        export_selection(data, pair_selection, tmp_path / "x", pair_rule="either")
    with pytest.raises(ExportError, match="no such"):
        export_selection(data, tmp_path / "missing.parquet", tmp_path / "x")

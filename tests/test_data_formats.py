"""Every loader path lands in the same canonical form with the same fingerprint."""
from __future__ import annotations

import gzip
import json

import datasets
import pandas as pd
import pytest

from alignscope.data.preferences import load_preferences, parse_column_map, write_table
from alignscope.data.readers import DataError
from conftest import STANDARD_ROWS, write_jsonl

CONVERSATIONAL_ROWS = [
    {"prompt": [{"role": "user", "content": "What is 2+2?"}],
     "chosen": [{"role": "assistant", "content": "4."}],
     "rejected": [{"role": "assistant", "content": "5."}], "source": "math"},
    {"prompt": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Name a colour."}],
     "chosen": [{"role": "assistant", "content": "Blue."}],
     "rejected": [{"role": "assistant", "content": "Seven."}], "source": "misc"},
]

HH_ROWS = [
    {"chosen": "\n\nHuman: Hi there\n\nAssistant: Hello! How can I help?",
     "rejected": "\n\nHuman: Hi there\n\nAssistant: Go away."},
    # Multi-turn: the shared prefix holds an earlier Assistant turn; only the last one is the reply.
    {"chosen": "\n\nHuman: Tell me a joke\n\nAssistant: Why?\n\nHuman: Just do it\n\nAssistant: A pun walks into a bar.",
     "rejected": "\n\nHuman: Tell me a joke\n\nAssistant: Why?\n\nHuman: Just do it\n\nAssistant: No."},
    # Replies that start with the same words: the prompt must still end at the marker.
    {"chosen": "\n\nHuman: Is it safe?\n\nAssistant: I think it is safe if you wear gloves.",
     "rejected": "\n\nHuman: Is it safe?\n\nAssistant: I think it is fine."},
]


def _expected_fingerprint():
    return load_preferences(pd.DataFrame(STANDARD_ROWS)).fingerprint


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz", ".json", ".json.gz", ".csv", ".csv.gz", ".parquet"])
def test_every_file_format_loads_to_the_same_canonical_rows(tmp_path, suffix):
    path = write_table(pd.DataFrame(STANDARD_ROWS), tmp_path / f"pairs{suffix}")
    data = load_preferences(path)
    assert data.format == "standard"
    assert list(data.frame.columns) == ["prompt", "chosen", "rejected", "source"]
    assert data.frame["chosen"].tolist() == ["4.", "Blue.", "Paris."]
    assert data.frame["source"].tolist() == ["math", "misc", "geo"]
    assert data.fingerprint == _expected_fingerprint()


def test_gzipped_parquet_is_read(tmp_path):
    plain = write_table(pd.DataFrame(STANDARD_ROWS), tmp_path / "p.parquet")
    gz = tmp_path / "p.parquet.gz"
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    assert load_preferences(gz).fingerprint == _expected_fingerprint()


def test_json_column_oriented_and_wrapped_forms(tmp_path):
    columns = tmp_path / "columns.json"
    columns.write_text(json.dumps(pd.DataFrame(STANDARD_ROWS).to_dict(orient="list")))
    wrapped = tmp_path / "wrapped.json"
    wrapped.write_text(json.dumps({"data": STANDARD_ROWS}))
    assert load_preferences(columns).fingerprint == _expected_fingerprint()
    assert load_preferences(wrapped).fingerprint == _expected_fingerprint()


def test_datasets_save_to_disk_folder_and_dataset_dict(tmp_path):
    ds = datasets.Dataset.from_list(STANDARD_ROWS)
    ds.save_to_disk(str(tmp_path / "single"))
    assert load_preferences(tmp_path / "single").fingerprint == _expected_fingerprint()
    datasets.DatasetDict({"train": ds, "test": ds.select([0])}).save_to_disk(str(tmp_path / "dict"))
    assert load_preferences(tmp_path / "dict").n_pairs == 3  # "train" by default
    assert load_preferences(tmp_path / "dict", split="test").n_pairs == 1
    with pytest.raises(DataError, match="choose a split"):
        load_preferences(tmp_path / "dict", split="validation")


def test_dataframe_and_hf_dataset_objects():
    assert load_preferences(pd.DataFrame(STANDARD_ROWS)).source == "DataFrame"
    assert load_preferences(datasets.Dataset.from_list(STANDARD_ROWS)).fingerprint == _expected_fingerprint()


def test_conversational_format_keeps_message_lists(tmp_path):
    path = write_jsonl(tmp_path / "conv.jsonl", CONVERSATIONAL_ROWS)
    data = load_preferences(path)
    assert data.format == "conversational"
    assert data.frame["prompt"][1][0] == {"role": "system", "content": "Be brief."}
    assert data.texts("chosen") == ["assistant: 4.", "assistant: Blue."]
    # Same content through parquet (Arrow list<struct>) comes back as plain lists of dicts.
    again = load_preferences(write_table(data.frame, tmp_path / "conv.parquet"))
    assert again.fingerprint == data.fingerprint


def test_conversational_without_prompt_column_extracts_shared_messages(tmp_path):
    rows = [{"chosen": r["prompt"] + r["chosen"], "rejected": r["prompt"] + r["rejected"]}
            for r in CONVERSATIONAL_ROWS]
    data = load_preferences(write_jsonl(tmp_path / "implicit_conv.jsonl", rows))
    assert data.format == "conversational" and data.prompt_extracted
    assert data.frame["prompt"].tolist() == [r["prompt"] for r in CONVERSATIONAL_ROWS]
    assert data.frame["rejected"].tolist() == [r["rejected"] for r in CONVERSATIONAL_ROWS]


def test_a_text_prompt_beside_message_lists_as_in_ultrafeedback(tmp_path):
    """UltraFeedback (HuggingFaceH4/ultrafeedback_binarized): ``prompt`` a string, the answers whole
    conversations that repeat it. The shared leading messages become the prompt, as TRL reads it; the
    same pairs with answers holding only the replies load to the same rows and fingerprint."""
    whole = [{"prompt": r["prompt"][-1]["content"], "chosen": r["prompt"] + r["chosen"],
              "rejected": r["prompt"] + r["rejected"], "score_chosen": 8.0} for r in CONVERSATIONAL_ROWS[:1]]
    replies = [{"prompt": r["prompt"][-1]["content"], "chosen": r["chosen"], "rejected": r["rejected"],
                "score_chosen": 8.0} for r in CONVERSATIONAL_ROWS[:1]]
    data = load_preferences(write_table(pd.DataFrame(whole), tmp_path / "train_prefs.parquet"))
    assert data.format == "conversational" and data.report.n_kept == 1
    assert data.frame["prompt"].tolist() == [CONVERSATIONAL_ROWS[0]["prompt"]]
    assert data.frame["chosen"].tolist() == [CONVERSATIONAL_ROWS[0]["chosen"]]
    assert data.metadata_columns == ["score_chosen"]
    assert load_preferences(write_jsonl(tmp_path / "replies.jsonl", replies)).fingerprint == data.fingerprint
    # A text answer among message lists is still refused, naming the row and column.
    mixed = whole + [{"prompt": "Hi", "chosen": "Hello.", "rejected": "Go.", "score_chosen": 1.0}]
    with pytest.raises(DataError, match=r"row 2, column 'chosen': a string, but row 1 is a message list"):
        load_preferences(write_jsonl(tmp_path / "mixed.jsonl", mixed))


def test_hh_implicit_prompt_is_split_at_the_last_assistant_marker(tmp_path):
    data = load_preferences(write_jsonl(tmp_path / "hh.jsonl", HH_ROWS))
    assert data.format == "implicit_prompt" and data.prompt_extracted
    for row, original in zip(data.frame.itertuples(), HH_ROWS):
        assert row.prompt.endswith("\n\nAssistant:")
        assert row.prompt + row.chosen == original["chosen"]
        assert row.prompt + row.rejected == original["rejected"]
        assert "Assistant:" not in row.chosen
    assert data.frame["chosen"][0] == " Hello! How can I help?"
    assert data.frame["prompt"][1].count("\n\nAssistant:") == 2
    assert data.frame["chosen"][2] == " I think it is safe if you wear gloves."


def test_metadata_columns_are_kept_with_their_types(tmp_path):
    rows = [{**r, "strength": 0.5 + i / 10, "tags": ["a", "b"]} for i, r in enumerate(STANDARD_ROWS)]
    data = load_preferences(write_jsonl(tmp_path / "meta.jsonl", rows))
    assert data.metadata_columns == ["source", "strength", "tags"]
    assert data.frame["strength"].tolist() == pytest.approx([0.5, 0.6, 0.7])
    assert data.frame["tags"][0] == ["a", "b"]


def test_fingerprint_changes_with_content_and_order_but_not_metadata():
    base = pd.DataFrame(STANDARD_ROWS)
    fingerprint = load_preferences(base).fingerprint
    edited = base.copy()
    edited.loc[0, "chosen"] = "Four."
    assert load_preferences(edited).fingerprint != fingerprint
    assert load_preferences(base.iloc[::-1]).fingerprint != fingerprint
    relabelled = base.assign(source="other")
    assert load_preferences(relabelled).fingerprint == fingerprint
    assert len(fingerprint) == 16 and int(fingerprint, 16) >= 0


def test_column_mapping_renames_misnamed_columns(tmp_path):
    rows = [{"question": r["prompt"], "good": r["chosen"], "bad": r["rejected"]} for r in STANDARD_ROWS]
    path = write_jsonl(tmp_path / "renamed.jsonl", rows)
    data = load_preferences(path, columns=parse_column_map("prompt=question, chosen=good,rejected=bad"))
    assert data.fingerprint == _expected_fingerprint()
    with pytest.raises(DataError, match="bad column mapping"):
        parse_column_map(["answer=good"])


def test_hub_id_offline_gives_one_clear_line(monkeypatch):
    # Offline mode makes this deterministic whether or not the machine has internet access.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError) as info:
        load_preferences("some-org/some-preference-set:train")
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("some-org/some-preference-set:train: ")
    assert "Hugging Face Hub" in message and "save_to_disk" in message


def test_demo_source_strings():
    data = load_preferences("demo:200:3")
    assert data.is_demo and data.n_pairs == 200
    assert data.fingerprint == load_preferences("demo:200:3").fingerprint
    assert data.fingerprint != load_preferences("demo:200:4").fingerprint


def test_save_round_trips_and_is_atomic(tmp_path):
    data = load_preferences(pd.DataFrame(STANDARD_ROWS))
    out = data.save(tmp_path / "out.jsonl.gz")
    assert load_preferences(out).fingerprint == data.fingerprint
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_to_dataset_is_trl_ready():
    ds = load_preferences(pd.DataFrame(STANDARD_ROWS)).to_dataset()
    assert ds.column_names == ["prompt", "chosen", "rejected"] and len(ds) == 3


def test_spec_reloads_the_same_data_and_detects_edits(tmp_path):
    from alignscope.data.preferences import load_spec

    path = write_jsonl(tmp_path / "pairs.jsonl", STANDARD_ROWS + [{"prompt": "", "chosen": "a", "rejected": "b"}])
    data = load_preferences(path, drop_invalid=True)
    spec = data.spec()
    assert spec["drop_invalid"] is True and spec["fingerprint"] == data.fingerprint
    assert load_spec(spec).fingerprint == data.fingerprint
    write_jsonl(path, STANDARD_ROWS[:2])
    with pytest.raises(DataError, match="the data changed"):
        load_spec(spec)
    demo = load_preferences("demo:150:1")
    assert load_spec(demo.spec()).fingerprint == demo.fingerprint

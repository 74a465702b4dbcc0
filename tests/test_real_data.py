"""The two real files in ../shared/data (skipped when the folder is absent)."""
from __future__ import annotations

import gzip
import json

from alignscope.data.preferences import load_preferences
from conftest import run_cli


def test_hh_harmless_loads_2312_pairs_with_correctly_split_prompts(hh_path):
    data = load_preferences(hh_path)
    assert data.n_pairs == 2312 and data.format == "implicit_prompt"
    with gzip.open(hh_path, "rt", encoding="utf-8") as handle:
        originals = [json.loads(line) for line in handle]
    for row, original in zip(data.frame.itertuples(), originals):
        assert row.prompt.startswith("\n\nHuman:") and row.prompt.endswith("\n\nAssistant:")
        assert row.prompt + row.chosen == original["chosen"]
        assert row.prompt + row.rejected == original["rejected"]
        # The reply is the final assistant turn: the last marker of the prompt is the last shared one.
        assert not (row.chosen.startswith("\n\nAssistant:") or row.rejected.startswith("\n\nAssistant:"))
    assert data.report.n_dropped == 0


def test_hh_data_info_cli_contract(hh_path):
    result = run_cli("data", "info", hh_path, "--json")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["n_pairs"] == 2312
    assert info["format"] == "implicit_prompt"
    assert info["columns"] == ["prompt", "chosen", "rejected"]
    assert len(info["fingerprint"]) == 16


def test_alpaca_eval_pairs_keep_their_metadata(alpaca_path):
    data = load_preferences(alpaca_path)
    assert data.n_pairs == 61952 and data.format == "standard"
    assert data.metadata_columns == ["id", "source", "chosen_model", "rejected_model", "judge", "strength"]
    assert set(data.frame["source"]) == {"helpful_base", "koala", "oasst", "selfinstruct", "vicuna"}
    assert data.frame["strength"].between(0, 1).all()
    # Real data has model outputs that are empty strings: kept, and counted.
    assert sum(data.report.warnings.values()) == 30

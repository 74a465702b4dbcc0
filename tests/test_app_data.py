"""AppTest of the app shell and the Data page (Streamlit's own test runner; no browser)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from conftest import ROOT, STANDARD_ROWS, write_jsonl

MAIN = str(ROOT / "app" / "main.py")


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setenv("ALIGNSCOPE_DATA_ROOT", str(root))
    monkeypatch.delenv("ALIGNSCOPE_INITIAL_DATA", raising=False)
    return root


def _app() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def _load_path(at: AppTest, path: str) -> AppTest:
    at.radio(key="data_source_kind").set_value("Path in the data root").run()
    at.text_input(key="data_path").set_value(path)
    next(b for b in at.button if b.label == "Load path").click().run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_opens_on_demo_data_labelled_as_demo(data_root):
    at = _app()
    assert at.title[0].value == "Data"
    assert _metric(at, "Pairs") == "3,000"
    assert _metric(at, "Format") == "standard"
    assert any("Demo data" in w.value for w in at.sidebar.warning)
    assert any("Demo data" in i.value for i in at.info)
    assert not at.get("plotly_chart")  # lazy tabs: the Metadata tab's charts wait until it is opened
    at.session_state["data_tab"] = "Metadata"
    at.run()
    assert any("Pairs per topic" in str(chart.proto.spec) for chart in at.get("plotly_chart"))


def test_loads_a_file_inside_the_data_root(data_root):
    write_jsonl(data_root / "mine.jsonl", STANDARD_ROWS)
    at = _load_path(_app(), "mine.jsonl")
    assert _metric(at, "Pairs") == "3"
    assert not any("Demo data" in w.value for w in at.sidebar.warning)
    texts = [t.value for t in at.text]
    assert "What is 2+2?" in texts and "4." in texts and "5." in texts


@pytest.mark.parametrize("typed", ["../outside.jsonl", "/etc/passwd", "link/outside.jsonl"])
def test_paths_outside_the_data_root_are_refused(data_root, typed):
    outside = data_root.parent / "outside.jsonl"
    write_jsonl(outside, STANDARD_ROWS)
    (data_root / "link").symlink_to(data_root.parent)  # a symlink that escapes the root
    at = _load_path(_app(), typed)
    assert any("outside the data root" in e.value for e in at.error)
    assert _metric(at, "Pairs") == "3,000"  # the active data set is untouched


def test_malformed_file_shows_one_error_box_and_keeps_the_active_data(data_root):
    (data_root / "broken.jsonl").write_text('{"prompt": "Q", "chosen": "A", "rejected": "B"}\n{"prompt": ""}\n')
    at = _load_path(_app(), "broken.jsonl")
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "broken.jsonl: row 2" in errors[0]
    assert _metric(at, "Pairs") == "3,000"


def test_drop_invalid_option_reports_dropped_rows(data_root):
    (data_root / "some_bad.jsonl").write_text(
        '{"prompt": "Q", "chosen": "A", "rejected": "B"}\n{"prompt": "", "chosen": "A", "rejected": "B"}\n')
    at = _app()
    at.checkbox(key="data_drop_invalid").check()
    at = _load_path(at, "some_bad.jsonl")
    assert _metric(at, "Pairs") == "1"
    assert any("dropped 1 of 2 rows" in w.value for w in at.warning)


def test_hub_id_offline_is_an_error_box_not_a_traceback(data_root, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    at = _app()
    at.radio(key="data_source_kind").set_value("Hugging Face Hub").run()
    at.text_input(key="data_hub_id").set_value("some-org/some-set")
    next(b for b in at.button if b.label == "Load from the Hub").click().run()
    assert not at.exception
    assert any("Hugging Face Hub" in e.value for e in at.error)


def test_dataset_text_is_never_rendered_as_html(data_root):
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)> **bold** <b>b</b>'
    write_jsonl(data_root / "xss.jsonl", [{"prompt": payload, "chosen": payload + " yes", "rejected": "no " + payload}])
    at = _load_path(_app(), "xss.jsonl")
    assert payload in [t.value for t in at.text]  # shown verbatim as plain text
    for element in list(at.markdown) + list(at.caption) + list(at.info) + list(at.warning) + list(at.error):
        assert "<script>" not in element.value and "onerror" not in element.value


def test_pair_browser_moves_between_pairs(data_root):
    write_jsonl(data_root / "mine.jsonl", STANDARD_ROWS)
    at = _load_path(_app(), "mine.jsonl")
    at.number_input(key="data_pair").set_value(3).run()
    assert "Capital of France?" in [t.value for t in at.text]
    # The pair shown survives a visit to another tab and to another page.
    at.session_state["data_tab"] = "Lengths"
    at.run()
    at.switch_page("views/scaling.py").run()
    at.switch_page("views/data.py").run()
    at.session_state["data_tab"] = "Pairs"
    at.run()
    assert at.number_input(key="data_pair").value == 3 and "Capital of France?" in [t.value for t in at.text]


def test_real_hh_file_through_the_page(monkeypatch, hh_path):
    monkeypatch.setenv("ALIGNSCOPE_DATA_ROOT", str(hh_path.parent))
    at = _load_path(_app(), hh_path.name)
    assert _metric(at, "Pairs") == "2,312"
    # The card's short name is not cut ("implicit_pro…" was); the full name is in the caption below it.
    assert _metric(at, "Format") == "implicit"
    assert any("format implicit_prompt" in c.value for c in at.caption)


def test_metadata_charts_stay_readable(data_root):
    """36 categories become the top 15 plus 'other' as horizontal bars; a numeric column gets a histogram."""
    import json

    rows = [{"prompt": f"q{i}?", "chosen": f"good answer {i}", "rejected": f"bad {i}",
             "chosen_model": f"model-{i % 36:02d}", "strength": (i % 97) / 97} for i in range(400)]
    write_jsonl(data_root / "meta.jsonl", rows)
    at = _load_path(_app(), "meta.jsonl")
    at.session_state["data_tab"] = "Metadata"
    at.run()
    specs = {}
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        specs[spec["layout"]["title"]["text"]] = spec
    bars = specs["Pairs per chosen_model"]["data"][0]
    assert bars["orientation"] == "h" and len(bars["y"]) == 16 and bars["y"][0].startswith("other (21 values)")
    assert "Distribution of strength" in specs and len(specs["Distribution of strength"]["data"][0]["x"]) >= 5


def test_identifier_columns_are_not_charted(data_root):
    """The demo's `id` holds every value once: a chart of it would be one bar per pair."""
    import json

    at = _app()
    at.session_state["data_tab"] = "Metadata"
    at.run()
    titles = [json.loads(chart.proto.spec)["layout"]["title"]["text"] for chart in at.get("plotly_chart")]
    assert "Pairs per topic" in titles and not any(t.endswith(" id") for t in titles)
    assert any(c.value.startswith("Not charted: id ") for c in at.caption)


def test_started_with_a_file_the_source_picker_says_where_it_came_from(data_root, monkeypatch):
    write_jsonl(data_root / "mine.jsonl", STANDARD_ROWS)
    monkeypatch.setenv("ALIGNSCOPE_INITIAL_DATA", str(data_root / "mine.jsonl"))  # alignscope app --data
    at = _app()
    assert _metric(at, "Pairs") == "3"
    assert at.radio(key="data_source_kind").value == "Path in the data root"
    assert at.text_input(key="data_path").value == "mine.jsonl"

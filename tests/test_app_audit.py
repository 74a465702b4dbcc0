"""AppTest of the Audit page on demo data, with a real embedding job started from the page."""
from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from alignscope.select.selection import Selection
from conftest import ROOT, wait_for_first_look

MAIN = str(ROOT / "app" / "main.py")


def _metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def _frame(at, column):
    """The page's table that has ``column`` (the flagged pairs: outlier_score; neighbours: similarity)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_audit_page_flags_shows_pairs_and_sets_the_clean_selection(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNSCOPE_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("ALIGNSCOPE_INITIAL_DATA", "demo:120")
    at = AppTest.from_file(MAIN, default_timeout=180).run()
    at.switch_page("views/audit.py").run()
    assert not at.exception, [e.value for e in at.exception]
    wait_for_first_look(at)
    assert not at.exception, [e.value for e in at.exception]

    flips = int(_metric(at, "Suspected flips").replace(",", ""))
    duplicates = int(_metric(at, "Near-duplicates").replace(",", ""))
    assert 6 <= flips <= 30  # 12 flips are planted in demo:120
    assert duplicates == 6  # 6 near-copies are planted
    flagged = _frame(at, "outlier_score")
    assert len(flagged) >= flips and flagged["flip_score"].is_monotonic_decreasing
    # filter by issue type: only near-duplicates
    at.multiselect(key="audit_kinds").set_value(["is_duplicate"]).run()
    flagged = _frame(at, "outlier_score")
    assert len(flagged) == duplicates and flagged["reasons"].str.contains("near-copy").all()
    # the pair view: a plain-text word diff and the nearest pairs; the copy's neighbour is its original
    copy = int(flagged["pair"].iloc[0])  # pairs are numbered from 1, as on the Data page
    diff = at.code[0].value
    assert any(line.startswith(("- ", "+ ")) for line in diff.splitlines())
    near = _frame(at, "similarity")
    assert len(near) == 5 and near["similarity"].iloc[0] > 0.95
    assert int(near["pair"].iloc[0]) == int(flagged["dup_group"].iloc[0]) != copy
    assert at.number_input(key=f"audit_pair_{copy}").value == copy and any(c.value.startswith(f"#{copy}:") for c in at.caption)
    assert f"near-copy of pair #{int(flagged['dup_group'].iloc[0])}" in flagged["reasons"].iloc[0]
    # free-text search narrows the table
    at.multiselect(key="audit_kinds").set_value(["suspect_flip", "is_duplicate", "is_outlier", "identical"]).run()
    at.text_input(key="audit_query").set_value("zzz-no-such-text").run()
    assert len(_frame(at, "outlier_score")) == 0

    # self-calibration: estimates in words and as numbers with 95 % intervals, flip_probability in the list
    at.button(key="audit_calibrate").click().run()
    assert not at.exception, [e.value for e in at.exception]
    sentences = " ".join(m.value for m in at.markdown)
    assert "The data holds" in sentences and "flipped pairs" in sentences
    assert "likely real flips" in sentences or "cannot tell" in sentences
    estimates = next(d.value for d in at.dataframe if "95 % interval" in d.value.columns).set_index("estimate")
    flips = estimates.loc[[e for e in estimates.index if e.startswith("flipped pairs in the data")][0]]
    low, high = (int(v.replace(",", "")) for v in flips["95 % interval"].strip("[]").split(", "))
    assert low <= int(flips["value"].replace(",", "")) <= high and low < high  # beside its interval, never zero-width
    assert "flip_probability" in _frame(at, "outlier_score").columns
    assert any("planted flips" in c.value and "subtle" in c.value and "calibration estimated" in c.value
               for c in at.caption)
    at.button(key="audit_use").click().run()
    assert not at.exception
    active = at.session_state["alignscope_selection"]
    selection = Selection.read(active["path"])
    assert selection.config["method"] == "clean"
    assert int(selection["selected"].sum()) == active["n_selected"] == active["n_pairs"] == 120 - int(
        (selection[["suspect_flip", "is_duplicate", "is_outlier", "identical"]].any(axis=1)).sum())
    at.switch_page("views/map.py").run()
    at.selectbox(key="map_colour").set_value("audit flag").run()
    assert not at.exception, [e.value for e in at.exception]
    legend = json.loads(at.get("component_instance")[0].proto.json_args)["legend"]
    assert {"near-duplicate", "no flag"} <= {entry["label"] for entry in legend["entries"]}
    at.switch_page("views/train.py").run()
    assert not at.exception
    assert any("Active selection: 'clean'" in c.value for c in at.caption)


def test_payloads_in_pairs_reach_the_audit_page_as_text_only(tmp_path, monkeypatch):
    """Script/HTML payloads in every field: shown in text, code and tables, never in a markdown body."""
    from test_security import MARKDOWN_TYPES, MARKERS, PAYLOADS

    from conftest import write_jsonl

    rows = [{"prompt": f"{PAYLOADS[i % 5]} question {i}", "chosen": f"{PAYLOADS[(i + 1) % 5]} good {i}",
             "rejected": f"{PAYLOADS[(i + 2) % 5]} bad {i}", "source": PAYLOADS[i % 3]} for i in range(40)]
    write_jsonl(tmp_path / "payloads.jsonl", rows)
    monkeypatch.setenv("ALIGNSCOPE_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("ALIGNSCOPE_INITIAL_DATA", "payloads.jsonl")
    at = AppTest.from_file(MAIN, default_timeout=180).run()
    at.switch_page("views/audit.py").run()
    wait_for_first_look(at)
    assert not at.exception, [e.value for e in at.exception]
    for kind in MARKDOWN_TYPES:
        for element in at.get(kind):
            assert not getattr(element.proto, "allow_html", False)
            body = str(getattr(element, "value", "") or getattr(element.proto, "body", ""))
            assert not any(marker in body for marker in MARKERS), body
    shown = " ".join(str(t.value) for t in at.text) + " ".join(str(c.value) for c in at.code) + \
        " ".join(str(d.value) for d in at.dataframe)
    assert any(marker in shown for marker in MARKERS)

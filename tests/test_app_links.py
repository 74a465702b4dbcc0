"""Links that keep their state (AppTest, Streamlit's own runner): the data set, page, sweep, selection and
run live in the URL's query parameters; a pasted link restores them, and says in one line what this
machine does not have. Real files, a real job store and a real selftest job."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from alignscope import settings
from alignscope.data.preferences import load_preferences
from alignscope.jobs import JobStore
from alignscope.scaling.sweep import SweepConfig
from alignscope.select.selection import Selection
from conftest import ROOT, STANDARD_ROWS, write_jsonl

MAIN = str(ROOT / "app" / "main.py")
MORE_ROWS = STANDARD_ROWS + [{"prompt": f"Question {i}?", "chosen": f"A fine answer {i}.", "rejected": "No.",
                              "source": "extra"} for i in range(9)]


@pytest.fixture
def data_root(tmp_path, monkeypatch):
    root = tmp_path / "root"
    root.mkdir()
    monkeypatch.setenv("ALIGNSCOPE_DATA_ROOT", str(root))
    monkeypatch.delenv("ALIGNSCOPE_INITIAL_DATA", raising=False)
    return root


def _linked(params: dict) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=180)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def _metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_a_pasted_link_restores_data_page_sweep_selection_and_run(data_root):
    write_jsonl(data_root / "mine.jsonl", MORE_ROWS)
    data = load_preferences(str(data_root / "mine.jsonl"))
    sweep = settings.home() / "sweeps" / "20260101-120000"
    sweep.mkdir(parents=True)
    (sweep / "sweep.json").write_text(json.dumps({"config": SweepConfig().to_dict(), "data": data.spec(), "jobs": [],
                                                  "created_at": 1.0}))
    selection = Selection.from_frame(pd.DataFrame({"index": np.arange(data.n_pairs),
                                                   "selected": np.arange(data.n_pairs) < 5}),
                                     {"method": "manual", "unit": "pair", "name": "first five"}, data.fingerprint)
    selection_file = settings.home() / "selections" / f"{data.fingerprint}-first-five.parquet"
    selection.write(selection_file)
    store = JobStore()
    job = store.submit("selftest", {"steps": 1, "sleep": 0})
    assert store.wait(job, timeout=120).status == "succeeded"

    link = {"page": "scaling", "data": "mine.jsonl", "fp": data.fingerprint, "sweep": sweep.name,
            "selection": selection_file.name, "run": job}
    at = _linked(link)
    assert at.title[0].value == "Scaling"
    assert at.selectbox(key="scaling_sweep").value == str(sweep)
    assert at.session_state["alignscope_selection"]["path"] == str(selection_file)
    assert not at.warning or not any("not on this machine" in w.value for w in at.warning)
    assert {k: at.query_params.get(k) for k in link} == link  # the URL still says all of it
    at.switch_page("views/runs.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="runs_pick").value == job
    assert at.query_params["page"] == "runs" and at.query_params["sweep"] == sweep.name  # kept across pages
    at.switch_page("views/data.py").run()
    assert _metric(at, "Pairs") == f"{data.n_pairs:,}"
    # The Data page says where the active data came from.
    assert at.radio(key="data_source_kind").value == "Path in the data root"


def test_a_link_says_what_this_machine_does_not_have(data_root):
    at = _linked({"data": "gone.jsonl", "sweep": "20200101-000000", "run": "no-such-run", "selection": "x.parquet"})
    notes = " ".join(w.value for w in at.warning)
    assert "The link names the data file 'gone.jsonl', which is not on this machine" in notes
    assert "The sweep folder '20200101-000000' is not on this machine" in notes
    assert "The run 'no-such-run' is not in this machine's job store" in notes
    assert "The selection 'x.parquet' is not on this machine" in notes
    assert _metric(at, "Pairs") == "3,000"  # the default data set opened instead
    assert at.query_params["data"].startswith("demo:")  # the URL now names what is shown
    at.button(key="link_notes_dismiss").click().run()
    assert not any("not on this machine" in w.value for w in at.warning)


def test_a_link_cannot_leave_the_data_root(data_root):
    write_jsonl(data_root.parent / "outside.jsonl", STANDARD_ROWS)
    at = _linked({"data": "../outside.jsonl"})
    assert any("refused" in w.value and "outside the data root" in w.value for w in at.warning)
    assert _metric(at, "Pairs") == "3,000"


def test_a_changed_file_is_said_and_the_url_follows_what_is_loaded(data_root):
    write_jsonl(data_root / "mine.jsonl", STANDARD_ROWS)
    at = _linked({"data": "mine.jsonl", "fp": "0000000000000000"})
    assert any("changed since the link was made" in w.value for w in at.warning)
    assert at.query_params["fp"] == load_preferences(str(data_root / "mine.jsonl")).fingerprint
    at.radio(key="data_source_kind").set_value("Demo data").run()
    next(b for b in at.button if b.label == "Load demo data").click().run()
    assert at.query_params["data"] == "demo:3000:0" and at.query_params["page"] == "data"

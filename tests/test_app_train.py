"""AppTest of the Train page: a real tiny DPO run launched from the page, its live curves and its
held-out evaluation; bad form values give an error box, not a job."""
from __future__ import annotations

import json
import math

from streamlit.testing.v1 import AppTest

from alignscope.jobs import JobStore
from conftest import ROOT

MAIN = str(ROOT / "app" / "main.py")


def _train_page(monkeypatch, tmp_path):
    monkeypatch.setenv("ALIGNSCOPE_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("ALIGNSCOPE_INITIAL_DATA", "demo:120")
    at = AppTest.from_file(MAIN, default_timeout=120).run()
    at.switch_page("views/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def test_empty_state_then_a_real_dpo_run(monkeypatch, tmp_path):
    at = _train_page(monkeypatch, tmp_path)
    assert any("No training run on this data set yet" in i.value for i in at.info)
    assert at.radio(key="train_on_1").value == "all pairs"
    at.number_input(key="train_max_steps").set_value(2)
    at.number_input(key="train_max_length").set_value(32)
    at.number_input(key="train_eval_max").set_value(8).run()
    # Steps from the rows this run trains on: all 120 pairs minus the 24 held out.
    assert any(c.value.startswith("About 2 steps (96 training pairs of all pairs after holding out 20%")
               for c in at.caption)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    store = JobStore()
    job = store.list_jobs(kind="train")[0]
    assert job.config["method"] == "dpo" and job.config["max_steps"] == 2 and job.config["selection"] is None
    assert store.wait(job.id, timeout=900).status == "succeeded", store.logs(job.id)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    titles = " ".join(str(c.proto.spec) for c in at.get("plotly_chart"))
    assert "loss (live)" in titles
    labels = {m.label: m.value for m in at.metric}
    assert labels["Preference accuracy"].endswith("%")
    rule = next(k for k in labels if k.startswith("Length rule ("))  # every score beside the length rule
    assert labels[rule].endswith("%") and labels["Length-controlled accuracy"].endswith("%")
    assert any("8 held-out pairs" in c.value for c in at.caption)
    assert any("tiny checks the plumbing only" in c.value for c in at.caption)
    # No claim about content from the random-init tiny model, and what max_length cut, in numbers.
    assert any("tiny is a random-init model that checks the plumbing" in c.value for c in at.caption)
    assert not any("sees more than length" in c.value or "no content signal" in c.value for c in at.caption)
    evaluation = json.loads((job.run_dir / "eval.json").read_text())
    cut = evaluation["truncation"]["n_completions_truncated"]
    assert cut > 0  # 32 tokens cannot hold a demo prompt and its answer
    assert any(w.value.startswith(f"{cut:,} of 16 held-out completions") and "max_length = 32" in w.value
               for w in at.warning)
    assert job.run_dir.joinpath("status.json").exists() and store.get(job.id).message == "done"
    assert any("s/step" in c.value and "earlier run" in c.value for c in at.caption)  # timed by the first run

    # A second start says so and switches the view to the new run (not the finished one).
    next(b for b in at.button if b.label == "Start training").click().run()
    newest = store.list_jobs(kind="train")[0]
    assert newest.id != job.id and any(f"Started {newest.id}" in s.value for s in at.success)
    assert at.selectbox(key="train_pick").value == newest.id
    store.cancel(newest.id)


def test_trains_on_the_active_selection_and_cancel_from_runs(monkeypatch, tmp_path):
    import numpy as np

    from alignscope.app.analysis import SELECTION_KEY
    from alignscope.data.preferences import load_preferences
    from alignscope.select.selectors import select
    from alignscope.train.trainset import training_set

    data = load_preferences("demo:120")
    table = select(np.random.default_rng(0).normal(size=(120, 4)).astype("float32"), "random", k=60,
                   data_fingerprint=data.fingerprint)
    path = table.write(tmp_path / "half.parquet")
    at = _train_page(monkeypatch, tmp_path)
    at.session_state[SELECTION_KEY] = {"path": str(path), "name": "half", "fingerprint": data.fingerprint,
                                       "n_selected": 60}
    at.run()
    assert at.radio(key="train_on_2").value == "active selection"
    assert any(c.value == "Active selection: 'half' (60 pairs, 50.0% of 120)." for c in at.caption)
    at.radio(key="train_method").set_value("kto").run()
    # The estimate counts the rows of the selection (KTO: both completions of its training pairs).
    rows = len(training_set(data, str(path), method="kto").rows)
    assert rows < 2 * 96 and any(c.value.startswith(f"About {math.ceil(rows / 8):,} steps ({rows:,} training "
                                                    "completions of the selection") for c in at.caption)
    store = JobStore()
    blocker = store.submit("selftest", {"steps": 600, "sleep": 0.1})  # one worker: the run waits behind it
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    job = store.list_jobs(kind="train")[0]
    assert job.config["selection"] == str(path) and job.config["method"] == "kto"
    assert job.config["data"]["fingerprint"] == data.fingerprint
    assert store.get(job.id).status == "queued"
    assert any(i.value.startswith(f"Queued behind: selftest job {blocker} (running") for i in at.info)
    assert store.cancel(job.id).status == "cancelled"
    store.cancel(blocker)

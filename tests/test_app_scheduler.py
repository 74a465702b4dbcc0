"""AppTest of the Scheduler page: empty state, then a real DPO + SamS run started from the Train
page (tiny model, demo data with planted flips) whose schedule the page draws."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from alignscope.files import read_jsonl
from alignscope.jobs import JobStore
from conftest import ROOT

MAIN = str(ROOT / "app" / "main.py")


def test_scheduler_page_shows_a_dpo_sams_run_started_from_the_train_page(monkeypatch, tmp_path):
    monkeypatch.setenv("ALIGNSCOPE_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("ALIGNSCOPE_INITIAL_DATA", "demo:120")
    at = AppTest.from_file(MAIN, default_timeout=120).run()
    at.switch_page("views/scheduler.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("No DPO + SamS run yet" in i.value for i in at.info)

    at.switch_page("views/train.py").run()
    at.radio(key="train_method").set_value("dpo-sams")
    at.slider(key="train_sams_ratio").set_value(0.25)
    at.number_input(key="train_max_steps").set_value(3)
    at.number_input(key="train_max_length").set_value(32)
    at.number_input(key="train_eval_max").set_value(8)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    store = JobStore()
    job = store.list_jobs(kind="train")[0]
    assert job.config["method"] == "dpo-sams" and job.config["sams_ratio"] == 0.25
    assert store.wait(job.id, timeout=900).status == "succeeded", store.logs(job.id)
    steps = read_jsonl(f"{job.run_dir}/sams.jsonl")
    assert [len(s["selected"]) for s in steps] == [2, 2, 2]  # ⌈0.25 · 8⌉

    at.switch_page("views/scheduler.py").run()
    assert not at.exception, [e.value for e in at.exception]
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Steps logged"] == "3" and metrics["Selected share"] == "25%"
    titles = " ".join(str(c.proto.spec) for c in at.get("plotly_chart"))
    for title in ("selected vs skipped pairs", "Scores: selected vs skipped", "How often each pair",
                  "flipped vs clean", "Selection rate per source"):
        assert title in titles, title

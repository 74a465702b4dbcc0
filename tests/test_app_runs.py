"""AppTest of the Runs page against real jobs in a real store."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from alignscope.jobs.store import JobStore
from conftest import ROOT

PAGE = str(ROOT / "app" / "views" / "runs.py")


def test_empty_state_guides_the_user():
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert any("No runs yet" in i.value for i in at.info)


def test_runs_show_status_curves_errors_and_cancel():
    store = JobStore()
    ok = store.submit("selftest", {"steps": 4, "sleep": 0.05})
    store.wait(ok, timeout=60)
    bad = store.submit("selftest", {"steps": 4, "sleep": 0.05, "fail_at": 2, "fail_message": "boom at step 2"})
    store.wait(bad, timeout=60)

    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception
    assert at.selectbox(key="runs_pick").value == bad  # newest first
    assert any("boom at step 2" in e.value for e in at.error)
    at.selectbox(key="runs_pick").set_value(ok).run()
    assert [m.value for m in at.metric][:2] == ["succeeded", "100%"]
    assert at.get("plotly_chart"), "the run's loss curve is drawn"
    # Two runs with metrics: the comparison appears.
    assert at.multiselect(key="runs_compare").value

    long = store.submit("selftest", {"steps": 400, "sleep": 0.1}, workers=3)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    at.selectbox(key="runs_pick").set_value(long).run()
    at.button(key="runs_cancel").click().run()
    assert store.get(long).status == "cancelled"


def test_a_rerun_says_it_started_and_shows_the_new_job():
    store = JobStore()
    done = store.submit("selftest", {"steps": 2, "sleep": 0.01})
    store.wait(done, timeout=60)
    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert at.selectbox(key="runs_pick").value == done
    at.button(key="runs_rerun").click().run()
    assert not at.exception, [e.value for e in at.exception]
    newest = store.list_jobs(kind="selftest")[0].id
    assert newest != done and at.selectbox(key="runs_pick").value == newest
    assert any(f"Started {newest}: a re-run of {done}" in s.value for s in at.success)
    store.wait(newest, timeout=60)

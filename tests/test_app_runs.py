"""AppTest of the Runs page against real jobs in a real store."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from alignscope.jobs import JobStore
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


def _finished(store, kind: str, config: dict) -> str:
    """A job recorded as having run (no process): added, then moved to running and succeeded at once."""
    job = store.add(kind, config)
    store.transition(job.id, "running")
    store.transition(job.id, "succeeded")
    return job.id


def test_a_sweep_is_one_row_with_its_points_and_kinds_come_from_the_registry(tmp_path):
    from alignscope.jobs import known_kinds
    from alignscope.scaling.results import read_points_jsonl
    from synthetic_sweep import write_sweep

    store = JobStore()
    single = store.submit("selftest", {"steps": 2, "sleep": 0.01})
    store.wait(single, timeout=60)
    sweep = write_sweep(tmp_path / "sweep-a", {"isa": 0.5, "random": 0.5}, fractions=[0.1, 0.5, 1.0], seeds=(0, 1))
    points = read_points_jsonl(sweep)
    for row in points.itertuples():  # one job per point, as sweeps run them today
        point = {"method": row.method, "fraction": row.fraction, "seed": row.seed}
        _finished(store, "sweep_point", {"sweep_dir": str(sweep), "point": point})

    at = AppTest.from_file(PAGE, default_timeout=60).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.multiselect(key="runs_kind").options == sorted(known_kinds())  # no "sweep": it is not a kind
    table = at.dataframe[0].value  # the jobs table
    assert len(table) == 2 and set(table["id"]) == {single, "sweep-a"}
    row = table[table["id"] == "sweep-a"].iloc[0]
    assert row["kind"] == f"sweep ({len(points)} jobs)" and row["status"] == "succeeded"
    assert row["message"].startswith(f"{len(points)} of {len(points)} points measured")
    assert at.selectbox(key="runs_pick").options == [f"{single} · selftest · succeeded"]  # the one run, not 10 points
    shown = next(d.value for d in at.dataframe if "training pairs" in d.value.columns)  # the sweep's points
    assert {"method", "fraction", "seed", "training pairs"} <= set(shown.columns) and len(shown) == len(points)
    assert set(shown["fraction"]) == {"10 %", "50 %", "100 %"}
    at.multiselect(key="runs_kind").set_value(["selftest"]).run()
    assert list(at.dataframe[0].value["id"]) == [single]


def test_a_queued_job_says_what_it_waits_for():
    from alignscope.jobs import format_wait

    store = JobStore()
    running = store.submit("selftest", {"steps": 400, "sleep": 0.1}, workers=1)
    waiting = store.submit("selftest", {"steps": 1, "sleep": 0.01}, workers=1)
    try:
        assert store.get(waiting).status == "queued"
        assert [j.id for j in store.jobs_ahead(waiting)] == [running] and store.jobs_ahead(running) == []
        assert format_wait(store.jobs_ahead(waiting)).startswith(f"queued behind: selftest job {running} (running")
        at = AppTest.from_file(PAGE, default_timeout=60).run()
        at.selectbox(key="runs_pick").set_value(waiting).run()
        assert any(c.value.startswith(f"Queued behind: selftest job {running}") for c in at.caption)
    finally:
        store.cancel(waiting)
        store.cancel(running)

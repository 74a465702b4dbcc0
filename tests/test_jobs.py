"""The job system with real worker processes and a real SQLite store (nothing mocked).

Every job here is the built-in ``selftest`` kind, run by ``python -m alignscope.jobs.worker``.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

import alignscope.jobs as jobs
from alignscope.cli.jobs import format_job_details, format_job_table
from alignscope.files import read_jsonl
from alignscope.jobs import (ACTIVE, CANCELLED, FAILED, QUEUED, RUNNING, SUCCEEDED, InvalidTransitionError,
                             JobError, JobNotFoundError, JobStore, UnknownKindError, terminate_job_processes)
from alignscope.jobs.kinds import _KINDS, _MOVED_TARGETS

LONG = {"steps": 400, "sleep": 0.05}  # ~20 s: only ever ended by the test itself


@pytest.fixture
def store(isolated_home):
    """A store at the default place (ALIGNSCOPE_HOME/jobs.sqlite); cancels anything left running."""
    store = JobStore()
    yield store
    for job in store.list_jobs(status=ACTIVE, reconcile=False):
        store.cancel(job.id, grace=1.0)


def wait_until(predicate, timeout: float = 30.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout} s")


def running_step(store: JobStore, job_id: str):
    """The job once its job code has reported a step (so the runner process surely exists)."""
    def ready():
        job = store.get(job_id, reconcile=False)
        return job if job.status == RUNNING and (job.message or "").startswith("step") else None
    return wait_until(ready)


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def runner_of(job) -> psutil.Process:
    (runner,) = psutil.Process(job.pid).children()
    return runner


# ----------------------------------------------------------------------------- processes
def test_submitted_job_succeeds_with_metrics_status_config_and_log(store, isolated_home):
    assert store.path == (isolated_home / "jobs.sqlite").resolve()
    job_id = store.submit("selftest", {"steps": 3, "sleep": 0.05})
    run_dir = isolated_home.resolve() / "runs" / job_id
    config = json.loads((run_dir / "config.json").read_text())
    assert (config["job_id"], config["kind"], config["config"]) == (job_id, "selftest", {"steps": 3, "sleep": 0.05})

    job = store.wait(job_id, timeout=60)
    assert job.status == SUCCEEDED and job.error is None and job.exit_code == 0
    assert job.run_dir == run_dir and job.progress == 1.0
    assert job.created_at <= job.started_at <= job.finished_at
    assert [m["step"] for m in read_jsonl(run_dir / "metrics.jsonl")] == [1, 2, 3]
    status = json.loads((run_dir / "status.json").read_text())
    assert status["status"] == SUCCEEDED and status["finished_at"] == job.finished_at
    assert "selftest step 3/3" in store.logs(job_id)
    assert store.logs(job_id, tail=1).count("\n") == 1
    assert [j.id for j in store.list_jobs(status=SUCCEEDED, kind="selftest")] == [job_id]
    assert store.list_jobs(status=FAILED) == []


def test_exception_in_job_code_fails_with_one_line_error_and_traceback_in_log(store):
    job_id = store.submit("selftest", {"steps": 3, "sleep": 0.01, "fail_at": 2,
                                       "fail_message": "bad batch\nat row 7"})
    job = store.wait(job_id, timeout=60)
    assert job.status == FAILED and job.exit_code == 1
    assert job.error == "RuntimeError: bad batch at row 7"
    assert len(read_jsonl(job.run_dir / "metrics.jsonl")) == 1
    log = store.logs(job_id, tail=None)
    assert "Traceback (most recent call last)" in log and "RuntimeError: bad batch" in log
    assert json.loads((job.run_dir / "status.json").read_text())["error"] == job.error


def test_job_process_killed_by_sigkill_is_failed_with_the_signal_within_seconds(store):
    job_id = store.submit("selftest", LONG)
    runner = runner_of(running_step(store, job_id))
    runner.send_signal(signal.SIGKILL)
    killed_at = time.time()
    job = store.wait(job_id, timeout=10)
    assert job.status == FAILED
    assert "killed by signal 9" in job.error and job.exit_code == -9
    assert job.finished_at - killed_at < 5


def test_dead_worker_is_found_by_the_next_look_and_its_orphans_are_killed(store):
    """The supervisor itself dies (SIGKILL): nobody records anything, so ``get`` must notice."""
    job_id = store.submit("selftest", LONG)
    job = running_step(store, job_id)
    runner = runner_of(job)
    os.kill(job.pid, signal.SIGKILL)
    started = time.monotonic()
    job = wait_until(lambda: (j := store.get(job_id)).is_terminal and j, timeout=5)
    assert time.monotonic() - started < 5
    assert job.status == FAILED and job.error.startswith("process died")
    assert gone(runner.pid)
    assert json.loads((job.run_dir / "status.json").read_text())["status"] == FAILED


def test_cancel_kills_the_whole_process_group_including_a_grandchild(store):
    job_id = store.submit("selftest", {**LONG, "spawn_child": True})
    job = running_step(store, job_id)
    grandchild = json.loads((job.run_dir / "child.json").read_text())["pid"]
    runner = runner_of(job)
    assert grandchild in [p.pid for p in runner.children()]

    job = store.cancel(job_id, grace=3.0)
    assert job.status == CANCELLED
    assert all(gone(pid) for pid in (job.pid, runner.pid, grandchild))
    assert "received SIGTERM" in store.logs(job_id)  # the job code was unwound, not just killed
    assert json.loads((job.run_dir / "status.json").read_text())["status"] == CANCELLED
    # terminal is final: a late success report or a second cancel changes nothing
    with pytest.raises(InvalidTransitionError):
        store.transition(job_id, SUCCEEDED)
    assert store.cancel(job_id).status == CANCELLED


def test_worker_limit_runs_the_second_job_only_after_the_first(store):
    first = store.submit("selftest", {"steps": 4, "sleep": 0.1}, workers=1)
    second = store.submit("selftest", {"steps": 4, "sleep": 0.1}, workers=1)
    assert store.get(first, reconcile=False).status == RUNNING
    assert store.get(second, reconcile=False).status == QUEUED
    # Nobody reconciles here: the finishing worker itself must start the queued job.
    wait_until(lambda: store.get(second, reconcile=False).is_terminal, timeout=60)
    a, b = store.get(first, reconcile=False), store.get(second, reconcile=False)
    assert a.status == b.status == SUCCEEDED
    assert b.started_at >= a.finished_at


def test_store_is_shared_across_processes_and_jobs_outlive_their_submitter(store):
    first = store.submit("selftest", {"steps": 1, "sleep": 0})
    store.wait(first, timeout=60)
    script = textwrap.dedent(f"""
        import json
        from alignscope.jobs import JobStore
        store = JobStore({str(store.path)!r})
        seen = {{job.id: job.status for job in store.list_jobs()}}
        new = store.submit("selftest", {{"steps": 3, "sleep": 0.3}})
        print(json.dumps({{"seen": seen, "new": new}}))
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    result = json.loads(out.stdout)
    assert result["seen"] == {first: SUCCEEDED}
    assert store.get(result["new"]).status in (QUEUED, RUNNING)  # its submitter has exited
    job = store.wait(result["new"], timeout=60)
    assert job.status == SUCCEEDED and len(read_jsonl(job.run_dir / "metrics.jsonl")) == 3


def test_terminate_escalates_to_sigkill_for_a_process_ignoring_sigterm():
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print(flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True, stdout=subprocess.PIPE)
    proc.stdout.readline()  # the handler is installed
    started = time.monotonic()
    terminate_job_processes(proc.pid, psutil.Process(proc.pid).create_time(), grace=0.5)
    assert proc.wait(timeout=5) == -signal.SIGKILL
    assert time.monotonic() - started < 5


# ------------------------------------------------------------------------------- store only
def test_only_valid_transitions_and_terminal_states_are_final(store):
    job = store.add("selftest", {"steps": 1})  # recorded, not started
    assert store.get(job.id, reconcile=False).status == QUEUED
    for bad in (SUCCEEDED, QUEUED):
        with pytest.raises(InvalidTransitionError):
            store.transition(job.id, bad)
    assert store.transition(job.id, RUNNING, pid=os.getpid()).started_at is not None
    with pytest.raises(InvalidTransitionError):
        store.transition(job.id, QUEUED)
    done = store.transition(job.id, SUCCEEDED)
    assert done.progress == 1.0 and done.finished_at is not None
    for late in (CANCELLED, FAILED, RUNNING):
        with pytest.raises(InvalidTransitionError, match="succeeded"):
            store.transition(job.id, late)
    assert store.cancel(job.id).status == SUCCEEDED  # a cancel racing a success does not flip it
    assert store.update_progress(job.id, 0.5, "late") is False
    assert json.loads((job.run_dir / "status.json").read_text())["status"] == SUCCEEDED
    with pytest.raises(ValueError):
        store.transition(job.id, "paused")
    with pytest.raises(JobNotFoundError):
        store.get("no-such-job")


def test_cancelling_a_queued_job_never_starts_it(store):
    job = store.add("selftest", {"steps": 1})
    assert store.cancel(job.id).status == CANCELLED
    jobs.get_executor("local").start(store)
    assert store.get(job.id).status == CANCELLED and store.get(job.id).pid is None


def test_a_job_stored_with_a_target_from_before_the_subpackages_still_runs(store):
    """Stores in existing homes hold the kinds' old import strings (``alignscope.worker:selftest``):
    a queued job with one starts and succeeds, and every old string still loads a function."""
    job = store.add("selftest", {"steps": 2, "sleep": 0.0})
    with sqlite3.connect(store.path) as conn:  # the row as an older alignscope wrote it
        conn.execute("UPDATE jobs SET target = ? WHERE id = ?", ("alignscope.worker:selftest", job.id))
    jobs.get_executor("local").start(store)
    done = store.wait(job.id, timeout=60)
    assert done.target == "alignscope.worker:selftest" and done.status == SUCCEEDED, done.error
    for old, new in _MOVED_TARGETS.items():
        assert jobs.load_target(old) is jobs.load_target(new) and callable(jobs.load_target(old))


def test_reused_pid_is_seen_as_a_dead_worker(store):
    job = store.add("selftest", {"steps": 1})
    # Our own pid, alive, but with another start time: the worker's pid was reused.
    store.transition(job.id, RUNNING, pid=os.getpid(), pid_started_at=1.0, host=None)
    job = store.get(job.id)
    assert job.status == FAILED and "belongs to another process" in job.error
    assert psutil.pid_exists(os.getpid())


def test_unknown_kind_bad_config_and_bad_executor_fail_at_submit(store, isolated_home, monkeypatch):
    with pytest.raises(UnknownKindError, match=r"unknown job kind 'trian'; known kinds: .*selftest"):
        store.submit("trian", {})
    with pytest.raises(JobError, match="plain JSON"):
        store.submit("selftest", {"path": Path("x")})
    with pytest.raises(JobError, match="unknown executor 'slurm'"):
        store.submit("selftest", {}, executor="slurm")
    with pytest.raises(JobError, match="workers"):
        store.submit("selftest", {}, workers=0)
    monkeypatch.setitem(_KINDS, "ghost", "alignscope_no_such_module:run")
    with pytest.raises(UnknownKindError, match="not installed"):
        store.submit("ghost", {})
    with pytest.raises(ValueError):
        jobs.register_kind("bad", "no-colon")
    assert store.list_jobs() == [] and not (isolated_home / "runs").exists()


def test_run_directory_in_use_or_not_empty_is_refused(store, tmp_path):
    out = tmp_path / "out"
    first = store.add("selftest", {}, run_dir=out)
    with pytest.raises(JobError, match=f"in use by job {first.id}"):
        store.add("selftest", {}, run_dir=out, overwrite=True)
    store.transition(first.id, CANCELLED)
    with pytest.raises(JobError, match="not empty"):
        store.add("selftest", {}, run_dir=out)
    (out / "metrics.jsonl").write_text('{"step": 1}\n')
    second = store.add("selftest", {"steps": 2}, run_dir=out, overwrite=True)
    assert not (out / "metrics.jsonl").exists()
    assert json.loads((out / "config.json").read_text())["job_id"] == second.id
    other = tmp_path / "not-a-run"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(JobError, match="not an alignscope run directory"):
        store.add("selftest", {}, run_dir=other, overwrite=True)
    assert (other / "notes.txt").read_text() == "mine"


def test_table_and_details_show_what_the_cli_prints(store):
    job = store.add("selftest", {"steps": 2})
    store.transition(job.id, RUNNING)
    store.transition(job.id, FAILED, error="RuntimeError: boom")
    table = format_job_table(store.list_jobs(reconcile=False))
    assert table.splitlines()[0].split()[:3] == ["ID", "KIND", "STATUS"]
    assert job.id in table and "failed" in table and "RuntimeError: boom" in table
    details = format_job_details(store.get(job.id, reconcile=False))
    assert "error      RuntimeError: boom" in details and '"steps": 2' in details
    assert format_job_table([]) == "no jobs"


def test_racing_claims_from_many_threads_have_exactly_one_winner(store):
    """The atomic part of starting a job: many writers try queued -> running at once."""
    import threading

    job = store.add("selftest", {"steps": 1})
    wins, losses, barrier = [], [], threading.Barrier(8)

    def claim(n):
        barrier.wait()
        try:
            store.transition(job.id, RUNNING, message=f"claimed by {n}")
            wins.append(n)
        except InvalidTransitionError:
            losses.append(n)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(wins) == 1 and len(losses) == 7
    assert store.get(job.id, reconcile=False).message == f"claimed by {wins[0]}"

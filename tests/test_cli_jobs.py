"""`alignscope jobs list|show|cancel|logs` against a real store and real worker processes."""
from __future__ import annotations

import json

from alignscope.jobs import JobStore
from conftest import run_cli


def test_jobs_commands_list_show_logs_and_cancel():
    store = JobStore()
    done = store.submit("selftest", {"steps": 2, "sleep": 0.1})
    assert store.wait(done, timeout=60).status == "succeeded"
    long = store.submit("selftest", {"steps": 500, "sleep": 0.2}, workers=2)

    listed = run_cli("jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {job["id"] for job in json.loads(listed.stdout)} == {done, long}

    shown = run_cli("jobs", "show", done)
    assert shown.returncode == 0 and "succeeded" in shown.stdout and '"steps": 2' in shown.stdout
    logs = run_cli("jobs", "logs", done, "--tail", "5")
    assert logs.returncode == 0 and "selftest step 2/2" in logs.stdout

    cancelled = run_cli("jobs", "cancel", long)
    assert cancelled.returncode == 0 and cancelled.stdout.strip() == f"{long}: cancelled"
    assert store.get(long).status == "cancelled"
    table = run_cli("jobs", "list").stdout
    assert long in table and "cancelled" in table


def test_unknown_job_is_one_line_exit_2():
    result = run_cli("jobs", "show", "no-such-job")
    assert result.returncode == 2 and result.stderr.count("\n") == 1 and "no-such-job" in result.stderr

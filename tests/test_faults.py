"""Faults, for real: a training job SIGKILLed mid-run (what the out-of-memory killer does), a worker
whose allocations fail (address space capped), a disk that is full or read-only when results are written, two writers racing for one output path, and
the app restarted while a job runs. Each time the store and run directories stay consistent, the
user sees what happened, and a re-run works. (Corrupt cache files: tests/test_embed.py; a dead
supervisor and reused pids: tests/test_jobs.py.)"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from alignscope.files import read_jsonl
from alignscope.jobs import FAILED, SUCCEEDED, JobStore
from conftest import ROOT, run_cli

MAIN = str(ROOT / "app" / "main.py")
TRAIN = ["train", "demo:120", "--method", "dpo", "--model", "tiny", "--max-length", "32", "--eval-max-pairs", "8"]


def wait_until(predicate, timeout: float = 300.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"condition not met within {timeout} s")


def leftovers(folder: Path) -> list[str]:
    """Temporary files of atomic writes (``.NAME.XXXX.tmp``) that a crash could leave behind."""
    return [p.name for p in folder.rglob(".*.tmp")]


def submit_training(run: Path, *extra: str) -> str:
    done = run_cli(*TRAIN, "--out", run, "--detach", "--json", *extra)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["job_id"]


def test_training_killed_mid_run_is_failed_with_the_reason_and_reruns(isolated_home, tmp_path):
    store = JobStore()
    run = tmp_path / "run"
    job_id = submit_training(run, "--max-steps", "60")
    wait_until(lambda: read_jsonl(run / "metrics.jsonl"))  # it is training: a step is logged
    job = store.get(job_id)
    os.killpg(job.pid, signal.SIGKILL)  # the whole job, as the OOM killer or `kill -9` would
    job = wait_until(lambda: (j := store.get(job_id)).is_terminal and j, timeout=30)
    assert job.status == FAILED and ("killed by signal 9" in job.error or "process died" in job.error), job.error
    assert json.loads((run / "status.json").read_text())["status"] == FAILED
    assert not (run / "eval.json").exists() and leftovers(run) == []
    for line in (run / "metrics.jsonl").read_text().splitlines():  # append-only log: whole lines only
        json.loads(line)
    again = submit_training(run, "--max-steps", "2", "--force")
    assert store.wait(again, timeout=600).status == SUCCEEDED, store.logs(again)
    assert json.loads((run / "eval.json").read_text())["n_pairs"] == 8


def test_a_worker_out_of_memory_fails_with_the_reason_and_reruns(isolated_home, tmp_path):
    """A real allocation failure: once the run trains, its address space is capped just above what
    it uses (RLIMIT_AS, as a container memory limit would), so torch's next allocation fails."""
    import resource

    import psutil

    store = JobStore()
    run = tmp_path / "run"
    job_id = submit_training(run, "--max-steps", "60")
    wait_until(lambda: read_jsonl(run / "metrics.jsonl"))
    for runner in psutil.Process(store.get(job_id).pid).children(recursive=True):
        used = runner.memory_info().vms
        runner.rlimit(resource.RLIMIT_AS, (used + 20 * 2**20, used + 20 * 2**20))
    job = store.wait(job_id, timeout=300)
    assert job.status == FAILED and "memory" in job.error.lower(), job.error
    assert "memory" in store.logs(job_id).lower()
    assert not (run / "eval.json").exists() and leftovers(run) == []
    again = submit_training(run, "--max-steps", "2", "--force")
    assert store.wait(again, timeout=600).status == SUCCEEDED, store.logs(again)


@pytest.fixture
def small_disk(tmp_path):
    """A real 1 MiB file system (tmpfs); skipped where mounting is not allowed (not root)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def matrix(tmp_path) -> Path:
    """Embeddings computed elsewhere (3000 × 16): selection without waiting for an encoder."""
    import numpy as np

    path = tmp_path / "embeddings.npy"
    np.save(path, np.random.default_rng(0).normal(size=(3000, 16)).astype("float32"))
    return path


def select_to(matrix: Path, out: Path, *extra: str, method: str = "random"):
    return run_cli("select", "--embeddings", matrix, "--method", method, "--fraction", "0.3", "--out", out, *extra)


def test_a_full_disk_keeps_the_previous_file_whole(isolated_home, small_disk, matrix):
    target = small_disk / "selection.parquet"
    assert select_to(matrix, target).returncode == 0
    before = target.read_bytes()
    (small_disk / "ballast").write_bytes(b"\0" * (1024 * 1024 - len(before) - 16 * 1024))  # nearly full
    done = select_to(matrix, target, "--seed", "1", "--force")
    assert done.returncode != 0 and "No space left on device" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert target.read_bytes() == before and leftovers(small_disk) == []
    (small_disk / "ballast").unlink()
    assert select_to(matrix, target, "--seed", "1", "--force").returncode == 0  # space back: the re-run works
    assert target.read_bytes() != before


def test_a_read_only_disk_is_reported_and_nothing_changes(isolated_home, small_disk, matrix):
    target = small_disk / "selection.parquet"
    assert select_to(matrix, target).returncode == 0
    before = target.read_bytes()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    done = select_to(matrix, target, "--seed", "1", "--force")
    assert done.returncode != 0 and "Read-only file system" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert target.read_bytes() == before and sorted(p.name for p in small_disk.iterdir()) == ["selection.parquet"]


def test_two_writers_racing_for_one_path_leave_one_complete_file(isolated_home, tmp_path, matrix):
    target = tmp_path / "out" / "same.parquet"
    writers = [subprocess.Popen([sys.executable, "-m", "alignscope.cli", "select", "--embeddings", str(matrix),
                                 "--method", method, "--fraction", "0.3", "--out", str(target), "--force"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
               for method in ("random", "density")]
    results = [w.communicate(timeout=600) for w in writers]
    assert all(w.returncode == 0 for w in writers), results
    table = pd.read_parquet(target)  # a whole parquet file, not an interleaving of two
    assert int(table["selected"].sum()) == 900 and leftovers(target.parent) == []


def test_the_app_restarted_while_a_job_runs_shows_it_and_the_job_finishes(isolated_home, tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNSCOPE_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("ALIGNSCOPE_INITIAL_DATA", "demo:120")
    store = JobStore()
    job_id = submit_training(tmp_path / "run", "--max-steps", "6")
    first = AppTest.from_file(MAIN, default_timeout=120).run()
    first.switch_page("views/runs.py").run()
    assert not first.exception
    del first  # the app goes away; the job is its own process and keeps going
    second = AppTest.from_file(MAIN, default_timeout=120).run()
    second.switch_page("views/runs.py").run()
    assert not second.exception, [e.value for e in second.exception]
    assert job_id in str(second.dataframe[0].value["id"].tolist())
    assert store.wait(job_id, timeout=600).status == SUCCEEDED, store.logs(job_id)
    second.run()
    assert not second.exception

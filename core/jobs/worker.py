"""The process side of local jobs: ``python -m alignscope.jobs.worker JOB_ID --store STORE``.

Two roles, two processes, both in the job's own process group (the supervisor leads it):

* **supervisor** (the default): started detached by :class:`alignscope.jobs.executors.LocalExecutor`. It
  waits until the store shows it as the job's worker, runs the runner as a child, records how the
  child ended (so a SIGKILL or an out-of-memory kill reads "killed by signal 9", not a vague
  "died"), kills whatever the job left behind, and starts the next queued job. It imports nothing
  heavy, so it survives whatever the job code does to its own process.
* **runner** (``--run``): imports the job's function and calls ``fn(config, run_dir, report)``.
  An exception marks the job failed with a one-line error and prints the traceback to log.txt;
  SIGTERM unwinds the job code (its ``finally`` blocks and atomic writes clean up) and ends the
  process by that signal.

Also here: :class:`Reporter` (the ``report`` a job receives) and the built-in ``selftest`` kind.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Mapping

from alignscope.files import append_jsonl, write_json
from alignscope.jobs.executors import get_executor
from alignscope.jobs.kinds import load_target
from alignscope.jobs.model import (BUSY_TIMEOUT_S, FAILED, METRICS_FILE, QUEUED, RUNNING, SUCCEEDED,
                                   InvalidTransitionError, Job, one_line)
from alignscope.jobs.process import process_start_time, terminate_job_processes
from alignscope.jobs.store import JobStore

# How long leftover processes of a finished job get between SIGTERM and SIGKILL.
LEFTOVER_GRACE_S = 2.0


def _log(message: str) -> None:
    """A line in log.txt from alignscope itself (stderr of both roles goes to log.txt)."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    print(f"[alignscope {stamp}] {message}", file=sys.stderr, flush=True)


# -------------------------------------------------------------------------------------- report
class Reporter:
    """``report(progress=None, message=None)`` for job code: progress in 0..1, a short message.

    Writes to the store (and status.json) at most every ``min_interval`` seconds, keeping the
    latest values in between, so a job may call it every step. A store that stays locked is
    logged, never raised into the job."""

    def __init__(self, store: JobStore, job_id: str, min_interval: float = 0.5):
        self.store, self.job_id, self.min_interval = store, job_id, min_interval
        self._pending: dict[str, Any] = {}
        self._last_write = float("-inf")

    def __call__(self, progress: float | None = None, message: str | None = None) -> None:
        if progress is not None:
            self._pending["progress"] = float(progress)
        if message is not None:
            self._pending["message"] = str(message)
        if time.monotonic() - self._last_write >= self.min_interval:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        pending, self._pending = self._pending, {}
        self._last_write = time.monotonic()
        try:
            self.store.update_progress(self.job_id, **pending)
        except sqlite3.Error as err:
            _log(f"could not record progress: {err}")


# -------------------------------------------------------------------------------------- runner
class JobTerminated(BaseException):
    """Raised in the job code on SIGTERM (a BaseException, so ``except Exception`` in job code
    does not swallow it)."""


def _on_sigterm(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # one unwinding is enough; later ones are ignored
    raise JobTerminated()


def _exit_by_signal(signum: int) -> None:
    """End this process *by* ``signum``, so the supervisor sees the real cause."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)
    time.sleep(1)
    os._exit(128 + signum)  # pragma: no cover - only if the signal did not end us


def describe_exception(err: BaseException) -> str:
    """One line for the store: ``Type: message`` (the traceback goes to log.txt)."""
    name = type(err).__name__
    text = str(err).strip()
    if isinstance(err, MemoryError):
        return f"MemoryError: out of memory{': ' + text if text else ''}"
    return one_line(f"{name}: {text}" if text else name)


def _finish(store: JobStore, job_id: str, status: str, **fields: Any) -> None:
    try:
        store.transition(job_id, status, **fields)
    except InvalidTransitionError:  # cancelled (or failed by a reconcile) meanwhile: that stands
        job = store.get(job_id, reconcile=False)
        _log(f"job is already {job.status}; its {status} result is not recorded")


def run(store: JobStore, job_id: str) -> int:
    """The runner: call the job function and record success or failure. Returns the exit code."""
    job = store.get(job_id, reconcile=False)
    if job.status != RUNNING:
        _log(f"job is {job.status}; nothing to run")
        return 0
    signal.signal(signal.SIGTERM, _on_sigterm)
    report = Reporter(store, job_id)
    try:
        function = load_target(job.target)
        report(0.0, "running")
        function(dict(job.config), Path(job.run_dir), report)
    except JobTerminated:
        _log("received SIGTERM; job stopped")
        _exit_by_signal(signal.SIGTERM)
    except SystemExit as exit_:
        if exit_.code not in (0, None):
            report.flush()
            _finish(store, job_id, FAILED, error=f"job code exited with {exit_.code!r}", exit_code=1)
            return 1
    except BaseException as err:  # noqa: BLE001 - any failure of job code is the job's result
        traceback.print_exc()
        report.flush()
        _finish(store, job_id, FAILED, error=describe_exception(err), exit_code=1)
        return 1
    report.flush()
    _finish(store, job_id, SUCCEEDED, exit_code=0, message="done")
    return 0


# ---------------------------------------------------------------------------------- supervisor
def describe_exit(returncode: int) -> str:
    """Why a runner that did not record a result ended, from its exit status."""
    if returncode < 0:
        signum = -returncode
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = "unknown signal"
        hint = "; often the out-of-memory killer" if signum == signal.SIGKILL else ""
        return f"process died: killed by signal {signum} ({name}{hint})"
    if returncode == 0:
        return "process exited without recording a result"
    return f"process died: exited with code {returncode}"


def _wait_for_claim(store: JobStore, job_id: str) -> Job | None:
    """The executor records our pid in the same transaction that spawned us; run only once the
    row shows it (and never if the job went elsewhere or was cancelled meanwhile)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while True:
        job = store.get(job_id, reconcile=False)
        if job.status == RUNNING and job.pid == os.getpid():
            return job
        if job.status != QUEUED or time.monotonic() > deadline:
            _log(f"worker {os.getpid()} exits: job is {job.status} (worker {job.pid})")
            return None
        time.sleep(0.05)


def supervise(store: JobStore, job_id: str) -> int:
    """The supervisor role (see the module docstring). Returns the exit code."""
    job = _wait_for_claim(store, job_id)
    if job is None:
        return 0
    _log(f"job {job.id} ({job.kind}) started: worker pid {os.getpid()} on {socket.gethostname()}, "
         f"python {platform.python_version()}, run dir {job.run_dir}")
    child: subprocess.Popen | None = None

    def forward(signum: int, frame: Any) -> None:
        # A cancel signals the whole group; a signal sent to us alone must still reach the job.
        if child is not None:
            with contextlib.suppress(OSError):
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    child = subprocess.Popen([sys.executable, "-m", "alignscope.jobs.worker", job_id, "--store", str(store.path), "--run"],
                             stdin=subprocess.DEVNULL, close_fds=True)
    returncode = child.wait()
    job = store.get(job_id, reconcile=False)
    if job.status == RUNNING:
        _finish(store, job_id, FAILED, error=describe_exit(returncode), exit_code=returncode)
        job = store.get(job_id, reconcile=False)
    _log(f"job {job.status}" + (f": {job.error}" if job.error else ""))
    # Nothing a job started may outlive it (a data loader worker, a server it launched).
    terminate_job_processes(os.getpid(), process_start_time(os.getpid()), grace=LEFTOVER_GRACE_S,
                            exclude=[os.getpid()])
    get_executor(job.executor).start(store)  # our slot is free: start the next queued job
    return 0


# ------------------------------------------------------------------------------- selftest kind
_SELFTEST_OPTIONS = {"steps", "sleep", "fail_at", "fail_message", "allocate_mb", "spawn_child"}


def selftest(config: Mapping[str, Any], run_dir: Path, report: Any) -> None:
    """Built-in job kind that checks the plumbing on this machine.

    Options: ``steps`` (5) metric lines appended to metrics.jsonl with ``sleep`` (0.1) seconds
    before each; ``fail_at`` raises RuntimeError(``fail_message``) at that step; ``allocate_mb``
    holds that much touched memory for the whole run (to try memory limits); ``spawn_child``
    starts a long-sleeping child process and records its pid in child.json (to check that cancel
    and job cleanup leave no process behind). Writes result.json at the end.
    """
    unknown = set(config) - _SELFTEST_OPTIONS
    if unknown:
        raise ValueError(f"unknown selftest option(s) {sorted(unknown)}; known: {sorted(_SELFTEST_OPTIONS)}")
    steps, sleep = int(config.get("steps", 5)), float(config.get("sleep", 0.1))
    if steps < 0 or sleep < 0:
        raise ValueError("selftest steps and sleep must be non-negative")
    fail_at = config.get("fail_at")
    fail_message = str(config.get("fail_message", "selftest failure requested"))
    started = time.monotonic()
    if config.get("spawn_child"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"], stdin=subprocess.DEVNULL)
        write_json(run_dir / "child.json", {"pid": child.pid})
    allocated = _allocate(int(config.get("allocate_mb", 0)))
    for step in range(1, steps + 1):
        time.sleep(sleep)
        if fail_at is not None and step == int(fail_at):
            raise RuntimeError(fail_message)
        append_jsonl(run_dir / METRICS_FILE, {"step": step, "loss": round(1.0 / step, 6),
                                              "elapsed_s": round(time.monotonic() - started, 3)})
        print(f"selftest step {step}/{steps}", flush=True)
        report(step / steps, f"step {step}/{steps}")
    write_json(run_dir / "result.json", {"steps": steps, "allocated_mb": len(allocated) >> 20,
                                         "pid": os.getpid()})


def _allocate(megabytes: int) -> bytearray:
    """``megabytes`` of memory that is really resident (every page written)."""
    if megabytes < 0:
        raise ValueError("allocate_mb must be non-negative")
    block = bytearray(megabytes << 20)
    page = 4096
    block[::page] = b"\x01" * len(range(0, len(block), page))
    return block


# ---------------------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m alignscope.jobs.worker",
                                     description="Run one alignscope job (started by the local executor).")
    parser.add_argument("job_id")
    parser.add_argument("--store", help="job store file (default: ALIGNSCOPE_HOME/jobs.sqlite)")
    parser.add_argument("--run", action="store_true", help="internal: the runner role")
    args = parser.parse_args(argv)
    store = JobStore(args.store)
    return run(store, args.job_id) if args.run else supervise(store, args.job_id)


if __name__ == "__main__":
    sys.exit(main())

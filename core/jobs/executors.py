"""Executors: where jobs run. :class:`LocalExecutor` runs each job as detached subprocesses on
this machine; a Ray executor (:mod:`alignscope.jobs.ray`) is registered by name and imported only
when used. Every executor records its jobs through the :class:`~alignscope.jobs.store.JobStore`."""
from __future__ import annotations

import logging
import os
import socket
import subprocess
import sys
from typing import TYPE_CHECKING

from alignscope.jobs.kinds import load_target
from alignscope.jobs.model import FAILED, QUEUED, RUNNING, Job, JobError
from alignscope.jobs.process import _remember_spawned, process_identity, process_start_time, terminate_job_processes

if TYPE_CHECKING:  # annotations only: the store imports this module to start jobs
    from alignscope.jobs.store import JobStore

logger = logging.getLogger(__name__)


class Executor:
    """Where jobs run. An executor starts queued jobs of its name, stops cancelled ones and says
    whether a running one died; it records everything through the JobStore, so every executor's
    jobs land in the same store and run directories."""

    name = "base"

    def start(self, store: JobStore) -> None:
        """Start whatever queued jobs of this executor may start now. Must be idempotent and safe
        to call from any process at any time."""
        raise NotImplementedError

    def stop(self, store: JobStore, job: Job, *, grace: float) -> None:
        """Stop every process of a job that is already marked terminal."""
        raise NotImplementedError

    def death_reason(self, job: Job) -> str | None:
        """For a running job: None while it is alive (or cannot be checked from here), else a
        one-line reason for marking it failed."""
        return None

    def check_cancellable(self, job: Job) -> None:
        """Raise JobError if this process cannot cancel ``job``."""


class LocalExecutor(Executor):
    """Each job runs as ``python -m alignscope.jobs.worker JOB_ID --store STORE``: a light supervisor
    that leads its own session (so it outlives the app or CLI that started it and can be killed as
    a group), runs the job code in a child process, records how it ended and starts the next queued
    job. stdout and stderr of both go to run_dir/log.txt."""

    name = "local"

    def start(self, store: JobStore) -> None:
        while self._start_next(store):
            pass

    def _start_next(self, store: JobStore) -> bool:
        """Claim the oldest queued local job if a slot is free and spawn its worker; True if a
        job was started (or failed to start), so the caller looks for another."""
        with store._connect() as conn:  # cheap read first: most calls find nothing to do
            if not conn.execute("SELECT 1 FROM jobs WHERE status = ? AND executor = ? LIMIT 1",
                                (QUEUED, self.name)).fetchone():
                return False
        with store._write() as conn:
            row = conn.execute("SELECT * FROM jobs WHERE status = ? AND executor = ? "
                               "ORDER BY created_at, rowid LIMIT 1", (QUEUED, self.name)).fetchone()
            if row is None:
                return False
            job = store._job_from_row(row)
            running = conn.execute("SELECT COUNT(*) FROM jobs WHERE status = ? AND executor = ?",
                                   (RUNNING, self.name)).fetchone()[0]
            if running >= job.workers:
                return False
            try:
                proc = self._spawn_worker(store, job)
            except OSError as err:
                store._transition(conn, job, FAILED, {"error": f"could not start a worker: {err}"})
                return True
            # Recorded in the same transaction as the spawn: the worker waits until it sees its
            # own pid on the row, so a job is never run twice and never left without a pid.
            store._transition(conn, job, RUNNING, {
                "pid": proc.pid, "pid_started_at": process_start_time(proc.pid),
                "host": socket.gethostname(), "message": "starting"})
        return True

    @staticmethod
    def _spawn_worker(store: JobStore, job: Job) -> subprocess.Popen:
        cwd = job.cwd if job.cwd and os.path.isdir(job.cwd) else str(job.run_dir)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        with open(job.log_path, "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "alignscope.jobs.worker", job.id, "--store", str(store.path)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=cwd, env=env,
                start_new_session=True,  # own session and process group: detached, killable as one
                close_fds=True)
        _remember_spawned(proc)
        return proc

    def stop(self, store: JobStore, job: Job, *, grace: float) -> None:
        if job.pid is not None and self._is_this_host(job):
            terminate_job_processes(job.pid, job.pid_started_at, grace=grace)

    def death_reason(self, job: Job) -> str | None:
        if not self._is_this_host(job):
            return None  # its processes are not visible from here
        if job.pid is None:
            return "process died: no worker process was recorded"
        identity = process_identity(job.pid, job.pid_started_at)
        if identity == "gone":
            return (f"process died: worker {job.pid} is gone (killed by a signal such as SIGKILL or "
                    "the out-of-memory killer, or the machine restarted)")
        if identity == "other":
            return f"process died: worker {job.pid} no longer exists (its pid now belongs to another process)"
        return None

    def check_cancellable(self, job: Job) -> None:
        if job.status == RUNNING and not self._is_this_host(job):
            raise JobError(f"job {job.id} runs on host {job.host}; cancel it there")

    @staticmethod
    def _is_this_host(job: Job) -> bool:
        return job.host is None or job.host == socket.gethostname()


# Executors by name -> "module:Class" import string (a Ray executor must not import ray here).
_EXECUTOR_TARGETS: dict[str, str] = {"local": "alignscope.jobs.executors:LocalExecutor",
                                     "ray": "alignscope.jobs.ray:RayExecutor"}
_EXECUTORS: dict[str, Executor] = {}


def register_executor(name: str, target: str) -> None:
    """Register executor ``name`` as ``"module:Class"`` (instantiated without arguments on use)."""
    _EXECUTOR_TARGETS[name] = target
    _EXECUTORS.pop(name, None)


def get_executor(name: str) -> Executor:
    executor = _EXECUTORS.get(name)
    if executor is None:
        target = _EXECUTOR_TARGETS.get(name)
        if target is None:
            raise JobError(f"unknown executor {name!r}; known executors: {', '.join(sorted(_EXECUTOR_TARGETS))}")
        executor = _EXECUTORS[name] = load_target(target)()
    return executor


def _loaded_executor(name: str) -> Executor | None:
    """The executor for reconciling: None if it cannot be loaded here (e.g. ray not installed),
    in which case its jobs are left alone rather than wrongly marked dead."""
    try:
        return get_executor(name)
    except Exception as err:  # noqa: BLE001 - an optional executor's import error
        logger.debug("executor %s unavailable: %s", name, err)
        return None


__all__ = ["Executor", "LocalExecutor", "get_executor", "register_executor"]

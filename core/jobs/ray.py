"""The ``ray`` executor: jobs as Ray tasks, recorded in the same job store and run directories.

``alignscope sweep … --executor ray [--address auto|ray://HOST:PORT]`` (or ``JobStore.submit(…,
executor="ray")``) queues jobs like the local executor; :meth:`RayExecutor.start` claims them and
submits one Ray task per job with the CPUs/GPUs the job declares (``config["resources"]``:
``{"cpus": 1, "gpus": 0}``). Without an address (``ALIGNSCOPE_RAY_ADDRESS`` unset) a local Ray
instance is started with ``workers`` CPUs, so ``--workers`` bounds the parallelism as it does
locally.

Inside the task, the job runs exactly as a local one: ``python -m alignscope.jobs.worker JOB_ID --run``
in its own process group, its output appended to the run's ``log.txt``; the task records that
process's pid and host in the store, so cancel (from any process on that host) and dead-worker
detection work as for local jobs. On a multi-node cluster, ``ALIGNSCOPE_HOME`` (the store and run
directories) must be on a filesystem every node mounts.

The process that started the tasks is their Ray owner: when it exits, Ray stops them (the sweep
command waits for its points). ``ray`` is an optional dependency (``pip install alignscope[ray]``);
nothing imports it until a Ray job is started.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

from alignscope.jobs.executors import Executor
from alignscope.jobs.model import FAILED, QUEUED, RUNNING, Job, JobError
from alignscope.jobs.process import process_identity, process_start_time, terminate_job_processes
from alignscope.jobs.store import JobStore
from alignscope.jobs.worker import _finish, describe_exit

__all__ = ["RayExecutor", "ADDRESS_ENV"]

ADDRESS_ENV = "ALIGNSCOPE_RAY_ADDRESS"


def _ray():
    try:
        import ray
    except ImportError:
        raise JobError("the ray executor needs Ray: pip install 'alignscope[ray]' (or pip install ray)") from None
    return ray


def _run_job_task(job_id: str, store_path: str) -> str:
    """Body of the Ray task: run the job's runner as a child process and record how it ended."""
    store = JobStore(store_path)
    job = store.get(job_id, reconcile=False)
    if job.status != RUNNING:
        return job.status
    with open(job.log_path, "ab") as log:
        child = subprocess.Popen([sys.executable, "-m", "alignscope.jobs.worker", job_id, "--store", store_path, "--run"],
                                 stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                 close_fds=True, cwd=job.cwd if job.cwd and os.path.isdir(job.cwd) else None,
                                 env={**os.environ, "PYTHONUNBUFFERED": "1"})
    with store._write() as conn:
        JobStore._update(conn, job_id, {"pid": child.pid, "pid_started_at": process_start_time(child.pid),
                                        "host": socket.gethostname()})
    returncode = child.wait()
    job = store.get(job_id, reconcile=False)
    if job.status == RUNNING:
        _finish(store, job_id, FAILED, error=describe_exit(returncode), exit_code=returncode)
    return store.get(job_id, reconcile=False).status


class RayExecutor(Executor):
    name = "ray"

    def __init__(self) -> None:
        self._remote = None
        self._refs: dict[str, Any] = {}

    def _connect(self, workers: int) -> Any:
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports from a user's machine
        ray = _ray()
        if not ray.is_initialized():
            address = os.environ.get(ADDRESS_ENV) or None
            options: dict[str, Any] = dict(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
                                           configure_logging=False)
            if address is None:
                options["num_cpus"] = max(1, int(workers))
            ray.init(address=address, **options)
        if self._remote is None:
            self._remote = ray.remote(max_retries=0)(_run_job_task)
        return ray

    def start(self, store: JobStore) -> None:
        with store._connect() as conn:
            row = conn.execute("SELECT workers FROM jobs WHERE status = ? AND executor = ? LIMIT 1",
                               (QUEUED, self.name)).fetchone()
        if row is None:
            return
        self._connect(int(row[0]))
        while True:
            with store._write() as conn:
                row = conn.execute("SELECT * FROM jobs WHERE status = ? AND executor = ? ORDER BY created_at, rowid "
                                   "LIMIT 1", (QUEUED, self.name)).fetchone()
                if row is None:
                    return
                job = store._job_from_row(row)
                store._transition(conn, job, RUNNING, {"message": "submitted to Ray", "host": None, "pid": None})
            resources = job.config.get("resources") or {}
            self._refs[job.id] = self._remote.options(
                num_cpus=float(resources.get("cpus", 1)), num_gpus=float(resources.get("gpus", 0)),
            ).remote(job.id, str(store.path))

    def stop(self, store: JobStore, job: Job, *, grace: float) -> None:
        if job.pid is not None and job.host == socket.gethostname():
            terminate_job_processes(job.pid, job.pid_started_at, grace=grace)
        ref = self._refs.pop(job.id, None)
        if ref is not None:
            _ray().cancel(ref, force=True)

    def death_reason(self, job: Job) -> str | None:
        if job.pid is None or job.host != socket.gethostname():
            return None  # still waiting in Ray, or running on another node
        identity = process_identity(job.pid, job.pid_started_at)
        if identity == "gone":
            return f"process died: Ray job process {job.pid} is gone (killed, or its Ray task was stopped)"
        if identity == "other":
            return f"process died: Ray job process {job.pid} no longer exists"
        return None

    def check_cancellable(self, job: Job) -> None:
        if job.status == RUNNING and job.pid is not None and job.host != socket.gethostname():
            raise JobError(f"job {job.id} runs on Ray node {job.host}; cancel it there")

    def wait_all(self) -> None:
        """Block until every task this executor submitted has ended (used by the sweep command)."""
        if self._refs:
            _ray().wait(list(self._refs.values()), num_returns=len(self._refs))

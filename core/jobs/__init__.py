"""Long work as jobs (training, sweeps, embeddings) run outside the app, recorded in a SQLite store.

A job is a *kind* (a name registered to a ``"module:function"`` import string), a JSON config and a
run directory. The function runs in a worker process as ``fn(config, run_dir, report)``; ``report``
is a callable ``report(progress=None, message=None)`` with progress in 0..1.

Lifecycle (only these transitions; terminal states are final)::

    queued ──▶ running ──▶ succeeded | failed | cancelled
       └─────────────────▶ failed | cancelled

Pieces:

* :mod:`~alignscope.jobs.model`: the :class:`Job` record, statuses, errors, the run folder's file names.
* :mod:`~alignscope.jobs.kinds`: the kind registry (``register_kind``, ``known_kinds``).
* :mod:`~alignscope.jobs.process`: process-group control (pid identity, ``terminate_job_processes``).
* :class:`JobStore` (:mod:`~alignscope.jobs.store`): the SQLite store (WAL, busy timeout, one
  short connection per operation, so the app's threads, the CLI and every worker process can
  share it) plus the public API: ``submit``, ``get``, ``list_jobs``, ``cancel``, ``wait``, ``logs``.
* Executors (:mod:`~alignscope.jobs.executors`): :class:`LocalExecutor` runs each job as detached
  subprocesses on this machine; a Ray executor can be registered later and must land results in the same store
  and run directories (it records rows with :meth:`JobStore.add` and moves them with
  :meth:`JobStore.transition`).
* :mod:`alignscope.jobs.worker`: the process side (``python -m alignscope.jobs.worker JOB_ID``);
  :mod:`alignscope.jobs.ray`: the Ray executor (imports ray only when used).

How queued local jobs start, without a daemon: starting is a *pump* (:meth:`LocalExecutor.start`)
that, inside one SQLite write transaction, takes the oldest queued local job, checks that fewer
than ``job.workers`` local jobs are running, spawns its worker and records it as running with the
worker's pid. The pump runs on ``submit``, when a worker finishes (each worker pumps as its last
act), after ``cancel``, and on every ``get``/``list_jobs``/``wait`` (the reconcile step), so a
freed slot is filled by whichever of these happens first, and the write lock makes concurrent
pumps harmless.

Dead workers: every ``get``/``list_jobs``/``wait`` reconciles running local jobs; a job whose
worker pid is gone (or whose pid now belongs to a different process, detected by the process
start time) is marked failed and its leftover processes are killed.

The public API is re-exported here (``from alignscope.jobs import JobStore``); importing it costs
sqlite3 and psutil, nothing heavy, so the app and ``alignscope --help`` can afford it.
"""
from __future__ import annotations

from alignscope.jobs.executors import Executor, LocalExecutor, get_executor, register_executor
from alignscope.jobs.kinds import known_kinds, load_target, register_kind, resolve_kind
from alignscope.jobs.model import (ACTIVE, CANCELLED, CONFIG_FILE, FAILED, LOG_FILE, METRICS_FILE, QUEUED, RUNNING,
                                   STATUS_FILE, STATUSES, SUCCEEDED, TERMINAL, InvalidTransitionError, Job, JobError,
                                   JobNotFoundError, UnknownKindError, default_workers, format_duration, format_time,
                                   format_wait)
from alignscope.jobs.process import terminate_job_processes
from alignscope.jobs.store import JobStore, read_run_config

__all__ = [
    "ACTIVE", "CANCELLED", "CONFIG_FILE", "FAILED", "LOG_FILE", "METRICS_FILE", "QUEUED", "RUNNING", "STATUSES",
    "STATUS_FILE", "SUCCEEDED", "TERMINAL", "Executor", "InvalidTransitionError", "Job", "JobError",
    "JobNotFoundError", "JobStore", "LocalExecutor", "UnknownKindError", "default_workers", "format_duration",
    "format_time", "format_wait", "get_executor", "known_kinds", "load_target", "read_run_config",
    "register_executor", "register_kind", "resolve_kind", "terminate_job_processes",
]

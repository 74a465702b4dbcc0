"""The SQLite job store (:class:`JobStore`) and the run directories it prepares.

Safe to share between the app's threads, the CLI and every worker process: one short connection
per operation, writes under SQLite's write lock (``BEGIN IMMEDIATE``), WAL so readers proceed.
The package docstring (:mod:`alignscope.jobs`) tells the lifecycle and how queued jobs start.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import platform
import shutil
import sqlite3
import time
from pathlib import Path
from typing import Any, Iterable, Iterator, Mapping

from alignscope import __version__
from alignscope.files import write_json
from alignscope.jobs.executors import _loaded_executor, get_executor
from alignscope.jobs.kinds import resolve_kind
from alignscope.jobs.model import (ALLOWED_TRANSITIONS, BUSY_TIMEOUT_S, CONFIG_FILE, DEFAULT_CANCEL_GRACE_S, LOG_FILE,
                                   QUEUED, RUNNING, STATUS_FILE, STATUSES, SUCCEEDED, TERMINAL, CANCELLED, FAILED,
                                   InvalidTransitionError, Job, JobError, JobNotFoundError, default_workers,
                                   new_job_id, one_line, tail_text)
from alignscope.jobs.process import _reap_spawned
from alignscope.settings import home

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------- store
_SCHEMA_VERSION = 1
_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    target TEXT NOT NULL,
    config TEXT NOT NULL,
    run_dir TEXT NOT NULL,
    executor TEXT NOT NULL,
    workers INTEGER NOT NULL DEFAULT 1,
    cwd TEXT,
    status TEXT NOT NULL CHECK (status IN ({", ".join(repr(s) for s in STATUSES)})),
    created_at REAL NOT NULL,
    started_at REAL,
    finished_at REAL,
    progress REAL NOT NULL DEFAULT 0,
    message TEXT,
    error TEXT,
    exit_code INTEGER,
    host TEXT,
    pid INTEGER,
    pid_started_at REAL
);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, executor);
CREATE INDEX IF NOT EXISTS jobs_by_created ON jobs (created_at);
-- two active jobs never share a run directory (two --out at the same path)
CREATE UNIQUE INDEX IF NOT EXISTS jobs_active_run_dir ON jobs (run_dir) WHERE status IN ('queued', 'running');
"""
_COLUMNS = ("id", "kind", "target", "config", "run_dir", "executor", "workers", "cwd", "status",
            "created_at", "started_at", "finished_at", "progress", "message", "error", "exit_code",
            "host", "pid", "pid_started_at")
# Fields a transition or executor may set; the rest are fixed at submission.
_MUTABLE = frozenset({"started_at", "finished_at", "progress", "message", "error", "exit_code",
                      "host", "pid", "pid_started_at"})


class JobStore:
    """The job store: a SQLite file (default ``ALIGNSCOPE_HOME/jobs.sqlite``) and run directories
    (default ``<store folder>/runs/<job id>/``).

    Safe to share between threads and processes: every operation opens its own short-lived
    connection, writes take SQLite's write lock up front (``BEGIN IMMEDIATE``) and wait up to
    30 s for it, and WAL mode lets readers proceed while a writer works.
    """

    def __init__(self, path: str | os.PathLike | None = None, *, runs_dir: str | os.PathLike | None = None):
        self.path = Path(path).expanduser().resolve() if path else (home() / "jobs.sqlite").resolve()
        self.runs_dir = Path(runs_dir).expanduser().resolve() if runs_dir else self.path.parent / "runs"
        self._create_schema()

    def __repr__(self) -> str:
        return f"JobStore({str(self.path)!r})"

    # -- connections --------------------------------------------------------------------------
    @contextlib.contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        conn.row_factory = sqlite3.Row
        try:
            conn.execute("PRAGMA synchronous=NORMAL")  # durable across crashes of any process in WAL
            yield conn
        finally:
            conn.close()

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction holding SQLite's write lock from the start, so read-then-write
        sequences (claim a slot, check a transition) are atomic across processes."""
        with self._connect() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _create_schema(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._connect() as conn:
                conn.execute("PRAGMA journal_mode=WAL")  # persistent: set once per file
                version = conn.execute("PRAGMA user_version").fetchone()[0]
                if version > _SCHEMA_VERSION:
                    raise JobError(f"job store {self.path} was written by a newer alignscope "
                                   f"(schema {version} > {_SCHEMA_VERSION}); upgrade alignscope")
                conn.executescript(_SCHEMA)
                if version < _SCHEMA_VERSION:
                    conn.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
        except sqlite3.DatabaseError as err:
            raise JobError(f"cannot open job store {self.path}: {err}") from err
        except OSError as err:
            raise JobError(f"cannot create job store folder {self.path.parent}: {err}") from err

    @staticmethod
    def _job_from_row(row: sqlite3.Row) -> Job:
        data = dict(row)
        data["config"] = json.loads(data["config"])
        data["run_dir"] = Path(data["run_dir"])
        return Job(**data)

    def _fetch(self, conn: sqlite3.Connection, job_id: str) -> Job:
        row = conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            raise JobNotFoundError(f"no job with id {job_id!r} in {self.path}")
        return self._job_from_row(row)

    # -- creating jobs ------------------------------------------------------------------------
    def submit(self, kind: str, config: Mapping[str, Any] | None = None, *, run_dir: str | os.PathLike | None = None,
               executor: str = "local", workers: int | None = None, overwrite: bool = False) -> str:
        """Queue a job and start it if a worker slot is free; returns the job id.

        ``workers``: the job starts only while fewer than this many local jobs run
        (default: ``ALIGNSCOPE_WORKERS`` or 1). ``run_dir``: default ``runs/<id>``; an existing
        non-empty folder is refused unless ``overwrite`` (and then only if it is a run directory).
        """
        job = self.add(kind, config, run_dir=run_dir, executor=executor, workers=workers, overwrite=overwrite)
        get_executor(executor).start(self)
        return job.id

    def add(self, kind: str, config: Mapping[str, Any] | None = None, *, run_dir: str | os.PathLike | None = None,
            executor: str = "local", workers: int | None = None, overwrite: bool = False) -> Job:
        """Record a queued job and prepare its run directory, without starting it (executors call
        :meth:`Executor.start`; :meth:`submit` does both)."""
        target = resolve_kind(kind)
        get_executor(executor)  # unknown executor: fail now, not in a worker
        config = dict(config or {})
        try:
            config_text = json.dumps(config, ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as err:
            raise JobError(f"job config must be plain JSON (str, numbers, lists, dicts): {err}") from None
        workers = default_workers() if workers is None else int(workers)
        if workers < 1:
            raise JobError(f"workers must be at least 1, got {workers}")
        for _ in range(5):  # a fresh id collides only if two submits share a second and 24 random bits
            job_id = new_job_id()
            path = Path(run_dir).expanduser().resolve() if run_dir else self.runs_dir / job_id
            job = Job(id=job_id, kind=kind, target=target, config=config, run_dir=path, status=QUEUED,
                      executor=executor, workers=workers, created_at=time.time(), cwd=_safe_cwd())
            try:
                with self._write() as conn:
                    self._insert(conn, job, config_text)
                    stale = _prepare_run_dir(job, overwrite)
            except sqlite3.IntegrityError as err:
                if "jobs.id" in str(err):
                    continue
                raise JobError(self._run_dir_in_use_message(path)) from None
            if stale is not None:  # the old run moved aside under the lock; delete it outside
                shutil.rmtree(stale, ignore_errors=True)
            return job
        raise JobError("could not allocate a unique job id")  # pragma: no cover - 2^24 per second

    def _insert(self, conn: sqlite3.Connection, job: Job, config_text: str) -> None:
        values = {**job.to_dict(), "config": config_text}
        placeholders = ", ".join("?" for _ in _COLUMNS)
        conn.execute(f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({placeholders})",
                     [values[c] for c in _COLUMNS])

    def _run_dir_in_use_message(self, path: Path) -> str:
        with self._connect() as conn:
            row = conn.execute("SELECT id, status FROM jobs WHERE run_dir = ? AND status IN (?, ?)",
                               (str(path), QUEUED, RUNNING)).fetchone()
        other = f"job {row['id']} ({row['status']})" if row else "another job"
        return f"run directory {path} is in use by {other}; choose another output folder"

    # -- reading ------------------------------------------------------------------------------
    def get(self, job_id: str, *, reconcile: bool = True) -> Job:
        """The job (after reconciling running jobs with their processes, unless told not to)."""
        if reconcile:
            self.reconcile()
        with self._connect() as conn:
            return self._fetch(conn, job_id)

    def list_jobs(self, status: str | Iterable[str] | None = None, kind: str | None = None, limit: int | None = 100,
                  *, reconcile: bool = True) -> list[Job]:
        """Jobs, newest first, optionally filtered by status (one or several) and kind."""
        if reconcile:
            self.reconcile()
        clauses, params = [], []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            unknown = set(statuses) - set(STATUSES)
            if unknown:
                raise JobError(f"unknown status {sorted(unknown)}; expected one of {', '.join(STATUSES)}")
            clauses.append(f"status IN ({', '.join('?' for _ in statuses)})")
            params += statuses
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        query = f"SELECT * FROM jobs {where} ORDER BY created_at DESC, rowid DESC"
        if limit is not None:
            query += " LIMIT ?"
            params.append(int(limit))
        with self._connect() as conn:
            return [self._job_from_row(row) for row in conn.execute(query, params)]

    def jobs_ahead(self, job_id: str) -> list[Job]:
        """What a queued job waits for: the jobs running on its executor, then those queued there
        before it (the local executor starts the oldest queued job when a slot frees). [] when the
        job is not queued."""
        job = self.get(job_id)
        if job.status != QUEUED:
            return []
        with self._connect() as conn:
            rows = conn.execute("SELECT * FROM jobs WHERE executor = ? AND id != ? AND (status = ? OR (status = ? AND "
                                "(created_at < ? OR (created_at = ? AND rowid < (SELECT rowid FROM jobs WHERE id = ?))))) "
                                "ORDER BY status = ? DESC, created_at, rowid",
                                (job.executor, job.id, RUNNING, QUEUED, job.created_at, job.created_at, job.id,
                                 RUNNING)).fetchall()
        return [self._job_from_row(row) for row in rows]

    def logs(self, job_id: str, tail: int | None = 200) -> str:
        """The last ``tail`` lines of the job's log.txt (everything when ``tail`` is None)."""
        return tail_text(self.get(job_id, reconcile=False).log_path, tail)

    def wait(self, job_id: str, timeout: float | None = None, *, poll: float = 0.2) -> Job:
        """Block until the job is terminal; raises TimeoutError after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.get(job_id)
            if job.is_terminal:
                return job
            if deadline is not None and time.monotonic() >= deadline:
                raise TimeoutError(f"job {job_id} still {job.status} after {timeout:g} s")
            time.sleep(poll)

    # -- changing state -----------------------------------------------------------------------
    def transition(self, job_id: str, status: str, **fields: Any) -> Job:
        """Move a job to ``status`` (setting ``fields``) if the lifecycle allows it; raises
        :class:`InvalidTransitionError` otherwise, e.g. for any change of a terminal job."""
        with self._write() as conn:
            return self._transition(conn, self._fetch(conn, job_id), status, fields)

    def _transition(self, conn: sqlite3.Connection, job: Job, status: str, fields: Mapping[str, Any]) -> Job:
        """The transition inside an open write transaction (so callers can combine it with a
        claim); also mirrors the new state into status.json while the write lock is held, so
        status.json files are written in the same order as the store changes."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        bad = set(fields) - _MUTABLE
        if bad:
            raise ValueError(f"cannot set {sorted(bad)} in a transition")
        if status not in ALLOWED_TRANSITIONS[job.status]:
            raise InvalidTransitionError(f"job {job.id} is {job.status}; it cannot become {status}")
        now = time.time()
        values = {"status": status, **fields}
        if status == RUNNING:
            values.setdefault("started_at", now)
        if status in TERMINAL:
            values.setdefault("finished_at", now)
        if status == SUCCEEDED:
            values["progress"] = 1.0
        if "error" in values and values["error"] is not None:
            values["error"] = one_line(values["error"])
        self._update(conn, job.id, values)
        updated = self._fetch(conn, job.id)
        _mirror_status(updated)
        return updated

    @staticmethod
    def _update(conn: sqlite3.Connection, job_id: str, values: Mapping[str, Any]) -> None:
        assignments = ", ".join(f"{column} = ?" for column in values)
        conn.execute(f"UPDATE jobs SET {assignments} WHERE id = ?", [*values.values(), job_id])

    def update_progress(self, job_id: str, progress: float | None = None, message: str | None = None) -> bool:
        """Record progress (clamped to 0..1) and/or a short message of a running job; returns
        False (and changes nothing) when the job is no longer running."""
        values: dict[str, Any] = {}
        if progress is not None:
            values["progress"] = min(1.0, max(0.0, float(progress)))
        if message is not None:
            values["message"] = one_line(message, 200)
        if not values:
            return True
        with self._write() as conn:
            job = self._fetch(conn, job_id)
            if job.status != RUNNING:
                return False
            self._update(conn, job_id, values)
            _mirror_status(self._fetch(conn, job_id))
        return True

    def cancel(self, job_id: str, *, grace: float = DEFAULT_CANCEL_GRACE_S) -> Job:
        """Cancel a queued or running job: it is marked cancelled first (so nothing can mark it
        succeeded or failed afterwards), then its processes get SIGTERM and, after ``grace``
        seconds, SIGKILL. A terminal job is returned unchanged."""
        job = self.get(job_id, reconcile=False)
        if job.is_terminal:
            return job
        executor = get_executor(job.executor)
        executor.check_cancellable(job)
        try:
            cancelled = self.transition(job_id, CANCELLED, message="cancelled")
        except InvalidTransitionError:  # it finished between our read and our write
            return self.get(job_id, reconcile=False)
        if job.status == RUNNING or cancelled.pid is not None:
            executor.stop(self, cancelled, grace=grace)
        executor.start(self)  # a slot may have freed up
        return self.get(job_id, reconcile=False)

    # -- reconciling with processes -----------------------------------------------------------
    def reconcile(self) -> list[Job]:
        """Mark running jobs whose processes died as failed, then let each executor start queued
        jobs. Returns the jobs marked failed. Cheap: a query plus one process check per running
        job, so every ``get``/``list_jobs`` can afford it."""
        _reap_spawned()
        with self._connect() as conn:
            running = [self._job_from_row(r) for r in conn.execute("SELECT * FROM jobs WHERE status = ?", (RUNNING,))]
            queued_executors = {r[0] for r in conn.execute("SELECT DISTINCT executor FROM jobs WHERE status = ?", (QUEUED,))}
        died = []
        for job in running:
            executor = _loaded_executor(job.executor)
            reason = executor.death_reason(job) if executor else None
            if reason is None:
                continue
            try:
                died.append(self.transition(job.id, FAILED, error=reason))
            except InvalidTransitionError:
                continue  # it finished properly while we looked
            executor.stop(self, job, grace=1.0)  # kill what is left of its process group
        for name in queued_executors | {job.executor for job in died}:
            executor = _loaded_executor(name)
            if executor is not None:
                executor.start(self)
        return died


def _safe_cwd() -> str | None:
    try:
        return os.getcwd()
    except OSError:
        return None


def _mirror_status(job: Job) -> None:
    """Write status.json. Best effort: the store is the source of truth, and a full or read-only
    disk must not stop a job from being marked failed."""
    try:
        write_json(job.run_dir / STATUS_FILE, job.status_record())
    except OSError as err:
        logger.warning("could not write %s: %s", job.run_dir / STATUS_FILE, err)


def _prepare_run_dir(job: Job, overwrite: bool) -> Path | None:
    """Create the run directory with config.json, status.json and an empty log.txt. Returns the
    folder an overwritten run was moved to (for deletion after the transaction) or None."""
    path, stale = job.run_dir, None
    try:
        if path.exists() and not path.is_dir():
            raise JobError(f"run directory {path} is a file")
        if path.is_dir() and any(path.iterdir()):
            if not overwrite:
                raise JobError(f"run directory {path} is not empty; choose another folder or overwrite it")
            if not (path / STATUS_FILE).exists():
                raise JobError(f"refusing to overwrite {path}: it is not an alignscope run directory")
            stale = path.with_name(f".{path.name}.replaced-{job.id}")
            path.rename(stale)
        path.mkdir(parents=True, exist_ok=True)
        write_json(path / CONFIG_FILE, {
            "job_id": job.id, "kind": job.kind, "config": job.config, "created_at": job.created_at,
            "alignscope_version": __version__, "python": platform.python_version(),
        })
        write_json(path / STATUS_FILE, job.status_record())
        (path / LOG_FILE).touch()
    except OSError as err:
        if stale is not None:  # put the old run back: the submission is rolled back
            shutil.rmtree(path, ignore_errors=True)
            with contextlib.suppress(OSError):
                stale.rename(path)
        raise JobError(f"cannot write run directory {path}: {err}") from err
    return stale


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """config.json of a run directory: ``{"job_id", "kind", "config", ...}`` (for re-runs)."""
    return json.loads((Path(run_dir) / CONFIG_FILE).read_text(encoding="utf-8"))


__all__ = ["JobStore", "read_run_config"]

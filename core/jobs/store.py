"""Jobs: long work (training, sweeps, embeddings) run outside the app, recorded in a SQLite store.

A job is a *kind* (a name registered to a ``"module:function"`` import string), a JSON config and a
run directory. The function runs in a worker process as ``fn(config, run_dir, report)``; ``report``
is a callable ``report(progress=None, message=None)`` with progress in 0..1.

Lifecycle (only these transitions; terminal states are final)::

    queued ──▶ running ──▶ succeeded | failed | cancelled
       └─────────────────▶ failed | cancelled

Pieces:

* :class:`JobStore`: the SQLite store (WAL, busy timeout, one short connection per operation, so
  the app's threads, the CLI and every worker process can share it) plus the public API:
  ``submit``, ``get``, ``list_jobs``, ``cancel``, ``wait``, ``logs``.
* Executors (:class:`Executor`): :class:`LocalExecutor` runs each job as detached subprocesses on
  this machine; a Ray executor can be registered later and must land results in the same store
  and run directories (it records rows with :meth:`JobStore.add` and moves them with
  :meth:`JobStore.transition`).
* :mod:`alignscope.jobs.worker`: the process side (``python -m alignscope.jobs.worker JOB_ID``).

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
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import platform
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import psutil

from alignscope.errors import AlignscopeError
from alignscope.files import write_json
from alignscope.settings import home

logger = logging.getLogger(__name__)

# ------------------------------------------------------------------------------------ statuses
QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)
ACTIVE = frozenset({QUEUED, RUNNING})
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
ALLOWED_TRANSITIONS: Mapping[str, frozenset[str]] = {
    QUEUED: frozenset({RUNNING, FAILED, CANCELLED}),
    RUNNING: frozenset({SUCCEEDED, FAILED, CANCELLED}),
    SUCCEEDED: frozenset(), FAILED: frozenset(), CANCELLED: frozenset(),
}

CONFIG_FILE, STATUS_FILE, LOG_FILE, METRICS_FILE = "config.json", "status.json", "log.txt", "metrics.jsonl"
BUSY_TIMEOUT_S = 30.0
DEFAULT_CANCEL_GRACE_S = 5.0
# A pid whose process start time differs from the recorded one by more than this is another process.
_START_TIME_TOLERANCE_S = 0.5
_MAX_ERROR_CHARS = 500


# -------------------------------------------------------------------------------------- errors
class JobError(AlignscopeError):
    """A job request that cannot be honoured (unknown kind, bad config, run directory in use...).
    The message is one line meant for the user."""


class JobNotFoundError(JobError, KeyError):
    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else "job not found"


class UnknownKindError(JobError):
    pass


class InvalidTransitionError(JobError):
    pass


# ---------------------------------------------------------------------------------- the record
@dataclass(frozen=True)
class Job:
    """One row of the job store. Timestamps are Unix epoch seconds (UTC)."""

    id: str
    kind: str
    target: str                    # "module:function" the worker calls
    config: dict[str, Any]
    run_dir: Path
    status: str
    executor: str
    workers: int                   # start only while fewer than this many local jobs run
    created_at: float
    cwd: str | None = None         # the submitter's working directory (relative paths in config)
    started_at: float | None = None
    finished_at: float | None = None
    progress: float = 0.0
    message: str | None = None
    error: str | None = None
    exit_code: int | None = None
    host: str | None = None
    pid: int | None = None         # the worker, leader of the job's own process group
    pid_started_at: float | None = None  # its process start time, to detect pid reuse

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE

    @property
    def duration(self) -> float | None:
        """Seconds running so far (or in total once finished); None before it starts."""
        if self.started_at is None:
            return None
        end = self.finished_at if self.finished_at is not None else time.time()
        return max(0.0, end - self.started_at)

    @property
    def log_path(self) -> Path:
        return self.run_dir / LOG_FILE

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["run_dir"] = str(self.run_dir)
        return data

    def status_record(self) -> dict[str, Any]:
        """What ``status.json`` holds: the store's view of the job, minus the config."""
        keys = ("id", "kind", "status", "error", "exit_code", "progress", "message", "created_at",
                "started_at", "finished_at", "executor", "host", "pid")
        return {key: getattr(self, key) for key in keys}


# ----------------------------------------------------------------------------------- job kinds
# Kinds are import strings, so that neither the app nor the job system imports torch; the worker
# imports the module. The string is stored with each job, so a kind registered at runtime in the
# submitting process still works in the worker (a fresh interpreter).
_KINDS: dict[str, str] = {
    "selftest": "alignscope.jobs.worker:selftest",
    "embed": "alignscope.embed.tasks:embed_job",
    "map": "alignscope.embed.tasks:map_job",
    "train": "alignscope.train.trainer:run_job",
    "sweep_worker": "alignscope.scaling.measure:worker_job",
    "audit": "alignscope.audit.cache:audit_job",
    "sweep_point": "alignscope.scaling.measure:point_job",  # sweeps of earlier versions: one job per point
}
# Where the built-in kinds pointed before the library moved into subpackages (0.1): job stores
# in existing homes keep these strings, and their queued jobs and re-runs must still start.
_MOVED_TARGETS: dict[str, str] = {
    "alignscope.worker:selftest": "alignscope.jobs.worker:selftest",
    "alignscope.tasks:embed_job": "alignscope.embed.tasks:embed_job",
    "alignscope.tasks:map_job": "alignscope.embed.tasks:map_job",
    "alignscope.train:run_job": "alignscope.train.trainer:run_job",
    "alignscope.sweep:point_job": "alignscope.scaling.measure:point_job",
}


def register_kind(name: str, target: str) -> None:
    """Register (or replace) job kind ``name`` as ``"package.module:function"``."""
    if not name or not name.replace("-", "_").replace(".", "_").isidentifier():
        raise ValueError(f"invalid job kind name {name!r}")
    module, _, function = target.partition(":")
    if not module or not function.isidentifier():
        raise ValueError(f"job kind target must look like 'package.module:function', got {target!r}")
    _KINDS[name] = target


def known_kinds() -> dict[str, str]:
    return dict(_KINDS)


def resolve_kind(kind: str) -> str:
    """The import string of ``kind``; checks that its module exists without importing it."""
    target = _KINDS.get(kind)
    if target is None:
        known = ", ".join(sorted(_KINDS)) or "(none)"
        raise UnknownKindError(f"unknown job kind {kind!r}; known kinds: {known}")
    module = target.partition(":")[0]
    try:
        found = importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        found = False
    if not found:
        raise UnknownKindError(f"job kind {kind!r} points at module {module!r}, which is not installed")
    return target


def load_target(target: str) -> Callable[..., Any]:
    """Import ``"module:function"`` and return the function (done in the worker, never the app)."""
    target = _MOVED_TARGETS.get(target, target)
    module_name, _, function_name = target.partition(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, function_name)
    except AttributeError:
        raise JobError(f"module {module_name!r} has no function {function_name!r}") from None


# ------------------------------------------------------------------------------ small helpers
def default_workers() -> int:
    """How many local jobs may run at once unless a submit says otherwise (ALIGNSCOPE_WORKERS, 1)."""
    text = os.environ.get("ALIGNSCOPE_WORKERS", "1")
    try:
        value = int(text)
    except ValueError:
        raise JobError(f"ALIGNSCOPE_WORKERS must be a positive integer, got {text!r}") from None
    if value < 1:
        raise JobError(f"ALIGNSCOPE_WORKERS must be a positive integer, got {text!r}")
    return value


def new_job_id() -> str:
    """Sortable and typeable: UTC time of submission plus 6 random hex digits."""
    return time.strftime("%Y%m%d-%H%M%S", time.gmtime()) + "-" + secrets.token_hex(3)


def one_line(text: str, limit: int = _MAX_ERROR_CHARS) -> str:
    """Collapse whitespace so an error fits on one line of a table or a status box."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def tail_text(path: str | os.PathLike, lines: int | None = None) -> str:
    """The last ``lines`` lines of a text file (all of it when None), read from the end."""
    try:
        with open(path, "rb") as handle:
            if lines is None:
                return handle.read().decode("utf-8", errors="replace")
            handle.seek(0, os.SEEK_END)
            end = position = handle.tell()
            chunk, data = 64 * 1024, b""
            while position > 0 and data.count(b"\n") <= lines:
                position = max(0, position - chunk)
                handle.seek(position)
                data = handle.read(end - position)
    except FileNotFoundError:
        return ""
    text = data.decode("utf-8", errors="replace")
    kept = text.splitlines(keepends=True)[-lines:] if lines > 0 else []
    return "".join(kept)


# ---------------------------------------------------------------------------------- processes
def process_start_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None


def _is_gone(proc: psutil.Process) -> bool:
    """Exited (a zombie counts: it runs nothing and the machine's init may never reap it)."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def process_identity(pid: int, started_at: float | None) -> str:
    """``"ours"`` if ``pid`` is still the process started at ``started_at``, ``"gone"`` if no
    process (or only a zombie) has that pid, ``"other"`` if the pid was reused by another process."""
    try:
        proc = psutil.Process(pid)
        created = proc.create_time()
        zombie = proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return "gone"
    except psutil.AccessDenied:
        return "ours" if started_at is None else "other"
    if started_at is not None and abs(created - started_at) > _START_TIME_TOLERANCE_S:
        return "other"
    return "gone" if zombie else "ours"


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid:
                members.append(proc)
        except (ProcessLookupError, PermissionError):
            continue
    return members


def _job_processes(pid: int, started_at: float | None, exclude: Iterable[int] = ()) -> list[psutil.Process]:
    """Every live process of the job led by ``pid``: its process group plus its descendants
    (which catches a child that left the group with setsid)."""
    identity = process_identity(pid, started_at)
    if identity == "other":
        return []  # the pid (and so the group id) belongs to someone else now: touch nothing
    found: dict[int, psutil.Process] = {p.pid: p for p in _group_members(pid)}
    if identity == "ours":
        with contextlib.suppress(psutil.Error):
            found.update({p.pid: p for p in psutil.Process(pid).children(recursive=True)})
    skip = set(exclude)
    return [p for p in found.values() if p.pid not in skip and not _is_gone(p)]


def terminate_job_processes(pid: int, started_at: float | None, *, grace: float = DEFAULT_CANCEL_GRACE_S,
                            exclude: Iterable[int] = ()) -> None:
    """SIGTERM every process of the job, SIGKILL whatever is left after ``grace`` seconds, and
    return once none is left (or after a final 5 s). Safe against pid reuse (see _job_processes)."""
    exclude = tuple(exclude)
    for sig, wait_s in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        deadline = time.monotonic() + wait_s
        signalled: set[int] = set()
        while True:
            procs = _job_processes(pid, started_at, exclude)
            if not procs:
                return
            for proc in procs:  # re-listed each round: a dying job may still fork
                if proc.pid not in signalled:
                    with contextlib.suppress(psutil.Error):
                        proc.send_signal(sig)  # psutil checks the start time before signalling
                    signalled.add(proc.pid)
            _reap_spawned()
            if time.monotonic() >= deadline:
                break
            time.sleep(0.05)


# Workers this process spawned: polled so that they do not linger as zombies in a long-lived
# parent (the app), which would look alive to a naive pid check.
_SPAWNED: list[subprocess.Popen] = []
_SPAWNED_LOCK = threading.Lock()


def _remember_spawned(proc: subprocess.Popen) -> None:
    with _SPAWNED_LOCK:
        _SPAWNED.append(proc)


def _reap_spawned() -> None:
    with _SPAWNED_LOCK:
        _SPAWNED[:] = [proc for proc in _SPAWNED if proc.poll() is None]


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
        from alignscope import __version__

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


# ----------------------------------------------------------------------------------- executors
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
_EXECUTOR_TARGETS: dict[str, str] = {"local": "alignscope.jobs.store:LocalExecutor",
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


# ---------------------------------------------------------------------------------- formatting
def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"


def format_time(timestamp: float | None) -> str:
    return "-" if timestamp is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def format_wait(ahead: Iterable[Job], shown: int = 3) -> str:
    """"queued behind: embed job 2025… (running, 40 %), sweep_point job 2025… (queued) and 3 more"
    for the jobs of :meth:`JobStore.jobs_ahead` ("" when none)."""
    ahead = list(ahead)
    if not ahead:
        return ""
    parts = [f"{job.kind} job {job.id} ({job.status}" + (f", {job.progress:.0%}" if job.status == RUNNING else "") + ")"
             for job in ahead[:shown]]
    more = f" and {len(ahead) - shown} more" if len(ahead) > shown else ""
    return "queued behind: " + ", ".join(parts) + more


def format_job_table(jobs: Iterable[Job]) -> str:
    """``alignscope jobs list``: a header and one line per job (no trailing newline; print it)."""
    jobs = list(jobs)
    if not jobs:
        return "no jobs"
    header = ("ID", "KIND", "STATUS", "PROGRESS", "CREATED", "DURATION", "MESSAGE")
    rows = [header] + [
        (job.id, job.kind, job.status, f"{job.progress:.0%}", format_time(job.created_at),
         format_duration(job.duration), one_line(job.error if job.status == FAILED else (job.message or ""), 60))
        for job in jobs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header) - 1)]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)) + "  " + row[-1]
                     for row in rows).rstrip()


def format_job_details(job: Job) -> str:
    """``alignscope jobs show``: every field, one per line, then the config."""
    lines = [
        ("id", job.id), ("kind", f"{job.kind} ({job.target})"), ("status", job.status),
        ("progress", f"{job.progress:.0%}" + (f"  {job.message}" if job.message else "")),
        ("error", job.error or "-"), ("run dir", str(job.run_dir)), ("executor", job.executor),
        ("created", format_time(job.created_at)), ("started", format_time(job.started_at)),
        ("finished", format_time(job.finished_at)), ("duration", format_duration(job.duration)),
        ("worker", f"pid {job.pid} on {job.host}" if job.pid else "-"),
        ("exit code", "-" if job.exit_code is None else str(job.exit_code)),
    ]
    text = "\n".join(f"{key:<10} {value}" for key, value in lines)
    return text + "\nconfig\n" + json.dumps(job.config, indent=2, ensure_ascii=False)


__all__ = [
    "ACTIVE", "CANCELLED", "FAILED", "QUEUED", "RUNNING", "STATUSES", "SUCCEEDED", "TERMINAL",
    "Executor", "InvalidTransitionError", "Job", "JobError", "JobNotFoundError", "JobStore",
    "LocalExecutor", "UnknownKindError", "default_workers", "format_duration",
    "format_job_details", "format_job_table", "format_wait", "get_executor", "known_kinds", "load_target",
    "read_run_config", "register_executor", "register_kind", "resolve_kind",
    "terminate_job_processes",
]

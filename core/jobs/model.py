"""The job record and its vocabulary: statuses and their allowed transitions, the run folder's
file names, the errors a job request can raise, and small text helpers shared by the store, the
worker, the CLI and the app. Imports nothing heavy."""
from __future__ import annotations

import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from alignscope.errors import AlignscopeError
from alignscope.run_files import CONFIG_FILE, LOG_FILE, METRICS_FILE, STATUS_FILE

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

BUSY_TIMEOUT_S = 30.0
DEFAULT_CANCEL_GRACE_S = 5.0
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



__all__ = [
    "ACTIVE", "ALLOWED_TRANSITIONS", "BUSY_TIMEOUT_S", "CANCELLED", "CONFIG_FILE", "DEFAULT_CANCEL_GRACE_S",
    "FAILED", "InvalidTransitionError", "Job", "JobError", "JobNotFoundError", "LOG_FILE", "METRICS_FILE",
    "QUEUED", "RUNNING", "STATUSES", "STATUS_FILE", "SUCCEEDED", "TERMINAL", "UnknownKindError",
    "default_workers", "format_duration", "format_time", "format_wait", "new_job_id", "one_line", "tail_text",
]

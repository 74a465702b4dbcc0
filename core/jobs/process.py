"""Process-group control for local jobs: who a pid is (its start time guards against pid reuse),
and stopping every process of a job (SIGTERM, then SIGKILL after a grace period)."""
from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import threading
import time
from typing import Iterable

import psutil

from alignscope.jobs.model import DEFAULT_CANCEL_GRACE_S

# A pid whose process start time differs from the recorded one by more than this is another process.
_START_TIME_TOLERANCE_S = 0.5


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



__all__ = ["process_identity", "process_start_time", "terminate_job_processes"]

"""scripts/app.sh and scripts/setup.sh as a user runs them, on a copy of the repository.

The copy gets a fresh environment folder whose entries are symbolic links into the environment
running these tests (same interpreter, same site-packages), so setup.sh takes its first-run path
(no stamp there) without downloading anything: pip runs with ``--dry-run`` (``PIP_DRY_RUN``),
``--no-index`` and no build isolation, i.e. it resolves the copy's requirements against what is
installed and changes nothing. What this proves: app.sh's arguments never reach setup.sh (the
``--port`` of issue 17), setup.sh's first-run steps succeed and write a stamp, a second run is a
no-op, the caller's working directory is kept (a relative ``--data-root`` works), and the app
serves. What it does not prove: that PyPI downloads work (the real first run; CI's
``bash scripts/test.sh`` on a fresh clone does that).

scripts/torch_index.sh (which index torch comes from) is run with its environment overrides for
"GPU present" and "CPU index reachable", and with a real probe of an index on a closed local port;
it never downloads anything.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def repo_copy(tmp_path) -> Path:
    """The repository's files (tracked and new, not ignored) copied into tmp_path/repo."""
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout of alignscope (git ls-files)")
    listing = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                             cwd=ROOT, capture_output=True, check=True).stdout.decode()
    dest = tmp_path / "repo"
    for name in filter(None, listing.split("\0")):
        source = ROOT / name
        if source.is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest / name)
    return dest


@pytest.fixture
def linked_venv(tmp_path) -> Path:
    """A folder that is this test run's virtual environment through symlinks, without its stamps."""
    if sys.prefix == sys.base_prefix:
        pytest.skip("the tests are not running in a virtual environment")
    venv = tmp_path / "venv"
    venv.mkdir()
    for entry in Path(sys.prefix).iterdir():
        if not entry.name.startswith(".alignscope-setup"):
            (venv / entry.name).symlink_to(entry)
    return venv


def script_env(venv: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ALIGNSCOPE_EXTRAS", "PIP_"))}
    env.update(ALIGNSCOPE_VENV=str(venv), PIP_DRY_RUN="1", PIP_NO_INDEX="1",
               PIP_NO_BUILD_ISOLATION="0",  # pip's inverted spelling: 0 = --no-build-isolation
               ALIGNSCOPE_GPU="0", ALIGNSCOPE_TORCH_INDEX_REACHABLE="1",  # no probe (--no-index wins anyway)
               **extra)
    return env


def real_stamps() -> dict:
    return {p.name: p.read_text() for p in Path(sys.prefix).glob(".alignscope-setup*")}


def wait_for_health(port: int, proc: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return f"exited with {proc.returncode}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as reply:
                return reply.read().decode().strip()
        except OSError:
            time.sleep(0.5)
    return "no answer"


@pytest.mark.slow
def test_app_sh_passes_its_arguments_to_the_app_not_to_setup(repo_copy, linked_venv, tmp_path, static_model):
    # static_model: setup.sh's first run distils the static encoder into ALIGNSCOPE_MODELS, which
    # this session's models folder already holds (nothing is distilled twice).
    stamps_before = real_stamps()
    (tmp_path / "prefs").mkdir()
    port = free_port()
    log = tmp_path / "app.log"
    with log.open("w") as out:
        # From tmp_path with a RELATIVE --data-root: it only resolves if setup.sh keeps our cwd.
        proc = subprocess.Popen(["bash", str(repo_copy / "scripts" / "app.sh"), "--port", str(port),
                                 "--data-root", "prefs"], cwd=tmp_path, env=script_env(linked_venv),
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        health = wait_for_health(port, proc, timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)  # app.sh's own process group (start_new_session)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
    text = log.read_text()
    assert health == "ok", f"app did not serve on 127.0.0.1:{port} ({health}):\n{text[-3000:]}"
    assert "Parse error" not in text and "setting up" in text  # the first-run path ran, args untouched
    assert "torch's CPU build from https://download.pytorch.org/whl/cpu" in text  # torch_index.sh's choice
    assert "could not be distilled" not in text
    stamp = linked_venv / ".alignscope-setup"
    assert stamp.is_file() and "torch==" in stamp.read_text()
    assert real_stamps() == stamps_before  # the environment the link points to was not stamped

    # Idempotent: a second run finds the stamp and installs nothing.
    again = subprocess.run(["bash", str(repo_copy / "scripts" / "setup.sh")], cwd=tmp_path,
                           env=script_env(linked_venv), capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "setting up" not in again.stderr

    # Run on its own, setup.sh refuses arguments with one line instead of passing them to pip.
    refused = subprocess.run(["bash", str(repo_copy / "scripts" / "setup.sh"), "--port", "1"], cwd=tmp_path,
                             env=script_env(linked_venv), capture_output=True, text=True, timeout=60)
    assert refused.returncode == 2 and "ALIGNSCOPE_EXTRAS" in refused.stderr


def test_extras_come_from_the_environment_and_bad_ones_are_refused(repo_copy, linked_venv, tmp_path):
    bad = subprocess.run(["bash", str(repo_copy / "scripts" / "setup.sh")], cwd=tmp_path,
                         env=script_env(linked_venv, ALIGNSCOPE_EXTRAS="--port"),
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "not a list of extras" in bad.stderr
    assert not list(linked_venv.glob(".alignscope-setup*"))



# ------------------------------------------------------------------------------------ torch index
TORCH_INDEX = ROOT / "scripts" / "torch_index.sh"
CPU_INDEX = "https://download.pytorch.org/whl/cpu"


def torch_index(**env: str) -> tuple[list[str], list[str]]:
    """(pip arguments printed, message lines) of scripts/torch_index.sh under ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ALIGNSCOPE_GPU", "ALIGNSCOPE_TORCH"))}
    run = subprocess.run(["bash", str(TORCH_INDEX)], env={**clean, **env}, capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout.split(), run.stderr.strip().splitlines()


@pytest.mark.skipif(sys.platform != "linux", reason="the CUDA build is PyPI's torch on Linux only")
def test_torch_index_with_an_nvidia_gpu_keeps_the_default_index():
    args, message = torch_index(ALIGNSCOPE_GPU="1", ALIGNSCOPE_TORCH_INDEX_REACHABLE="1")
    assert args == [] and len(message) == 1 and "NVIDIA GPU found" in message[0]


@pytest.mark.skipif(sys.platform != "linux", reason="the CUDA build is PyPI's torch on Linux only")
def test_torch_index_without_a_gpu_takes_the_cpu_wheel_index():
    args, message = torch_index(ALIGNSCOPE_GPU="0", ALIGNSCOPE_TORCH_INDEX_REACHABLE="1")
    assert args == ["--index-url", CPU_INDEX]
    assert len(message) == 1 and "CPU build" in message[0]


@pytest.mark.skipif(sys.platform != "linux", reason="the CUDA build is PyPI's torch on Linux only")
def test_torch_index_unreachable_falls_back_to_the_default_index_quickly_with_one_line():
    args, message = torch_index(ALIGNSCOPE_GPU="0", ALIGNSCOPE_TORCH_INDEX_REACHABLE="0")
    assert args == [] and len(message) == 1 and "cannot be reached" in message[0]
    # The real probe, against an index on a closed local port: the same fallback, within seconds.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}/whl/cpu"
    started = time.monotonic()
    args, message = torch_index(ALIGNSCOPE_GPU="0", ALIGNSCOPE_TORCH_INDEX=closed, ALIGNSCOPE_TORCH_PROBE_S="3")
    assert args == [] and len(message) == 1 and f"{closed} cannot be reached" in message[0]
    assert time.monotonic() - started < 15


@pytest.mark.skipif(sys.platform != "linux", reason="the CUDA build is PyPI's torch on Linux only")
def test_torch_index_finds_a_gpu_through_nvidia_smi(tmp_path):
    tools = tmp_path / "bin"
    tools.mkdir()
    smi = tools / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H200 (UUID: GPU-test)'\n")
    smi.chmod(0o755)
    path = f"{tools}{os.pathsep}{os.environ['PATH']}"
    args, message = torch_index(PATH=path, ALIGNSCOPE_TORCH_INDEX_REACHABLE="1")
    assert args == [] and "NVIDIA GPU found" in message[0]
    if not Path("/proc/driver/nvidia/version").exists():  # a driver-less machine whose nvidia-smi fails
        smi.write_text("#!/bin/sh\nexit 9\n")
        args, message = torch_index(PATH=path, ALIGNSCOPE_TORCH_INDEX_REACHABLE="1")
        assert args == ["--index-url", CPU_INDEX]

"""Shared fixtures. Real files, real processes; nothing mocked."""
from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "data"
HH = SHARED_DATA / "hh_harmless_test.jsonl.gz"
ALPACA = SHARED_DATA / "alpaca_eval_pairs.jsonl.gz"


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """Every test gets its own ALIGNSCOPE_HOME, so caches and job stores never leak between tests."""
    home = tmp_path_factory.mktemp("alignscope-home")
    monkeypatch.setenv("ALIGNSCOPE_HOME", str(home))
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    return home


def shared_file(path: Path) -> Path:
    """A file from ../shared/data, or a clean skip when the folder is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent (../shared/data is not part of a user's checkout)")
    return path


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> str:
    """The tiny model folder, built once per test session in a shared home (the per-test
    ALIGNSCOPE_HOME would otherwise rebuild it in every test)."""
    from alignscope.models import resolve_model

    home = tmp_path_factory.getbasetemp() / "shared-model-home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALIGNSCOPE_HOME", str(home))
        return str(resolve_model("tiny"))


@pytest.fixture
def hh_path() -> Path:
    return shared_file(HH)


@pytest.fixture
def alpaca_path() -> Path:
    return shared_file(ALPACA)


def write_jsonl(path: Path, rows: list, *, gz: bool = False) -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    path.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    return path


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 120):
    """The real console entry point in a subprocess: returns CompletedProcess (text)."""
    return subprocess.run([sys.executable, "-m", "alignscope.cli", *map(str, args)], capture_output=True,
                          text=True, cwd=cwd, env={**os.environ, **(env or {})}, timeout=timeout)


STANDARD_ROWS = [
    {"prompt": "What is 2+2?", "chosen": "4.", "rejected": "5.", "source": "math"},
    {"prompt": "Name a colour.", "chosen": "Blue.", "rejected": "Seven.", "source": "misc"},
    {"prompt": "Capital of France?", "chosen": "Paris.", "rejected": "Rome.", "source": "geo"},
]


def wait_for_first_look(at, encoder: str = "static", timeout: float = 900):
    """A page's first visit starts the static embedding of the active data by itself (no click: the
    first look at any data set must need none); wait for that job and rerun the page."""
    from alignscope.jobs import JobStore

    store = JobStore()
    jobs = store.list_jobs(kind="embed")
    assert len(jobs) == 1 and jobs[0].config["encoder"] == encoder, [j.config for j in jobs]
    assert store.wait(jobs[0].id, timeout=timeout).status == "succeeded", store.logs(jobs[0].id)
    return at.run()

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


@pytest.fixture(scope="session", autouse=True)
def shared_models(tmp_path_factory):
    """One models folder (ALIGNSCOPE_MODELS) for the whole test session, as every alignscope home on
    a machine shares one: the static encoder is distilled at most once per session and the tiny
    model built once. A developer who sets ALIGNSCOPE_MODELS (e.g. to their own
    ~/.cache/alignscope/models) keeps those between sessions. Tests about building a model in an
    empty folder use ``isolated_models``."""
    folder = os.environ.get("ALIGNSCOPE_MODELS") or str(tmp_path_factory.getbasetemp() / "shared-models")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALIGNSCOPE_MODELS", folder)
        yield Path(folder)


@pytest.fixture
def isolated_models(tmp_path_factory, monkeypatch) -> Path:
    """An empty models folder of this test's own."""
    folder = tmp_path_factory.mktemp("alignscope-models")
    monkeypatch.setenv("ALIGNSCOPE_MODELS", str(folder))
    return folder


@pytest.fixture(scope="session")
def static_model(shared_models) -> Path:
    """The distilled static model, built (minutes on a loaded 2-core CPU) at most once per session
    in the shared models folder, where every test's home finds it."""
    from alignscope.embed import encoders as E

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("ALIGNSCOPE_HOME", str(shared_models.parent / "static-model-home"))  # not the user's home
        return E.static_folder("cpu", create=True)


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
def tiny(shared_models) -> str:
    """The tiny model folder, built once per test session in the shared models folder."""
    from alignscope.models import resolve_model

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
    """A page's first visit starts what it needs by itself (no click: the first look at any data
    set must need none): the static embedding of the active data, then on the Audit page the audit.
    Wait for each job it started and rerun the page, until it starts no more."""
    from alignscope.jobs import JobStore

    store = JobStore()
    embeds = store.list_jobs(kind="embed")
    assert len(embeds) == 1 and embeds[0].config["encoder"] == encoder, [j.config for j in embeds]
    for _ in range(4):
        active = [j for j in store.list_jobs() if j.is_active]
        if not active:
            break
        for job in active:
            assert store.wait(job.id, timeout=timeout).status == "succeeded", store.logs(job.id)
        at.run()
    return at

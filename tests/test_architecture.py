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
    assert users == ["sams_trainer.py", "trainer.py"]
    # train.py stays cheap to import (the app and the CLI read its config classes): TRL and the
    # SamS trainer module only inside functions; sams_trainer.py imports them at its top.
    top = _top_level_imports(ROOT / "core" / "train" / "trainer.py")
    assert not {n for n in top if n.split(".")[0] in {"trl", "transformers", "torch"} or n.endswith("sams_trainer")}
    assert {"trl", "transformers"} <= _top_level_imports(ROOT / "core" / "train" / "sams_trainer.py")


def _package_modules() -> dict[str, object]:
    """alignscope module name → source file, for core/ (alignscope) and app/ (alignscope.app)."""
    modules = {}
    for base, package in ((ROOT / "core", "alignscope"), (ROOT / "app", "alignscope.app")):
        for path in base.rglob("*.py"):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join([package, *parts])] = path
    return modules


def _runtime_nodes(tree: ast.AST):
    """Every node of ``tree`` except those under ``if TYPE_CHECKING:`` (annotations only: never run)."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            yield from (n for child in node.orelse for n in [child, *_runtime_nodes(child)])
            continue
        yield node
        yield from _runtime_nodes(node)


def _module_graph() -> dict[str, set[str]]:
    """Who imports whom inside the package, counting imports inside functions too (but not those
    under ``if TYPE_CHECKING:``, which only annotations read)."""
    modules = _package_modules()
    graph = {name: set() for name in modules}
    for name, path in modules.items():
        for node in _runtime_nodes(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("alignscope"):
                targets = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            graph[name].update(t for t in targets if t in modules and t not in (name, "alignscope"))
    return graph


def test_no_import_cycle_among_the_package_modules():
    """A cycle held together by imports inside functions is still a cycle: the modules of a layer
    must be readable top to bottom."""
    graph = _module_graph()
    cycles, seen = [], set()

    def walk(node, path):
        for nxt in sorted(graph[node]):
            if nxt in path:
                cycle = path[path.index(nxt):]
                key = frozenset(cycle)
                if key not in seen:
                    seen.add(key)
                    cycles.append(" → ".join(cycle + [nxt]))
            elif len(path) < 12:
                walk(nxt, path + [nxt])

    for start in sorted(graph):
        walk(start, [start])
    assert cycles == []


def test_the_library_does_not_import_the_job_store_for_files():
    """JSONL and atomic writes come from alignscope.files; only job code uses alignscope.jobs: the
    job package itself, the command line, and the modules that submit or run jobs."""
    allowed = {"jobs", "cli", "embed/tasks.py", "train/submit.py",
               "scaling/sweep.py", "scaling/measure.py"}
    offenders = []
    for path in (ROOT / "core").rglob("*.py"):
        name = path.relative_to(ROOT / "core").as_posix()
        if name in allowed or name.split("/")[0] in allowed:
            continue
        if any(n == "alignscope.jobs" or n.startswith("alignscope.jobs.") for n in _imports(path)):
            offenders.append(name)
    assert offenders == []


def test_every_input_error_has_one_base():
    """Each subsystem's error class derives from AlignscopeError (a ValueError with the field it is
    about), so callers can catch one type; found by reading the source, then checked on the class."""
    import importlib

    from alignscope.errors import AlignscopeError

    found = []
    for path in (ROOT / "core").rglob("*.py"):
        module = ".".join(["alignscope", *path.relative_to(ROOT / "core").with_suffix("").parts])
        for node in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error") and not node.name.startswith("_"):
                found.append((module.removesuffix(".__init__"), node.name))
    assert len(found) >= 15
    strays = [f"{module}.{name}" for module, name in found
              if not issubclass(getattr(importlib.import_module(module), name), AlignscopeError)]
    assert strays == []


# Modules that are Streamlit scripts (they draw when imported) rather than importable modules.
_SCRIPTS = ("alignscope.app.main", "alignscope.app.views")


def _importable_modules() -> list[str]:
    return sorted(name for name in _package_modules()
                  if not name.startswith(_SCRIPTS) and not name.endswith(".__main__"))


def _third_party_top_level_imports(modules: list[str]) -> list[str]:
    """The top-level import statements of ``modules`` that import other packages, as source lines."""
    paths = _package_modules()
    lines = set()
    for name in modules:
        for node in ast.parse(paths[name].read_text(encoding="utf-8")).body:
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                root = node.module.split(".")[0]
            elif isinstance(node, ast.Import):
                root = node.names[0].name.split(".")[0]
            else:
                continue
            if root not in ("alignscope", "__future__"):
                lines.add(ast.unparse(node))
    return sorted(lines)


def test_importing_any_module_leaves_the_environment_unchanged():
    """Environment changes belong at run time (``cli.main`` sets OMP_WAIT_POLICY), never at import
    time: importing alignscope must not change what the user's other code sees. One fresh
    interpreter first runs every third-party import the modules make at their top (some libraries
    do set variables when imported: streamlit sets MPLBACKEND, torch's inductor its cache folder;
    that is theirs), then imports each alignscope module and compares the environment after each,
    so the module that changes it is named."""
    import json
    import os
    import subprocess
    import sys

    script = (
        "import importlib, json, os, sys\n"
        "modules, third_party = json.loads(sys.argv[1]), json.loads(sys.argv[2])\n"
        "for line in third_party:\n"
        "    exec(line, {})\n"
        "changed = {}\n"
        "for name in modules:\n"
        "    before = dict(os.environ)\n"
        "    importlib.import_module(name)\n"
        "    after = dict(os.environ)\n"
        "    diff = {k: after.get(k) for k in set(before) | set(after) if before.get(k) != after.get(k)}\n"
        "    if diff:\n"
        "        changed[name] = diff\n"
        "print(json.dumps(changed))\n")
    modules = _importable_modules()
    assert len(modules) >= 40 and "alignscope.cli" in modules and "alignscope.app.analysis" in modules
    third_party = _third_party_top_level_imports(modules)
    assert "import streamlit as st" in third_party
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    result = subprocess.run([sys.executable, "-c", script, json.dumps(modules), json.dumps(third_party)],
                            capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    changed = json.loads(result.stdout.strip().splitlines()[-1])
    # The one exception is torch's: subclassing trl.DPOTrainer loads TRL's trainer module, whose
    # import makes torch's inductor write its own default cache folder into the environment.
    inductor = changed.get("alignscope.train.sams_trainer", {}).pop("TORCHINDUCTOR_CACHE_DIR", None)
    if inductor is not None:
        from torch._inductor.runtime.cache_dir_utils import default_cache_dir

        assert inductor == default_cache_dir()
    assert {name: diff for name, diff in changed.items() if diff} == {}


def test_core_uses_the_app_only_for_its_figures_lazily_and_the_figures_need_no_streamlit():
    """One home for figures: app/charts.py. The library computes numbers only (no plotly); a command
    that writes a figure file (``alignscope spectra``) imports ``alignscope.app.charts`` inside the
    function that draws, and that module pulls in no Streamlit, even indirectly."""
    import subprocess
    import sys

    # `alignscope app` locates the app's main.py to launch it; `alignscope spectra` draws its figures;
    # the report (alignscope.report) embeds the pages' own figures in its HTML, the same way.
    allowed = {"cli/app.py": {"alignscope.app"}, "cli/spectra.py": {"alignscope.app.charts"},
               "report.py": {"alignscope.app.charts"}}
    for path in (ROOT / "core").rglob("*.py"):
        name = path.relative_to(ROOT / "core").as_posix()
        uses = {n for n in _imports(path) if n == "alignscope.app" or n.startswith("alignscope.app.")}
        if uses:
            assert uses <= allowed.get(name, set()), (name, uses)
            assert not uses & _top_level_imports(path), name
    plotting = sorted(p.name for p in (ROOT / "core").rglob("*.py")
                      if any(n.split(".")[0] == "plotly" for n in _imports(p)))
    assert plotting == []
    check = ("import sys, alignscope.app.charts as c, alignscope.cli.spectra\n"
             "assert callable(c.scree_figure) and callable(c.encoder_figure)\n"
             "print(sorted(m for m in sys.modules if m.split('.')[0] == 'streamlit'))\n")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "[]"


def test_alignscope_app_reaches_streamlit_without_importing_the_library():
    """`alignscope app` execs Streamlit, whose app imports the library itself: the command's own
    process must not import pandas first (it cost 0.37 s of the cold start, benchmarks/bench_pages).
    A bad argument still gives the one-line error and exit code 2."""
    import subprocess
    import sys

    check = ("import sys\nfrom alignscope.cli import main\n"
             "rc = main(['app', '--data-root', '/nonexistent/alignscope-folder'])\n"
             "print(rc, sorted(m for m in ('pandas', 'torch', 'alignscope.data.preferences') if m in sys.modules))\n")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "2 []"
    assert result.stderr.strip().count("\n") == 0 and "--data-root" in result.stderr


# ---------------------------------------------------------------------------------------- imports
# Third-party packages a module may import inside a function, to keep them off the start-up path of
# `alignscope --help`, `alignscope app` and the job supervisor: every one but these light ones.
_LIGHT_THIRD_PARTY = {"numpy", "psutil"}
# Files other work is changing now; their function-level imports move when that work lands.
_IMPORTS_PENDING: set[str] = set()


def _top_level_import_names(path) -> set[str]:
    """Modules a file imports when it is imported (top level, inside if/try, not under TYPE_CHECKING)."""
    names = set()

    def visit(body):
        for node in body:
            if isinstance(node, ast.If):
                if ast.unparse(node.test) not in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                    visit(node.body)
                visit(node.orelse)
            elif isinstance(node, ast.Try):
                visit(node.body)
                for handler in node.handlers:
                    visit(handler.body)
                visit(node.orelse)
                visit(node.finalbody)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return names


def _heavy_modules() -> dict[str, set[str]]:
    """alignscope module → the heavy third-party packages importing it loads (its top-level imports,
    followed through the package's own modules and their parent packages)."""
    import sys

    modules = _package_modules()
    direct = {}
    for name, path in modules.items():
        found = set()
        for imported in _top_level_import_names(path):
            if imported in modules:
                found.add(imported)
            elif imported.split(".")[0] not in ("alignscope", "__future__"):
                root = imported.split(".")[0]
                if root not in sys.stdlib_module_names and root not in _LIGHT_THIRD_PARTY:
                    found.add(root)
        parts = name.split(".")
        found.update(".".join(parts[:i]) for i in range(1, len(parts)) if ".".join(parts[:i]) in modules)
        direct[name] = found - {name}
    heavy: dict[str, set[str]] = {}

    def resolve(name, seen=()):
        if name in heavy:
            return heavy[name]
        out = set()
        for item in direct[name]:
            if item in modules:
                out |= resolve(item, seen + (name,)) if item not in seen else set()
            else:
                out.add(item)
        heavy[name] = out
        return out

    for name in modules:
        resolve(name)
    return heavy


def test_imports_sit_at_the_top_unless_heavy():
    """docs/ARCHITECTURE.md, "Imports": an import inside a function is a heavy third-party package,
    or an alignscope module that loads one, kept off the start-up path; never the standard library
    or a light alignscope module (files, errors, options, settings, models, run_files, jobs, ...).
    Two exceptions: a module's ``__getattr__`` (a lazy attribute, PEP 562), and the library's use
    of the app (``alignscope.app``), which is lazy by the layering rule tested above."""
    import sys

    modules = _package_modules()
    heavy = _heavy_modules()
    light = {name for name, packages in heavy.items() if not packages}
    assert {"alignscope.files", "alignscope.errors", "alignscope.options", "alignscope.settings", "alignscope.models",
            "alignscope.run_files", "alignscope.jobs", "alignscope.train.sams_config"} <= light
    assert heavy["alignscope.train.sams"] >= {"torch"} and "sklearn" in heavy["alignscope.select.selectors"]
    offenders = []
    for name, path in modules.items():
        rel = path.relative_to(ROOT).as_posix()
        if rel in _IMPORTS_PENDING:
            continue
        for function in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)) or function.name == "__getattr__":
                continue
            for node in ast.walk(function):
                if isinstance(node, ast.Import):
                    targets = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    submodules = [f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in modules]
                    targets = submodules or [node.module]
                else:
                    continue
                for target in targets:
                    root = target.split(".")[0]
                    if target.startswith("alignscope.app") and rel.startswith("core/"):
                        continue
                    if target in light or (root != "alignscope" and root in sys.stdlib_module_names):
                        offenders.append(f"{rel}:{node.lineno} {function.name}: {ast.unparse(node)}")
    assert offenders == []


def test_alignscope_help_imports_no_training_or_learning_library():
    """`alignscope --help` builds the whole parser: it must not load torch, TRL, transformers or
    scikit-learn (seconds each), checked in a fresh interpreter."""
    import json
    import subprocess
    import sys

    heavy = ["torch", "transformers", "trl", "sklearn", "umap", "plotly", "datasets", "peft", "cleanlab", "ray",
             "model2vec", "streamlit"]
    check = ("import json, sys\nimport alignscope.cli\nfrom alignscope.cli.parser import build_parser\n"
             "text = build_parser().format_help()\nassert 'train' in text and 'select' in text\n"
             f"print(json.dumps(sorted(m for m in {heavy!r} if m in sys.modules)))\n")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    assert json.loads(result.stdout.strip().splitlines()[-1]) == []

"""One cache for every front end: what the command line computed, the pages find (and the reverse
is the same cache). No job is started for work that was already done."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from alignscope.jobs import JobStore
from conftest import ROOT, run_cli

MAIN = str(ROOT / "app" / "main.py")


def test_the_embedding_and_the_audit_the_cli_made_are_the_pages_own(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNSCOPE_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("ALIGNSCOPE_INITIAL_DATA", "demo:120")
    done = run_cli("embed", "demo:120", "--out", tmp_path / "emb.npy", "--json", timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    done = run_cli("audit", "demo:120", "--out", tmp_path / "audit.parquet", "--json", timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    at = AppTest.from_file(MAIN, default_timeout=180).run()
    at.switch_page("views/select.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.slider(key="select_percent").value > 0  # the page found the embeddings: its slider is there
    at.switch_page("views/audit.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(m.label == "Suspected flips" for m in at.metric)  # and the audit
    assert JobStore().list_jobs() == []  # nothing was computed twice

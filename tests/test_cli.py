"""The `alignscope` command, run for real in subprocesses."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from alignscope.data.preferences import load_preferences
from conftest import STANDARD_ROWS, run_cli, write_jsonl


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("alignscope")
    assert script.exists() or shutil.which("alignscope")
    result = subprocess.run([str(script) if script.exists() else "alignscope", "--version"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.startswith("alignscope ")


def test_data_demo_writes_then_refuses_to_overwrite(tmp_path):
    out = tmp_path / "demo.jsonl.gz"
    result = run_cli("data", "demo", "--out", out, "--n", "150", "--seed", "3", "--json")
    assert result.returncode == 0, result.stderr
    written = json.loads(result.stdout)
    data = load_preferences(out)
    assert data.n_pairs == 150 == written["n_pairs"] and data.fingerprint == written["fingerprint"]
    assert "is_flipped" in data.metadata_columns
    stamp = out.stat().st_mtime_ns
    again = run_cli("data", "demo", "--out", out, "--n", "150")
    assert again.returncode == 2 and "already exists" in again.stderr
    assert out.stat().st_mtime_ns == stamp
    assert run_cli("data", "demo", "--out", out, "--n", "150", "--seed", "4", "--force").returncode == 0
    assert load_preferences(out).fingerprint != data.fingerprint


def test_data_demo_bad_arguments_write_nothing(tmp_path):
    for args in (["--out", tmp_path / "demo.txt"], ["--out", tmp_path / "demo.jsonl", "--n", "3"],
                 ["--out", tmp_path / "demo.jsonl", "--n", "many"]):
        result = run_cli("data", "demo", *args)
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert list(tmp_path.iterdir()) == []


def test_data_info_and_validate_on_a_good_file(tmp_path):
    path = write_jsonl(tmp_path / "good.jsonl", STANDARD_ROWS)
    info = run_cli("data", "info", path, "--json")
    assert info.returncode == 0
    parsed = json.loads(info.stdout)
    assert parsed["n_pairs"] == 3 and parsed["format"] == "standard"
    assert parsed["columns"] == ["prompt", "chosen", "rejected", "source"]
    assert parsed["fingerprint"] == load_preferences(path).fingerprint
    human = run_cli("data", "info", path)
    assert "pairs        3" in human.stdout and "standard" in human.stdout
    valid = run_cli("data", "validate", path)
    assert valid.returncode == 0 and valid.stdout.startswith("OK ")


def test_bad_invocation_is_one_line_exit_2():
    result = run_cli("data", "frobnicate")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1
    assert "invalid choice" in result.stderr


def test_app_refuses_a_missing_data_root(tmp_path):
    result = run_cli("app", "--data-root", tmp_path / "nope")
    assert result.returncode == 2 and "not a folder" in result.stderr


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback only
        return response.status, response.read().decode("utf-8", "replace")


def test_app_serves_on_loopback_only(tmp_path):
    port = _free_port()
    process = subprocess.Popen([sys.executable, "-m", "alignscope.cli", "app", "--port", str(port),
                                "--data-root", str(tmp_path)], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.time() + 90
        health = None
        while time.time() < deadline and process.poll() is None:
            try:
                health = _get(f"http://127.0.0.1:{port}/_stcore/health")
                break
            except OSError:
                time.sleep(0.5)
        assert health == (200, "ok"), process.stdout.read().decode() if process.poll() is not None else health
        status, page = _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and "<html" in page.lower()
        listening = [c.laddr for c in psutil.Process(process.pid).net_connections(kind="tcp")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
        assert listening and all(addr.ip == "127.0.0.1" for addr in listening)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail("app did not stop on SIGTERM")

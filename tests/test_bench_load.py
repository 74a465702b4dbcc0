"""The load benchmark's own parts (issue 19): think-time parsing and the server memory it reports."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from benchmarks.bench_load import _think, server_rss_mib


def test_think_time_bounds():
    assert _think(None) is None and _think("") is None
    assert _think("2-5") == (2.0, 5.0)
    assert _think("3") == (3.0, 3.0)
    for bad in ("5-2", "-1-2"):
        with pytest.raises(SystemExit):
            _think(bad)


def test_server_memory_counts_children():
    import time

    import psutil

    me = psutil.Process()
    assert server_rss_mib(os.getpid()) > 10  # a Python process with numpy/pandas importable holds tens of MiB
    child = subprocess.Popen([sys.executable, "-c", "import time; x = bytearray(200 * 2**20); time.sleep(30)"])
    try:
        # Compared with this process's own memory at the same moment: it may shrink or grow meanwhile.
        deadline = time.monotonic() + 20
        children = 0.0
        while time.monotonic() < deadline and children < 150:
            time.sleep(0.2)
            children = server_rss_mib(os.getpid()) - me.memory_info().rss / 2**20
        assert children >= 150  # the child's 200 MiB are part of the server's memory
    finally:
        child.kill()
        child.wait()
    assert server_rss_mib(2**22 + 12345) == 0.0  # a pid that does not exist

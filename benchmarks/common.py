"""Shared by every benchmark: what machine ran it, and writing its figures atomically.

Each benchmark is one command (``python -m benchmarks.<name>``) that prints its figures and writes
``benchmarks/results/<name>.json`` (+ any plots) with the machine it ran on.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import resource
import sys
from pathlib import Path
from typing import Any

from alignscope.models import cpu_bf16_flags

RESULTS = Path(__file__).resolve().parent / "results"
# ../shared/data beside the checkout (a git worktree sits one folder deeper: ../../shared/data).
_REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = next((p / "shared" / "data" for p in (_REPO.parent, _REPO.parent.parent) if (p / "shared" / "data").is_dir()),
                   _REPO.parent / "shared" / "data")


def machine_info() -> dict[str, Any]:
    """CPU/GPU, core count, memory and library versions, recorded beside every figure."""
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpu": _cpu_model(),
        # the same "AMD EPYC" name covers CPUs with and without native bf16 products, which
        # decide the mixed-precision paths (gmm.py, encoders.py): record the flags
        "cpu_bf16": sorted(cpu_bf16_flags()),
        "cpu_count": os.cpu_count(),
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
    }
    try:
        import torch

        info["torch"] = torch.__version__
        info["torch_threads"] = torch.get_num_threads()
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        info["gpu"] = None
    info["device"] = "GPU" if info.get("gpu") else "CPU"
    return info


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def peak_rss_mib() -> float:
    """Peak resident memory of this process so far (MiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_result(name: str, figures: dict[str, Any], *, suffix: str = "") -> Path:
    """Write ``results/<name><suffix>.json`` = {"benchmark", "machine", "figures"} atomically."""
    from alignscope.files import write_json

    path = RESULTS / f"{name}{suffix}.json"
    write_json(path, {"benchmark": name, "machine": machine_info(), "figures": figures})
    print(json.dumps(figures, indent=2, default=str))
    print(f"wrote {path}")
    return path


def save_png(figure, path: Path, *, width: int = 1100, height: int = 650) -> str:
    """Write a Plotly figure as PNG: with kaleido when installed, else by rendering it in Debian's
    chromium through Playwright (plotly.js inlined, no network). Returns how it was made."""
    path = Path(path)
    try:
        import kaleido  # noqa: F401

        figure.write_image(str(path), width=width, height=height)
        return "plotly+kaleido"
    except ImportError:
        pass
    import shutil
    import tempfile

    chromium = shutil.which("chromium")
    if chromium is None:
        return "skipped: neither kaleido nor chromium is available"
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        page_file = Path(folder) / "figure.html"
        figure.write_html(str(page_file), include_plotlyjs=True, full_html=True,
                          default_width=f"{width}px", default_height=f"{height}px")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox",
                                                                                 "--disable-gpu"])
            page = browser.new_page(viewport={"width": width + 40, "height": height + 40})
            page.goto(page_file.as_uri())
            page.locator(".js-plotly-plot").first.wait_for()
            page.locator(".js-plotly-plot").first.screenshot(path=str(path))
            browser.close()
    return "plotly rendered in chromium (playwright)"


def start_app(*args: str, env: dict | None = None, timeout_s: float = 300) -> tuple[Any, str, float]:
    """Start ``alignscope app ARGS`` on a free loopback port; wait for Streamlit's health check.
    Returns (process, url, seconds until healthy). Stop it with ``os.killpg(process.pid, 15)``."""
    import socket
    import subprocess
    import time
    import urllib.request

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.perf_counter()
    app = subprocess.Popen([sys.executable, "-m", "alignscope.cli", "app", "--port", str(port), *args],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return app, url, time.perf_counter() - started
        except OSError:
            time.sleep(0.1)
    os.killpg(app.pid, 9)
    raise RuntimeError(f"alignscope app {' '.join(args)} did not become healthy within {timeout_s:.0f} s")

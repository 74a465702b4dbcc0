"""The Map at every AlpacaEval completion (123,904 points): alignscope's Plotly scattergl map vs
Apple's Embedding Atlas Streamlit component (``embedding-atlas`` on PyPI), in the same run, in
headless chromium with every request that leaves 127.0.0.1 blocked and recorded (the product runs
offline: a map that fetches code from the internet fails it).

    python -m benchmarks.bench_map_atlas [--data demo:3000]

Needs the static-encoder embedding job of the data in ``$ALIGNSCOPE_HOME`` (``python -m
benchmarks.bench_pages`` computes it) and, for the Atlas side, ``pip install --no-deps
embedding-atlas`` (its Streamlit component needs only Streamlit; its other dependencies serve its
own CLI and server). Measures, per drawer: page opened → the chart's canvas is drawn and the
script finished (seconds), the requests to other hosts (blocked), and console errors. Writes
``results/map_atlas.json``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.bench_pages import IDLE, _free_port, _launch, _stop
from benchmarks.common import SHARED_DATA, write_result

DATA = SHARED_DATA / "alpaca_eval_pairs.jsonl.gz"
APP = Path(__file__).resolve().parent / "map_atlas" / "app.py"


def _points(spec: str, out: Path) -> int:
    import numpy as np

    from alignscope.data.preferences import load_preferences
    from alignscope.jobs import JobStore
    from alignscope.embed.projection import project
    from alignscope.embed.tasks import load_embed_result

    data = load_preferences(spec)
    job = next((j for j in JobStore().list_jobs(kind="embed", limit=500)
                if j.status == "succeeded" and j.config.get("data", {}).get("fingerprint") == data.fingerprint
                and j.config.get("encoder") == "static" and j.config.get("unit") == "completion"), None)
    if job is None:
        raise SystemExit("no static embedding of the data: run python -m benchmarks.bench_pages first")
    matrix, pair_index, label, _ = load_embed_result(job.run_dir)
    coords = project(matrix, "pca")
    np.savez(out, x=coords[:, 0], y=coords[:, 1], label=label, pair=pair_index)
    return len(coords)


def _measure(browser, drawer: str, points: Path, timeout_s: float = 120) -> dict:
    from alignscope.cli.app import app_command

    port = _free_port()
    command = app_command("127.0.0.1", port)
    command[command.index("run") + 1] = str(APP)
    process = _launch(command, {**os.environ, "MAP_POINTS": str(points), "MAP_DRAWER": drawer}, port)
    outside: list[str] = []
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1440, "height": 1000})

    def route(request_route) -> None:
        url = request_route.request.url
        if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")):
            request_route.continue_()
        else:
            outside.append(url)
            request_route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("console", lambda m: errors.append(m.text[:300]) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)[:300]))
    result: dict = {"drawer": drawer}
    try:
        started = time.perf_counter()
        page.goto(f"http://127.0.0.1:{port}")
        page.wait_for_selector(IDLE, state="attached", timeout=timeout_s * 1000)
        try:
            if drawer == "plotly":
                page.locator(".js-plotly-plot .gtitle").first.wait_for(timeout=timeout_s * 1000)
                page.locator(".js-plotly-plot canvas").first.wait_for(timeout=timeout_s * 1000)
            else:
                frame = page.frame_locator("iframe").first
                frame.locator("canvas").first.wait_for(timeout=timeout_s * 1000)
                # The canvas exists before the data is in: wait until the page stops changing
                # (no "loading" text) or the timeout.
                deadline = time.monotonic() + timeout_s
                while time.monotonic() < deadline:
                    text = frame.locator("body").inner_text(timeout=5000)
                    if "loading" not in text.lower() and "initializ" not in text.lower():
                        break
                    time.sleep(0.2)
                else:
                    raise TimeoutError("still loading")
            result["drawn_s"] = round(time.perf_counter() - started, 3)
            result["drawn"] = True
        except Exception as err:  # noqa: BLE001 - a drawer that never draws is the finding
            result["drawn"] = False
            result["failure"] = f"{type(err).__name__}: {str(err)[:300]}"
            result["waited_s"] = round(time.perf_counter() - started, 3)
        shot = Path(tempfile.gettempdir()) / f"map_{drawer}.png"
        page.screenshot(path=str(shot))
        result["screenshot"] = str(shot)
    finally:
        context.close()
        _stop(process)
    result["requests_leaving_loopback"] = sorted(set(outside))[:20]
    result["console_errors"] = errors[:10]
    result["offline_ok"] = not outside and result.get("drawn", False)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_map_atlas")
    parser.add_argument("--data", help="a data spec instead of the AlpacaEval pairs (e.g. demo:3000)")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    spec = args.data or str(DATA)
    if chromium is None or (args.data is None and not DATA.exists()):
        print(f"skipped: needs chromium and {DATA}")
        return
    from playwright.sync_api import sync_playwright

    figures: dict = {"load_average_before": [round(x, 2) for x in os.getloadavg()]}
    try:
        import importlib.metadata

        figures["embedding_atlas"] = importlib.metadata.version("embedding-atlas")
        check = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True)
        figures["embedding_atlas_missing_dependencies"] = sorted(
            line.split(" requires ")[1].split(",")[0] for line in check.stdout.splitlines()
            if line.startswith("embedding-atlas") and " requires " in line)
    except importlib.metadata.PackageNotFoundError:
        figures["embedding_atlas"] = None
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        points = Path(folder) / "points.npz"
        figures["points"] = _points(spec, points)
        browser = playwright.chromium.launch(executable_path=chromium, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        figures["plotly"] = _measure(browser, "plotly", points)
        if figures["embedding_atlas"]:
            figures["atlas"] = _measure(browser, "atlas", points)
        browser.close()
    atlas = figures.get("atlas", {})
    keep_plotly = not atlas.get("offline_ok") or atlas.get("drawn_s", 1e9) >= figures["plotly"].get("drawn_s", 1e9)
    figures["verdict"] = ("keep Plotly: " + ("Embedding Atlas is not installed" if not atlas else
                          "Embedding Atlas fetches from outside 127.0.0.1 or does not draw offline"
                          if not atlas.get("offline_ok") else "it draws slower")) if keep_plotly else \
        "Embedding Atlas draws faster offline"
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    write_result("map_atlas", figures)


if __name__ == "__main__":
    main()

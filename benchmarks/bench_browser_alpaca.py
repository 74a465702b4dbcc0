"""The app in a real browser on the full AlpacaEval pairs (61,952 pairs, 123,904 completions):
Playwright + Debian chromium against `alignscope app` on 127.0.0.1.

    python -m benchmarks.bench_browser_alpaca

Needs ../shared/data/alpaca_eval_pairs.jsonl.gz, chromium, and the MiniLM completion embeddings
cached in ``$ALIGNSCOPE_HOME`` (run ``python -m benchmarks.bench_app_alpaca`` first: it records the
embed job the pages look for). Measures, in seconds of wall time seen by the browser:

* cold start: from launching ``alignscope app`` to the Data page showing the data set, the first
  time the file is opened (parsed, then cached) and the next time (read from the data cache);
* page switches (Data → Map → Select → Train → Runs → Data), each until the page's script finished;
* the Select page's subset slider: key press until the "Pairs kept" metric shows the new count;
* the Map page drawing every completion until the WebGL map's first full frame.

Targets (issue 8): cold start ≤ 5 s, page switch ≤ 1 s, slider ≤ 1 s. Writes
``results/browser_alpaca.json``.
"""
from __future__ import annotations

import os
import shutil
import time

from benchmarks.bench_pages import _map_drawn
from benchmarks.common import SHARED_DATA, start_app, write_result

DATA = SHARED_DATA / "alpaca_eval_pairs.jsonl.gz"


def _settled(page, timeout_s: float = 600) -> None:
    page.wait_for_timeout(100)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and page.locator("[data-testid=stStatusWidget]").count():
        page.wait_for_timeout(50)


def _switch(page, name: str) -> float:
    started = time.perf_counter()
    page.get_by_role("link", name=name, exact=True).first.click()
    page.get_by_role("heading", name=name, exact=True).first.wait_for(timeout=600_000)
    _settled(page)
    return round(time.perf_counter() - started, 3)


def _start(browser) -> tuple:
    """Start ``alignscope app`` on the AlpacaEval pairs; seconds until the Data page shows them."""
    started = time.perf_counter()
    app, url, _ = start_app("--data", str(DATA), "--data-root", str(SHARED_DATA))
    page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
    page.set_default_timeout(600_000)
    page.goto(url)
    page.get_by_text("61,952").first.wait_for()
    _settled(page)
    return app, url, page, round(time.perf_counter() - started, 3)


def main() -> None:
    chromium = shutil.which("chromium")
    if not DATA.exists() or chromium is None:
        print(f"skipped: needs {DATA} and chromium")
        return
    from playwright.sync_api import sync_playwright

    from alignscope import settings

    # The first open of a file parses it and fills the data cache; later starts read the cache.
    for entry in (settings.home() / "cache" / "data").glob("*"):
        entry.unlink()
    figures: dict = {"n_pairs": 61_952, "n_completions": 123_904}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        app, url, page, cold = _start(browser)
        figures["cold_start_first_open_of_the_file_s"] = cold
        os.killpg(app.pid, 15)
        app.wait(timeout=30)
        app, url, page, cold = _start(browser)
        figures["cold_start_to_data_page_s"] = cold
        try:
            switches = {}
            for name in ("Map", "Select", "Train", "Runs", "Data", "Select"):
                switches[f"to {name}" + (" (again)" if f"to {name}" in switches else "")] = _switch(page, name)
            figures["page_switch_s"] = switches
            metric = page.locator("[data-testid=stMetric]", has_text="Pairs kept").first
            slider = page.get_by_role("slider").first
            moves = []
            for _ in range(4):
                before = metric.inner_text()
                slider.focus()
                t0 = time.perf_counter()
                page.keyboard.press("ArrowRight")
                page.wait_for_function("(b) => { const m = [...document.querySelectorAll('[data-testid=stMetric]')]"
                                       ".find(e => e.innerText.includes('Pairs kept')); return m && m.innerText !== b; }",
                                       arg=before)
                moves.append(round(time.perf_counter() - t0, 3))
                _settled(page)
            figures["slider_update_s"] = moves
            figures["map_points_drawn"] = "all 123,904 (the WebGL map; the Plotly fallback: bench_pages)"
            t0 = time.perf_counter()
            _switch(page, "Map")
            _map_drawn(page, "webgl")
            figures["map_draw_s"] = round(time.perf_counter() - t0, 3)
            t0 = time.perf_counter()
            page.mouse.move(700, 500)
            page.mouse.wheel(0, -300)
            page.wait_for_timeout(50)
            figures["map_zoom_event_s"] = round(time.perf_counter() - t0, 3)
        finally:
            os.killpg(app.pid, 15)
            app.wait(timeout=30)
        browser.close()
    figures["targets"] = {"cold_start_s": 5, "page_switch_s": 1, "slider_s": 1}
    write_result("browser_alpaca", figures)


if __name__ == "__main__":
    main()

"""The HTML report in a real browser with the network off: Debian chromium driven by Playwright (as in
tests/test_browser.py) opens a report written by `alignscope report`, and the committed example
(docs/example-report-hh.html), with every request that is not the file itself aborted; every
figure must draw (Plotly's SVG present), with no console error and no request to any host.
Skips with a message when chromium or Playwright is missing."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import ROOT, run_cli

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
EXAMPLE = ROOT / "docs" / "example-report-hh.html"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium; scripts/setup.sh test does it)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        yield launched
        launched.close()


def open_offline(browser, path: Path) -> dict:
    """Open ``path`` with every non-file request aborted; returns what the page did."""
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, offline=True)
    page = context.new_page()
    requests, errors = [], []
    context.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file:")
                  else (requests.append(route.request.url), route.abort()))
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(path.resolve().as_uri())
    figures = page.locator(".plotly-graph-div").count()
    drawn_js = "[...document.querySelectorAll('.plotly-graph-div')].filter(d => d.querySelector('.main-svg g.trace')).length"
    page.wait_for_function(f"{drawn_js} >= {max(1, figures)}", timeout=60_000)
    drawn = page.evaluate(drawn_js)  # figures whose traces are drawn in Plotly's SVG
    title = page.title()
    context.close()
    return {"figures": figures, "drawn": drawn, "requests": requests, "errors": errors, "title": title}


def test_a_report_opens_offline_and_draws_every_figure(browser, tmp_path):
    out = tmp_path / "report.html"
    done = run_cli("report", "demo:200", "--out", out, timeout=300)
    assert done.returncode == 0, done.stderr
    seen = open_offline(browser, out)
    assert seen["figures"] >= 1 and seen["drawn"] == seen["figures"]
    assert seen["requests"] == [] and seen["errors"] == []
    assert seen["title"].startswith("alignscope report")


def test_the_committed_example_opens_offline(browser):
    if not EXAMPLE.exists():
        pytest.skip(f"{EXAMPLE} is not in this checkout")
    seen = open_offline(browser, EXAMPLE)
    # data, scaling curve, method − random, training runs
    assert seen["figures"] >= 4 and seen["drawn"] == seen["figures"]
    assert seen["requests"] == [] and seen["errors"] == []

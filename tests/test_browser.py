"""End-to-end in a real browser: Debian chromium driven by Playwright against `alignscope app` on
127.0.0.1 with the demo data. Visits every page, moves the subset slider, exports a subset, trains
a tiny DPO run, a tiny DPO + SamS run (shown on the Scheduler page) and a tiny sweep from the
pages, downloads the report and opens it with the network off, reloads a deep link in a new
session, and saves a screenshot of each page (the Map's: tests/test_browser_map.py).

Screenshots go to ``$ALIGNSCOPE_SCREENSHOTS`` (default: ``tests/screenshots/``, not committed; the
README's copies live in ``assets/``). Skips with a message when chromium or Playwright is missing
(``scripts/setup.sh test`` installs both where apt is available).
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = Path(os.environ.get("ALIGNSCOPE_SCREENSHOTS", ROOT / "tests" / "screenshots"))
LONG = 600_000  # ms: CPU work (embedding, training) on a shared 2-core machine
PAGES = ["Data", "Map", "Select", "Audit", "Train", "Scheduler", "Scaling", "Spectra", "Runs"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium; scripts/setup.sh test does it)")
    pytest.importorskip("playwright.sync_api")
    home = tmp_path_factory.mktemp("browser-home")
    root = tmp_path_factory.mktemp("browser-data-root")
    port = _free_port()
    env = {**os.environ, "ALIGNSCOPE_HOME": str(home)}
    log = open(home / "app.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "alignscope.cli", "app", "--port", str(port), "--data", "demo:200",
                             "--data-root", str(root)], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                break
        except OSError:
            time.sleep(0.5)
    else:
        proc.kill()
        pytest.fail(f"the app did not start: {(home / 'app.log').read_text(errors='replace')[-2000:]}")
    yield {"url": url, "home": home, "root": root}
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        context = browser.new_context(viewport={"width": 1440, "height": 1400})
        tab = context.new_page()
        outside = []  # every request the page makes that leaves 127.0.0.1
        tab.on("request", lambda request: outside.append(request.url)
               if not request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")) else None)
        tab.outside_requests = outside
        tab.set_default_timeout(120_000)
        tab.goto(app_url["url"])
        tab.wait_for_selector("[data-testid=stAppViewContainer]")
        yield tab
        browser.close()


def open_page(page, name: str) -> None:
    page.get_by_role("link", name=name, exact=True).first.click()
    page.get_by_role("heading", name=name, exact=True).first.wait_for()
    settle(page)


def settle(page, timeout: float = 120) -> None:
    """Wait until Streamlit has finished the current run (no 'Running…' status widget)."""
    page.wait_for_timeout(300)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if page.locator("[data-testid=stStatusWidget]").count() == 0:
            return
        page.wait_for_timeout(250)


def shot(page, name: str) -> None:
    """Screenshot from the top of the page (Streamlit scrolls inside its own container)."""
    page.evaluate("() => { document.querySelectorAll('[data-testid=stMain], [data-testid=stAppViewContainer], "
                  "section.main').forEach(e => e.scrollTo(0, 0)); window.scrollTo(0, 0); }")
    page.wait_for_timeout(300)
    page.screenshot(path=str(SHOTS / f"{name}.png"))


def selectbox_value(page, label: str) -> str:
    """The value a Streamlit selectbox shows (its text, or its search input's value)."""
    box = page.locator("[data-testid=stSelectbox]", has_text=label).first
    inputs = box.locator("input")
    shown = " ".join(inputs.nth(i).input_value() for i in range(inputs.count()))
    return f"{box.inner_text()} {shown}"


def metric_value(page, label: str) -> str:
    metric = page.locator("[data-testid=stMetric]", has_text=label).first
    return metric.locator("[data-testid=stMetricValue]").inner_text()


def test_every_page_opens_and_says_what_it_shows(page):
    for name in PAGES:
        open_page(page, name)
        assert page.locator("[data-testid=stException]").count() == 0, name
        assert page.locator("[data-testid=stCaptionContainer]").count() > 0, f"{name} has no caption"
    open_page(page, "Data")
    page.get_by_text("200").first.wait_for()
    shot(page, "data")


MAP_FRAME = "iframe[title='alignscope.app.components.scattermap.scattermap']"


def test_map_and_select_with_slider_and_export(page, app_url):
    """The Map's own walk (search, lasso, pair view, its screenshot) is tests/test_browser_map.py."""
    open_page(page, "Map")
    # the static encoder starts on its own: the first look needs no click
    page.locator(MAP_FRAME).first.wait_for(timeout=LONG)
    settle(page)
    # Colour by the GMM component, then compute the UMAP map (the PCA map is shown while it runs):
    # the box, the caption and the map's legend still agree after the UMAP job.
    page.locator("[data-testid=stSelectbox]", has_text="Colour by").click()
    page.get_by_role("option", name="GMM component", exact=True).click()
    settle(page)
    page.get_by_text("UMAP", exact=True).click()
    page.get_by_role("button", name="Compute UMAP map").click()
    page.get_by_text(re.compile(r"^UMAP map of 400 completions")).first.wait_for(timeout=LONG)
    settle(page)
    box = selectbox_value(page, "Colour by")
    caption = page.get_by_text(re.compile(r"^UMAP map of 400 completions")).first.inner_text()
    legend = page.frame_locator(MAP_FRAME).first.locator("#legend").inner_text()
    assert "GMM component" in box and caption.endswith("coloured by GMM component."), (box, caption)
    assert "component 0" in legend, legend
    page.get_by_text("PCA", exact=True).click()
    settle(page)
    open_page(page, "Select")
    page.locator(".js-plotly-plot").first.wait_for(timeout=LONG)
    before = metric_value(page, "Pairs kept")
    slider = page.get_by_role("slider").first
    slider.focus()
    for _ in range(10):
        page.keyboard.press("ArrowRight")
    settle(page)
    page.wait_for_function("(b) => { const m = [...document.querySelectorAll('[data-testid=stMetric]')]"
                           ".find(e => e.innerText.includes('Pairs kept'));"
                           " return m && !m.innerText.includes(b); }", arg=before, timeout=60_000)
    after = metric_value(page, "Pairs kept")
    assert before != after and int(after.split(" of ")[0].replace(",", "")) > int(before.split(" of ")[0].replace(",", ""))
    settle(page)
    shot(page, "select")
    # The other views are lazy tabs: the anatomy's charts are built when its tab is opened.
    page.get_by_role("tab", name="Score anatomy").click()
    page.get_by_text("ISA anatomy").first.wait_for(timeout=LONG)
    settle(page)
    page.get_by_role("tab", name="Use or export").click()
    settle(page)
    page.get_by_role("button", name="Export").click()
    page.get_by_text(re.compile(r"Exported [\d,]+ pairs")).first.wait_for()
    exported = list((app_url["root"] / "exports").glob("*.jsonl"))
    # The file is named after the subset the slider now shows (10 key presses from 5 %), not the
    # one it showed first.
    percent = float(page.locator("[data-testid=stSliderThumbValue]").first.inner_text().strip().rstrip("%"))
    pairs = int(after.split(" of ")[0].replace(",", ""))  # the size is in pairs, and so is the name
    assert percent > 5 and [p.name for p in exported] == [f"isa-{pairs}pairs.jsonl"]
    assert exported[0].stat().st_size > 0
    assert exported[0].stat().st_mode & 0o077 == 0o044  # ordinary permissions, readable by others


def test_the_audit_finds_and_drops_suspicious_pairs(page):
    """On the demo data (planted flips and near-copies): the cards count them, the clean subset
    becomes the active selection in one click."""
    open_page(page, "Audit")
    page.get_by_text("Flagged pairs").first.wait_for(timeout=LONG)
    assert page.locator("[data-testid=stException]").count() == 0
    assert int(metric_value(page, "Suspected flips").replace(",", "")) > 0
    page.get_by_role("button", name="Use the clean subset").click()
    page.get_by_text("is the active selection").first.wait_for(timeout=LONG)
    shot(page, "audit")


def test_a_tiny_dpo_run_from_the_train_page(page):
    open_page(page, "Train")
    # 1e12 steps cannot work: the field refuses it (capped, with the cap in its help) and the estimate
    # below never counts more steps than the cap; nothing starts.
    steps = page.get_by_role("spinbutton", name="Max steps (0 = full epochs)", exact=True)
    steps.fill("1000000000000")
    page.keyboard.press("Tab")
    settle(page)
    estimate = page.get_by_text(re.compile(r"^About [\d,]+ steps")).first.inner_text()
    assert int(re.search(r"About ([\d,]+) steps", estimate).group(1).replace(",", "")) <= 100_000, estimate
    assert page.get_by_text(re.compile(r"Started \S+")).count() == 0
    for label, value in (("Max steps (0 = full epochs)", "2"), ("Max length (tokens)", "32"),
                         ("Evaluate at most (pairs, 0 = all)", "8")):
        page.get_by_role("spinbutton", name=label, exact=True).fill(value)
    page.keyboard.press("Tab")
    settle(page)
    page.get_by_role("button", name="Start training").click()
    page.get_by_text(re.compile(r"Started \S+: dpo on tiny")).first.wait_for(timeout=LONG)
    page.get_by_text("loss (live)").first.wait_for(timeout=LONG)
    page.get_by_text("Held-out evaluation").first.wait_for(timeout=LONG)
    assert re.search(r"\d+(\.\d)?%", metric_value(page, "Preference accuracy"))
    assert re.search(r"\d+(\.\d)?%", metric_value(page, "Length rule ("))  # beside its baseline
    shot(page, "train")


def test_a_tiny_sams_run_shows_on_the_scheduler_page(page):
    open_page(page, "Train")
    page.get_by_text("DPO + SamS", exact=True).click()
    for label, value in (("Max steps (0 = full epochs)", "3"), ("Max length (tokens)", "32"),
                         ("Evaluate at most (pairs, 0 = all)", "8")):
        page.get_by_role("spinbutton", name=label, exact=True).fill(value)
    page.keyboard.press("Tab")  # commit the last field; Enter alone never starts a job
    settle(page)
    page.get_by_role("button", name="Start training").click()
    # A second start says so and the view switches to the new run (not the finished DPO run).
    page.get_by_text(re.compile(r"Started \S+: dpo-sams on tiny")).first.wait_for(timeout=LONG)
    page.get_by_text("Held-out evaluation").first.wait_for(timeout=LONG)
    open_page(page, "Scheduler")
    page.get_by_text("Which pairs it preferred").first.wait_for(timeout=LONG)
    assert page.locator("[data-testid=stException]").count() == 0
    assert page.get_by_text("No DPO + SamS run yet").count() == 0
    shot(page, "scheduler")


def test_a_tiny_sweep_from_the_scaling_page(page):
    open_page(page, "Scaling")
    page.get_by_role("tab", name="Launch a sweep").click()
    fractions = page.get_by_role("textbox", name="Fractions (0–1, comma-separated)", exact=True)
    fractions.fill("0.5")  # one fraction cannot be fitted: refused before any job, in a sentence
    page.get_by_role("button", name="Launch the sweep").click()
    page.get_by_text("give at least 3 distinct fractions").first.wait_for(timeout=LONG)
    fractions.fill("0.2,0.4,0.7,1.0")
    page.get_by_role("textbox", name="Seeds", exact=True).fill("0")
    page.get_by_role("button", name="Launch the sweep").click()
    page.get_by_text("Started sweep").first.wait_for(timeout=LONG)
    page.get_by_role("tab", name="Sweeps of this data set").click()
    page.get_by_text("7 of 7 points measured").first.wait_for(timeout=LONG)
    # The caption under the fit table comes last: once it counts every point, the chart above is current.
    page.get_by_text("8 points on the curves (isa: 4, random: 4)").first.wait_for(timeout=LONG)
    # On the demo data the probe's length-controlled plateau does not clear 0.5: the page says so in
    # place of a "data you can skip" answer, and the baseline is drawn.
    page.get_by_text("No recommended size").first.wait_for(timeout=LONG)
    assert page.get_by_text("data you can skip").count() == 0
    assert page.get_by_text("Dashed line: the baseline every score must beat").count() > 0
    shot(page, "scaling")


def test_the_report_downloads_and_opens_offline(page, tmp_path):
    """The walk above (data → audit → select → train → sweep) ends in a report: the sidebar's button
    gives one HTML file that names the sweep, the audit and the run, and draws every figure in a
    browser with the network off."""
    from test_report_browser import open_offline

    open_page(page, "Scaling")
    page.get_by_text("7 of 7 points measured").first.wait_for(timeout=LONG)
    with page.expect_download(timeout=LONG) as download:
        page.get_by_role("button", name=re.compile("Download report")).click()
    report = tmp_path / "report.html"
    download.value.save_as(report)
    text = report.read_text(encoding="utf-8")
    assert "alignscope could not build this report" not in text
    for absent in ("No sweep given", "Not audited for this report", "No training run given", "No selection given"):
        assert absent not in text, absent
    seen = open_offline(page.context.browser, report)
    assert seen["figures"] >= 4 and seen["drawn"] == seen["figures"], seen
    assert seen["requests"] == [] and seen["errors"] == [], seen


def test_a_deep_link_restores_the_view_in_a_new_session(page):
    """The URL carries the data set, page and sweep: pasted into a new session (a reload is one), it
    opens the same sweep; a link to a sweep this machine does not have says so."""
    open_page(page, "Scaling")
    url = page.url
    assert "/scaling?" in url and "sweep=" in url and "data=demo" in url, url
    picked = selectbox_value(page, "Sweep")
    context = page.context.browser.new_context(viewport={"width": 1440, "height": 1400})
    fresh = context.new_page()
    fresh.set_default_timeout(120_000)
    fresh.goto(url)
    fresh.get_by_role("heading", name="Scaling", exact=True).first.wait_for()
    fresh.get_by_text("7 of 7 points measured").first.wait_for(timeout=LONG)
    for _ in range(120):  # the box is redrawn by the page's live rerun: read it once it shows a value
        if selectbox_value(fresh, "Sweep") == picked:
            break
        fresh.wait_for_timeout(250)
    assert selectbox_value(fresh, "Sweep") == picked
    fresh.goto(re.sub(r"sweep=[^&]+", "sweep=19990101-000000", url))
    fresh.get_by_text(re.compile("The sweep folder '19990101-000000' is not on this machine")).first.wait_for()
    shot(fresh, "deep-link-missing")
    context.close()


def test_a_re_run_from_the_runs_page_is_shown_at_once(page):
    open_page(page, "Runs")
    run_box = page.locator("[data-testid=stSelectbox]", has_text="Run")
    run_box.click()  # the tiny DPO run of the Train page: seconds to re-run
    page.get_by_role("option", name=re.compile(r"· train · succeeded")).last.click()
    settle(page)
    before = selectbox_value(page, "Run")
    page.get_by_role("button", name="Re-run with the same config").click()
    started = page.get_by_text(re.compile(r"Started \S+: a re-run of")).first
    started.wait_for(timeout=LONG)
    new_id = re.search(r"Started (\S+):", started.inner_text()).group(1)
    settle(page)
    assert new_id in selectbox_value(page, "Run") and new_id not in before


def test_runs_and_the_remaining_pages_after_work(page):
    for name in ("Runs", "Spectra"):
        open_page(page, name)
        if name == "Spectra":  # computed on first visit: shoot the result, not the spinner
            page.get_by_text("Metrics per group").first.wait_for(timeout=LONG)
        assert page.locator("[data-testid=stException]").count() == 0, name
        shot(page, name.lower())


def test_nothing_is_fetched_from_the_internet(page):
    """Icons and fonts are bundled: the whole walk above made no request beyond 127.0.0.1."""
    assert page.outside_requests == []

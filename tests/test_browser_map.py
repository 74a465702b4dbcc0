"""The Map in a real browser, offline: Debian chromium (Playwright) against `alignscope app` on the
demo data with every request that leaves 127.0.0.1 blocked. The WebGL map draws every completion,
search selects pairs, a box drawn on the map becomes the active Selection, hovering shows a pair's
texts, a click opens the pair with its word diff, and the pair view draws segments coloured by the
audit's flip score. Saves the README's Map screenshot (``map.png``, see test_browser.py for where).

Skips with a message when chromium or Playwright is missing; never calls node or npm (the
component's built files are in the repository).
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from alignscope.select.selection import Selection
from test_browser import CHROMIUM, LONG, SHOTS, _free_port, open_page, settle, shot

FRAME = "iframe[title='alignscope.app.components.scattermap.scattermap']"


@pytest.fixture(scope="module")
def map_app(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (apt-get install chromium; scripts/setup.sh test does it)")
    pytest.importorskip("playwright.sync_api")
    home = tmp_path_factory.mktemp("browser-map-home")
    root = tmp_path_factory.mktemp("browser-map-root")
    port = _free_port()
    log = open(home / "app.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "alignscope.cli", "app", "--port", str(port), "--data", "demo:200",
                             "--data-root", str(root)], env={**os.environ, "ALIGNSCOPE_HOME": str(home)},
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
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
    yield {"url": url, "home": home}
    os.killpg(proc.pid, 15)
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def page(map_app):
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])
        context = browser.new_context(viewport={"width": 1440, "height": 1500})
        outside, errors = [], []

        def route(request_route) -> None:  # offline: anything beyond 127.0.0.1 is refused and recorded
            url = request_route.request.url
            if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")):
                request_route.continue_()
            else:
                outside.append(url)
                request_route.abort()

        context.route("**/*", route)
        tab = context.new_page()
        tab.on("pageerror", lambda error: errors.append(str(error)[:300]))
        tab.outside_requests, tab.page_errors = outside, errors
        tab.set_default_timeout(120_000)
        tab.goto(map_app["url"])
        tab.wait_for_selector("[data-testid=stAppViewContainer]")
        yield tab
        browser.close()


def frame(page):
    return page.frame_locator(FRAME).first


def drawn(page, at_least: int = 1) -> None:
    """Until the map has finished ``at_least`` full frames since it was (re)created."""
    page.wait_for_function(
        "([sel, n]) => { const f = document.querySelector(sel); const b = f && f.contentDocument && f.contentDocument.body;"
        " return b && Number(b.dataset.drawn || 0) >= n; }", arg=[FRAME, at_least], timeout=LONG)


def evaluate(page, script: str):
    """Run ``script`` inside the map's frame."""
    return page.locator(FRAME).first.element_handle().content_frame().evaluate(script)


def body(page, name: str) -> str:
    return frame(page).locator("body").get_attribute(f"data-{name}") or ""


def to_page(page, point) -> tuple[float, float]:
    """A point in the map frame's coordinates → page coordinates."""
    box = page.locator(FRAME).first.bounding_box()
    return box["x"] + point[0], box["y"] + point[1]


def test_the_map_draws_every_completion_offline(page):
    open_page(page, "Map")
    # the static encoder starts on its own: the first look needs no click
    page.locator(FRAME).first.wait_for(timeout=LONG)
    drawn(page)
    settle(page)
    assert body(page, "items") == "400"  # 200 pairs, both completions, nothing sampled
    assert re.match(r"400 points · a full frame takes \d+ ms", frame(page).locator("#status").inner_text())
    assert page.locator(".js-plotly-plot").count() == 0  # the WebGL map, not the Plotly fallback
    legend = frame(page).locator("#legend").inner_text()
    assert "chosen" in legend and "rejected" in legend
    # Region labels: named by their texts' words, drawn over the map where their points are.
    labels = frame(page).locator("#regions .region")
    assert labels.count() == int(body(page, "regions")) >= 1
    stage, first = frame(page).locator("#stage").bounding_box(), labels.first.bounding_box()
    centre = (first["x"] + first["width"] / 2, first["y"] + first["height"] / 2)
    assert stage["x"] <= centre[0] <= stage["x"] + stage["width"] and stage["y"] <= centre[1] <= stage["y"] + stage["height"]
    assert re.fullmatch(r"[^\W\d_]{3,}( · [^\W\d_]{3,})*", labels.first.inner_text())
    # Density contours on request: SVG lines over the map, in its coordinates.
    page.get_by_text("Density contours", exact=True).click()
    page.wait_for_function("(sel) => { const f = document.querySelector(sel); const b = f && f.contentDocument"
                           " && f.contentDocument.body; return b && Number(b.dataset.contours || 0) > 0; }",
                           arg=FRAME, timeout=LONG)
    settle(page)
    assert frame(page).locator("svg#density path").count() >= 1
    page.get_by_text("Density contours", exact=True).click()
    settle(page)


def test_hover_shows_the_pairs_texts_as_text(page):
    frame_box = page.locator(FRAME).first.bounding_box()
    for item in range(0, 400, 7):  # a point that no other point covers
        spot = evaluate(page, f"window.scattermap.screenOf({item})")
        hit = evaluate(page, f"window.scattermap.itemAt({spot[0]}, {spot[1]})")
        if hit == item:
            break
    page.mouse.move(*to_page(page, spot))
    tip = frame(page).locator("#tip")
    tip.get_by_text("PROMPT:").wait_for()
    assert re.match(r"#\d+ · (chosen|rejected) · label \(chosen / rejected\): (chosen|rejected)", tip.inner_text())
    assert frame_box["height"] > 600


def test_search_selects_the_pairs_that_contain_a_word(page):
    page.get_by_role("textbox", name="Search the texts").fill("the")
    page.keyboard.press("Enter")
    message = page.get_by_text(re.compile(r"Selected on the map \(search 'the'\): ([\d,]+) pairs")).first
    message.wait_for(timeout=LONG)
    n_pairs = int(re.search(r"([\d,]+) pairs", message.inner_text()).group(1).replace(",", ""))
    assert 0 < n_pairs <= 200
    page.wait_for_function("([sel, n]) => document.querySelector(sel).contentDocument.body.dataset.selected == n",
                           arg=[FRAME, str(2 * n_pairs)], timeout=LONG)
    # Linked metadata: a click on a source's bar of the selection's breakdown narrows the selection to it.
    settle(page)
    subset_bars = page.locator(".js-plotly-plot", has_text="Share per source").locator(".trace.bars").nth(1)
    subset_bars.locator("path").first.click(force=True)
    narrowed = page.get_by_text(re.compile(r"Selected on the map \(search 'the', source in [\w-]+\): ([\d,]+) pairs")).first
    narrowed.wait_for(timeout=LONG)
    n_narrowed = int(re.search(r"([\d,]+) pairs", narrowed.inner_text()).group(1).replace(",", ""))
    assert 0 < n_narrowed < n_pairs
    page.wait_for_function("([sel, n]) => document.querySelector(sel).contentDocument.body.dataset.selected == n",
                           arg=[FRAME, str(2 * n_narrowed)], timeout=LONG)


def test_a_box_on_the_map_becomes_the_active_selection(page, map_app):
    frame(page).get_by_role("button", name="Box").click()
    box = page.locator(FRAME).first.bounding_box()
    x0, y0 = box["x"] + 5, box["y"] + 45
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x0 + box["width"] * 0.5, y0 + 300, steps=8)
    page.mouse.up()
    message = page.get_by_text(re.compile(r"Selected on the map \(box\): [\d,]+ points from [\d,]+ pairs")).first
    message.wait_for(timeout=LONG)
    points, pairs = (int(v.replace(",", "")) for v in re.findall(r"([\d,]+) (?:points|pairs)", message.inner_text()))
    assert 0 < points < 400 and 0 < pairs <= points
    assert body(page, "selected") == str(points)
    settle(page)
    page.get_by_role("textbox", name="Name this subset").fill("map-box")
    page.get_by_role("button", name="Keep as the active selection").click()
    page.get_by_text(re.compile(r"Saved [\d,]+ pairs as 'map-box'")).first.wait_for(timeout=LONG)
    saved = list((map_app["home"] / "selections").glob("*-map-box.parquet"))
    assert len(saved) == 1
    selection = Selection.read(saved[0])
    assert selection.config["method"] == "manual" and selection.config["how"] == "box"
    assert int(selection["selected"].sum()) == pairs
    frame(page).get_by_role("button", name="Pan").click()


def test_a_click_opens_the_pair_with_its_word_diff(page):
    spot = evaluate(page, "window.scattermap.screenOf(3)")
    page.mouse.click(*to_page(page, spot))
    heading = page.get_by_role("heading", name=re.compile(r"Pair #\d+")).first
    heading.wait_for(timeout=LONG)
    assert page.get_by_text("Word diff").count() > 0
    assert page.get_by_text("Nearest completions").count() > 0
    settle(page)
    shot(page, "map")


def test_the_pair_view_colours_segments_by_flip_score(page):
    page.get_by_text("pairs (rejected → chosen)", exact=True).click()
    page.get_by_role("button", name="Run the audit").click()
    page.wait_for_function("(sel) => { const f = document.querySelector(sel); const d = f && f.contentDocument;"
                           " return d && d.body.dataset.items == '200' && d.querySelector('#legend .title')"
                           " && d.querySelector('#legend .title').textContent == 'flip score'; }",
                           arg=FRAME, timeout=LONG)
    drawn(page)
    settle(page)
    assert re.match(r"200 pairs", frame(page).locator("#status").inner_text())
    spot = evaluate(page, "window.scattermap.screenOf(5)")
    page.mouse.click(*to_page(page, spot))
    page.get_by_role("heading", name=re.compile(r"Pair #\d+")).first.wait_for(timeout=LONG)
    page.get_by_text(re.compile(r"flip score 0\.\d\d")).first.wait_for(timeout=LONG)
    assert page.locator("[data-testid=stException]").count() == 0


def test_nothing_left_127_0_0_1_and_no_script_error(page):
    assert page.outside_requests == []
    assert page.page_errors == []

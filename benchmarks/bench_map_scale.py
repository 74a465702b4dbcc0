"""The WebGL Map at a million completions, in headless chromium on this machine (issue 30): how long
the Map takes to open, and how smoothly it pans and zooms.

    python -m benchmarks.bench_map_scale [--pairs 500000] [--dim 64] [--switches 4]

The data are ``demo:PAIRS`` (2·PAIRS completions); their embedding is synthetic (seeded clustered
Gaussian vectors, ``--dim`` dimensions, registered as the succeeded ``static`` embed job the Map
reads), because what is measured is the map, not an encoder (embedding a million texts with the
static encoder takes ~20 minutes on this machine). Uses ``$ALIGNSCOPE_HOME``.

Measures, in the browser, with every request beyond 127.0.0.1 blocked:

* the first open of the Map (Data → Map click → the WebGL frame's first full frame), which
  computes the PCA map of the million points once (cached on disk) and starts writing the tooltip
  texts in the background;
* ``--switches`` more Data → Map switches: the page's script finished, and the map drawn;
* panning (a 2 s drag) and zooming (20 wheel steps): the intervals between the frame's animation
  frames (every redraw runs inside one, so a slow draw is a long interval), the full frame's draw
  time and the share of the points drawn while moving (the map draws a uniform sample while moving
  when a full frame is slower than ~35 ms, and everything when the motion pauses).

Targets: open ≤ 10 s; "smooth" = median interval while moving ≤ 50 ms (20 frames/s), 90th
percentile ≤ 100 ms. Writes ``results/map_scale.json`` (``map_scale_<pairs>.json`` for other sizes).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_pages import MAP_FRAME, _alignscope_command, _free_port, _launch, _settled, _stop, _switch
from benchmarks.common import write_result

TARGETS = {"open_s": 10.0, "moving_median_ms": 50.0, "moving_p90_ms": 100.0}


def synthetic_embedding(data, dim: int, seed: int = 0) -> str:
    """A succeeded ``static`` completion-embedding job of ``data`` holding seeded clustered vectors;
    reused when it exists. Returns its run directory."""
    from alignscope.embed.embeddings import Embeddings
    from alignscope.jobs import JobStore

    store = JobStore()
    for job in store.list_jobs(kind="embed", limit=500):
        config = job.config
        if job.status == "succeeded" and config.get("data", {}).get("fingerprint") == data.fingerprint \
                and config.get("encoder") == "static" and config.get("unit") == "completion":
            return str(job.run_dir)
    rng = np.random.default_rng(seed)
    n = 2 * data.n_pairs
    centres = rng.normal(scale=3.0, size=(24, dim)).astype(np.float32)
    matrix = centres[rng.integers(0, len(centres), n)] + rng.normal(size=(n, dim)).astype(np.float32)
    job = store.add("embed", {"data": data.spec(), "encoder": "static", "unit": "completion", "synthetic": True})
    store.transition(job.id, "running")  # never queued for a worker: nothing runs the encoder
    Embeddings.from_matrix(matrix, "completion", encoder="static", fingerprint=data.fingerprint).save(
        job.run_dir / "embeddings.npy", extra={"data": data.spec(), "synthetic": f"clustered gaussian, seed {seed}"})
    store.transition(job.id, "succeeded")
    return str(job.run_dir)


def _drawn(page, timeout_s: float = 600) -> None:
    page.wait_for_function("(sel) => { const f = document.querySelector(sel); const b = f && f.contentDocument"
                           " && f.contentDocument.body; return b && Number(b.dataset.drawn || 0) >= 1; }",
                           arg=MAP_FRAME, timeout=timeout_s * 1000)


def _open_map(page) -> tuple[float, float]:
    """Data → Map: (seconds to the script finished, seconds to the map drawn)."""
    _switch(page, "Data")
    started = time.perf_counter()
    page.get_by_role("link", name="Map", exact=True).first.click()
    page.get_by_role("heading", name="Map", exact=True).first.wait_for(timeout=600_000)
    _settled(page)
    script = time.perf_counter() - started
    _drawn(page)
    return round(script, 3), round(time.perf_counter() - started, 3)


def _intervals(frame, action) -> dict:
    """Animation-frame intervals inside the map's frame while ``action`` runs."""
    frame.evaluate("() => { const id = (window.__loop || 0) + 1; window.__loop = id; window.__frames = [];"
                   " const loop = (t) => { if (window.__loop !== id) return; window.__frames.push(t);"
                   " requestAnimationFrame(loop); }; requestAnimationFrame(loop); }")
    action()
    times = frame.evaluate("() => { window.__loop += 1; return window.__frames; }")
    gaps = sorted(b - a for a, b in zip(times, times[1:]))
    if not gaps:
        return {"frames": 0}
    return {"frames": len(times), "median_ms": round(statistics.median(gaps), 1),
            "p90_ms": round(gaps[int(0.9 * (len(gaps) - 1))], 1), "max_ms": round(gaps[-1], 1),
            "status_after": frame.evaluate("() => document.querySelector('#status').textContent")}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_map_scale")
    parser.add_argument("--pairs", type=int, default=500_000)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--switches", type=int, default=4)
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None:
        print("skipped: needs chromium")
        return
    from playwright.sync_api import sync_playwright

    from alignscope.data.preferences import load_preferences

    spec = f"demo:{args.pairs}"
    started = time.perf_counter()
    data = load_preferences(spec)
    figures: dict = {"data": spec, "n_pairs": data.n_pairs, "points": 2 * data.n_pairs, "dim": args.dim,
                     "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    run_dir = synthetic_embedding(data, args.dim)
    figures["prepared_s"] = round(time.perf_counter() - started, 1)
    # The first open computes the PCA map: drop a cached one, so that it is measured every time.
    from alignscope.embed.projection import map_cache_path, matrix_key
    from alignscope.embed.tasks import load_embed_result

    cached = map_cache_path(matrix_key(load_embed_result(run_dir).matrix), "pca", 0)
    for path in (cached, cached.with_suffix(".json")):
        path.unlink(missing_ok=True)
    port = _free_port()
    process = _launch(_alignscope_command(port, spec, os.getcwd()), dict(os.environ), port)
    outside: list[str] = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            context = browser.new_context(viewport={"width": 1440, "height": 1100})

            def route(request_route) -> None:
                url = request_route.request.url
                if url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")):
                    request_route.continue_()
                else:
                    outside.append(url)
                    request_route.abort()

            context.route("**/*", route)
            page = context.new_page()
            page.set_default_timeout(600_000)
            page.goto(f"http://127.0.0.1:{port}")
            _settled(page)
            first_script, first_drawn = _open_map(page)
            figures["first_open"] = {"script_s": first_script, "drawn_s": first_drawn,
                                     "note": "computes the PCA map of every point once (then cached on disk)"}
            opens = [_open_map(page) for _ in range(args.switches)]
            figures["open"] = {"script_s": [o[0] for o in opens], "drawn_s": [o[1] for o in opens],
                               "drawn_median_s": statistics.median(o[1] for o in opens)}
            frame = page.locator(MAP_FRAME).first.element_handle().content_frame()
            frame.wait_for_function("() => document.body.dataset.items", timeout=60_000)
            figures["items_drawn"] = int(frame.evaluate("() => document.body.dataset.items"))
            figures["full_frame_ms"] = int(frame.evaluate("() => document.body.dataset.fullMs"))
            box = page.locator(MAP_FRAME).first.bounding_box()
            cx, cy = box["x"] + box["width"] / 2, box["y"] + 40 + 300

            def pan() -> None:
                page.mouse.move(cx, cy)
                page.mouse.down()
                for step in range(120):  # ~2 s at 60 moves per second
                    page.mouse.move(cx + 3 * step, cy + 1.5 * step)
                    page.wait_for_timeout(16)
                page.mouse.up()
                page.wait_for_timeout(600)  # the full frame after the motion

            def zoom() -> None:
                page.mouse.move(cx, cy)
                for _ in range(20):
                    page.mouse.wheel(0, -120)
                    page.wait_for_timeout(50)
                page.wait_for_timeout(600)

            figures["pan"] = _intervals(frame, pan)
            figures["zoom"] = _intervals(frame, zoom)
            figures["full_frame_ms_after"] = int(frame.evaluate("() => document.body.dataset.fullMs"))
            figures["timings_in_frame_ms"] = frame.evaluate("() => JSON.parse(document.body.dataset.timings)")
            page.screenshot(path=str(Path(run_dir) / "map_scale.png"))
            browser.close()
    finally:
        _stop(process)
    figures["requests_leaving_loopback"] = outside
    moving = [figures[k]["median_ms"] for k in ("pan", "zoom") if "median_ms" in figures[k]]
    moving_p90 = [figures[k]["p90_ms"] for k in ("pan", "zoom") if "p90_ms" in figures[k]]
    figures["verdicts"] = {
        "open": {"s": figures["open"]["drawn_median_s"], "pass": figures["open"]["drawn_median_s"] <= TARGETS["open_s"]},
        "first_open": {"s": first_drawn, "pass": first_drawn <= TARGETS["open_s"]},
        "smooth": {"median_ms": max(moving), "p90_ms": max(moving_p90),
                   "pass": max(moving) <= TARGETS["moving_median_ms"] and max(moving_p90) <= TARGETS["moving_p90_ms"]},
        "offline": {"pass": outside == []},
    }
    figures["targets"] = TARGETS
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    write_result("map_scale" if args.pairs == 500_000 else f"map_scale_{args.pairs}", figures)


if __name__ == "__main__":
    main()

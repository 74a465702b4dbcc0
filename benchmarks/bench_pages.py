"""Every page of alignscope against a bare two-page Streamlit app, in the same run, in chromium
(Playwright, headless, Debian's chromium, loopback only).

    python -m benchmarks.bench_pages [--data demo:3000] [--rounds 3] [--profile]

Starts ``benchmarks/bare_app/app.py`` (two pages, a title, a line and a 20-row table each) with the
same Streamlit flags as ``alignscope app``, then alignscope on the AlpacaEval pairs (61,952 pairs;
``--data`` for another spec), and measures, in seconds of wall time seen by the browser:

* cold start: launching the server → the first page shown and its script finished. For alignscope
  twice: the first parse of the data file (an empty data cache) and a start with the cache filled;
* page switches: a click on each page's link → its heading shown and its script finished, over
  ``--rounds`` rounds of visiting every page (median and max; the first round is reported apart,
  since it computes each page's per-data-set work once: PCA, ISA fit, audit); the bare app switches
  between its two pages as many times;
* the Select page's subset slider (key press → "Pairs kept" changes);
* the Map with each drawer, in the same run (issue 30): the WebGL map (every completion, the
  default) and the Plotly map at "Points drawn" = its maximum (every completion of AlpacaEval),
  ``--map-rounds`` switches Data → Map each: the switch (heading shown, script finished) and the
  switch until the map is drawn (the WebGL frame's first full frame; Plotly's title drawn).
  The bare switch and the WebGL Map switch are also timed inside the page (``in_page``): a
  MutationObserver from the link's click to the heading shown and the script finished, then the next
  frame. Playwright's own waits poll, which adds ~0.06 s to every switch and clusters them ~0.1 s
  apart; the in-page time is what the app itself costs (the verdicts stay on the Playwright times).

Ratios to the bare app, and pass/fail against the targets of issues 19 and 30: cold start (cached
data) ≤ 1.5× the bare app's, every page switch ≤ 2.5× the bare app's, the switch to the WebGL Map
≤ 1.5× (issue 30), the first parse of the 62k-pair gzip ≤ 8 s, the Map at every point ≤ 3 s (the
WebGL map drawn). ``--profile`` samples the server with py-spy during one more
round and writes, per page, the functions where its script spends its time. The static-encoder
embedding of the data is computed as a job first when absent (the default encoder above 10,000
completions; ~1 min for AlpacaEval), so Map, Select and Audit show their content. Uses
``$ALIGNSCOPE_HOME`` (default ``~/.cache/alignscope``); the first-parse start uses an empty
temporary home. Writes ``results/pages.json`` (``pages_<name>.json`` for ``--data``: ``demo``, or the
file's name without its extensions).
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from benchmarks.common import SHARED_DATA, write_result

DATA = SHARED_DATA / "alpaca_eval_pairs.jsonl.gz"
BARE = Path(__file__).resolve().parent / "bare_app" / "app.py"
PAGES = ["Data", "Map", "Select", "Audit", "Train", "Scheduler", "Scaling", "Spectra", "Runs"]
TARGETS = {"cold_start_ratio": 1.5, "page_switch_ratio": 2.5, "first_parse_s": 8.0, "map_all_points_s": 3.0,
           "map_switch_ratio": 1.5}
MAP_FRAME = "iframe[title='alignscope.app.components.scattermap.scattermap']"


class _Skip(Exception):
    pass


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(command: list[str], env: dict, port: int) -> subprocess.Popen:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2).read() == b"ok":
                return process
        except OSError:
            time.sleep(0.05)
    os.killpg(process.pid, 9)
    raise RuntimeError(f"{command[:4]} did not become healthy")


def _stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, 15)
    process.wait(timeout=60)


def _bare_command(port: int) -> list[str]:
    from alignscope.cli.app import app_command

    command = app_command("127.0.0.1", port)
    command[command.index("run") + 1] = str(BARE)  # the same flags as alignscope's, another script
    return command


def _alignscope_command(port: int, data: str, root: str) -> list[str]:
    return [sys.executable, "-m", "alignscope.cli", "app", "--port", str(port), "--data", data, "--data-root", root]


IDLE = "[data-testid=stApp][data-test-script-state=notRunning]"


def _settled(page, timeout_s: float = 600) -> None:
    """Until the session's script run has finished: the app root's script state is "notRunning".
    (Streamlit's status widget appears only after a delay, so a check for it can pass while a page
    still computes; the next click would then leave that run computing in the background.)"""
    page.wait_for_selector(IDLE, state="attached", timeout=timeout_s * 1000)


def _switch(page, name: str) -> float:
    started = time.perf_counter()
    page.get_by_role("link", name=name, exact=True).first.click()
    page.get_by_role("heading", name=name, exact=True).first.wait_for(timeout=600_000)
    _settled(page)
    return round(time.perf_counter() - started, 3)


# A page switch timed by the page itself: click → heading shown and script finished → next frame.
_IN_PAGE_SWITCH = """async (name) => {
  const link = document.querySelector(`a[data-testid=stSidebarNavLink] span[label="${name}"]`).closest('a');
  const done = () => [...document.querySelectorAll('h1')].some(h => h.textContent.trim() === name)
     && document.querySelector('[data-testid=stApp][data-test-script-state=notRunning]');
  const started = performance.now();
  link.click();
  await new Promise((resolve) => {
    const observer = new MutationObserver(() => { if (done()) { observer.disconnect(); resolve(); } });
    observer.observe(document.body, {subtree: true, childList: true, attributes: true, characterData: true});
  });
  await new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));
  return (performance.now() - started) / 1000;
}"""


def _switch_in_page(page, name: str) -> float:
    _settled(page)
    time.sleep(0.15)  # the previous switch's frames and messages are done
    return round(page.evaluate(_IN_PAGE_SWITCH, name), 4)


def _cold_start(browser, command: list[str], env: dict, port: int, shown) -> tuple:
    """Launch → the first page shown and settled. ``shown(page)`` waits for the first page.
    Returns (process, page, seconds to the page, seconds until the server answered its health check)."""
    started = time.perf_counter()
    process = _launch(command, env, port)
    healthy = time.perf_counter() - started
    page = browser.new_context(viewport={"width": 1440, "height": 1000}).new_page()
    page.set_default_timeout(600_000)
    page.goto(f"http://127.0.0.1:{port}")
    shown(page)
    _settled(page)
    return process, page, round(time.perf_counter() - started, 3), round(healthy, 3)


def _stats(values: list[float]) -> dict:
    return {"median_s": round(statistics.median(values), 3), "max_s": round(max(values), 3), "n": len(values),
            "all_s": values}


def _ensure_static_embedding(data) -> str:
    """The static-encoder completion embedding of ``data`` as a succeeded embed job (what the Map,
    Select and Audit pages read); computed now when absent."""
    from alignscope.app.analysis import default_encoder
    from alignscope.jobs import JobStore

    encoder = default_encoder(data.n_pairs)
    if encoder != "static":
        return f"absent: the default encoder for {data.n_pairs:,} pairs is {encoder} (not computed here)"
    store = JobStore()
    for job in store.list_jobs(kind="embed", limit=500):
        config = job.config
        if (job.status == "succeeded" and config.get("data", {}).get("fingerprint") == data.fingerprint
                and config.get("encoder") == "static" and config.get("unit") == "completion"):
            return "static (cached job)"
    started = time.perf_counter()
    job = store.submit("embed", {"data": data.spec(), "encoder": "static", "unit": "completion"})
    status = store.wait(job, timeout=1800).status
    if status != "succeeded":
        raise SystemExit(f"the static embedding failed: {store.logs(job)[-2000:]}")
    return f"static (computed now in {time.perf_counter() - started:.0f} s)"


def _move_slider(page) -> float:
    """The Select page's subset slider one step right: key press → "Pairs kept" changed, settled."""
    metric = page.locator("[data-testid=stMetric]", has_text="Pairs kept").first
    before = metric.inner_text()
    page.get_by_role("slider").first.focus()
    started = time.perf_counter()
    page.keyboard.press("ArrowRight")
    page.wait_for_function("(b) => { const m = [...document.querySelectorAll('[data-testid=stMetric]')]"
                           ".find(e => e.innerText.includes('Pairs kept')); return m && m.innerText !== b; }",
                           arg=before)
    _settled(page)
    return round(time.perf_counter() - started, 3)


def _map_drawn(page, drawer: str, timeout_s: float = 600) -> None:
    """Until the Map shows its points: the WebGL frame's first full frame, or Plotly's title (it
    draws the title with the traces)."""
    if drawer == "webgl":
        page.wait_for_function("(sel) => { const f = document.querySelector(sel); const b = f && f.contentDocument"
                               " && f.contentDocument.body; return b && Number(b.dataset.drawn || 0) >= 1; }",
                               arg=MAP_FRAME, timeout=timeout_s * 1000)
    else:
        page.wait_for_function("() => { const t = document.querySelector('.js-plotly-plot .gtitle');"
                               " return t && t.textContent.includes('map of'); }", timeout=timeout_s * 1000)


def _set_drawer(page, drawer: str) -> None:
    """On the Map: the WebGL map, or the Plotly map at its most points (every AlpacaEval completion)."""
    toggle = page.get_by_text("Plotly (sampled)", exact=True).first
    plotly_on = page.locator(".js-plotly-plot").count() > 0
    if (drawer == "plotly") != plotly_on:
        toggle.click()
        _settled(page)
    if drawer == "plotly":
        page.get_by_role("slider").first.focus()  # "Points drawn"
        page.keyboard.press("End")
        # every point, or the slider's most (150,000) where the data has more
        page.wait_for_function("() => { const t = document.querySelector('.js-plotly-plot .gtitle');"
                               " return t && (!t.textContent.includes(' drawn')"
                               " || t.textContent.includes('150,000 drawn')); }", timeout=600_000)
    _settled(page)
    _map_drawn(page, drawer)


def _map_switches(page, drawer: str, rounds: int) -> dict:
    """Data → Map, ``rounds`` times: seconds to the Map's script finished, and until it has drawn."""
    _switch(page, "Map")
    _set_drawer(page, drawer)
    switch, drawn = [], []
    for _ in range(rounds):
        _switch(page, "Data")
        started = time.perf_counter()
        page.get_by_role("link", name="Map", exact=True).first.click()
        page.get_by_role("heading", name="Map", exact=True).first.wait_for(timeout=600_000)
        _settled(page)
        switch.append(round(time.perf_counter() - started, 3))
        _map_drawn(page, drawer)
        drawn.append(round(time.perf_counter() - started, 3))
    timed = {"page_switch": _stats(switch), "until_drawn": _stats(drawn)}
    if drawer == "webgl":
        in_page = []
        for _ in range(rounds):
            _switch(page, "Data")
            in_page.append(_switch_in_page(page, "Map"))
            _map_drawn(page, drawer)
        timed["page_switch_in_page"] = _stats(in_page)
    return timed


def _profile_round(page, pid: int, out: Path, with_widgets: bool) -> dict:
    """py-spy (raw collapsed stacks) on the server during one round of page switches (and slider
    moves, map draws); per page, the seconds its script ran and the functions with most time."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(spy).exists():
        return {"skipped": "py-spy is not installed (pip install py-spy)"}
    raw = out / "pages_profile.txt"
    recorder = subprocess.Popen([spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw",
                                 "--subprocesses", "--output", str(raw), "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.5)
    for name in PAGES[1:] + PAGES[:1]:
        _switch(page, name)
    if with_widgets:  # three slider moves on Select, the Map with each drawer
        _switch(page, "Select")
        for _ in range(3):
            _move_slider(page)
        _map_switches(page, "plotly", 1)
        _map_switches(page, "webgl", 1)
    time.sleep(0.5)
    recorder.send_signal(2)
    try:
        _, err = recorder.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        recorder.kill()
        return {"skipped": "py-spy did not stop"}
    if not raw.exists():
        return {"skipped": f"py-spy wrote nothing: {err.decode(errors='replace')[-300:]}"}
    return _summarise_stacks(raw.read_text(errors="replace"), rate=200)


BORING = ("threading.py", "thread.py", "script_runner.py", "exec_code.py", "page.py", "<frozen runpy>",
          "metrics_util.py", "navigation.py")


def _frame(frame: str) -> tuple[str, str]:
    """'func (/path/file.py:12)' → ('func', 'file.py')."""
    function, _, where = frame.partition(" (")
    return function, where.rstrip(")").rsplit(":", 1)[0].rsplit("/", 1)[-1]


def _summarise_stacks(text: str, rate: int, top: int = 10) -> dict:
    """Collapsed stacks → per page (the view module in the stack): seconds sampled, the functions
    with most inclusive time and most self time. Runs outside a page (main.py, Streamlit's end of
    run) and other server threads are reported apart."""
    views = {f"{name.lower()}.py": name for name in PAGES}
    per_page: dict[str, dict] = {}
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = [_frame(f) for f in stack.split(";") if not f.startswith("process ")]
        page = next((views[file] for function, file in frames if function == "<module>" and file in views), None)
        if page is None:
            page = ("script runner outside a page (main.py, end of run)"
                    if any(file == "script_runner.py" for _, file in frames) else "server, other threads")
        entry = per_page.setdefault(page, {"samples": 0, "inclusive": {}, "self": {}})
        entry["samples"] += int(count)
        names = [f"{function} ({file})" for function, file in frames if file not in BORING]
        for name in dict.fromkeys(names):
            entry["inclusive"][name] = entry["inclusive"].get(name, 0) + int(count)
        if frames:
            leaf = f"{frames[-1][0]} ({frames[-1][1]})"
            entry["self"][leaf] = entry["self"].get(leaf, 0) + int(count)
    out = {}
    for page, entry in sorted(per_page.items(), key=lambda kv: -kv[1]["samples"]):
        def best(counts: dict) -> dict:
            return {name: round(n / rate, 3) for name, n in sorted(counts.items(), key=lambda kv: -kv[1])[:top]}
        out[page] = {"sampled_s": round(entry["samples"] / rate, 3), "top_inclusive_s": best(entry["inclusive"]),
                     "top_self_s": best(entry["self"])}
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_pages")
    parser.add_argument("--data", help="a data spec instead of the AlpacaEval pairs (e.g. demo:3000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--map-rounds", type=int, default=8, help="Data → Map switches per map drawer")
    parser.add_argument("--only-map", action="store_true",
                        help="a short check: the bare app, one cached start and the Map's drawers only "
                             "(no first parse, no round over every page, no slider)")
    parser.add_argument("--profile", action="store_true", help="sample the server with py-spy for one more round")
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None or (args.data is None and not DATA.exists()):
        print(f"skipped: needs chromium and {DATA}")
        return
    from playwright.sync_api import sync_playwright

    from alignscope import settings
    from alignscope.data.preferences import load_preferences

    spec, root = (args.data, os.getcwd()) if args.data else (str(DATA), str(SHARED_DATA))
    data = load_preferences(spec)  # fills the data cache of $ALIGNSCOPE_HOME (the cached start reads it)
    embedding = _ensure_static_embedding(data)
    count_text = f"{data.n_pairs:,}"
    figures: dict = {"data": os.path.basename(spec), "n_pairs": data.n_pairs, "embedding": embedding,
                     "home": str(settings.home()), "rounds": args.rounds,
                     "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    env = dict(os.environ)
    with sync_playwright() as playwright, tempfile.TemporaryDirectory() as fresh_home:
        browser = playwright.chromium.launch(executable_path=chromium, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"])

        # ------------------------------------------------------------------ the bare app
        bare_cold, bare_healthy = [], []
        for _ in range(2):
            port = _free_port()
            process, page, seconds, healthy = _cold_start(
                browser, _bare_command(port), env, port,
                lambda p: p.get_by_role("heading", name="One", exact=True).first.wait_for())
            bare_cold.append(seconds)
            bare_healthy.append(healthy)
            if _ != 1:
                page.context.close()
                _stop(process)
        bare_switch = []
        try:
            _switch(page, "Two")  # warm-up: the first switch loads the page's code
            for _ in range(args.rounds * len(PAGES) // 2 + 1):
                bare_switch += [_switch(page, "One"), _switch(page, "Two")]
            bare_in_page = []
            for _ in range(args.map_rounds):
                bare_in_page += [_switch_in_page(page, "One"), _switch_in_page(page, "Two")]
        finally:
            page.context.close()
            _stop(process)
        figures["bare"] = {"cold_start": _stats(bare_cold), "server_healthy": _stats(bare_healthy),
                           "page_switch": _stats(bare_switch), "page_switch_in_page": _stats(bare_in_page)}
        print("bare", figures["bare"]["cold_start"]["median_s"], figures["bare"]["page_switch"]["median_s"], flush=True)

        # ------------------------------------------------- alignscope: first parse of the file
        shown = lambda p: p.get_by_text(count_text).first.wait_for()  # noqa: E731
        if (args.data is None or not args.data.startswith("demo")) and not args.only_map:
            port = _free_port()
            process, page, seconds, _ = _cold_start(browser, _alignscope_command(port, spec, root),
                                                    {**env, "ALIGNSCOPE_HOME": fresh_home}, port, shown)
            page.context.close()
            _stop(process)
            figures["alignscope_cold_start_first_parse_s"] = seconds

        # ------------------------------------------------------ alignscope: cached data
        cold, healthy_s = [], []
        for attempt in range(1 if args.only_map else 2):
            port = _free_port()
            process, page, seconds, healthy = _cold_start(browser, _alignscope_command(port, spec, root), env,
                                                          port, shown)
            cold.append(seconds)
            healthy_s.append(healthy)
            if attempt != (0 if args.only_map else 1):
                page.context.close()
                _stop(process)
        try:
            visited = ["Map", "Data"] if args.only_map else PAGES[1:] + PAGES[:1]
            first_visit = {name: _switch(page, name) for name in visited}
            switches: dict[str, list[float]] = {name: [] for name in visited}
            for _ in range(args.rounds):
                for name in visited:
                    switches[name].append(_switch(page, name))
            figures["alignscope"] = {"cold_start_cached_data": _stats(cold), "server_healthy": _stats(healthy_s), "first_visit_s": first_visit,
                                     "page_switch": {name: _stats(values) for name, values in switches.items()}}
            if embedding.startswith("absent"):
                ours_skipped = "no embedding: the slider and the map are not measured"
                figures["alignscope"]["select_slider"] = figures["alignscope"]["map_drawers"] = ours_skipped
                raise _Skip
            # The Select page's slider and the Map at every point.
            if not args.only_map:
                _switch(page, "Select")
                figures["alignscope"]["select_slider"] = _stats([_move_slider(page) for _ in range(5)])
            # The Map with each drawer, in the same run: Plotly at every point, then WebGL (left on).
            figures["alignscope"]["map_drawers"] = {drawer: _map_switches(page, drawer, args.map_rounds)
                                                    for drawer in ("plotly", "webgl")}
            figures["alignscope"]["map_points"] = 2 * data.n_pairs
        except _Skip:
            pass
        try:
            _switch(page, "Data")
            if args.profile:
                figures["profile"] = _profile_round(page, process.pid, Path(fresh_home),
                                                    with_widgets=not embedding.startswith("absent"))
        finally:
            page.context.close()
            _stop(process)
        browser.close()

    # ------------------------------------------------------------------------------- verdicts
    bare_switch_s = figures["bare"]["page_switch"]["median_s"]
    bare_cold_s = figures["bare"]["cold_start"]["median_s"]
    ours = figures["alignscope"]
    ratios = {name: {"median_ratio": round(s["median_s"] / bare_switch_s, 2),
                     "max_ratio": round(s["max_s"] / bare_switch_s, 2),
                     "pass": s["median_s"] / bare_switch_s <= TARGETS["page_switch_ratio"]}
              for name, s in ours["page_switch"].items()}
    cold_ratio = ours["cold_start_cached_data"]["median_s"] / bare_cold_s
    verdicts = {"page_switch_vs_bare": ratios,
                "cold_start_vs_bare": {"ratio": round(cold_ratio, 2), "pass": cold_ratio <= TARGETS["cold_start_ratio"]}}
    if isinstance(ours.get("map_drawers"), dict):
        drawers = ours["map_drawers"]
        verdicts["map_drawers_vs_bare_switch"] = {
            drawer: {"page_switch_ratio": round(d["page_switch"]["median_s"] / bare_switch_s, 2),
                     "until_drawn_ratio": round(d["until_drawn"]["median_s"] / bare_switch_s, 2),
                     "until_drawn_median_s": d["until_drawn"]["median_s"]} for drawer, d in drawers.items()}
        webgl = verdicts["map_drawers_vs_bare_switch"]["webgl"]
        verdicts["map_switch_webgl"] = {"ratio": webgl["page_switch_ratio"],
                                        "pass": webgl["page_switch_ratio"] <= TARGETS["map_switch_ratio"]}
        if "page_switch_in_page" in drawers["webgl"] and "page_switch_in_page" in figures["bare"]:
            verdicts["map_switch_webgl"]["in_page_ratio"] = round(
                drawers["webgl"]["page_switch_in_page"]["median_s"] / figures["bare"]["page_switch_in_page"]["median_s"], 2)
        verdicts["map_all_points"] = {"median_s": webgl["until_drawn_median_s"],
                                      "pass": webgl["until_drawn_median_s"] <= TARGETS["map_all_points_s"]}
        if "select_slider" in ours:
            verdicts["select_slider_vs_bare_switch"] = round(ours["select_slider"]["median_s"] / bare_switch_s, 2)
    if "alignscope_cold_start_first_parse_s" in figures:
        verdicts["first_parse"] = {"s": figures["alignscope_cold_start_first_parse_s"],
                                   "pass": figures["alignscope_cold_start_first_parse_s"] <= TARGETS["first_parse_s"]}
    figures["verdicts"] = verdicts
    figures["targets"] = TARGETS
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    name = "pages" if args.data is None else "pages_" + Path(args.data.split(":")[0]).name.split(".")[0]
    write_result(f"{name}_map" if args.only_map else name, figures)


if __name__ == "__main__":
    main()

"""A new user's first look at a data set the product has never seen: ``python -m
benchmarks.bench_first_look [--pairs 3000] [--minilm-pairs 100]``.

Issue 25 item 7. The data: a seeded sample of ``--pairs`` AlpacaEval pairs whose prompts are
tagged with this run's time, so that no cache of any home can know them (a new fingerprint, new
texts). Every step starts from an empty ``ALIGNSCOPE_HOME``; the static model comes from
``ALIGNSCOPE_MODELS`` as set-up leaves it (its one-time distillation is a set-up step, not timed).

1. ``alignscope embed DATA --json`` with no encoder flag (the default a user gets): wall time of the
   command, target ≤ 60 s. The obvious alternative in the same run: ``--encoder minilm`` on the
   first ``--minilm-pairs`` pairs of the same file, its time (model load included, so an upper
   bound) carried to ``--pairs`` (MiniLM on every pair takes many minutes on 2 cores).
2. ``alignscope app --data DATA`` in chromium (Playwright, loopback only): from the launch, the
   Data page shown; then Map (its WebGL frame's first full frame), Select (the "Pairs kept"
   metric) and Audit ("Flagged pairs"), each visited once in that order, with no click beyond the
   page link: seconds from the click to the first result, and from the launch. Target: each page's
   first result ≤ 30 s. Beside them, a bare Streamlit page's cold start in the same run.

Writes ``benchmarks/results/first_look.json``.
"""
from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from benchmarks.bench_pages import (MAP_FRAME, _bare_command, _cold_start, _free_port, _map_drawn, _settled,
                                    _stop)
from benchmarks.bench_scale import _run
from benchmarks.common import SHARED_DATA, write_result

DATA = SHARED_DATA / "alpaca_eval_pairs.jsonl.gz"
TARGETS = {"embed_cli_s": 60.0, "first_result_s": 30.0}


def write_sample(path: Path, pairs: int, tag: str) -> None:
    """``pairs`` seeded AlpacaEval rows, prompts tagged so that their texts and fingerprint are new."""
    with gzip.open(DATA, "rt", encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    keep = np.sort(np.random.default_rng(int(tag[-6:])).choice(len(rows), pairs, replace=False))
    with gzip.open(path, "wt", encoding="utf-8") as out:
        for i in keep:
            row = dict(rows[i])
            row["prompt"] = f"{row['prompt']} [{tag}]"
            out.write(json.dumps(row) + "\n")


def first_result(page, name: str) -> float:
    """Click a page's link → its first result shown (no other click)."""
    started = time.perf_counter()
    page.get_by_role("link", name=name, exact=True).first.click()
    page.get_by_role("heading", name=name, exact=True).first.wait_for()
    if name == "Map":
        page.locator(MAP_FRAME).first.wait_for()
        _map_drawn(page, "webgl")
    elif name == "Select":
        page.locator("[data-testid=stMetric]", has_text="Pairs kept").first.wait_for()
    else:
        page.get_by_text("Flagged pairs").first.wait_for()
    return round(time.perf_counter() - started, 2)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_first_look")
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--minilm-pairs", type=int, default=100)
    args = parser.parse_args(argv)
    chromium = shutil.which("chromium")
    if chromium is None or not DATA.exists():
        print(f"skipped: needs chromium and {DATA}")
        return
    from playwright.sync_api import sync_playwright

    tag = time.strftime("first-look-%Y%m%d%H%M%S")
    figures: dict = {"pairs": args.pairs, "tag": tag, "targets": TARGETS,
                     "load_average_before": [round(x, 2) for x in os.getloadavg()]}
    with tempfile.TemporaryDirectory() as work:
        work_path = Path(work)
        data = work_path / "pairs.jsonl.gz"
        write_sample(data, args.pairs, tag)
        small = work_path / "first.jsonl.gz"
        with gzip.open(data, "rt") as src, gzip.open(small, "wt") as dst:
            for _, line in zip(range(args.minilm_pairs), src):
                dst.write(line)

        # 1. the CLI embedding, default encoder, empty home; MiniLM on a few pairs beside it
        env = {**os.environ, "ALIGNSCOPE_HOME": str(work_path / "home-cli")}
        embed_s = _run(["embed", str(data), "--out", str(work_path / "e.npy"), "--json"], env)["wall_s"]
        minilm_s = _run(["embed", str(small), "--encoder", "minilm", "--out", str(work_path / "m.npy"), "--json"],
                        env)["wall_s"]
        minilm_full = round(minilm_s * args.pairs / args.minilm_pairs, 1)
        figures["embed_cli"] = {"command": "alignscope embed DATA --json (no encoder flag)", "seconds": embed_s,
                                "minilm_seconds_on_first_pairs": minilm_s, "minilm_pairs": args.minilm_pairs,
                                "minilm_seconds_carried_to_all_pairs": minilm_full,
                                "ratio_minilm_vs_default": round(minilm_full / embed_s, 1),
                                "pass": embed_s <= TARGETS["embed_cli_s"]}
        print("embed", figures["embed_cli"], flush=True)

        # 2. the app in chromium, empty home: Data, then Map, Select, Audit
        env = {**os.environ, "ALIGNSCOPE_HOME": str(work_path / "home-app")}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=[
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-component-update", "--disable-sync"])
            port = _free_port()
            process, page, bare_s, _ = _cold_start(
                browser, _bare_command(port), env, port,
                lambda p: p.get_by_role("heading", name="One", exact=True).first.wait_for())
            page.context.close()
            _stop(process)
            port = _free_port()
            launched = time.perf_counter()
            command = [sys.executable, "-m", "alignscope.cli", "app", "--port", str(port), "--data", str(data),
                       "--data-root", work]
            process, page, data_s, _ = _cold_start(browser, command, env, port,
                                                   lambda p: p.get_by_text(f"{args.pairs:,}").first.wait_for())
            try:
                pages = {}
                for name in ("Map", "Select", "Audit"):
                    pages[name] = {"from_click_s": first_result(page, name),
                                   "from_launch_s": round(time.perf_counter() - launched, 2)}
                    _settled(page)
                    print(name, pages[name], flush=True)
            finally:
                page.context.close()
                _stop(process)
                browser.close()
        figures["app"] = {"bare_cold_start_s": bare_s, "data_page_s": data_s, "pages": pages,
                          "pass": all(p["from_click_s"] <= TARGETS["first_result_s"] for p in pages.values())}
    figures["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    write_result("first_look", figures)


if __name__ == "__main__":
    main()

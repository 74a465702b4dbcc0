"""The Map and Select pages on the full AlpacaEval pairs (61,952 pairs, 123,904 completions), through
Streamlit's AppTest (server-side script time: loading, ISA, figures; no browser).

    python -m benchmarks.bench_app_alpaca

Needs ../shared/data/alpaca_eval_pairs.jsonl.gz and its MiniLM completion embeddings in the
embedding cache of ``$ALIGNSCOPE_HOME`` (``alignscope embed DATA --out …`` computes them; this
benchmark then records an ``embed`` job, which hits that cache). Records, in seconds: first run of
the app on the data, the Map page (PCA, colour by label and by ISA score), the Select page cold
(ISA on every completion) and warm, and subset-slider moves. Writes ``results/app_alpaca.json``.
"""
from __future__ import annotations

import os
import time

from benchmarks.common import SHARED_DATA, peak_rss_mib, write_result

DATA = SHARED_DATA / "alpaca_eval_pairs.jsonl.gz"
MAIN = os.path.join(os.path.dirname(__file__), "..", "app", "main.py")


def _timed(at, action) -> float:
    started = time.perf_counter()
    action()
    elapsed = time.perf_counter() - started
    if at.exception:
        raise SystemExit(f"page error: {[e.value for e in at.exception]}")
    return round(elapsed, 3)


def main() -> None:
    if not DATA.exists():
        print(f"skipped: {DATA} is absent")
        return
    from streamlit.testing.v1 import AppTest

    from alignscope.data.preferences import load_preferences
    from alignscope.embed.encoders import embed
    from alignscope.jobs import JobStore

    os.environ["ALIGNSCOPE_DATA_ROOT"] = str(SHARED_DATA)
    os.environ["ALIGNSCOPE_INITIAL_DATA"] = str(DATA)
    data = load_preferences(str(DATA))
    started = time.perf_counter()
    emb = embed(data, encoder="minilm", unit="completion", progress=False)
    if not emb.from_cache:
        print("note: the embeddings were not cached; they were computed now")
    store = JobStore()
    job = store.submit("embed", {"data": data.spec(), "encoder": "minilm", "unit": "completion"})
    status = store.wait(job, timeout=3600).status
    assert status == "succeeded", store.logs(job)
    figures = {"n_pairs": data.n_pairs, "n_completions": int(len(emb.matrix)),
               "embed_job_from_cache_s": round(time.perf_counter() - started, 2)}
    at = AppTest.from_file(MAIN, default_timeout=900)
    figures["app_first_run_s"] = _timed(at, at.run)
    figures["map_pca_s"] = _timed(at, lambda: at.switch_page("views/map.py").run())
    figures["map_colour_isa_s"] = _timed(at, lambda: at.selectbox(key="map_colour").set_value(
        next(o for o in at.selectbox(key="map_colour").options if "ISA" in o)).run())  # the WebGL map: every point
    at.toggle(key="map_plotly").set_value(True).run()  # the Plotly fallback at its most points
    figures["map_plotly_all_points_s"] = _timed(
        at, lambda: at.select_slider(key="map_max_points").set_value(150_000).run())
    figures["select_cold_s"] = _timed(at, lambda: at.switch_page("views/select.py").run())
    figures["select_warm_s"] = _timed(at, lambda: at.switch_page("views/select.py").run())
    moves = []
    for percent in (3.5, 10.0, 1.0, 25.0):
        moves.append(_timed(at, lambda p=percent: at.slider(key="select_percent").set_value(p).run()))
    figures["select_slider_moves_s"] = moves
    kept = {m.label: m.value for m in at.metric}
    figures["select_metrics_at_25pct"] = kept
    figures["peak_rss_mib"] = round(peak_rss_mib(), 1)
    write_result("app_alpaca", figures)


if __name__ == "__main__":
    main()

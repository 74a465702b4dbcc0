"""AppTests of the Map and Select pages on demo data, with a real embedding job."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from alignscope.jobs import JobStore
from alignscope.select.selection import Selection
from conftest import ROOT, wait_for_first_look

MAIN = str(ROOT / "app" / "main.py")


@pytest.fixture(scope="module")
def embedded_home(tmp_path_factory):
    """One ALIGNSCOPE_HOME whose embedding job for demo:120 has run (through the Select page)."""
    home = tmp_path_factory.mktemp("map-select-home")
    root = tmp_path_factory.mktemp("map-select-root")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALIGNSCOPE_HOME", str(home))
        patch.setenv("ALIGNSCOPE_DATA_ROOT", str(root))
        patch.setenv("ALIGNSCOPE_INITIAL_DATA", "demo:120")
        at = AppTest.from_file(MAIN, default_timeout=120).run()
        at.switch_page("views/select.py").run()
        wait_for_first_look(at)
    return home, root


@pytest.fixture
def app(embedded_home, monkeypatch):
    home, root = embedded_home
    monkeypatch.setenv("ALIGNSCOPE_HOME", str(home))
    monkeypatch.setenv("ALIGNSCOPE_DATA_ROOT", str(root))
    monkeypatch.setenv("ALIGNSCOPE_INITIAL_DATA", "demo:120")
    return AppTest.from_file(MAIN, default_timeout=120).run(), root


def _length(values) -> int:
    """Plotly ≥ 6 sends numpy arrays as typed arrays {"dtype", "bdata" (base64)}."""
    if isinstance(values, dict) and "bdata" in values:
        import base64

        import numpy as np

        return len(base64.b64decode(values["bdata"])) // np.dtype(values["dtype"]).itemsize
    return len(values)


def _metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def test_select_slider_updates_counts_and_anatomy(app):
    at, _ = app
    at.switch_page("views/select.py").run()
    assert not at.exception, [e.value for e in at.exception]
    # The size is in pairs (of 120), whatever the unit: 5 % keeps 6 pairs, named so.
    assert _metric(at, "Pairs kept") == "6 of 120" and _metric(at, "Share of pairs") == "5.0%"
    assert at.slider(key="select_percent").label == "Subset size (% of pairs)"
    # Lazy tabs: the first ("What it keeps") is built, the others wait until they are opened.
    titles = " ".join(str(c.proto.spec) for c in at.get("plotly_chart"))
    assert "Chosen-response length" in titles and "Planted defects" in titles
    assert "ISA keep-score" not in titles and not any("ISA anatomy" in h.value for h in at.subheader)
    at.session_state["select_tab"] = "Score anatomy"
    at.run()
    assert any("ISA anatomy" in h.value for h in at.subheader)
    titles = " ".join(str(c.proto.spec) for c in at.get("plotly_chart"))
    assert "Scaled log-likelihood" in titles and "ISA keep-score" in titles and "Planted defects" not in titles
    assert '"completions"' in titles  # the anatomy counts completions, the points ISA scores
    at.session_state["select_tab"] = "Use or export"
    at.run()
    assert any(t.value == "isa-6pairs" for t in at.text_input)
    at.slider(key="select_percent").set_value(25.0).run()
    assert _metric(at, "Pairs kept") == "30 of 120"
    assert not any(m.label == "Points kept" for m in at.metric)


def test_the_isa_subset_says_how_much_of_it_depends_on_the_seed(app):
    """Two more seeds on a click (then kept on disk: a new session shows it at once), the share of the
    subset every seed keeps, the range over two seeds, random subsets of the same size beside them."""
    import re

    at, _ = app
    at.switch_page("views/select.py").run()
    at.session_state["select_tab"] = "Score anatomy"
    at.run()
    assert not any("kept under all" in m.value for m in at.markdown)
    at.button(key="select_seed_check").click().run()
    assert not at.exception, [e.value for e in at.exception]
    found = next(m.value for m in at.markdown if "kept under all" in m.value)
    every, low, high = map(int, re.search(r"\*\*(\d+)% of the subset is kept under all three seeds\*\* \(0, 1, 2\);"
                                           r" any two of them share (\d+)%–(\d+)%", found).groups())
    assert 0 <= every <= low <= high <= 100
    assert "Independent random subsets of this size would share" in found
    titles = " ".join(str(c.proto.spec) for c in at.get("plotly_chart"))
    assert "does not depend on the seed" in titles
    at.slider(key="select_percent").set_value(100.0).run()  # every pair: every seed keeps the whole subset
    assert "**100% of the subset is kept under all three seeds**" in next(
        m.value for m in at.markdown if "kept under all" in m.value)

    again = AppTest.from_file(MAIN, default_timeout=120).run()
    again.switch_page("views/select.py").run()
    again.session_state["select_tab"] = "Score anatomy"
    again.run()
    assert not any(b.key == "select_seed_check" for b in again.button)  # read from the cache, no click
    assert any("kept under all three seeds" in m.value for m in again.markdown)


def test_other_methods_and_comparison(app):
    at, _ = app
    at.switch_page("views/select.py").run()
    at.selectbox(key="select_method").set_value("kcenter").run()
    assert not at.exception and _metric(at, "Pairs kept") == "6 of 120"
    assert not any("ISA anatomy" in h.value for h in at.subheader)
    assert not any("Jaccard" in str(c.proto.spec) for c in at.get("plotly_chart"))  # off until asked for
    # "Compare by" is chosen in the first tab, used by the Compare tab and kept while it is open.
    group = at.selectbox(key="select_group")
    other = next(option for option in group.options if option != group.value)
    group.set_value(other).run()
    at.session_state["select_tab"] = "Compare methods"
    at.run()
    assert any("Jaccard" in str(c.proto.spec) for c in at.get("plotly_chart"))
    assert any(f"Share of each {other}" in c.value for c in at.caption)
    at.session_state["select_tab"] = "What it keeps"
    at.run()
    assert at.selectbox(key="select_group").value == other


@pytest.mark.slow
def test_pair_methods_rank_pairs_on_the_select_page(app):
    """length, margin and rds are offered, rank the 120 pairs (not the 240 completions), show their
    score and keep the slider's share of pairs; margin on the page's own features says it is circular."""
    at, _ = app
    at.switch_page("views/select.py").run()
    at.session_state["select_tab"] = "Score anatomy"
    offered = {label.split(" ")[0] for label in at.selectbox(key="select_method").options}  # "length (…)"
    assert {"length", "margin", "rds", "lm-margin"} <= offered
    at.selectbox(key="select_method").set_value("length").run()
    assert not at.exception, [e.value for e in at.exception]
    assert _metric(at, "Pairs kept") == "6 of 120"
    assert any("length: what the score is" in h.value for h in at.subheader)
    specs = " ".join(str(c.proto.spec) for c in at.get("plotly_chart"))
    assert "rejected words: kept vs dropped pairs" in specs  # the gap histogram
    at.selectbox(key="select_length_by").set_value("chosen").run()  # a widget generated from the option
    assert not at.exception and _metric(at, "Pairs kept") == "6 of 120"
    at.selectbox(key="select_method").set_value("margin").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("circular" in w.value.lower() for w in at.warning), [w.value for w in at.warning]
    at.selectbox(key="select_method").set_value("rds").run()
    assert not at.exception, [e.value for e in at.exception]
    at.slider(key="select_percent").set_value(25.0).run()
    assert _metric(at, "Pairs kept") == "30 of 120"
    at.session_state["select_tab"] = "Use or export"
    at.run()
    at.button(key="select_use").click().run()
    table = Selection.read(at.session_state["alignscope_selection"]["path"])
    assert (table.method, table.unit, int(table["selected"].sum())) == ("rds", "pair", 30)
    at.text_input(key="select_rds_target").set_value("../outside.txt").run()
    assert any("outside the data root" in e.value for e in at.error)


def test_use_for_training_and_export_inside_the_data_root(app):
    at, root = app
    at.switch_page("views/select.py").run()
    at.session_state["select_tab"] = "Use or export"
    at.run()
    at.button(key="select_use").click().run()
    assert any("is the active selection" in s.value for s in at.success)
    active = at.session_state["alignscope_selection"]
    table = Selection.read(active["path"])
    assert len(table.pairs("any")) == active["n_pairs"] == 6 and table.config["method"] == "isa"
    assert table.config["k_pairs"] == 6 and table.config["pair_fraction"] == 0.05

    def target():
        return next(t for t in at.text_input if t.label == "Path relative to the data root")

    assert target().value == f"exports/{at.text_input(key=target().key.replace('select_target_', 'select_name_')).value}.jsonl"
    target().set_value("exports/isa.jsonl")
    next(b for b in at.button if b.label == "Export").click().run()
    exported = [json.loads(line) for line in (root / "exports" / "isa.jsonl").read_text().splitlines()]
    assert exported and {"prompt", "chosen", "rejected", "topic", "source"} <= set(exported[0])  # metadata kept
    provenance = json.loads((root / "exports" / "isa.jsonl.selection_config.json").read_text())
    assert provenance["selection"]["pair_fraction"] == 0.05  # what was asked for, a share of the pairs

    target().set_value("exports/isa.jsonl")  # a second export to the same file needs the explicit choice
    next(b for b in at.button if b.label == "Export").click().run()
    assert any("tick 'Replace the file if it exists'" in e.value for e in at.error)
    at.checkbox(key="select_overwrite").check()
    target().set_value("exports/isa.jsonl")
    next(b for b in at.button if b.label == "Export").click().run()
    assert any(s.value.startswith("Exported") for s in at.success)

    target().set_value("../escape.jsonl")
    next(b for b in at.button if b.label == "Export").click().run()
    assert any("outside the data root" in e.value for e in at.error)
    assert not (root.parent / "escape.jsonl").exists()


def _map_args(at) -> dict:
    """The WebGL map's arguments: JSON ones, and the byte length of each binary one."""
    proto = at.get("component_instance")[0].proto
    args = json.loads(proto.json_args)
    args.update({a.key: len(a.bytes) for a in proto.special_args})
    return args


def _legend_labels(at) -> set:
    return {entry["label"] for entry in _map_args(at)["legend"]["entries"]}


def test_map_draws_every_point_and_colours(app):
    at, _ = app
    at.switch_page("views/map.py").run()
    assert not at.exception, [e.value for e in at.exception]
    args = _map_args(at)
    assert args["mode"] == "points" and args["xy"] == 240 * 2 * 4  # every point, float32 x and y
    assert args["layout"] == "completion" and args["ids"] is None  # pair and side follow from the row
    assert args["codes"] == 240 and not at.get("plotly_chart")  # one byte of colour per point
    assert _legend_labels(at) == {"chosen", "rejected"}
    at.selectbox(key="map_colour").set_value("GMM component").run()
    assert _legend_labels(at) <= {"component 0", "component 1"}
    at.selectbox(key="map_colour").set_value("topic").run()
    assert len(_legend_labels(at)) == 8


def test_map_regions_are_named_and_can_be_hidden(app):
    """The region labels: on by default, inside the map's coordinate box, named by the texts' words."""
    at, _ = app
    at.switch_page("views/map.py").run()
    regions = _map_args(at)["regions"]
    assert 1 <= len(regions) <= 4  # 240 points: default_region_count gives 4 (unnamed ones are dropped)
    assert all(-1.01 <= r["x"] <= 1.01 and -1.01 <= r["y"] <= 1.01 and r["text"] for r in regions)
    assert sum(r["count"] for r in regions) <= 240
    at.toggle(key="map_regions").set_value(False).run()
    assert _map_args(at)["regions"] == []
    assert _map_args(at)["contours"] == []  # density contours: off until asked for
    at.toggle(key="map_density").set_value(True).run()
    shares = [c["share"] for c in _map_args(at)["contours"]]
    assert shares == [0.25, 0.5, 0.75] and any(c["lines"] for c in _map_args(at)["contours"])


def test_the_plotly_map_stays_as_the_fallback(app):
    at, _ = app
    at.switch_page("views/map.py").run()
    at.toggle(key="map_plotly").set_value(True).run()
    spec = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert sum(_length(trace["x"]) for trace in spec["data"]) == 240
    assert {trace["name"] for trace in spec["data"]} == {"chosen", "rejected"}
    assert all(trace["type"] == "scattergl" for trace in spec["data"])
    assert not at.get("component_instance")
    hover = spec["data"][0]["text"][0]
    assert hover.startswith("#") and "PROMPT:" in hover


def test_the_colour_choice_survives_a_visit_to_the_unfinished_umap_map(app):
    """Choosing UMAP before it is computed shows the PCA map and the button to compute UMAP; the
    "Colour by" box and the map keep the chosen colouring throughout."""
    at, _ = app
    at.switch_page("views/map.py").run()
    at.selectbox(key="map_colour").set_value("GMM component").run()
    at.radio(key="map_method").set_value("UMAP").run()
    assert any("Compute UMAP map" == b.label for b in at.button)
    assert any(c.value.startswith("PCA map of 240") for c in at.caption)  # PCA while UMAP is not there
    assert _legend_labels(at) <= {"component 0", "component 1"}
    at.radio(key="map_method").set_value("PCA").run()
    assert at.selectbox(key="map_colour").value == "GMM component"
    assert any(c.value.endswith("coloured by GMM component.") for c in at.caption)
    assert _legend_labels(at) <= {"component 0", "component 1"}


def test_search_selects_pairs_that_become_the_active_selection(app):
    at, _ = app
    at.switch_page("views/map.py").run()
    at.text_input(key="map_search").set_value("the").run()
    message = next(s.value for s in at.success if s.value.startswith("Selected on the map (search 'the')"))
    n_pairs = int(message.split(": ")[1].split(" pairs")[0].replace(",", ""))
    assert 0 < n_pairs <= 120 and _map_args(at)["selected"] == 4 * 2 * n_pairs  # both completions, uint32
    at.text_input(key="map_subset_name").set_value("with-the")
    at.button(key="map_keep").click().run()
    active = at.session_state["alignscope_selection"]
    selection = Selection.read(active["path"])
    assert selection.config["method"] == "manual" and selection.config["how"] == "search 'the'"
    assert int(selection["selected"].sum()) == n_pairs == active["n_selected"]


@pytest.mark.parametrize("page", ["views/map.py", "views/data.py"])
def test_a_page_prefetches_the_select_pages_ranking(app, embedded_home, page):
    """After the Map is drawn, or on the Data page when the embeddings exist, ISA's ranking at the
    Select page's defaults is made in the background; the Select page then reads it (no second
    computation, no new cache file)."""
    import shutil
    import threading

    rankings = embedded_home[0] / "cache" / "rankings"
    shutil.rmtree(rankings, ignore_errors=True)
    at, _ = app
    at.switch_page(page).run()
    for thread in threading.enumerate():
        if thread.name.startswith("alignscope-prefetch-"):
            thread.join(timeout=120)
    made = {path.name: path.stat().st_mtime_ns for path in rankings.glob("isa-*.parquet")}
    assert len(made) == 1
    at.switch_page("views/select.py").run()
    assert not at.exception and _metric(at, "Pairs kept") == "6 of 120"
    assert {path.name: path.stat().st_mtime_ns for path in rankings.glob("*.parquet")} == made


def test_the_selection_breaks_down_by_a_column_and_narrows(app):
    """Linked metadata: the selected region's share per source beside all data; narrowing it to one
    source keeps exactly the selected pairs of that source (on the map too)."""
    at, _ = app
    at.switch_page("views/map.py").run()
    at.text_input(key="map_search").set_value("the").run()
    before = at.session_state["map_selection"]["pairs"]
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert chart["layout"]["title"]["text"] == "Share per source: all data vs subset"
    source = at.multiselect(key="map_sel_keep_source").options[0]
    at.multiselect(key="map_sel_keep_source").set_value([source]).run()
    at.button(key="map_narrow").click().run()
    assert not at.exception, [e.value for e in at.exception]
    after = at.session_state["map_selection"]
    assert 0 < len(after["pairs"]) < len(before) and set(after["pairs"]) <= set(before)
    assert after["how"] == f"search 'the', source in {source}"
    assert _map_args(at)["selected"] == 4 * 2 * len(after["pairs"])


def test_the_pair_view_draws_segments_coloured_by_the_audit(app):
    at, _ = app
    at.switch_page("views/map.py").run()
    at.radio(key="map_view").set_value("pairs").run()
    args = _map_args(at)
    assert args["mode"] == "segments" and args["xy"] == 120 * 4 * 4 and args["ids"] == 120 * 4
    assert args["legend"]["title"].startswith("length gap")  # until the audit runs
    at.button(key="map_audit").click().run()  # the audit runs in the background, shared with the Audit page
    job = JobStore().list_jobs(kind="audit")[0]
    assert JobStore().wait(job.id, timeout=600).status == "succeeded", JobStore().logs(job.id)
    at.run()
    args = _map_args(at)
    assert args["legend"]["title"] == "flip score" and args["legend"]["min"] == 0 and args["legend"]["max"] == 1
    assert args["order"] == 120 * 4  # drawn by flip score, the most suspicious on top
    at.multiselect(key="map_pair_flags").set_value(["no flag"]).run()
    assert not at.exception, [e.value for e in at.exception]
    assert 0 < _map_args(at)["ids"] < 120 * 4  # flagged pairs filtered out
    at.selectbox(key="map_pair_colour").set_value("probe margin").run()
    assert _map_args(at)["legend"]["min"] == -_map_args(at)["legend"]["max"]


def test_umap_runs_as_a_background_job(app):
    at, _ = app
    at.switch_page("views/map.py").run()
    at.radio(key="map_method").set_value("UMAP").run()
    at.button(key="map_umap").click().run()
    assert not at.exception
    jobs = JobStore().list_jobs(kind="map")
    assert jobs and jobs[0].config["method"] == "umap"
    # While it runs the PCA map stays on the page (drawn, selectable), beside the job's progress.
    assert at.get("component_instance") and any(c.value.startswith("PCA map of 240") for c in at.caption)
    JobStore().cancel(jobs[0].id)


def test_html_in_data_is_escaped_in_map_hover():
    from alignscope.app.analysis import hover_texts
    from alignscope.data.preferences import load_preferences
    import numpy as np

    data = load_preferences(pd.DataFrame([{"prompt": "<b>x</b>", "chosen": "<script>alert(1)</script>", "rejected": "no"}]))
    text = hover_texts(data, np.array([0, 0]), np.array([1, 0]), np.array([0]))[0]
    assert "<script>" not in text and "&lt;script&gt;" in text and "<b>" not in text


def test_map_page_with_many_valued_string_and_numeric_metadata(tmp_path, monkeypatch):
    """AlpacaEval's metadata (pandas string dtype with thousands of values, numbers) once crashed
    the Map page's colour options: a real file with such columns must draw."""
    from alignscope.data.preferences import load_preferences
    from alignscope.jobs import JobStore
    from conftest import write_jsonl

    rows = [{"prompt": f"Question {i}?", "chosen": f"Answer {i}.", "rejected": "No.", "instruction_id": f"q{i}",
             "score": float(i) / 7, "generator": ["gpt", "llama"][i % 2]} for i in range(80)]
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    monkeypatch.setenv("ALIGNSCOPE_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("ALIGNSCOPE_INITIAL_DATA", str(path))
    store = JobStore()
    job = store.submit("embed", {"data": load_preferences(str(path)).spec(), "encoder": "minilm", "unit": "completion"})
    assert store.wait(job, timeout=600).status == "succeeded", store.logs(job)
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.session_state["alignscope_analysis"] = {"encoder": "minilm", "unit": "completion"}  # what was computed
    at.run()
    at.switch_page("views/map.py").run()
    assert not at.exception, [e.value for e in at.exception]
    options = at.selectbox(key="map_colour").options
    assert "generator" in options and "score" in options and "instruction_id" not in options
    at.selectbox(key="map_colour").set_value("score").run()
    assert not at.exception, [e.value for e in at.exception]

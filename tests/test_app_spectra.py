"""AppTest of the Spectra page on demo data, with a real embedding job started by the page."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from alignscope.jobs import JobStore
from conftest import ROOT

PAGE = str(ROOT / "app" / "views" / "spectra.py")


def _main_script() -> str:
    """app/main.py, or — until the Spectra page is registered there — a copy that registers it."""
    main = ROOT / "app" / "main.py"
    text = main.read_text(encoding="utf-8")
    if "spectra.py" in text:
        return str(main)
    import tempfile

    text = text.replace('Path(__file__).parent / "views"', f'Path({str(ROOT / "app" / "views")!r})')
    anchor = '    st.Page(PAGES / "select.py"'
    assert anchor in text
    text = text.replace(anchor, '    st.Page(PAGES / "spectra.py", title="Spectra", icon=":material/ssid_chart:"),\n' + anchor)
    folder = Path(tempfile.mkdtemp(prefix="alignscope-spectra-main-"))
    (folder / "main.py").write_text(text, encoding="utf-8")
    return str(folder / "main.py")


MAIN = _main_script()


@pytest.fixture(scope="module")
def embedded_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("spectra-home")
    root = tmp_path_factory.mktemp("spectra-root")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in (("ALIGNSCOPE_HOME", str(home)), ("ALIGNSCOPE_DATA_ROOT", str(root)),
                           ("ALIGNSCOPE_INITIAL_DATA", "demo:60")):
            patch.setenv(key, value)
        at = _page()
        assert any("needs the embeddings" in i.value for i in at.info)
        at.selectbox(key="spectra_encoder").set_value("lm-last-token:tiny").run()
        at.button(key="spectra_embed").click().run()
        store = JobStore()
        job = store.list_jobs(kind="embed")[0]
        assert store.wait(job.id, timeout=600).status == "succeeded", store.logs(job.id)
    return home, root


def _page():
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.session_state["alignscope_analysis"] = {"encoder": "lm-last-token:tiny", "unit": "completion"}
    at.run()
    return at.switch_page(PAGE).run()


@pytest.fixture
def at(embedded_home, monkeypatch):
    home, root = embedded_home
    monkeypatch.setenv("ALIGNSCOPE_HOME", str(home))
    monkeypatch.setenv("ALIGNSCOPE_DATA_ROOT", str(root))
    monkeypatch.setenv("ALIGNSCOPE_INITIAL_DATA", "demo:60")
    return _page()


def _metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def test_page_shows_spectra_metrics_and_errors(at):
    if "spectra_encoder" not in [w.key for w in at.selectbox]:
        pytest.fail("the Spectra page did not render")
    at.selectbox(key="spectra_encoder").set_value("lm-last-token:tiny").run()
    at.number_input(key="spectra_boot").set_value(20).run()
    assert not at.exception, [e.value for e in at.exception]
    assert at.selectbox(key="spectra_groups").value == "source"
    assert _metric(at, "Groups") == "3"
    specs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    titles = [s["layout"]["title"]["text"] for s in specs]
    assert any("Eigen-spectra" in t for t in titles) and any("Predicted vs observed" in t for t in titles)
    scree = next(s for s in specs if "Eigen-spectra" in s["layout"]["title"]["text"])
    assert scree["layout"]["xaxis"]["type"] == "log" and scree["layout"]["yaxis"]["type"] == "log"
    assert {t["name"] for t in scree["data"] if t.get("showlegend") is not False} == {
        "demo-forum", "demo-support", "demo-synthetic"}
    frame = at.dataframe[0].value
    assert len(frame) == 3 and {"effective_rank", "probe_error", "predicted_error"} <= set(frame.columns)
    assert any("lm-last-token:tiny" in str(s) for s in specs[-1]["data"][0]["text"])


def test_grouping_switch_and_one_line_error(at):
    at.selectbox(key="spectra_encoder").set_value("lm-last-token:tiny").run()
    at.number_input(key="spectra_boot").set_value(0).run()
    at.selectbox(key="spectra_groups").set_value("label").run()
    assert not at.exception and _metric(at, "Groups") == "2" and _metric(at, "Points per group") == "60"
    # a column with a value held by fewer than 10 pairs: a clear error, not a traceback
    at.selectbox(key="spectra_groups").set_value("topic").run()
    assert not at.exception
    assert any("Cannot compare these groups" in e.value and "at least 10" in e.value for e in at.error)


def test_other_encoders_are_compared_on_request(at):
    """A first visit computes the chosen encoder's spectra only; the encoders computed before join
    the comparison when asked (each is seconds at 60k pairs)."""
    from alignscope.data.preferences import load_preferences
    from alignscope.embed.encoders import embed

    embed(load_preferences("demo:60"), "static", "completion", progress=False)
    at.selectbox(key="spectra_encoder").set_value("lm-last-token:tiny").run()
    at.number_input(key="spectra_boot").set_value(0).run()
    table = next(d.value for d in at.dataframe if "probe_accuracy" in d.value.columns)
    assert table["encoder"].tolist() == ["lm-last-token:tiny"]
    at.button(key="spectra_compare").click().run()
    assert not at.exception, [e.value for e in at.exception]
    table = next(d.value for d in at.dataframe if "probe_accuracy" in d.value.columns)
    assert sorted(table["encoder"]) == ["lm-last-token:tiny", "static"]
    at.number_input(key="spectra_boot").set_value(10).run()  # the choice stays for the session
    assert len(next(d.value for d in at.dataframe if "probe_accuracy" in d.value.columns)) == 2

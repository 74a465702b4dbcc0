"""AppTest of the Scaling page on demo data: empty state, a sweep launched from the page (real
jobs, probe evaluator), the fitted plateau with the recommendation, and the q slider."""
from __future__ import annotations

from streamlit.testing.v1 import AppTest

from alignscope.data.preferences import load_preferences
from alignscope.jobs import JobStore
from alignscope.scaling.results import read_points_jsonl
from alignscope.scaling.sweep import SweepConfig
from conftest import ROOT

MAIN = str(ROOT / "app" / "main.py")


def test_scaling_page_launches_a_sweep_and_fits_it(monkeypatch, tmp_path):
    monkeypatch.setenv("ALIGNSCOPE_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("ALIGNSCOPE_INITIAL_DATA", "demo:120")
    at = AppTest.from_file(MAIN, default_timeout=180).run()
    at.switch_page("views/scaling.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("No sweep on this data set yet" in i.value for i in at.info)

    store = JobStore()  # the embeddings the launch form needs, as its "Compute embeddings" button does
    embed_job = store.submit("embed", {"data": load_preferences("demo:120").spec(), "encoder": SweepConfig().encoder,
                                       "unit": "completion"})
    assert store.wait(embed_job, timeout=600).status == "succeeded"
    at.run()
    defaults = SweepConfig()  # the form starts at the sweep's own defaults, as the CLI flags do
    assert at.multiselect(key="sweep_methods").value == defaults.methods
    assert [float(x) for x in at.text_input(key="sweep_fractions").value.split(",")] == defaults.fractions
    assert [int(x) for x in at.text_input(key="sweep_seeds").value.split(",")] == defaults.seeds
    assert at.radio(key="sweep_evaluator").value == defaults.evaluator
    assert at.number_input(key="sweep_steps").value == defaults.max_steps
    at.multiselect(key="sweep_methods").set_value(["isa", "random"])
    at.text_input(key="sweep_fractions").set_value("0.2,0.4,0.7,1.0")
    at.text_input(key="sweep_seeds").set_value("0")
    next(b for b in at.button if b.label == "Launch the sweep").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("Started sweep" in s.value and "7 points by" in s.value for s in at.success)
    workers = store.list_jobs(kind="sweep_worker")
    assert 1 <= len(workers) <= 2
    for job in workers:
        assert store.wait(job.id, timeout=600).status == "succeeded", store.logs(job.id)
    assert sum(len(read_points_jsonl(folder)) for folder in {j.config["sweep_dir"] for j in workers}) == 7

    at.run()
    assert not at.exception, [e.value for e in at.exception]
    titles = " ".join(str(c.proto.spec) for c in at.get("plotly_chart"))
    assert "fitted plateau" in titles and "length rule" in titles  # the baseline line
    assert "better than random" in titles  # the method − random panel
    assert any(t.value.startswith("isa − random (") for t in at.text)  # a verdict line per method
    # The library's headline: a size, or the reason there is none, never both; no metric cards.
    heads = [m.value for m in at.markdown if m.value in ("**Recommended size**", "**No recommended size**")]
    assert len(heads) == 1 and not at.metric
    for metric in ("accuracy", "log_loss"):
        at.selectbox(key="scaling_metric").set_value(metric).run()
        assert not at.exception, [e.value for e in at.exception]
    at.slider(key="scaling_q").set_value(0.85).run()
    assert not at.exception, [e.value for e in at.exception]

    for fractions, needle in [("0,2", "fractions must be"), ("0.1, 0.5, abc", "is not a comma-separated list of numbers"),
                              ("0.5", "at least 3 distinct fractions")]:
        at.text_input(key="sweep_fractions").set_value(fractions)
        next(b for b in at.button if b.label == "Launch the sweep").click().run()
        assert any("Cannot launch" in e.value and needle in e.value for e in at.error), (fractions, [e.value for e in at.error])
    assert len(store.list_jobs(kind="sweep_worker")) == len(workers)

"""The HTML report (alignscope.report, `alignscope report`): its numbers come from the inputs, the data
set's text is escaped, nothing is fetched, the scaling answer says "tie" or "cannot tell" when it
should, inputs of other data are refused, the commands it prints are valid `alignscope` commands,
and the file is written atomically. Real files and the real audit, fits and metrics; the embeddings
are seeded synthetic vectors (the audit only needs a matrix) so that no encoder has to run."""
from __future__ import annotations

import json
import re
import shlex

import numpy as np
import pytest

from alignscope.audit import audit, clean_selection
from alignscope.data.preferences import length_table, load_preferences
from alignscope.evaluate.metrics import LengthRule, pair_word_lengths, preference_metrics
from alignscope.report import ReportError, render_html, report_content
from alignscope.scaling.sweep import SweepConfig
from conftest import run_cli

HOSTILE = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """A data file (demo pairs, the first prompt hostile HTML), its audit (pair 0's embeddings swapped,
    so its label looks flipped; the planted copies embedded like their originals), the clean selection,
    a sweep folder and a training run folder, all on disk."""
    folder = tmp_path_factory.mktemp("report")
    frame = load_preferences("demo:240").frame.copy()
    frame.loc[0, "prompt"] = HOSTILE + " " + frame.loc[0, "prompt"]
    frame.loc[0, "chosen"] = HOSTILE
    path = folder / "pairs.jsonl"
    frame.to_json(path, orient="records", lines=True, force_ascii=False)
    data = load_preferences(str(path))
    rng = np.random.default_rng(0)
    n, d = data.n_pairs, 24
    w = rng.normal(size=d)
    base = rng.normal(size=(n, d))
    chosen = base + w + rng.normal(scale=0.3, size=(n, d))
    rejected = base - w + rng.normal(scale=0.3, size=(n, d))
    chosen[0], rejected[0] = rejected[0].copy(), chosen[0].copy()
    position = {int(i): p for p, i in enumerate(frame["id"])}  # duplicate_of names the original's id
    for copy, original in enumerate(frame["duplicate_of"].to_numpy(dtype=int)):
        if original >= 0:
            chosen[copy], rejected[copy] = chosen[position[original]], rejected[position[original]]
    table = audit(data, (chosen.astype(np.float32), rejected.astype(np.float32)), seed=0)
    from alignscope.audit import write_audit

    write_audit(table, folder / "audit.parquet")
    clean_selection(data, table).write(folder / "clean.parquet")
    sweep = _sweep(folder / "sweep", data, {"isa": 0.0, "random": 0.0})
    run = _run(folder / "run", data)
    return {"folder": folder, "data": data, "table": table, "sweep": sweep, "run": run, "path": path}


def _sweep(folder, data, shift: dict[str, float], level: float = 0.62):
    """A sweep folder as `alignscope sweep` leaves it (sweep.json, points.jsonl), its points drawn
    from a plateau curve R(x) = level − 0.1·e^(−5x) (+ ``shift`` per method) with seeded noise that
    is the same for every method (methods with the same shift measure the same curve)."""
    config = SweepConfig(methods=list(shift), fractions=[0.1, 0.2, 0.4, 0.7, 1.0], seeds=[0, 1, 2])
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps({"config": config.to_dict(), "data": data.spec(), "jobs": []}))
    lines = []
    for point in config.points():
        x = point["fraction"]
        noise = np.random.default_rng([round(x * 100), point["seed"]]).normal(scale=0.015)  # alike for every method
        score = level + shift.get(point["method"], 0.0) - 0.1 * np.exp(-5 * x) + noise
        lines.append({**point, "score": score, "length_controlled_accuracy": score, "metric": config.metric,
                      "baseline": 0.5, "evaluator": "probe", "n_train_pairs": round(x * 192)})
    (folder / "points.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    return folder


def _run(folder, data):
    """A training run folder: config.json and an eval.json computed by the real metrics."""
    folder.mkdir(parents=True)
    pairs = np.arange(data.n_pairs - 48, data.n_pairs)
    chosen_words, rejected_words = pair_word_lengths(data, pairs)
    margin = np.random.default_rng(2).normal(0.2, 1.0, size=len(pairs))
    train_c, train_r = pair_word_lengths(data, np.arange(data.n_pairs - 48))
    evaluation = preference_metrics(margin, chosen_words, rejected_words, LengthRule.fit(train_c, train_r), n_boot=200)
    evaluation["training"] = {"method": "dpo", "model": "tiny", "steps": 5, "n_train_pairs": 150}
    (folder / "eval.json").write_text(json.dumps(evaluation))
    (folder / "config.json").write_text(json.dumps({
        "method": "dpo", "model": {"spec": "tiny"}, "data": {"fingerprint": data.fingerprint},
        "train_config": {"model": "tiny", "max_steps": 5, "max_length": 64, "beta": 0.1},
        "selection": {"path": None}}))
    return folder


def test_the_report_shows_the_inputs_numbers(made):
    data, table = made["data"], made["table"]
    content = report_content(data, audit=table, selection=made["folder"] / "clean.parquet", sweep=made["sweep"],
                             runs=[made["run"]], n_boot=100)
    lengths = length_table(data)
    longer = float((lengths["chosen"] > lengths["rejected"]).mean())
    assert content.data["length"]["chosen_longer_share"] == pytest.approx(longer)
    counts = {c["flag"]: c["pairs"] for c in content.audit["counts"]}
    assert counts["suspected flipped label"] == int(table["suspect_flip"].sum()) > 0
    assert counts["near-duplicate (a copy)"] == int(table["is_duplicate"].sum()) > 0
    assert 0 in [x["pair"] for x in content.audit["examples"]["suspected flips"]]  # the swapped pair
    assert content.audit["calibration"] is None  # this audit table has no flip_probability
    assert content.selection["pairs_kept"] == int((~table[["suspect_flip", "is_duplicate", "is_outlier",
                                                          "identical"]].any(axis=1)).sum())
    assert content.scaling["pool_pairs"] == 192 and content.runs[0]["eval"]["n_heldout"] == 48

    document = render_html(content)
    assert data.fingerprint in document and f"{longer:.1%}" in document
    assert "Not calibrated" in document
    assert "the tiny model is a randomly initialised" in document
    # Every figure has its div; plotly.js is inlined exactly once.
    assert document.count("Plotly.newPlot(") == document.count("class=\"plotly-graph-div\"") >= 4
    assert document.count("<script type='text/javascript'>") == 1


def test_a_selection_checked_against_other_seeds_says_so(made, tmp_path):
    """`select --check-seeds` and the Select page keep the seed agreement in the selection's config;
    the report's Selection section reads it as a sentence."""
    from alignscope.select.selection import Selection
    from alignscope.select.stats import seed_agreement_at

    data = made["data"]
    selection = Selection.read(made["folder"] / "clean.parquet")
    rng = np.random.default_rng(1)
    record = seed_agreement_at({0: rng.permutation(data.n_pairs), 1: rng.permutation(data.n_pairs)}, 48)
    selection.replace(config={**selection.config, "seed_agreement": record}).write(tmp_path / "checked.parquet")
    document = render_html(report_content(data, selection=tmp_path / "checked.parquet"))
    assert f"{record['kept_by_all']:.1%} of the 48 kept pairs are kept under every seed (0, 1)" in document
    assert "random subsets of this size" in document
    assert "kept under every seed" not in render_html(report_content(data, selection=made["folder"] / "clean.parquet"))


def test_the_data_sets_text_is_escaped_and_nothing_is_fetched(made):
    document = render_html(report_content(made["data"], audit=made["table"]))
    assert HOSTILE not in document and "<img src=x" not in document
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in document
    # No element loads anything from a host, and the page's policy forbids it anyway.
    assert not re.search(r"""<(script|link|img|iframe)[^>]*\s(src|href)\s*=\s*["']?(https?:)?//""", document, re.I)
    assert "default-src 'none'" in document and "connect-src 'none'" in document


def test_a_calibrated_audit_reports_its_estimated_precision(made):
    table = made["table"].copy()
    table["flip_probability"] = np.clip(table["flip_score"].to_numpy() * 0.8, 0, 1)
    content = report_content(made["data"], audit=table)
    suspect = table["suspect_flip"].to_numpy()
    expected = float(table.loc[suspect, "flip_probability"].mean())
    assert content.audit["calibration"]["precision"] == pytest.approx(expected)
    assert f"{expected:.1%}" in render_html(content) and "Not calibrated" not in render_html(content)


def test_the_scaling_answer_is_the_sweeps_headline_tie_or_cannot_tell(made, tmp_path):
    """The report says what the CLI and the Scaling page say (alignscope.scaling.recommend), with its kind."""
    from alignscope.scaling.results import sweep_fits

    data = made["data"]
    tie = report_content(data, sweep=made["sweep"], n_boot=100).scaling["answer"]
    assert tie["kind"] == "tie" and "tie" in tie["lines"][0]
    assert tie["lines"] == sweep_fits(made["sweep"], n_boot=100)["summary"]["recommendation"]["lines"]
    assert any("proxy" in line for line in tie["lines"])  # probe scores are labelled as a proxy
    apart = report_content(data, sweep=_sweep(tmp_path / "apart", data, {"isa": 0.08, "random": 0.0}),
                           n_boot=100).scaling["answer"]
    assert apart["kind"] in ("recommend", "cannot tell") and "isa" in apart["lines"][0]
    below = report_content(data, sweep=_sweep(tmp_path / "below", data, {"isa": 0.0, "random": 0.0}, level=0.45),
                           n_boot=100).scaling["answer"]
    assert below["kind"] == "cannot tell"


def test_inputs_of_other_data_are_refused(made, tmp_path):
    other = load_preferences("demo:120")
    with pytest.raises(ReportError, match="fingerprint"):
        report_content(other, selection=made["folder"] / "clean.parquet")
    with pytest.raises(ReportError, match="fingerprint"):
        report_content(other, sweep=made["sweep"])
    with pytest.raises(ReportError, match="fingerprint"):
        report_content(other, runs=[made["run"]])
    with pytest.raises(ReportError):
        report_content(other, audit=made["table"])


def test_the_printed_commands_are_valid_alignscope_commands(made):
    from alignscope.cli.parser import build_parser

    content = report_content(made["data"], audit=made["table"], selection=made["folder"] / "clean.parquet",
                             sweep=made["sweep"], runs=[made["run"]], n_boot=50,
                             paths={"audit": "audit.parquet", "runs": ["run"]})
    parser = build_parser()
    commands = [cmd for _, cmd in content.commands if not cmd.startswith("#")]
    assert {shlex.split(c)[1] for c in commands} >= {"data", "audit", "sweep", "train", "report"}
    for command in commands:
        args = parser.parse_args(shlex.split(command)[1:])  # a UsageError if a flag were wrong
        assert args.func
    sweep = next(c for c in commands if c.split()[1] == "sweep")
    assert "--fractions 0.1,0.2,0.4,0.7,1" in sweep and "--seeds 0,1,2" in sweep
    train = next(c for c in commands if c.split()[1] == "train")
    assert "--max-steps 5" in train and "--max-length 64" in train


def test_cli_writes_one_file_refuses_bad_input_and_leaves_nothing_half_written(made, tmp_path):
    out = tmp_path / "report.html"
    folder = made["folder"]
    done = run_cli("report", made["path"], "--audit", folder / "audit.parquet", "--selection", folder / "clean.parquet",
                   "--sweep", made["sweep"], "--run", made["run"], "--n-boot", "50", "--out", out, "--json",
                   timeout=300)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["sections"] == ["audit", "selection", "scaling", "runs"] and out.stat().st_size == result["bytes"]
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no temporary file left beside it
    again = run_cli("report", made["path"], "--out", out)
    assert again.returncode == 2 and "already exists" in again.stderr
    wrong = tmp_path / "wrong.html"
    for args, needle in ((["demo:120", "--sweep", made["sweep"]], "fingerprint"),
                         ([made["path"], "--sweep", tmp_path / "nowhere"], "no such sweep folder"),
                         ([made["path"], "--run", tmp_path], "not a training run folder")):
        failed = run_cli("report", *args, "--out", wrong)
        assert failed.returncode == 2 and needle in failed.stderr and failed.stderr.count("\n") == 1, failed.stderr
        assert not wrong.exists()


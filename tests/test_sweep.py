"""Sweeps: real workers (probe evaluator, demo data) with the local executor and with Ray on a local
Ray instance; points stream into points.jsonl, land in the same job store, and get fitted. Shared
workers measure exactly what one job per point (the layout of earlier versions) measures."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from alignscope.jobs import JobStore
from alignscope.scaling.results import read_points_jsonl
from alignscope.scaling.sweep import SweepConfig, SweepError, point_dir_name
from tests.conftest import run_cli

GRID = ["--methods", "isa,random", "--fractions", "0.1,0.2,0.4,0.6,0.8,1.0", "--seeds", "0,1", "--encoder", "minilm"]
N_POINTS = 2 * 5 * 2 + 2  # two methods × five fractions × two seeds, plus all data once per seed


def check_sweep(out, executor: str, done) -> dict:
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["n_points"] == summary["n_measured"] == N_POINTS and summary["n_failed"] == 0
    assert summary["executor"] == executor and summary["n_jobs"] == summary["workers"] == 2
    points = read_points_jsonl(out)
    assert len(points) == N_POINTS
    assert set(points["method"]) == {"isa", "random", "all"} and points["score"].between(0, 1).all()
    jobs = {j.id: j for j in JobStore().list_jobs(kind="sweep_worker", limit=500)}
    assert len(jobs) == 2 and set(points["job_id"]) <= set(jobs) and all(j.executor == executor for j in jobs.values())
    assert all(j.status == "succeeded" and (j.run_dir / "log.txt").exists() for j in jobs.values())
    assert not points.duplicated(["method", "fraction", "seed"]).any()  # no unit measured twice
    for row in points.itertuples():  # every point has its own folder with its result
        assert (out / "points" / point_dir_name(row._asdict()) / "point.json").exists()
    fit = json.loads((out / "fit.json").read_text())
    assert set(fit["methods"]) == {"isa", "random"}
    for method in ("isa", "random"):
        result = fit["methods"][method]
        assert "error" in result or {"r", "a", "b", "recommended_fraction"} <= set(result)
    csv = (out / "points.csv").read_text().splitlines()
    assert csv[0] == "method,fraction,seed,score,baseline,n_train_pairs"
    assert len(csv) == 1 + (N_POINTS - 2) + 2 * 2  # "all" joins both curves
    # Equal sizes: at each fraction every method trained on the same number of pairs, that share of
    # the 96 training pairs (20 % of 120 held out).
    sizes = points.groupby("fraction")["n_train_pairs"].agg(["min", "max"])
    assert (sizes["min"] == sizes["max"]).all() and fit["equal_pairs_per_fraction"] is True
    assert sizes.loc[0.1, "min"] == round(0.1 * 96) and sizes.loc[1.0, "min"] == 96
    # Every point sits beside its baseline; the fit says whether a method beats random.
    assert points["baseline"].notna().all() and {"length_baseline", "log_loss", "accuracy"} <= set(points.columns)
    assert fit["metric"] == "length_controlled_accuracy" and fit["baseline"] == 0.5
    assert [row["fraction"] for row in fit["vs_random"]["isa"]] == [0.1, 0.2, 0.4, 0.6, 0.8]
    # (on 24 held-out demo pairs two methods can rank every pair alike: then the difference is 0 on
    # every resample, an honest [0, 0])
    verdicts = {"better than random", "worse than random", "no resolved difference from random"}
    assert all(row["ci95"][0] <= row["ci95"][1] and row["verdict"] in verdicts for row in fit["vs_random"]["isa"])
    assert fit["verdicts"] and fit["verdicts"][0].startswith("isa − random (")
    assert fit["recommendation"]["lines"] and fit["ranking"]["tally"]["isa"]["fractions"] == 5
    return summary


def test_sweep_with_the_local_executor_shares_the_points_among_workers(tmp_path):
    out = tmp_path / "sweep"
    done = run_cli("sweep", "demo:120", *GRID, "--evaluator", "probe", "--workers", "2", "--out", out, "--json",
                   timeout=1500)
    check_sweep(out, "local", done)


def test_sweep_with_the_ray_executor_on_a_local_ray_instance(tmp_path):
    pytest.importorskip("ray")
    out = tmp_path / "sweep"
    done = run_cli("sweep", "demo:120", *GRID, "--evaluator", "probe", "--executor", "ray", "--workers", "2",
                   "--out", out, "--json", timeout=1500, env={"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"})
    check_sweep(out, "ray", done)


def test_sweep_refuses_bad_input_before_any_job(tmp_path):
    for args, needle in [(["--methods", "best"], "unknown method"), (["--fractions", "0,0.5"], "fractions must be"),
                         (["--fractions", "a,b"], "comma-separated"), (["--evaluator", "ppo"], "invalid choice"),
                         (["--executor", "ray", "--detach"], "--detach works with the local executor"),
                         (["--address", "auto"], "--address applies to --executor ray"),
                         (["--mode", "checkpoints"], "use --evaluator dpo or kto"),
                         (["--mode", "checkpoints", "--evaluator", "dpo", "--checkpoints", "0.5,1.0"], "at least 3"),
                         (["--mode", "checkpoints", "--evaluator", "dpo", "--checkpoints", "0.5,1.5,1.0"],
                          "checkpoints must be")]:
        done = run_cli("sweep", "demo:60", *args, "--out", tmp_path / "x")
        assert done.returncode == 2 and needle in done.stderr, (args, done.stderr)
        assert "Traceback" not in done.stderr
    assert JobStore().list_jobs() == []
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    done = run_cli("sweep", "demo:60", "--out", tmp_path / "full")
    assert done.returncode == 2 and "not empty" in done.stderr
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"


def test_sweep_plan_counts_all_data_once_per_seed():
    config = SweepConfig(methods=["isa", "random", "density"], fractions=[0.1, 1.0], seeds=[0, 1, 2])
    points = config.points()
    assert len(points) == 3 * 3 + 3 and sum(p["method"] == "all" for p in points) == 3
    with pytest.raises(SweepError, match="q must be"):
        SweepConfig(q=1.5).validate()


def test_checkpoint_steps_cover_the_run_once():
    from alignscope.train.trainer import checkpoint_steps

    assert checkpoint_steps([0.1, 0.25, 0.5, 0.75, 1.0], 40) == {4: 0.1, 10: 0.25, 20: 0.5, 30: 0.75, 40: 1.0}
    assert checkpoint_steps([0.01, 1.0], 10) == {1: 0.01, 10: 1.0}  # never step 0


@pytest.mark.slow  # ~45 s on 2 cores; the checkpoint evaluations alone: tests/test_train.py
def test_checkpoint_mode_evaluates_one_full_data_run_as_it_trains(tmp_path):
    """The ISA paper's measurement: one tiny DPO run on all training pairs, evaluated at 4 checkpoints;
    each evaluation is a point (fraction = share of the training pairs seen) and the plateau is fitted."""
    out = tmp_path / "sweep"
    done = run_cli("sweep", "demo:120", "--mode", "checkpoints", "--evaluator", "dpo", "--model", "tiny",
                   "--checkpoints", "0.25,0.5,0.75,1.0", "--max-steps", "8", "--seeds", "0", "--out", out, "--json",
                   timeout=1500)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout)
    assert summary["n_jobs"] == 1 and summary["n_failed"] == 0
    points = read_points_jsonl(out)
    assert list(points["method"].unique()) == ["checkpoints"] and len(points) == 4
    # 96 training pairs (20 % of 120 held out), batch 8: steps 2/4/6/8 have seen 16/32/48/64 pairs
    assert points["n_train_pairs"].tolist() == [16, 32, 48, 64]
    assert points["fraction"].round(4).tolist() == [round(n / 96, 4) for n in (16, 32, 48, 64)]
    assert points["score"].between(0, 1).all()
    assert JobStore().get(points["job_id"].iloc[0]).kind == "sweep_worker"
    run = out / "points" / "checkpoints_100pct_s0" / "train"
    logged = [json.loads(line) for line in (run / "checkpoints.jsonl").read_text().splitlines()]
    assert [row["step"] for row in logged] == [2, 4, 6, 8]
    final = json.loads((run / "eval.json").read_text())
    assert logged[-1]["accuracy"] == final["accuracy"]  # the last checkpoint is the final evaluation
    fit = json.loads((out / "fit.json").read_text())
    assert set(fit["methods"]) == {"checkpoints"}


def test_clean_points_train_on_unflagged_pairs_first_and_on_as_many_pairs_as_the_others(tmp_path):
    """The clean method's ranking: unflagged pairs in a seeded random order, flagged ones last; turned
    into exactly k training pairs, held-out pairs never among them."""
    import numpy as np
    import pandas as pd

    from alignscope.audit import FLAGS
    from alignscope.scaling.measure import clean_ranking, training_pairs_table

    pool = np.arange(0, 40, dtype=np.int64)  # pairs 40..49 are held out
    audit = pd.DataFrame({"index": pool, **{flag: np.zeros(40, dtype=bool) for flag in FLAGS}})
    audit.loc[:9, "suspect_flip"] = True      # pairs 0..9 flagged
    audit.to_parquet(tmp_path / "audit.parquet")
    ranking = clean_ranking(tmp_path / "audit.parquet", seed=3, fingerprint="f")
    table = training_pairs_table(ranking, np.arange(40, 50), 50, 25).table
    kept = table.loc[table["selected"], "index"].to_numpy()
    assert len(kept) == 25 and not np.isin(kept, np.arange(10)).any() and not np.isin(kept, np.arange(40, 50)).any()
    everything = training_pairs_table(ranking, np.arange(40, 50), 50, 35).table  # more than the 30 clean pairs
    assert everything["selected"].sum() == 35 and np.isin(np.arange(10, 40), everything.loc[everything["selected"], "index"]).all()
    again = training_pairs_table(clean_ranking(tmp_path / "audit.parquet", seed=3, fingerprint="f"), np.arange(40, 50), 50, 25)
    assert (again["selected"] == table["selected"]).all()  # same seed, same pairs


def test_shared_workers_measure_what_one_job_per_point_measures(tmp_path):
    """The same sweep measured twice, in this process: by two shared workers (each ranks a unit once
    and cuts it at every fraction) and point by point as the sweep_point jobs of earlier versions
    did. Same scores, same training pairs, equal pair counts per fraction; no unit measured twice."""
    import numpy as np

    from alignscope.data.preferences import load_preferences
    from alignscope.scaling.measure import point_job, worker_job
    from alignscope.scaling.sweep import prepare_sweep

    data = load_preferences("demo:160")
    config = SweepConfig(methods=["isa", "kcenter", "random"], fractions=[0.1, 0.3, 0.6, 1.0], seeds=[0, 1],
                         encoder="minilm")
    shared, single = tmp_path / "shared", tmp_path / "single"
    for out in (shared, single):
        prepare_sweep(data, config, out)
    job = {"data": data.spec(), "sweep_dir": str(shared), "sweep": config.to_dict(), "n_workers": 2}
    messages = []
    first = worker_job({**job, "worker": 0}, tmp_path / "w0", lambda progress=None, message=None: messages.append(message))
    second = worker_job({**job, "worker": 1}, tmp_path / "w1", lambda **_: None)
    assert first["measured"] == len(config.points()) and second["measured"] == 0  # the first took every unit
    assert any(m and "ETA" in m for m in messages)
    for point in config.points():
        point_job({"data": data.spec(), "sweep_dir": str(single), "point": point, "sweep": config.to_dict()},
                  single / "points" / point_dir_name(point), lambda **_: None)
    a = read_points_jsonl(shared).set_index(["method", "fraction", "seed"]).sort_index()
    b = read_points_jsonl(single).set_index(["method", "fraction", "seed"]).sort_index()
    assert len(a) == len(b) == len(config.points()) and list(a.index) == list(b.index)
    np.testing.assert_allclose(a["score"], b["score"], atol=1e-9)
    assert (a["n_train_pairs"] == b["n_train_pairs"]).all()
    assert (a.groupby("fraction")["n_train_pairs"].nunique() == 1).all()
    for point in config.points():
        if point["method"] != "all":
            name = point_dir_name(point)
            kept = [pd.read_parquet(out / "points" / name / "selection.parquet").query("selected")["index"].tolist()
                    for out in (shared, single)]
            assert kept[0] == kept[1]


def test_sweeps_rank_with_the_pair_methods_on_the_sweeps_own_split(tmp_path):
    """length, margin and rds rank pairs from the data (through select_data, with the sweep's split
    and the embeddings the worker holds); their points train on exactly as many pairs as random's."""
    from alignscope.data.preferences import load_preferences
    from alignscope.scaling.measure import worker_job
    from alignscope.scaling.sweep import prepare_sweep

    data = load_preferences("demo:120")
    config = SweepConfig(methods=["length", "margin", "rds", "random"], fractions=[0.1, 0.3, 0.6, 1.0], seeds=[0],
                         encoder="minilm", eval_encoder="minilm")
    out = prepare_sweep(data, config, tmp_path / "sweep")
    done = worker_job({"data": data.spec(), "sweep_dir": str(out), "sweep": config.to_dict(), "n_workers": 1},
                      tmp_path / "w0", lambda **_: None)
    assert done["measured"] == len(config.points()) == 4 * 3 + 1
    points = read_points_jsonl(out)
    assert (points.groupby("fraction")["n_train_pairs"].nunique() == 1).all()
    margin = points[points["method"] == "margin"]
    assert margin["circular"].all()  # its probe reads the judge's features: said so on every point
    assert not points[points["method"] == "length"]["circular"].any()


def test_remove_and_fix_act_on_the_same_flags(tmp_path):
    """clean drops the pairs the audit flags; fix keeps every pair in random's order and swaps the
    suspected flips' labels: both train on as many pairs as random, fix reports how many it swapped."""
    from alignscope.data.preferences import load_preferences
    from alignscope.scaling.measure import worker_job
    from alignscope.scaling.sweep import prepare_sweep

    data = load_preferences("demo:160")
    config = SweepConfig(methods=["clean", "fix", "random"], fractions=[0.2, 0.5, 0.8, 1.0], seeds=[0],
                         encoder="minilm", eval_encoder="minilm")
    out = prepare_sweep(data, config, tmp_path / "sweep")
    worker_job({"data": data.spec(), "sweep_dir": str(out), "sweep": config.to_dict(), "n_workers": 1},
               tmp_path / "w0", lambda **_: None)
    points = read_points_jsonl(out)
    assert (points.groupby("fraction")["n_train_pairs"].nunique() == 1).all()
    fixed = points[points["method"] == "fix"].sort_values("fraction")
    flagged = int(pd.read_parquet(out / "audit.parquet")["suspect_flip"].sum())
    assert flagged > 0 and fixed["n_swapped"].between(0, flagged).all() and fixed["n_swapped"].iloc[-1] > 0
    assert fixed["n_swapped"].is_monotonic_increasing  # more pairs, more of the flagged among them
    with pytest.raises(SweepError, match="probe evaluator"):
        SweepConfig(methods=["fix", "random"], evaluator="dpo").validate()

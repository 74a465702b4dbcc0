"""Real TRL training (DPO and KTO) of the tiny model on CPU, through Python and through the job
system. Nothing is mocked; runs are kept short (few steps, short sequences) so the file stays fast
on a 2-core machine."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from safetensors.torch import load_file

from alignscope.data.preferences import load_preferences
from alignscope.evaluate.evaluators import evaluate_run, split_pairs
from alignscope.files import read_jsonl
from alignscope.jobs import FAILED, SUCCEEDED, JobStore
from alignscope.models import ModelError
from alignscope.select.selectors import select
from alignscope.select.selection import Selection
from alignscope.train.config import TrainError, train_config
from alignscope.train.trainset import training_set
from alignscope.train.trainer import METRIC_KEYS, normalise_metrics, train

FAST = dict(max_length=32, batch_size=8, max_steps=4, lr=1e-4, n_boot=200, eval_max_pairs=24)


def pair_selection(data, path: Path, k: int = 200, seed: int = 3) -> Selection:
    table = select(np.zeros((len(data), 1), np.float32), "random", k=k, seed=seed, data_fingerprint=data.fingerprint)
    table.write(path)
    return table


def completion_selection(data, path: Path, k: int = 200, seed: int = 4) -> Selection:
    table = select(np.zeros((2 * len(data), 1), np.float32), "random", k=k, seed=seed, unit="completion",
                   data_fingerprint=data.fingerprint)
    table.write(path)
    return table


def changed_tensors(before_dir: str | Path, after_dir: str | Path) -> list[str]:
    before = load_file(str(Path(before_dir) / "model.safetensors"))
    after = load_file(str(Path(after_dir) / "model.safetensors"))
    assert set(before) == set(after)
    return [name for name in before if not np.array_equal(before[name].numpy(), after[name].numpy())]


def check_metrics(run_dir: Path, steps: int) -> list[dict]:
    records = read_jsonl(run_dir / "metrics.jsonl")
    assert [r["step"] for r in records] == list(range(1, steps + 1))
    for record in records:
        assert list(record)[:len(METRIC_KEYS)] == list(METRIC_KEYS)
        assert math.isfinite(record["loss"]) and record["lr"] > 0 and record["epoch"] > 0
    elapsed = [r["elapsed_s"] for r in records]
    assert elapsed == sorted(elapsed) and elapsed[0] > 0
    return records


def check_eval(run_dir: Path, n_pairs: int) -> dict:
    evaluation = json.loads((run_dir / "eval.json").read_text())
    low, high = evaluation["accuracy_ci95"]
    assert 0 <= low <= evaluation["accuracy"] <= high <= 1
    assert evaluation["n_pairs"] == n_pairs
    per_pair = pd.read_parquet(run_dir / "eval_pairs.parquet")
    assert len(per_pair) == n_pairs
    return evaluation


def test_dpo_on_a_200_pair_selection_trains_logs_evaluates_and_never_sees_test_pairs(tmp_path, tiny):
    data = load_preferences("demo:250")
    selection = pair_selection(data, tmp_path / "sel.parquet")
    run = tmp_path / "run"
    progress: list[tuple] = []

    def report(progress_value=None, message=None):
        progress.append((progress_value, message))

    config = train_config("dpo", model=tiny, save_model=True, **FAST)
    result = train(data, selection=tmp_path / "sel.parquet", config=config, run_dir=run, progress_bar=True,
                   report=lambda progress=None, message=None: report(progress, message))

    # metrics.jsonl: one line per step with the normalised keys; the first step's loss is DPO's
    # loss at a zero margin (policy == reference), -log sigmoid(0) = log 2.
    records = check_metrics(run, 4)
    assert records[0]["loss"] == pytest.approx(math.log(2), abs=1e-4)
    assert records[0]["rewards/margins"] == pytest.approx(0.0, abs=1e-6)
    assert all(0 <= r["rewards/accuracies"] <= 1 for r in records)
    assert all(r["rewards/margins"] == pytest.approx(r["rewards/chosen"] - r["rewards/rejected"], abs=1e-5)
               for r in records)

    # the weights changed, and the saved folder is a plain safetensors model
    assert changed_tensors(tiny, run / "model")
    assert not list((run / "model").glob("*.bin"))

    # config.json records data, split, selection, device and versions
    recorded = json.loads((run / "config.json").read_text())
    import torch
    import trl

    _, test = split_pairs(len(data), 0.2, 0)
    assert recorded["method"] == "dpo" and recorded["data"]["fingerprint"] == data.fingerprint
    assert recorded["data"]["reload"] == "demo:250:0"
    assert recorded["split"]["n_test"] == len(test) == 50 and recorded["split"]["seed"] == 0
    assert recorded["versions"]["trl"] == trl.__version__ and recorded["versions"]["torch"] == torch.__version__
    assert recorded["versions"]["alignscope"] and recorded["versions"]["transformers"]
    assert recorded["device"]["device"] == "cpu" and recorded["device"]["bf16"] is False
    assert recorded["train_config"]["lr"] == 1e-4 and recorded["train_config"]["max_steps"] == 4
    selected = set(selection.table.loc[selection["selected"], "index"])
    assert recorded["selection"]["n_selected"] == 200
    assert recorded["selection"]["n_selected_in_test"] == len(selected & set(test))
    assert recorded["selection"]["config"]["method"] == "random"

    # the training rows are exactly the selected pairs minus the held-out ones
    used = Selection.read(run / "selection.parquet")  # a valid selection file, its config kept
    assert used.fingerprint == data.fingerprint
    trained = set(used.table.loc[used["trained"], "index"])
    assert trained == selected - set(test) and not trained & set(test)
    assert recorded["training_set"]["n_pairs"] == len(trained) == result["training"]["n_train_pairs"]

    # eval.json: held-out accuracy with an interval; reproducible from the saved model
    evaluation = check_eval(run, 24)
    assert evaluation["training"]["steps"] == 4 and evaluation["training"]["s_per_step"] > 0
    assert evaluate_run(run) == evaluation
    again = evaluate_run(run, recompute=True, write=False)
    assert again["accuracy"] == evaluation["accuracy"]
    assert again["margin_mean"] == pytest.approx(evaluation["margin_mean"], rel=1e-5, abs=1e-7)

    # the reporter saw progress up to 1.0, never going back
    values = [p for p, _ in progress if p is not None]
    assert values == sorted(values) and values[-1] == 1.0 and progress[-1][1] == "done"
    # each step's progress comes with that step's number (a poll between two calls never shows the
    # step before), and the evaluation says how many steps ran: never "stuck at step 3/4"
    for step in range(1, 5):
        at_step = [m for p, m in progress if p == pytest.approx(0.9 * step / 4) and not m.startswith("trained")]
        assert at_step and all(m.startswith(f"step {step}/4") for m in at_step), (step, at_step)
    assert [m for _, m in progress if m and m.startswith("trained")] == [
        "trained 4 steps · saving the model", "trained 4 steps · evaluating on 24 of the 50 held-out pairs"]


def test_eval_checkpoints_evaluate_the_run_as_it_trains(tmp_path, tiny):
    """The ISA paper's measurement inside one run (what `sweep --mode checkpoints` runs in its worker,
    tested end to end in tests/test_sweep.py, marked slow): an evaluation at each checkpoint, each
    line streamed to on_checkpoint as written; the last one is the final evaluation."""
    streamed: list[dict] = []
    config = train_config("dpo", model=tiny, eval_checkpoints=[0.5, 1.0], **FAST)
    train(load_preferences("demo:60"), config=config, run_dir=tmp_path / "run", progress_bar=False,
          on_checkpoint=streamed.append)
    logged = read_jsonl(tmp_path / "run" / "checkpoints.jsonl")
    assert logged == streamed and [row["step"] for row in logged] == [2, 4]
    assert [row["pairs_seen"] for row in logged] == [16, 32]  # batch 8: pairs seen so far
    for row in logged:
        low, high = row["accuracy_ci95"]
        assert 0 <= low <= row["accuracy"] <= high <= 1 and low < high
        assert row["n_pairs"] == 12 and row["length_baseline"] is not None
    assert logged[-1]["accuracy"] == check_eval(tmp_path / "run", 12)["accuracy"]


def test_kto_job_on_a_completion_level_selection_runs_in_a_worker(tmp_path, tiny):
    data = load_preferences("demo:250")
    selection = completion_selection(data, tmp_path / "sel.parquet")
    store = JobStore()
    run = tmp_path / "kto-run"
    job_id = store.submit("train", {"data": "demo:250", "selection": str(tmp_path / "sel.parquet"), "method": "kto",
                                    "model": tiny, "save_model": True, **FAST}, run_dir=run)
    job = store.wait(job_id, timeout=400)
    assert job.status == SUCCEEDED, store.logs(job_id, tail=40)
    assert job.progress == 1.0

    records = check_metrics(run, 4)
    assert all(r["rewards/accuracies"] is None for r in records)  # KTO logs no reward accuracy
    assert "kl" in records[0]
    assert changed_tensors(tiny, run / "model")

    recorded = json.loads((run / "config.json").read_text())
    assert recorded["job_id"] == job_id and recorded["kind"] == "train"  # the job system's record is kept
    assert recorded["method"] == "kto" and recorded["selection"]["level"] == "completion"
    _, test = split_pairs(len(data), 0.2, 0)
    chosen = selection[selection["selected"] & ~selection["pair_index"].isin(test)]
    assert recorded["training_set"]["n_rows"] == len(chosen)
    assert recorded["training_set"]["n_desirable"] == int((chosen["label"] == 1).sum())
    weights = recorded["train_config"]
    assert weights["desirable_weight"] * recorded["training_set"]["n_desirable"] == pytest.approx(
        weights["undesirable_weight"] * recorded["training_set"]["n_undesirable"])
    used = pd.read_parquet(run / "selection.parquet")
    assert not (used["trained"] & used["in_test"]).any()
    assert set(used.loc[used["trained"], "index"]) == set(chosen["index"])
    check_eval(run, 24)
    assert "KTO training: 4 steps" in store.logs(job_id, tail=None)


def test_training_set_holds_out_the_test_pairs_for_every_kind_of_selection(tmp_path):
    data = load_preferences("demo:100")
    _, test = split_pairs(100, 0.25, 7)
    pairs = pair_selection(data, tmp_path / "p.parquet", k=60)
    completions = completion_selection(data, tmp_path / "c.parquet", k=80)

    whole = training_set(data, None, method="dpo", test_fraction=0.25, split_seed=7)
    assert sorted(whole.pairs) == sorted(set(range(100)) - set(test)) and whole.level == "all"
    assert whole.n_selected_in_test == 25

    dpo = training_set(data, tmp_path / "p.parquet", method="dpo", test_fraction=0.25, split_seed=7)
    kept = set(pairs.table.loc[pairs["selected"], "index"]) - set(test)
    assert set(dpo.pairs) == kept and len(dpo.rows) == len(kept)
    kto_pairs = training_set(data, pairs, method="kto", test_fraction=0.25, split_seed=7)
    assert len(kto_pairs.rows) == 2 * len(kept) and sorted(kto_pairs.rows["label"].unique()) == [0, 1]

    sel = completions[completions["selected"] & ~completions["pair_index"].isin(test)]
    kto = training_set(data, tmp_path / "c.parquet", method="kto", test_fraction=0.25, split_seed=7)
    assert len(kto.rows) == len(sel) and kto.level == "completion"
    assert set(zip(kto.rows["pair"], kto.rows["label"])) == set(zip(sel["pair_index"], sel["label"]))
    any_rule = training_set(data, completions, method="dpo", test_fraction=0.25, split_seed=7)
    both_rule = training_set(data, completions, method="dpo", test_fraction=0.25, split_seed=7, pair_rule="both")
    counts = sel.groupby("pair_index").size()
    assert set(any_rule.pairs) == set(counts.index) and set(both_rule.pairs) == set(counts[counts == 2].index)
    for tset in (dpo, kto_pairs, kto, any_rule, both_rule):
        assert not set(tset.pairs) & set(test)


def bad(call) -> str:
    with pytest.raises((TrainError, ModelError)) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and len(message) < 400
    return message


def test_bad_inputs_fail_with_one_line_errors_before_anything_is_written(tmp_path):
    data = load_preferences("demo:60")
    run = tmp_path / "run"
    config = train_config("dpo", max_steps=1)
    table = pair_selection(data, tmp_path / "sel.parquet", k=20)

    empty = table.table.assign(selected=False)
    assert "selection is empty" in bad(lambda: train(data, selection=empty, config=config, run_dir=run))
    other = load_preferences("demo:61")
    assert "fingerprint" in bad(lambda: train(other, selection=tmp_path / "sel.parquet", config=config, run_dir=run))
    beyond = pd.DataFrame({"index": [0, 70], "score": [1.0, 0.5], "selected": [True, True], "rank": [1, 2]})
    assert "the data has 60 pairs" in bad(lambda: train(data, selection=beyond, config=config, run_dir=run))
    _, test = split_pairs(60, 0.2, 0)
    only_test = pd.DataFrame({"index": test, "selected": True})
    assert "held-out" in bad(lambda: train(data, selection=only_test, config=config, run_dir=run))
    assert "does not exist" in bad(lambda: train(data, selection=tmp_path / "nope.parquet", config=config, run_dir=run))
    (tmp_path / "text.parquet").write_text("not parquet")
    assert "not a parquet file" in bad(lambda: train(data, selection=tmp_path / "text.parquet", config=config,
                                                        run_dir=run))
    assert "unknown model 'no-such-model'" in bad(lambda: train(data, config=train_config("dpo", model="no-such-model"),
                                                                run_dir=run))
    assert "unknown training method 'ppo'" in bad(lambda: train_config("ppo"))
    assert "unknown dpo option(s) epoch (did you mean epochs?)" in bad(lambda: train_config("dpo", epoch=2))
    assert "batch_size must be >= 2" in bad(lambda: train_config("kto", batch_size=1))
    assert "test_fraction" in bad(lambda: train_config("dpo", test_fraction=1.0))
    assert "lr must be > 0" in bad(lambda: train_config("dpo", lr=-1.0))
    if importlib.util.find_spec("peft") is None:
        assert "pip install peft" in bad(lambda: train(data, config=train_config("dpo", lora=True), run_dir=run))
    assert not run.exists() or not any(run.iterdir())


def test_a_train_job_with_a_bad_config_fails_with_a_one_line_error(isolated_home):
    store = JobStore()
    job = store.wait(store.submit("train", {"data": "demo:20", "method": "ppo"}), timeout=120)
    assert job.status == FAILED
    assert job.error == "TrainError: unknown training method 'ppo': use one of dpo, kto, dpo-sams"


def test_metrics_are_normalised_whatever_trl_calls_them():
    dpo = normalise_metrics({"loss": 0.6, "learning_rate": 1e-5, "rewards/chosen": 0.3, "rewards/rejected": 0.1,
                             "rewards/margins": 0.2, "rewards/accuracies": 0.75, "grad_norm": 1.5, "epoch": 0.5},
                            step=3, epoch=None, elapsed_s=1.23456)
    assert list(dpo)[:len(METRIC_KEYS)] == list(METRIC_KEYS)
    assert (dpo["step"], dpo["epoch"], dpo["lr"], dpo["elapsed_s"], dpo["grad_norm"]) == (3, 0.5, 1e-5, 1.235, 1.5)
    # older KTO: sums and counts; no margins and no accuracies
    kto = normalise_metrics({"loss": 0.5, "lr": 2e-6, "rewards/chosen_sum": 3.0, "count/chosen": 4,
                             "rewards/rejected_sum": -1.0, "count/rejected": 2, "kl": 0.01},
                            step=1, epoch=0.1, elapsed_s=0.5)
    assert kto["rewards/chosen"] == 0.75 and kto["rewards/rejected"] == -0.5
    assert kto["rewards/margins"] == 1.25 and kto["rewards/accuracies"] is None and kto["kl"] == 0.01
    assert "rewards/chosen_sum" not in kto
    assert normalise_metrics({"loss": float("nan")}, step=1, epoch=None, elapsed_s=0)["loss"] is None

"""Real-model training options: LoRA through peft and experiment tracking (report_to), on the tiny
model on CPU — a real TRL run, real files."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from alignscope.train.config import REPORT_TO, TrainError, report_to_names, train_config
from conftest import run_cli

needs_peft = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="peft is not installed")
needs_tensorboard = pytest.mark.skipif(importlib.util.find_spec("tensorboard") is None,
                                       reason="tensorboard is not installed")


@pytest.mark.slow
@needs_peft
@needs_tensorboard
def test_lora_dpo_run_merges_the_adapter_and_logs_to_tensorboard(tmp_path, tiny):
    import torch
    from safetensors.torch import load_file

    run = tmp_path / "run"
    trained = run_cli("train", "demo:120", "--method", "dpo", "--model", "tiny", "--max-steps", "2",
                      "--max-length", "32", "--eval-max-pairs", "8", "--lr", "5e-3", "--save-model",
                      "--lora", "--lora-r", "4", "--lora-alpha", "8", "--report-to", "tensorboard",
                      "--out", run, "--json", timeout=900)
    assert trained.returncode == 0, trained.stderr
    result = json.loads(trained.stdout)
    assert result["n_pairs"] == 8 and 0 <= result["accuracy"] <= 1
    assert (run / "eval.json").is_file()
    resolved = json.loads((run / "config.json").read_text())["train_config"]
    assert resolved["lora"] is True and resolved["lora_r"] == 4 and resolved["lora_alpha"] == 8
    assert resolved["report_to"] == ["tensorboard"]
    # The saved model is a plain model: the adapter merged into the weights, no peft files.
    model_dir = run / "model"
    assert not (model_dir / "adapter_config.json").exists()
    trained_weights = load_file(str(model_dir / "model.safetensors"))
    assert not any("lora_" in name for name in trained_weights)
    base = load_file(str(next(Path(tiny).glob("*.safetensors"))))
    changed = [name for name in base if name in trained_weights
               and not torch.equal(base[name].float(), trained_weights[name].float())]
    assert changed, "merging the trained adapter changed no weight"
    assert all("proj" in name for name in changed), changed  # only the adapted linear layers moved
    assert list((run / "tensorboard").rglob("events.out.tfevents.*")), "no TensorBoard event file"


def test_lora_and_tracking_options_are_checked_before_any_job(tmp_path):
    run = tmp_path / "run"
    orphan = run_cli("train", "demo:120", "--lora-r", "8", "--out", run)
    assert orphan.returncode == 2 and "--lora-r" in orphan.stderr and "--lora" in orphan.stderr
    unknown = run_cli("train", "demo:120", "--report-to", "tensorbord", "--out", run)
    assert unknown.returncode == 2 and "unknown tracker 'tensorbord'" in unknown.stderr
    assert len(unknown.stderr.strip().splitlines()) == 1
    bad_alpha = run_cli("train", "demo:120", "--lora", "--lora-alpha", "0", "--out", run)
    assert bad_alpha.returncode == 2 and "lora_alpha" in bad_alpha.stderr
    missing = [name for name in REPORT_TO if importlib.util.find_spec(name) is None]
    if missing:  # a tracker whose package is absent: said plainly, with the install command
        absent = run_cli("train", "demo:120", "--report-to", missing[0], "--out", run)
        assert absent.returncode == 2
        assert f"needs the {missing[0]} package, which is not installed: pip install {missing[0]}" in absent.stderr
    assert not run.exists()
    assert json.loads(run_cli("jobs", "list", "--json").stdout) == []


def test_report_to_and_lora_validation_in_python():
    assert report_to_names("none") == [] and report_to_names(["TensorBoard "]) == ["tensorboard"]
    assert report_to_names("tensorboard,mlflow") == ["tensorboard", "mlflow"]
    assert train_config("dpo").report_to == "none" and train_config("dpo").lora is False  # off by default
    for bad, message in [({"report_to": ["none", "wandb"]}, "cannot be combined"),
                         ({"report_to": 3}, "report_to must be"),
                         ({"lora_dropout": 1.0}, "lora_dropout"),
                         ({"lora_target_modules": []}, "lora_target_modules"),
                         ({"lora": "yes"}, "lora must be")]:
        with pytest.raises(TrainError, match=message):
            train_config("dpo", **bad)
    config = train_config("dpo-sams", lora=True, lora_target_modules=["q_proj", "v_proj"])
    assert config.to_dict()["lora_target_modules"] == ["q_proj", "v_proj"]


@needs_tensorboard
def test_train_page_real_model_options_reach_the_job(monkeypatch, tmp_path):
    from streamlit.testing.v1 import AppTest

    from alignscope.jobs import JobStore
    from conftest import ROOT

    monkeypatch.setenv("ALIGNSCOPE_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("ALIGNSCOPE_INITIAL_DATA", "demo:120")
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=120).run()
    at.switch_page("views/train.py").run()
    assert not at.exception, [e.value for e in at.exception]
    assert "Real-model options" in [e.label for e in at.expander]
    assert at.checkbox(key="train_lora").value is False and at.multiselect(key="train_report_to").value == []
    at.checkbox(key="train_lora").check()
    at.number_input(key="train_lora_r").set_value(8)
    at.text_input(key="train_lora_targets").set_value("q_proj, v_proj")
    at.multiselect(key="train_report_to").set_value(["tensorboard"])
    at.number_input(key="train_max_steps").set_value(1)
    next(b for b in at.button if b.label == "Start training").click().run()
    assert not at.exception, [e.value for e in at.exception]
    store = JobStore()
    job = store.list_jobs(kind="train")[0]
    assert job.config["lora"] is True and job.config["lora_r"] == 8 and job.config["lora_alpha"] == 32
    assert job.config["lora_target_modules"] == ["q_proj", "v_proj"]
    assert job.config["report_to"] == ["tensorboard"]
    store.cancel(job.id)


def test_training_warnings_are_collected_once_each():
    """What TRL logs while training (e.g. that it cuts the end of every prompt) is kept for the page."""
    import logging

    from alignscope.train.callbacks import TrainingWarnings

    with TrainingWarnings() as caught:
        for _ in range(3):
            logging.getLogger("trl.trainer.dpo_trainer").warning("The tokenized prompt is not a prefix of ...")
        logging.getLogger("transformers.trainer").warning("another   warning\nover two lines")
        logging.getLogger("trl.trainer.dpo_trainer").info("not a warning")
    logging.getLogger("trl.trainer.dpo_trainer").warning("after the run: not collected")
    assert caught.record["warnings"] == ["The tokenized prompt is not a prefix of ...", "another warning over two lines"]
    assert [group["count"] for group in caught.record["groups"]] == [3, 1] and caught.record["total"] == 4

"""SamS: the scheduler's parts (selection, rewards, replay, MSE shapes) and the real TRL trainer on
the tiny model (gradient only through the selected pairs, unchanged loss value, the per-step log,
gradient accumulation, precomputed reference log-probabilities, the CLI)."""
from __future__ import annotations

import json
import math
import random

import pytest
import torch

from alignscope.data.demo import demo_frame
from alignscope.files import read_jsonl
from alignscope.models import load_causal_lm
from alignscope.train.sams import (ReplayPool, SamsScheduler, batch_reward, layer_mean, pair_contexts, pair_rewards,
                                   sample_rewards)
from alignscope.train.sams_config import SamsConfig, SamsError, n_selected
from alignscope.train.config import TrainError, train_config
from alignscope.train.trainer import train
from tests.conftest import run_cli


# ------------------------------------------------------------------------------- selection
@pytest.mark.parametrize("ratio,n,k", [(0.5, 8, 4), (0.5, 7, 4), (0.25, 8, 2), (0.3, 10, 3), (1.0, 5, 5), (0.01, 4, 1)])
def test_selection_size_is_ceil_ratio_times_n_for_every_mode(ratio, n, k):
    assert n_selected(ratio, n) == k
    scores = torch.randn(n, generator=torch.Generator().manual_seed(0))
    for mode in ("topk", "softmax", "random"):
        chosen = SamsScheduler(SamsConfig(ratio=ratio, selection=mode)).select(scores)
        assert len(chosen) == k and len(set(chosen.tolist())) == k
        assert chosen.tolist() == sorted(chosen.tolist()) and 0 <= chosen.min() and chosen.max() < n


def test_topk_takes_the_highest_scores_and_warmup_takes_everything():
    scheduler = SamsScheduler(SamsConfig(ratio=0.5))
    scores = torch.tensor([0.1, 0.9, -1.0, 0.5, 0.4, 2.0])
    assert scheduler.select(scores).tolist() == [1, 3, 5]
    assert scheduler.select(scores, full=True).tolist() == list(range(6))


def test_same_seed_gives_the_same_sampled_selections():
    scores = torch.randn(32, generator=torch.Generator().manual_seed(1))
    runs = []
    for _ in range(2):
        scheduler = SamsScheduler(SamsConfig(selection="softmax", seed=7))
        runs.append([scheduler.select(scores).tolist() for _ in range(3)])
    assert runs[0] == runs[1]
    assert runs[0][0] != runs[0][1] or runs[0][1] != runs[0][2]  # it samples, it does not repeat


# --------------------------------------------------------------------------------- rewards
def test_a_step_that_lowers_the_loss_earns_a_higher_reward():
    assert batch_reward(0.70, 0.60) > 0 > batch_reward(0.70, 0.80)
    assert batch_reward(0.70, 0.70) == 0
    r_sample = torch.tensor([0.6, 0.7])
    better = pair_rewards(batch_reward(0.7, 0.5), r_sample, gamma=0.5)
    worse = pair_rewards(batch_reward(0.7, 0.9), r_sample, gamma=0.5)
    assert torch.all(better > worse)
    # The reference code's bug: dividing improving (negative) loss deltas by their max flips signs.
    # Ours is monotone: every lower next loss gives a strictly higher reward.
    rewards = [batch_reward(0.7, loss) for loss in (0.9, 0.8, 0.7, 0.6, 0.5, 0.1)]
    assert rewards == sorted(rewards) and len(set(rewards)) == len(rewards)
    assert math.isfinite(batch_reward(0.0, 1e6)) and math.isfinite(batch_reward(1e6, 0.0))


def test_sample_reward_prefers_high_margin_and_low_chosen_likelihood():
    margins = torch.tensor([0.0, 1.0, 0.5])
    chosen_logps = torch.tensor([-10.0, -30.0, -20.0])
    r = sample_rewards(margins, chosen_logps)
    assert r.shape == (3,) and r.argmax() == 1 and r.argmin() == 0
    flat = sample_rewards(torch.zeros(4), torch.zeros(4))  # constant batch: no NaN
    assert torch.allclose(flat, torch.sigmoid(torch.tensor(0.5)))


# ---------------------------------------------------------------------------- replay + MSE
def test_replay_pool_is_bounded_by_batches_and_by_bytes():
    pool = ReplayPool(max_batches=3, max_bytes=10 ** 9)
    for i in range(10):
        pool.add(torch.full((4, 5), float(i)), torch.zeros(4))
    assert len(pool) == 3 and [b[0][0, 0].item() for b in pool.batches] == [7, 8, 9]
    one_batch = 4 * 5 * 4 + 4 * 4
    small = ReplayPool(max_batches=100, max_bytes=2 * one_batch)
    for i in range(10):
        small.add(torch.zeros(4, 5), torch.zeros(4))
        assert small.nbytes <= 2 * one_batch
    assert len(small) == 2
    sample = small.sample(32, random.Random(0))
    assert sample[0] is small.batches[-1] and len(sample) == 2


def test_scheduler_update_needs_exact_shapes_and_learns_a_reward():
    scheduler = SamsScheduler(SamsConfig(width=32, depth=2, lr=3e-3, scheduler_steps=5, replay_sample=8, seed=0))
    with pytest.raises(SamsError, match="rewards"):
        scheduler.update(torch.randn(6, 4), torch.randn(6, 1))  # (n, 1) would broadcast to (n, n)
    generator = torch.Generator().manual_seed(0)
    direction = torch.randn(4, generator=generator)
    losses = []
    for _ in range(40):
        contexts = torch.randn(16, 4, generator=generator)
        losses.append(scheduler.update(contexts, torch.sigmoid(contexts @ direction)))
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
    test = torch.randn(200, 4, generator=generator)
    scores = scheduler.score(test)
    target = torch.sigmoid(test @ direction)
    assert torch.corrcoef(torch.stack([scores, target]))[0, 1] > 0.8


def test_contexts_mask_padding_and_average_chosen_with_rejected():
    hidden = torch.arange(2 * 3 * 2, dtype=torch.float32).reshape(2, 3, 2)  # rows: chosen, rejected
    mask = torch.tensor([[0, 1, 1], [1, 0, 0]])
    means = layer_mean(hidden + 1000 * (1 - mask).unsqueeze(-1), mask)  # padding values must not leak
    assert torch.equal(means, torch.tensor([[3.0, 4.0], [6.0, 7.0]]))
    flat = pair_contexts([means, means * 2], "mean", "flatten")
    assert flat.shape == (1, 4) and torch.equal(flat[0], torch.tensor([4.5, 5.5, 9.0, 11.0]))
    assert pair_contexts([means, means * 2], "mean", "mean").shape == (1, 2)
    assert torch.equal(layer_mean(hidden, torch.zeros(2, 3)), torch.zeros(2, 2))


def test_bad_sams_options_are_one_line_errors():
    for fields, needle in [({"sams_ratio": 0}, "sams_ratio"), ({"sams_ratio": 1.5}, "sams_ratio"),
                           ({"sams_selection": "best"}, "sams_selection"), ({"sams_width": 0}, "sams_width"),
                           ({"loss_type": "ipo"}, "sigmoid"), ({"label_noise": 1.0}, "label_noise")]:
        with pytest.raises(TrainError, match=needle) as info:
            train_config("dpo-sams", **fields)
        assert "\n" not in str(info.value)


# ------------------------------------------------------------------------ the real trainer
def _trainer(tiny: str, tmp_path, *, sams=None, batch_size=4, **args):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    from alignscope.train.trainer import SamsDPOTrainer

    frame = demo_frame(20, seed=3).head(16)[["prompt", "chosen", "rejected"]]
    policy, tokenizer = load_causal_lm(tiny, device="cpu")
    reference, _ = load_causal_lm(tiny, device="cpu")
    config = DPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=batch_size, max_steps=2,
                       max_length=48, learning_rate=1e-3, report_to="none", use_cpu=True, bf16=False,
                       logging_steps=1, save_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
                       activation_checkpointing=False, **args)
    common = dict(model=policy, ref_model=reference, args=config, processing_class=tokenizer,
                  train_dataset=Dataset.from_pandas(frame, preserve_index=False))
    if sams is None:
        return DPOTrainer(**common)
    return SamsDPOTrainer(**common, sams_config=sams)


def test_gradient_flows_only_through_the_selected_pairs_and_the_loss_value_is_plain_dpo(tiny, tmp_path):
    trainer = _trainer(tiny, tmp_path, sams=SamsConfig(ratio=0.5, seed=1), batch_size=6)
    plain = _trainer(tiny, tmp_path / "plain")
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["sams_index"].shape == (6,)
    seen = {}

    def keep_log_probs(module, args, output):  # runs before SamS's hook: the policy's own log-probs
        output.log_probs.retain_grad()
        seen["log_probs"] = output.log_probs

    handle = trainer.model.register_forward_hook(keep_log_probs, prepend=True)
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, dict(batch))
    loss.backward()
    handle.remove()
    grad_rows = seen["log_probs"].grad.abs().sum(dim=1)
    selected = trainer._micro[-1]["selected"]
    positions = [batch["sams_index"].tolist().index(i) for i in selected.tolist()]
    assert len(positions) == 3
    expected = torch.zeros(12, dtype=torch.bool)
    for p in positions:
        expected[p] = expected[p + 6] = True
    assert torch.all(grad_rows[expected] > 0) and torch.all(grad_rows[~expected] == 0)

    plain_batch = {k: v for k, v in batch.items() if k != "sams_index"}
    plain.model.train()
    with torch.no_grad():
        plain_loss = plain.compute_loss(plain.model, plain_batch)
    assert torch.allclose(loss.detach(), plain_loss, atol=1e-6)


def test_gradient_accumulation_and_precomputed_reference_log_probs(tiny, tmp_path):
    trainer = _trainer(tiny, tmp_path, sams=SamsConfig(ratio=0.5, warmup_steps=1, reward="published"), batch_size=2,
                       gradient_accumulation_steps=2, precompute_ref_log_probs=True)
    trainer.train()
    steps = read_jsonl(tmp_path / "out" / "sams.jsonl")
    assert [s["step"] for s in steps] == [1, 2]
    assert len(steps[0]["batch"]) == 4 and len(steps[0]["selected"]) == 4  # warm-up: the full batch
    assert len(steps[1]["batch"]) == 4 and len(steps[1]["selected"]) == 2  # 1 of 2 in each micro-batch
    assert steps[0]["rewards"] is not None and steps[1]["rewards"] is None  # lagged: the last one waits
    assert all(0 < r < 1 for r in steps[0]["rewards"])


def test_train_with_dpo_sams_writes_the_scheduler_log_and_marks_flipped_pairs(tiny, tmp_path):
    import pandas as pd

    config = train_config("dpo-sams", max_steps=3, batch_size=8, max_length=48, sams_ratio=0.25,
                          label_noise=0.5, label_noise_seed=3, eval_max_pairs=12, n_boot=0)
    result = train("demo:60", config=config, run_dir=tmp_path / "run", progress_bar=False)
    steps = read_jsonl(tmp_path / "run" / "sams.jsonl")
    assert [s["step"] for s in steps] == [1, 2, 3]
    table = pd.read_parquet(tmp_path / "run" / "selection.parquet")
    trained = set(table.loc[table["trained"], "index"])
    for step in steps:
        assert len(step["batch"]) == 8 and len(step["selected"]) == 2 and set(step["selected"]) <= set(step["batch"])
        assert set(step["batch"]) <= trained and len(step["scores"]) == 8
    assert table["flipped"].sum() == round(0.5 * len(trained)) and not table.loc[table["in_test"], "flipped"].any()
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert recorded["method"] == "dpo-sams" and recorded["label_noise"]["n_flipped"] == table["flipped"].sum()
    assert result["eval"]["n_pairs"] == 12


def test_cli_train_dpo_sams_selects_ceil_rho_n_per_step(tmp_path):
    out = tmp_path / "run"
    done = run_cli("train", "demo:40", "--method", "dpo-sams", "--model", "tiny", "--max-steps", "2",
                   "--batch-size", "6", "--max-length", "32", "--sams-ratio", "0.5", "--eval-max-pairs", "8",
                   "--out", out, "--json", timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    steps = read_jsonl(out / "sams.jsonl")
    assert len(steps) == 2 and all(len(s["selected"]) == 3 for s in steps)
    assert "accuracy" in json.loads(done.stdout)

"""SamS that can see what it is asked about (issue 21): the three pair contexts (flip-invariance of
``mean`` on the real policy's hidden states, its absence for ``pair``/``diff``), the running
per-feature standardisation, the reward variants, the order of learning and scoring, the ⌈ρ·n⌉
warning and warm-up rows left out of the selection rates."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from alignscope.data.demo import demo_frame
from alignscope.files import read_jsonl
from alignscope.models import load_causal_lm
from alignscope.train.sams import RunningMoments, SamsScheduler, pair_contexts, pair_rewards, ranked_rewards
from alignscope.train.sams_config import SamsConfig, SamsError, ratio_warning
from alignscope.train.sams_log import read_sams_log, selection_rates
from alignscope.train.config import TrainError, train_config
from alignscope.train.trainer import train


# -------------------------------------------------------------------------------- contexts
def _means(n: int, layers: int = 3, dim: int = 4, seed: int = 0) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(2 * n, dim, generator=generator) for _ in range(layers)]


def _flip(layer_means: list[torch.Tensor]) -> list[torch.Tensor]:
    return [torch.cat(m.chunk(2)[::-1]) for m in layer_means]  # rejected rows first: labels swapped


@pytest.mark.parametrize("pooling,features", [("flatten", 12), ("mean", 4)])
def test_the_three_contexts_and_what_a_label_flip_does_to_them(pooling, features):
    means = _means(5)
    mean, pair, diff = (pair_contexts(means, mode, pooling) for mode in ("mean", "pair", "diff"))
    assert mean.shape == (5, features) and diff.shape == (5, features) and pair.shape == (5, 2 * features)
    assert torch.allclose(pair_contexts(_flip(means), "mean", pooling), mean)          # cannot see a flip
    flipped_pair = pair_contexts(_flip(means), "pair", pooling)
    assert not torch.allclose(flipped_pair, pair)
    assert torch.equal(flipped_pair, torch.cat([pair[:, features:], pair[:, :features]], dim=1))
    assert torch.allclose(pair_contexts(_flip(means), "diff", pooling), -diff)
    assert torch.allclose(mean, (pair[:, :features] + pair[:, features:]) / 2)
    with pytest.raises(SamsError, match="context"):
        pair_contexts(means, "sum", pooling)


def test_old_context_names_and_bad_options():
    assert (SamsConfig(context="flatten").context, SamsConfig(context="flatten").pooling) == ("mean", "flatten")
    for fields, needle in [({"sams_context": "both"}, "sams_context"), ({"sams_pooling": "max"}, "sams_pooling"),
                           ({"sams_reward": "paper"}, "sams_reward"), ({"sams_standardize": "yes"}, "sams_standardize")]:
        with pytest.raises(TrainError, match=needle) as info:
            train_config("dpo-sams", **fields)
        assert "\n" not in str(info.value)


# --------------------------------------------------------------------------- standardisation
def test_running_moments_equal_the_moments_of_everything_seen():
    rng = np.random.default_rng(0)
    batches = [rng.normal(loc=3.0, scale=[1.0, 100.0, 0.01], size=(n, 3)) for n in (1, 5, 8, 2, 13)]
    moments = RunningMoments()
    for batch in batches:
        moments.update(torch.tensor(batch))
    everything = np.concatenate(batches)
    assert moments.count == len(everything)
    assert np.allclose(moments.mean.numpy(), everything.mean(axis=0))
    assert np.allclose(moments.var.numpy(), everything.var(axis=0, ddof=1))
    z = moments.transform(torch.tensor(everything, dtype=torch.float32)).numpy()
    assert np.allclose(z.mean(axis=0), 0, atol=1e-4) and np.allclose(z.std(axis=0, ddof=1), 1, atol=1e-3)
    with pytest.raises(SamsError, match="feature count"):
        moments.update(torch.zeros(2, 4))


def _massive(n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Contexts whose first feature is a 'massive activation' (≈ 1e4, varying ± 100) while the
    reward lives in two ordinary features (scale 1)."""
    x = torch.randn(n, 16, generator=generator)
    x[:, 0] = 1e4 + 100 * torch.randn(n, generator=generator)
    return x, torch.sigmoid(2 * (x[:, 3] - x[:, 7]))


def test_standardisation_lets_the_scheduler_see_past_a_massive_activation():
    correlations = {}
    for standardize in (True, False):
        scheduler = SamsScheduler(SamsConfig(width=32, lr=3e-3, scheduler_steps=5, replay_sample=8, seed=0,
                                             standardize=standardize))
        generator = torch.Generator().manual_seed(1)
        for _ in range(40):
            contexts, rewards = _massive(16, generator)
            scheduler.score(contexts)  # the trainer scores every batch before it learns its reward
            scheduler.update(contexts, rewards)
        test, target = _massive(300, generator)
        scores = scheduler.score(test)
        correlations[standardize] = float(torch.corrcoef(torch.stack([scores, target]))[0, 1])
    assert correlations[True] > 0.8
    assert correlations[True] > correlations[False] + 0.2, correlations
    inputs = SamsScheduler(SamsConfig(standardize=True))
    inputs.score(torch.tensor([[1e4, 1.0], [1e4 + 200, -1.0], [1e4 - 200, 0.0]]))
    assert inputs._inputs(torch.tensor([[1e4 + 200, 1.0]])).abs().max() < 5  # every feature on one scale


# ------------------------------------------------------------------------------- rewards
def test_published_reward_barely_varies_and_ranked_reward_ranks_the_batch():
    r_sample = torch.tensor([0.62, 0.65, 0.70, 0.73])
    published = pair_rewards(0.01, r_sample, gamma=0.5)
    assert float(published.max() - published.min()) < 0.02  # σ of values in [0.62, 0.73]: a flat target
    selected = torch.tensor([True, False, True, False])
    ranked = ranked_rewards(0.0, r_sample, selected, ratio=0.5, gamma=0.5)
    assert abs(float(ranked.mean())) < 1e-6 and torch.equal(torch.argsort(ranked), torch.argsort(r_sample))
    assert float(ranked.max() - ranked.min()) > 1.0
    better = ranked_rewards(2.0, r_sample, selected, ratio=0.5, gamma=0.5)   # a better-than-usual step
    worse = ranked_rewards(-2.0, r_sample, selected, ratio=0.5, gamma=0.5)
    assert torch.all((better - ranked)[selected] > 0) and torch.all((better - ranked)[~selected] < 0)
    assert torch.all((worse - ranked)[selected] < 0) and torch.all((worse - ranked)[~selected] > 0)
    everyone = torch.ones(4, dtype=torch.bool)  # warm-up: nothing was chosen, nothing to credit
    assert torch.allclose(ranked_rewards(2.0, r_sample, everyone, 0.5, 0.5), ranked_rewards(0.0, r_sample, everyone, 0.5, 0.5))
    lone = ranked_rewards(1.0, torch.full((3,), 0.7), torch.tensor([True, False, False]), 0.5, 1.0)
    assert torch.allclose(lone, torch.tensor([np.sqrt(2), -1 / np.sqrt(2), -1 / np.sqrt(2)]).float())


def test_batch_score_is_standardised_against_earlier_steps_and_clipped():
    scheduler = SamsScheduler(SamsConfig(reward="ranked"))
    assert scheduler.batch_score(0.3) == 0.0 and scheduler.batch_score(0.1) == 0.0  # no scale yet
    scores = [scheduler.batch_score(x) for x in (-0.1, 0.4, 0.0)]
    assert scores[1] > 0 > scores[0]
    other = SamsScheduler(SamsConfig(reward="ranked"))
    for x in (0.1, -0.1, 0.2, 0.0):
        other.batch_score(x)
    assert scheduler.batch_score(1e6) == 3.0 and other.batch_score(-1e6) == -3.0


def test_ratio_warning_when_a_micro_batch_cannot_hold_rho():
    assert ratio_warning(0.5, 8) is None and ratio_warning(0.25, 8) is None and ratio_warning(1.0, 1) is None
    assert "1 of every 1" in ratio_warning(0.5, 1) and "0.667" in ratio_warning(0.5, 3)


def test_selection_rates_leave_warmup_rows_out():
    log = pd.DataFrame({"step": [1, 1, 2, 2], "index": [0, 1, 0, 1], "selected": [True, True, True, False],
                        "warmup": [True, True, False, False]})
    rates = selection_rates(log).set_index("group")
    assert rates.loc["0", "seen"] == 1 and rates.loc["1", "rate"] == 0.0
    assert selection_rates(log, include_warmup=True).set_index("group").loc["1", "seen"] == 2


# --------------------------------------------------------------------- the real trainer
def _trainer(tiny: str, tmp_path, sams: SamsConfig, *, batch_size=4, max_steps=2, frame=None, **args):
    from datasets import Dataset
    from trl import DPOConfig

    from alignscope.train.sams_trainer import SamsDPOTrainer

    if frame is None:
        frame = demo_frame(20, seed=3).head(16)[["prompt", "chosen", "rejected"]]
    policy, tokenizer = load_causal_lm(tiny, device="cpu")
    reference, _ = load_causal_lm(tiny, device="cpu")
    config = DPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=batch_size, max_steps=max_steps,
                       max_length=48, learning_rate=1e-3, report_to="none", use_cpu=True, bf16=False,
                       logging_steps=1, save_strategy="no", disable_tqdm=True, dataloader_num_workers=0,
                       activation_checkpointing=False, **args)
    return SamsDPOTrainer(model=policy, ref_model=reference, args=config, processing_class=tokenizer,
                          train_dataset=Dataset.from_pandas(frame, preserve_index=False), sams_config=sams)


def _flipped_batch(batch: dict) -> dict:
    """The same pairs with chosen and rejected swapped: TRL stacks the n chosen rows, then the n
    rejected rows, so every (2n, ...) tensor swaps its halves."""
    n = int(batch["sams_index"].shape[0])
    out = {}
    for key, value in batch.items():
        if torch.is_tensor(value) and value.ndim >= 1 and value.shape[0] == 2 * n:
            out[key] = torch.cat(value.chunk(2)[::-1])
        else:
            out[key] = value
    return out


def test_mean_context_is_flip_invariant_on_the_real_policy_and_pair_diff_are_not(tiny, tmp_path):
    trainer = _trainer(tiny, tmp_path, SamsConfig(context="pair", seed=0), batch_size=6)
    batch = next(iter(trainer.get_train_dataloader()))
    assert batch["input_ids"].shape[0] == 12
    trainer.model.train()
    contexts = {}
    for mode in ("mean", "pair", "diff"):
        trainer.sams_config = SamsConfig(context=mode, seed=0)
        trainer.scheduler = SamsScheduler(trainer.sams_config)
        for name, inputs in (("as labelled", batch), ("flipped", _flipped_batch(batch))):
            loss = trainer.compute_loss(trainer.model, dict(inputs))
            contexts[mode, name] = (trainer._micro[-1]["contexts"], loss.detach().item())
    mean, mean_flipped = contexts["mean", "as labelled"][0], contexts["mean", "flipped"][0]
    assert mean.shape == (6, 2 * 64) and torch.allclose(mean, mean_flipped, atol=1e-5)
    scheduler = SamsScheduler(SamsConfig(context="mean", standardize=False, seed=0))  # scores both alike
    scheduler.score(torch.cat([mean, mean_flipped]))
    assert torch.allclose(scheduler.score(mean), scheduler.score(mean_flipped), atol=1e-5)
    pair, pair_flipped = contexts["pair", "as labelled"][0], contexts["pair", "flipped"][0]
    assert pair.shape == (6, 4 * 64)
    assert (pair - pair_flipped).abs().max() > 1e-2  # the chosen side is not the rejected side
    assert torch.allclose(pair_flipped, torch.cat([pair[:, 128:], pair[:, :128]], dim=1), atol=1e-5)
    diff, diff_flipped = contexts["diff", "as labelled"][0], contexts["diff", "flipped"][0]
    assert torch.allclose(diff_flipped, -diff, atol=1e-5) and diff.abs().max() > 1e-2


def test_scheduler_learns_step_t_before_it_scores_step_t_plus_1(tiny, tmp_path):
    trainer = _trainer(tiny, tmp_path, SamsConfig(ratio=0.5), batch_size=2, max_steps=3, gradient_accumulation_steps=2)
    seen = []
    score = trainer.scheduler.score

    def recording_score(contexts):
        seen.append(trainer.scheduler.updates)
        return score(contexts)

    trainer.scheduler.score = recording_score
    trainer.train()
    # two micro-batches per step; step t's reward is learned at step t+1's first micro-batch
    assert seen == [0, 0, 1, 1, 2, 2]
    steps = read_jsonl(tmp_path / "out" / "sams.jsonl")
    assert [s["step"] for s in steps] == [1, 2, 3] and steps[-1]["rewards"] is None
    assert all(len(s["sample_rewards"]) == 4 for s in steps[:-1])


def test_a_ratio_the_micro_batch_cannot_hold_is_said_once_and_recorded(tmp_path, capfd):
    config = train_config("dpo-sams", max_steps=2, batch_size=3, max_length=32, sams_ratio=0.5, sams_warmup_steps=1,
                          eval_max_pairs=4, n_boot=0)
    train("demo:30", config=config, run_dir=tmp_path / "run", progress_bar=False)
    recorded = json.loads((tmp_path / "run" / "config.json").read_text())
    assert len(recorded["sams_warnings"]) == 1 and "2 of every 3" in recorded["sams_warnings"][0]
    assert capfd.readouterr().err.count("SamS selects") == 1
    log = read_sams_log(tmp_path / "run")
    assert log.loc[log["step"] == 1, "warmup"].all() and not log.loc[log["step"] == 2, "warmup"].any()
    assert selection_rates(log)["seen"].sum() == (log["step"] == 2).sum()


def test_cli_passes_the_context_and_reward_options_to_the_sams_config():
    from alignscope.cli.parser import build_parser
    from alignscope.cli.train import train_fields

    args = build_parser().parse_args(["train", "demo:20", "--method", "dpo-sams", "--sams-context", "diff",
                                      "--sams-reward", "published", "--out", "run"])
    config = train_config("dpo-sams", **train_fields(args)).sams_config()
    assert (config.context, config.reward) == ("diff", "published")
    defaults = train_config("dpo-sams").sams_config()
    assert (defaults.context, defaults.reward, defaults.standardize) == ("pair", "ranked", True)

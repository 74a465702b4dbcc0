"""SamS plumbing, end to end on the real trainer: with a planted reward (1 for the pairs of one demo
topic, 0 otherwise; γ = 0, injected through the trainer's ``reward_override``), the scheduler must
learn, from the tiny policy's own hidden states, to pick that topic's pairs. This checks the whole
loop (contexts → scores → selection → lagged reward → update) without asking whether the
published reward is any good."""
from __future__ import annotations

import pytest
import torch

from alignscope.data.demo import demo_frame
from alignscope.files import read_jsonl
from alignscope.models import load_causal_lm
from alignscope.train.sams_config import SamsConfig


@pytest.mark.slow
def test_scheduler_learns_a_planted_topic_reward(tiny, tmp_path):
    from datasets import Dataset
    from trl import DPOConfig

    from alignscope.train.sams_trainer import SamsDPOTrainer

    frame = demo_frame(400, seed=5)
    topic = frame["topic"].value_counts().index[0]
    planted = torch.tensor((frame["topic"] == topic).to_numpy())
    policy, tokenizer = load_causal_lm(tiny, device="cpu")
    reference, _ = load_causal_lm(tiny, device="cpu")
    steps = 32
    args = DPOConfig(output_dir=str(tmp_path / "out"), per_device_train_batch_size=8, max_steps=steps, max_length=48,
                     learning_rate=1e-4, report_to="none", use_cpu=True, bf16=False, logging_steps=50,
                     save_strategy="no", disable_tqdm=True, dataloader_num_workers=0, seed=0,
                     activation_checkpointing=False)
    trainer = SamsDPOTrainer(model=policy, ref_model=reference, args=args, processing_class=tokenizer,
                             train_dataset=Dataset.from_pandas(frame[["prompt", "chosen", "rejected"]],
                                                               preserve_index=False),
                             sams_config=SamsConfig(ratio=0.5, gamma=0.0, seed=0),
                             reward_override=lambda index: planted[index].float())
    trainer.train()
    log = read_jsonl(tmp_path / "out" / "sams.jsonl")
    assert len(log) == steps
    seen = picked = 0
    for record in log[16:]:  # in a first run it had learned the topic by step 6
        chosen = set(record["selected"])
        for index in record["batch"]:
            if planted[index]:
                seen += 1
                picked += index in chosen
    assert seen >= 10  # the topic is 1 of 8: about one pair per batch
    assert picked / seen > 0.8, (topic, picked, seen)  # a blind choice picks half of them

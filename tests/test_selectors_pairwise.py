"""The pair selectors (length, margin, rds, lm-margin): real computations on planted data, the tiny
model for lm-margin and for text embeddings, the CLI in a subprocess. scikit-learn's estimator checks
and the option checks are in tests/test_selectors_sklearn.py; the Select page in
tests/test_app_map_select.py."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from alignscope.data.preferences import load_preferences
from alignscope.embed.embeddings import Embeddings
from alignscope.evaluate.metrics import pair_word_lengths
from alignscope.select.lm_margin import LMMarginSelector, cache_dir
from alignscope.select.pairwise import (LengthSelector, MarginSelector, RDSSelector, pair_differences,
                                        read_target_texts)
from alignscope.select.selection import Selection
from alignscope.select.selectors import PAIR_METHODS, SelectionError, select, select_data
from alignscope.train.trainset import split_pairs, training_set
from conftest import run_cli, write_jsonl


def words(n: int, word: str = "w") -> str:
    return " ".join([word] * int(n))


def preference_data(n: int, *, chosen_words=None, rejected_words=None, prompts=None):
    rows = [{"prompt": prompts[i] if prompts is not None else f"Question number {i} about topic {i % 7}?",
             "chosen": words(chosen_words[i] if chosen_words is not None else 3 + i % 5, "good"),
             "rejected": words(rejected_words[i] if rejected_words is not None else 4 + i % 3, "bad")}
            for i in range(n)]
    return load_preferences(pd.DataFrame(rows))


# ------------------------------------------------------------------------------------------ length
def _length_matrix(n=100, seed=0):
    """Training rows: 42 where the chosen answer is shorter, 38 longer (the shorter wins); the 20
    held-out rows all have a longer chosen answer, enough to flip the direction if they counted."""
    rng = np.random.default_rng(seed)
    held = split_pairs(n, 0.2, 0)[1]
    train = np.setdiff1d(np.arange(n), held)
    chosen, rejected = np.empty(n), np.empty(n)
    base = rng.integers(20, 60, n).astype(float)
    gap = rng.integers(1, 30, n).astype(float)
    shorter = np.zeros(n, dtype=bool)
    shorter[train[:42]] = True
    chosen = np.where(shorter, base, base + gap)
    rejected = np.where(shorter, base + gap, base)
    return np.column_stack([chosen, rejected]), held


def test_length_learns_the_direction_from_the_training_pairs_only_and_keeps_the_largest_gaps():
    X, held = _length_matrix()
    selection = LengthSelector().select(X, k=10)
    assert selection.unit == "pair" and len(selection) == 100 and selection.n_selected == 10
    assert selection.config["length_rule"]["direction"] == "shorter"
    expected = np.argsort(X[:, 0] - X[:, 1], kind="stable")[:10]  # most negative gaps: chosen much shorter
    assert set(selection.pairs()) == set(expected)
    assert np.array_equal(selection["gap"].to_numpy(), X[:, 0] - X[:, 1])
    # with every label (no held-out split) the held-out rows tip the rule the other way
    everything = LengthSelector(test_fraction=0.0).select(X, k=10)
    assert everything.config["length_rule"]["direction"] == "longer"
    assert not set(everything.pairs()) & set(selection.pairs())


def test_length_by_chosen_keeps_the_longest_chosen_answers():
    X, _ = _length_matrix(seed=3)
    selection = LengthSelector(by="chosen").select(X, fraction=0.25)
    kept = selection.pairs()
    assert len(kept) == 25
    assert X[kept, 0].min() >= np.sort(X[:, 0])[::-1][24]


def test_length_ties_are_broken_by_the_seed_not_by_row_order():
    X = np.full((60, 2), 12.0)  # every pair the same lengths: every score 0
    a, b = LengthSelector(seed=0).select(X, k=10), LengthSelector(seed=0).select(X, k=10)
    c = LengthSelector(seed=1).select(X, k=10)
    assert a.equals(b) and (a["score"] == 0).all()
    assert set(a.pairs()) != set(c.pairs())
    assert set(a.pairs()) != set(range(10))  # not simply the first rows
    assert sorted(a["rank"]) == list(range(1, 61))


def test_length_on_data_gives_a_pair_selection_that_training_uses_as_is():
    data = preference_data(40)
    selection = select_data(data, "length", fraction=0.25, seed=2)
    assert (selection.unit, selection.fingerprint, selection.config["encoder"]) == ("pair", data.fingerprint, None)
    chosen, rejected = pair_word_lengths(data)
    assert np.array_equal(selection["chosen_words"].to_numpy(), chosen)
    assert selection.pair_selection() is selection
    assert np.array_equal(selection.pairs(), np.sort(selection.table.loc[selection.selected, "index"].to_numpy()))
    tset = training_set(data, selection, test_fraction=0.2, split_seed=0)
    _, held = split_pairs(len(data), 0.2, 0)
    assert set(tset.pairs) == set(selection.pairs()) - set(held)
    with pytest.raises(SelectionError, match="larger than the number of points"):
        select_data(data, "length", k=41)
    with pytest.raises(SelectionError, match="ranks pairs"):
        select_data(data, "length", k=4, unit="completion")
    with pytest.raises(SelectionError, match=r"\(n, 2\) word counts"):
        LengthSelector().fit(np.ones((5, 3)))
    with pytest.raises(SelectionError, match="reads the texts"):
        select(Embeddings.from_matrix(np.ones((80, 4), np.float32), "completion"), "length", k=3)


# ------------------------------------------------------------------------------------------ margin
def _margin_matrix(n=300, d=6, seed=0):
    """Differences along e1 with a known true margin m in [-1, 3] plus small noise."""
    rng = np.random.default_rng(seed)
    m = rng.uniform(-1.0, 3.0, n)
    X = rng.normal(0, 0.1, (n, d))
    X[:, 0] += m
    return X.astype(np.float32), m


@pytest.mark.parametrize("keep", ["easy", "hard", "middle"])
def test_margin_keeps_the_planted_margins_it_is_asked_for(keep):
    X, m = _margin_matrix()
    selection = MarginSelector(keep=keep).select(X, fraction=0.1)
    kept = selection.pairs()
    assert np.corrcoef(selection["margin"], m)[0, 1] > 0.95  # the probe recovers the direction
    if keep == "easy":
        assert m[kept].min() > np.quantile(m, 0.8)
    elif keep == "hard":
        assert m[kept].max() < np.quantile(m, 0.2)
    else:
        assert np.quantile(m, 0.3) < m[kept].min() and m[kept].max() < np.quantile(m, 0.7)
    assert np.allclose(selection["p_chosen"], 1 / (1 + np.exp(-selection["margin"])))


def test_margin_is_out_of_fold_and_never_learns_from_held_out_labels():
    from alignscope.audit import fit_bt_probe

    X, _ = _margin_matrix(n=120, seed=1)
    selector = MarginSelector(folds=4, seed=5).fit(X)
    held = split_pairs(120, 0.2, 0)[1]
    train = np.setdiff1d(np.arange(120), held)
    fold_of = np.random.default_rng(5).permutation(len(train)) % 4
    w = fit_bt_probe(X[train[fold_of != 2]], C=1.0, seed=5 + 2)  # fold 2, by hand
    margin = selector.select(k=5)["margin"].to_numpy()
    assert np.allclose(margin[train[fold_of == 2]], X[train[fold_of == 2]].astype(np.float64) @ w)
    # flipping the held-out pairs' labels changes their own margin's sign, and nothing else
    flipped = X.copy()
    flipped[held] *= -1
    again = MarginSelector(folds=4, seed=5).select(flipped, k=5)["margin"].to_numpy()
    assert np.array_equal(again[train], margin[train])
    assert np.allclose(again[held], -margin[held])


def test_margin_from_data_and_precomputed_embeddings_records_circularity(tmp_path):
    data = preference_data(50)
    rng = np.random.default_rng(0)
    # completion embeddings already in memory, named after an encoder select_data must not run
    emb = Embeddings.from_matrix(rng.normal(size=(100, 8)).astype(np.float32), "completion", encoder="static",
                                 fingerprint=data.fingerprint)
    selection = select_data(data, "margin", embeddings=emb, k=5)
    assert selection.config["encoder"] == "static" and selection.config["circular"] is True
    assert "static" in selection.config["circular_note"]
    other = select_data(data, "margin", embeddings=emb, k=5, eval_encoder="minilm")
    assert other.config["circular"] is False and other.config["eval_encoder"] == "minilm"
    assert np.array_equal(other["margin"], selection["margin"])
    from alignscope.embed.encoders import cache_dir as embedding_cache

    assert not embedding_cache().exists() or not any(embedding_cache().iterdir())  # nothing was embedded
    diff = pair_differences(emb, 50)
    assert np.allclose(diff, emb.matrix[:50] - emb.matrix[50:])
    assert np.allclose(pair_differences(emb.to_unit("pair"), 50), diff)
    from_embeddings = select(emb, "margin", k=5)  # `select --embeddings` path
    assert np.allclose(from_embeddings["margin"], selection["margin"])
    with pytest.raises(SelectionError, match="fingerprint"):
        select_data(preference_data(50, prompts=[f"other {i}" for i in range(50)]), "margin", embeddings=emb, k=5)
    with pytest.raises(SelectionError, match="made with static, not minilm"):
        select_data(data, "margin", embeddings=emb, encoder="minilm", k=5)


# ------------------------------------------------------------------------------------------ rds
def test_rds_default_target_is_the_held_out_rows_which_rank_last():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 5))
    held = split_pairs(50, 0.2, 0)[1]
    train = np.setdiff1d(np.arange(50), held)
    X[train[:3]] = X[held[:3]]  # three training pairs share a held-out pair's prompt
    selection = RDSSelector(top_k=1).select(X, k=3)
    assert set(selection.pairs()) == set(train[:3])
    assert np.allclose(selection.table.loc[train[:3], "similarity"], 1.0, atol=1e-6)
    ranks = selection["rank"].to_numpy()
    assert ranks[held].min() == 50 - len(held) + 1 and selection["in_target"].to_numpy()[held].all()
    assert selection.config["n_target"] == len(held) and selection.config["target_source"] == "held-out prompts"


def test_rds_mean_of_top_k_cosine_and_k_above_the_target_size():
    X = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    target = np.array([[2.0, 0.0], [1.0, 1.0]])
    selector = RDSSelector(top_k=10, test_fraction=0.0).fit(X, target_embeddings=target)
    cos = (X / np.linalg.norm(X, axis=1, keepdims=True)) @ (target / np.linalg.norm(target, axis=1, keepdims=True)).T
    assert np.allclose(selector.score_samples(), cos.mean(axis=1))
    assert selector.top_k_ == 2  # all the target there is
    one = RDSSelector(top_k=1, test_fraction=0.0).fit(X, target_embeddings=target)
    assert np.allclose(one.score_samples(), cos.max(axis=1))
    with pytest.raises(SelectionError, match="target set is empty"):
        RDSSelector(test_fraction=0.0).fit(X)
    with pytest.raises(SelectionError, match="target set is empty"):
        RDSSelector().fit(X, target_embeddings=np.zeros((0, 2)))
    with pytest.raises(SelectionError, match=r"\(m, 2\)"):
        RDSSelector().fit(X, target_embeddings=np.zeros((3, 4)))


def test_rds_target_files(tmp_path, tiny):
    prompts = [f"Tell me about subject number {i} and why it matters." for i in range(30)]
    data = preference_data(30, prompts=prompts)
    target = tmp_path / "target.txt"
    target.write_text("\n".join([prompts[3], "", prompts[7], prompts[11], prompts[7]]) + "\n")
    assert read_target_texts(str(target)) == ([prompts[3], prompts[7], prompts[11]], None)
    encoder = f"lm-last-token:{tiny}"
    selection = select_data(data, "rds", encoder=encoder, target=str(target), top_k=1, k=3)
    assert set(selection.pairs()) == {3, 7, 11}  # the exact prompts score cosine 1
    assert selection.config["n_target"] == 3 and not selection["in_target"].any()
    assert selection.config["encoder"] == encoder
    both = select_data(data, "rds", encoder=encoder, query="prompt+chosen", k=3)  # default target, other query
    assert both.n_selected == 3 and both["in_target"].sum() == len(split_pairs(30, 0.2, 0)[1])
    (tmp_path / "blank.txt").write_text("\n  \n")
    with pytest.raises(SelectionError, match="empty"):
        select_data(data, "rds", encoder=encoder, target=str(tmp_path / "blank.txt"), k=3)
    with pytest.raises(SelectionError, match="no such target file"):
        select_data(data, "rds", encoder=encoder, target=str(tmp_path / "absent.txt"), k=3)
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "a?", "chosen": "yes", "rejected": "no"},
                                                     {"prompt": "b?", "chosen": "sure", "rejected": "never"}])
    assert read_target_texts(str(pairs)) == (["a?", "b?"], ["yes", "sure"])
    only = write_jsonl(tmp_path / "prompts.jsonl", [{"prompt": "c?"}, {"prompt": "c?"}, {"prompt": "d?"}])
    assert read_target_texts(str(only)) == (["c?", "d?"], None)
    hh = write_jsonl(tmp_path / "hh.jsonl", [{"chosen": "\n\nHuman: hi?\n\nAssistant: hello",
                                              "rejected": "\n\nHuman: hi?\n\nAssistant: go away"}])
    assert read_target_texts(str(hh))[0] == ["\n\nHuman: hi?\n\nAssistant:"]
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"question": "e?"}])
    with pytest.raises(SelectionError, match="prompt"):
        read_target_texts(str(bad))


# ------------------------------------------------------------------------------------------ lm-margin
def _tiny_pairs():
    return preference_data(4, prompts=["Say hi.", "Count to three.", "Name a fruit.", "Capital of France?"],
                           chosen_words=[2, 3, 1, 2], rejected_words=[1, 4, 2, 3])


def test_lm_margin_is_the_reference_log_ratio_cached_on_disk(tiny):
    from alignscope.evaluate.evaluators import encode_completion, sequence_logprobs
    from alignscope.models import load_causal_lm

    data = _tiny_pairs()
    messages = []
    selection = select_data(data, "lm-margin", model=tiny, k=2, max_length=64,
                            on_progress=lambda fraction, message: messages.append((fraction, message)))
    assert selection.unit == "pair" and len(selection) == 4 and selection.n_selected == 2
    assert selection.config["lm"]["from_cache"] is False and selection.config["lm"]["eta_s"] > 0
    assert any("about" in m and "measured" in m for _, m in messages) and messages[-1][0] == 1.0
    model, tokenizer = load_causal_lm(tiny, device="cpu")
    sequences = []
    for prompt, chosen, rejected in zip(data.frame["prompt"], data.frame["chosen"], data.frame["rejected"]):
        sequences.extend(encode_completion(tokenizer, prompt, [chosen, rejected], 64))
    sums, counts = sequence_logprobs(model, sequences, pad_token_id=tokenizer.pad_token_id, batch_size=8)
    assert np.allclose(selection["chosen_logp"], sums[0::2], atol=1e-4)
    assert np.allclose(selection["rejected_logp"], sums[1::2], atol=1e-4)
    assert np.array_equal(selection["chosen_tokens"], counts[0::2])
    assert np.allclose(selection["log_ratio"], selection["chosen_logp"] - selection["rejected_logp"])
    assert np.array_equal(selection["score"], selection["log_ratio"])  # keep=easy
    assert len(list(cache_dir().glob("*.npz"))) == 1

    again = select_data(data, "lm-margin", model=tiny, k=2, max_length=64, keep="hard", normalise=True)
    assert again.config["lm"]["from_cache"] is True  # no model pass: another keep/normalise reads the cache
    assert again.config["lm"]["elapsed_s"] == selection.config["lm"]["elapsed_s"]  # how it was computed, kept
    per_token = again["chosen_logp"] / again["chosen_tokens"] - again["rejected_logp"] / again["rejected_tokens"]
    assert np.allclose(again["log_ratio"], per_token) and np.allclose(again["score"], -per_token)
    assert np.array_equal(again["chosen_logp"], selection["chosen_logp"])
    select_data(data, "lm-margin", model=tiny, k=2, max_length=32)
    assert len(list(cache_dir().glob("*.npz"))) == 2  # another max_length, another entry


def test_lm_margin_refuses_large_sets_on_a_cpu_before_loading_anything(tiny):
    data = _tiny_pairs()
    with pytest.raises(SelectionError, match="cpu_max_pairs") as caught:
        select_data(data, "lm-margin", model=tiny, device="cpu", cpu_max_pairs=3, k=1)
    assert caught.value.field == "cpu_max_pairs" and not cache_dir().exists()
    with pytest.raises(SelectionError, match="triples"):
        LMMarginSelector(model=tiny).fit([("only two", "parts")])
    with pytest.raises(SelectionError, match="no pairs"):
        LMMarginSelector(model=tiny).fit(pd.DataFrame({"prompt": [], "chosen": [], "rejected": []}))


# ------------------------------------------------------------------------------------------ CLI
@pytest.mark.slow
def test_cli_selects_pairs_with_the_new_methods_and_exports_them(tmp_path, tiny):
    out = tmp_path / "length.parquet"
    result = run_cli("select", "demo:120", "--method", "length", "--fraction", "0.1", "--out", out, "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert (summary["unit"], summary["n_points"], summary["n_selected"]) == ("pair", 120, 12)
    selection = Selection.read(out)
    assert selection.method == "length" and selection.config["options"]["by"] == "gap"
    exported = tmp_path / "pairs.jsonl"
    assert run_cli("export", "demo:120", out, "--out", exported).returncode == 0
    assert len(exported.read_text().splitlines()) == 12

    margin = run_cli("select", "demo:40", "--method", "margin", "--keep", "hard", "--encoder", f"lm-last-token:{tiny}",
                     "--k", "5", "--out", tmp_path / "margin.parquet", "--json")
    assert margin.returncode == 0, margin.stderr
    assert json.loads(margin.stdout)["circular"] is True
    assert Selection.read(tmp_path / "margin.parquet").config["options"]["keep"] == "hard"

    bad = run_cli("select", "demo:40", "--method", "length", "--keep", "hard", "--k", "3", "--out", tmp_path / "bad.parquet")
    assert bad.returncode == 2 and "--keep applies to --method margin, lm-margin" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "bad.parquet").exists()


def test_pair_methods_are_every_method_the_cli_offers():
    from alignscope.cli.select import METHOD_CHOICES
    from alignscope.select.selectors import METHODS

    assert tuple(METHOD_CHOICES) == METHODS and set(PAIR_METHODS) <= set(METHODS)

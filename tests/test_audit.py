"""The audit (core/audit.py, `alignscope audit`): planted defects are found, the probe is
cross-fitted, the clean subset is an ordinary selection, and bad input writes nothing."""
from __future__ import annotations

import itertools
import json

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from alignscope.audit import (FLAGS, AuditError, audit, audit_summary, clean_selection, duplicate_groups,
                              fit_bt_probe, nearest_pairs, oof_flip_scores, read_audit, search_pairs,
                              word_diff, write_audit)
from alignscope.audit.duplicates import _jaccard, _shingles
from alignscope.data.preferences import load_preferences
from alignscope.select.selection import Selection
from conftest import run_cli


def _links(groups) -> set[tuple[int, int]]:
    """Every pair of rows that share a group label (labels < 0 = no group)."""
    members: dict[int, list[int]] = {}
    for row, g in enumerate(groups):
        if g >= 0:
            members.setdefault(int(g), []).append(row)
    return {tuple(sorted(p)) for rows in members.values() for p in itertools.combinations(rows, 2)}


def _planted_groups(frame: pd.DataFrame) -> np.ndarray:
    """Demo truth: a near-copy and its original share the original's id (−1 for the rest)."""
    row_of = {int(i): r for r, i in enumerate(frame["id"])}
    groups = np.full(len(frame), -1, dtype=np.int64)
    for row, original in enumerate(frame["duplicate_of"].astype(int)):
        if original >= 0:
            groups[row] = original
            groups[row_of[original]] = original
    return groups


def _random_embeddings(n_pairs: int, d: int = 16, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(2 * n_pairs, d)).astype(np.float32)


# ------------------------------------------------------------------------------- the probe
def test_one_signed_copy_fits_the_same_probe_as_the_negated_copies():
    rng = np.random.default_rng(0)
    w_true = rng.normal(size=12)
    diff = rng.normal(size=(400, 12))
    diff *= np.sign(diff @ w_true + rng.normal(scale=2.0, size=400))[:, None]
    w_half = fit_bt_probe(diff, C=0.5, seed=3)
    w_full = fit_bt_probe(diff, C=0.5, symmetric=True)
    p_half, p_full = 1 / (1 + np.exp(-diff @ w_half)), 1 / (1 + np.exp(-diff @ w_full))
    assert np.abs(p_half - p_full).max() < 2e-3
    assert np.corrcoef(w_half, w_true)[0, 1] > 0.8


def test_flip_scores_are_out_of_fold():
    """On pure noise a probe that saw the pair would score it confidently right (d > n/folds);
    out-of-fold scores stay at chance."""
    rng = np.random.default_rng(1)
    chosen, rejected = rng.normal(size=(150, 200)), rng.normal(size=(150, 200))
    in_sample = 1 / (1 + np.exp((chosen - rejected) @ fit_bt_probe(chosen - rejected)))
    assert (in_sample < 0.5).mean() > 0.95
    oof = oof_flip_scores(chosen, rejected, folds=5, seed=0)
    assert 0.25 < (oof < 0.5).mean() < 0.75
    assert np.array_equal(oof, oof_flip_scores(chosen, rejected, folds=5, seed=0))  # seeded


def test_planted_flips_are_scored_high_on_synthetic_embeddings():
    rng = np.random.default_rng(2)
    n, d = 600, 24
    direction = rng.normal(size=d)
    rejected = rng.normal(size=(n, d))
    chosen = rejected + 0.6 * direction + rng.normal(scale=0.8, size=(n, d))
    flipped = rng.random(n) < 0.1
    chosen[flipped], rejected[flipped] = rejected[flipped].copy(), chosen[flipped].copy()
    frame = pd.DataFrame({"prompt": [f"question {i}" for i in range(n)], "chosen": ["yes"] * n,
                          "rejected": ["no no"] * n})
    table = audit(frame, (chosen, rejected), folds=5)
    assert roc_auc_score(flipped, table["flip_score"]) > 0.9
    found = table["suspect_flip"].to_numpy()
    assert (found & flipped).sum() / flipped.sum() > 0.7 and (found & flipped).sum() / max(found.sum(), 1) > 0.6


# ---------------------------------------------------------------------------- duplicates
def test_near_copies_group_within_equal_prompts_only():
    prompts = ["How do I bake bread?", "how do i bake bread", "How do I bake bread?", "Other question?",
               "How do I bake bread?"]
    base = "Knead the dough for ten minutes, let it rise twice and bake at a high heat until golden."
    chosen = [base, base.replace("ten", "ten ten"), base.replace(".", "!"), base,
              "Buy a loaf from the shop around the corner instead of baking."]
    rejected = ["I don't know.", "I don't know", "I don't know.", "I don't know.", "I don't know."]
    rng = np.random.default_rng(0)
    c = np.tile(rng.normal(size=8), (5, 1)) + rng.normal(scale=0.01, size=(5, 8))
    r = np.tile(rng.normal(size=8), (5, 1)) + rng.normal(scale=0.01, size=(5, 8))
    c[4] = rng.normal(size=8)  # a different answer embeds elsewhere
    groups = duplicate_groups(prompts, chosen, rejected, c, r)
    # rows 0-2: same normalised prompt, near-identical answers; row 3: other prompt; row 4: other answer
    assert groups.tolist() == [0, 0, 0, -1, -1]
    c[4] = c[0]  # embeddings alike but the text differs: the text check refuses it
    assert duplicate_groups(prompts, chosen, rejected, c, r)[4] == -1


def test_audit_columns_identical_length_and_summary():
    frame = pd.DataFrame({
        "prompt": [f"p{i}" for i in range(12)],
        "chosen": ["Same  Answer", "one two three four", *[f"answer number {i}" for i in range(10)]],
        "rejected": ["same answer", "one two", *[f"reply {i}" for i in range(10)]],
        "source": ["a"] * 6 + ["b"] * 6,
    })
    table = audit(frame, _random_embeddings(12), folds=3)
    assert list(table.columns[:10]) == ["index", "flip_score", "suspect_flip", "dup_group", "is_duplicate",
                                        "outlier_score", "is_outlier", "length_ratio", "identical", "reasons"]
    assert table["identical"].tolist() == [True] + [False] * 11
    assert "chosen = rejected" in table.loc[0, "reasons"]
    assert table.loc[1, "length_ratio"] == pytest.approx(2.0)
    assert ((table["flip_score"] >= 0) & (table["flip_score"] <= 1)).all()
    summary = audit_summary(frame, table)
    assert summary["n_pairs"] == 12 and summary["identical"] == 1
    assert summary["chosen_longer_share"] == pytest.approx(11 / 12)
    assert summary["length_baseline"] == pytest.approx(11 / 12 + 0.5 / 12)
    by_source = {row["value"]: row for row in summary["by_column"]["source"]}
    assert by_source["a"]["identical"] == 1 and by_source["b"]["identical"] == 0


def test_bad_input_to_the_library():
    frame = pd.DataFrame({"prompt": ["a", "b", "c"], "chosen": ["x", "y", "z"], "rejected": ["u", "v", "w"]})
    with pytest.raises(AuditError, match="fewer than the 5 folds"):
        audit(frame, _random_embeddings(3))
    with pytest.raises(AuditError, match="need 6"):
        audit(frame, _random_embeddings(4), folds=2)
    table = audit(frame, _random_embeddings(3), folds=2)
    with pytest.raises(AuditError, match="unknown flag"):
        clean_selection(frame, table, drop=("suspect_flip", "is_weird"))


def test_clean_selection_is_an_ordinary_selection(tmp_path):
    data = load_preferences("demo:60")
    table = audit(data, _random_embeddings(60), folds=3)
    table.loc[[1, 2], "is_outlier"] = True
    selection = clean_selection(data, table, drop=("is_outlier",))
    path = selection.write(tmp_path / "clean.parquet")
    back = Selection.read(path)
    assert back.config["method"] == "clean"
    assert back.fingerprint == data.fingerprint
    assert int(back["selected"].sum()) == 58 and not back.table.loc[[1, 2], "selected"].any()
    # selected = the top of the ranking
    assert set(back.table.loc[back["selected"], "rank"]) == set(range(1, 59))
    write_audit(table, tmp_path / "audit.parquet")
    again = read_audit(tmp_path / "audit.parquet")
    assert again["is_outlier"].sum() == table["is_outlier"].sum() and again.attrs["alignscope_audit"]["folds"] == 3


def test_page_helpers():
    diff = word_diff("the cat sat on the mat", "the dog sat on the mat")
    assert diff.splitlines() == ["  the", "- cat", "+ dog", "  sat on the mat"]
    data = load_preferences("demo:60")
    hits = search_pairs(data, data.frame.loc[7, "prompt"][:25].upper())
    assert 7 in hits.tolist() and len(hits) < 60
    rng = np.random.default_rng(0)
    c, r = rng.normal(size=(30, 8)), rng.normal(size=(30, 8))
    c[11], r[11] = c[4] * 2, r[4] + 1e-3
    near = nearest_pairs(c, r, 4, k=3)
    assert near["index"].iloc[0] == 11 and 4 not in near["index"].tolist() and len(near) == 3


# ------------------------------------------------------------------------------------ CLI
def test_cli_bad_input_writes_nothing(tmp_path):
    out, clean = tmp_path / "audit.parquet", tmp_path / "clean.parquet"
    emb = tmp_path / "emb.npy"
    np.save(emb, _random_embeddings(30))
    cases = [
        (["demo:20", "--folds", "50"], "fewer than --folds 50"),
        (["demo:20", "--clean-out", str(clean), "--drop", "suspect_flip,bogus"], "unknown flag 'bogus'"),
        (["demo:20", "--embeddings", str(emb)], "need 40"),
    ]
    for extra, message in cases:
        result = run_cli("audit", *extra, "--out", out)
        assert result.returncode == 2, result.stderr
        assert result.stderr.count("\n") == 1 and message in result.stderr, result.stderr
        assert not out.exists() and not clean.exists()
    out.write_bytes(b"keep me")
    result = run_cli("audit", "demo:20", "--out", out)
    assert result.returncode == 2 and "already exists" in result.stderr and out.read_bytes() == b"keep me"


def test_cli_writes_audit_and_clean_selection_that_export_reads(tmp_path):
    emb = tmp_path / "emb.npy"
    np.save(emb, _random_embeddings(40))
    out, clean = tmp_path / "audit.parquet", tmp_path / "clean.parquet"
    result = run_cli("audit", "demo:40", "--embeddings", emb, "--folds", "4", "--out", out, "--clean-out", clean,
                     "--drop", "is_duplicate", "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    table = read_audit(out)
    assert len(table) == 40 and summary["duplicates"] == int(table["is_duplicate"].sum())
    selection = Selection.read(clean)
    assert summary["n_clean"] == int(selection["selected"].sum()) == 40 - summary["duplicates"]
    exported = run_cli("export", "demo:40", clean, "--format", "jsonl", "--out", tmp_path / "clean.jsonl")
    assert exported.returncode == 0, exported.stderr
    assert len((tmp_path / "clean.jsonl").read_text().splitlines()) == summary["n_clean"]


@pytest.mark.slow
def test_clean_selection_trains_with_the_tiny_model(tmp_path, tiny):
    emb = tmp_path / "emb.npy"
    np.save(emb, _random_embeddings(60))
    clean = tmp_path / "clean.parquet"
    result = run_cli("audit", "demo:60", "--embeddings", emb, "--out", tmp_path / "a.parquet", "--clean-out", clean)
    assert result.returncode == 0, result.stderr
    trained = run_cli("train", "demo:60", "--selection", clean, "--model", "tiny", "--max-steps", "2",
                      "--out", tmp_path / "run", "--json", timeout=600)
    assert trained.returncode == 0, trained.stderr
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "clean.parquet" in json.dumps(config)


# --------------------------------------------------------------------- demo, real embeddings
@pytest.fixture(scope="module")
def demo_audit(tmp_path_factory):
    """The 3,000-pair demo set audited with MiniLM (embedding takes minutes on 2 shared cores)."""
    home = tmp_path_factory.getbasetemp() / "audit-demo-home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALIGNSCOPE_HOME", str(home))
        data = load_preferences("demo")
        return data, audit(data)


@pytest.mark.slow
def test_demo_planted_flips_and_duplicates_are_found(demo_audit):
    data, table = demo_audit
    frame = data.frame
    assert len(frame) == 3000
    assert roc_auc_score(frame["is_flipped"], table["flip_score"]) >= 0.8
    truth, found = _links(_planted_groups(frame)), _links(table["dup_group"].to_numpy())
    recall = len(truth & found) / len(truth)
    precision = len(truth & found) / max(len(found), 1)
    assert recall >= 0.9 and precision >= 0.8, (recall, precision)
    groups = table.loc[table["dup_group"] >= 0, "dup_group"]
    assert int(table["is_duplicate"].sum()) == len(groups) - groups.nunique()
    flips = table["suspect_flip"].to_numpy()
    assert (flips & frame["is_flipped"].to_numpy()).sum() / flips.sum() >= 0.8
    summary = audit_summary(data, table)
    assert {"source", "topic"} <= set(summary["by_column"])


def test_shingle_codes_give_the_jaccard_of_the_sets_of_character_trigrams():
    """The packed int64 shingles (kB per text) decide exactly as sets of 3-character strings did."""
    def trigrams(text):
        return {text} if len(text) <= 3 else {text[i:i + 3] for i in range(len(text) - 2)}

    texts = ["", "a", "ab", "abc", "abcd", "\0a", "a\0", "aaaa", "é漢字x", "漢字", "the cat sat on the mat",
             "the cat sat on a mat", "a mat the cat sat on", "\U0010FFFF\U0010FFFFz"]
    for a, b in itertools.product(texts, repeat=2):
        ta, tb = trigrams(a), trigrams(b)
        expected = len(ta & tb) / len(ta | tb)
        assert _jaccard(_shingles(a), _shingles(b)) == pytest.approx(expected, abs=1e-15), (a, b)


def test_swap_labels_exchanges_the_answers_of_the_named_rows_only_messages_too():
    from alignscope.data.preferences import swap_labels

    chat = [[{"role": "assistant", "content": f"{side}{i}"}] for i, side in enumerate("cc")]
    frame = pd.DataFrame({"prompt": ["p0", "p1"], "chosen": chat,
                          "rejected": [[{"role": "assistant", "content": f"r{i}"}] for i in range(2)], "source": ["a", "b"]})
    for rows in ([1], np.array([False, True])):
        out = swap_labels(frame, rows)
        assert out["chosen"].tolist() == [frame["chosen"][0], frame["rejected"][1]]
        assert out["rejected"].tolist() == [frame["rejected"][0], frame["chosen"][1]]
        assert out["source"].tolist() == ["a", "b"] and frame["chosen"][1][0]["content"] == "c1"  # a copy

"""The one Selection type: file round trip (and files written by earlier versions), checks against the
data, and pairs under each rule — the same answers for training, export and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from alignscope.data.preferences import load_preferences
from alignscope.embed.embeddings import Embeddings
from alignscope.errors import AlignscopeError
from alignscope.export import ExportError, selected_pairs
from alignscope.select import cache
from alignscope.select.selectors import select
from alignscope.select.selection import PAIR_RULES, SELECTION_META_KEY, Selection, SelectionError
from alignscope.train.config import PAIR_RULES as TRAIN_PAIR_RULES
from alignscope.train.config import TrainError
from alignscope.train.trainset import training_set


@pytest.fixture(scope="module")
def data():
    return load_preferences("demo:40")


def completion_selection(data, k=20, seed=0):
    X = np.random.default_rng(seed).normal(size=(2 * len(data), 3)).astype(np.float32)
    return select(X, "isa", k=k, seed=seed, unit="completion", data_fingerprint=data.fingerprint, encoder="e")


def test_round_trip_keeps_table_config_and_fingerprint_without_dataframe_attrs(tmp_path, data):
    selection = completion_selection(data)
    assert selection.table.attrs == {}  # the config lives on the Selection, not in DataFrame.attrs
    path = selection.write(tmp_path / "sel.parquet")
    back = Selection.read(path)
    assert back.equals(selection) and back.fingerprint == data.fingerprint and back.unit == "completion"
    stored = json.loads(pq.read_schema(path).metadata[SELECTION_META_KEY])
    assert stored["data_fingerprint"] == data.fingerprint and stored["method"] == "isa"
    assert [p.name for p in tmp_path.iterdir()] == ["sel.parquet"]  # atomic: no temporary file left


def test_files_written_by_the_earlier_layout_still_read(tmp_path, data):
    """Earlier versions wrote pandas' table with the config (fingerprint inside) as JSON in the
    schema metadata: written here by hand, byte for byte the same layout."""
    frame = pd.DataFrame({"index": np.arange(len(data), dtype=np.int64), "score": np.linspace(1, 0, len(data)),
                          "selected": np.arange(len(data)) < 10, "rank": np.arange(1, len(data) + 1, dtype=np.int64)})
    config = {"format_version": 1, "method": "random", "k": 10, "unit": "pair", "seed": 0,
              "data_fingerprint": data.fingerprint, "encoder": None}
    arrow = pa.Table.from_pandas(frame, preserve_index=False)
    arrow = arrow.replace_schema_metadata({**arrow.schema.metadata,
                                          SELECTION_META_KEY: json.dumps(config, sort_keys=True).encode()})
    pq.write_table(arrow, tmp_path / "old.parquet")
    old = Selection.read(tmp_path / "old.parquet")
    assert old.fingerprint == data.fingerprint and old.method == "random" and "data_fingerprint" not in old.config
    assert old.pairs().tolist() == list(range(10))
    old.check_against(data)
    assert training_set(data, tmp_path / "old.parquet", test_fraction=0.0).pairs.tolist() == list(range(10))


def test_check_against_names_the_mismatch_in_the_callers_error_type(data):
    selection = completion_selection(data)
    other = load_preferences("demo:41")
    with pytest.raises(SelectionError, match="fingerprint .* but this data has fingerprint"):
        selection.check_against(other)
    with pytest.raises(TrainError, match="fingerprint"):
        selection.check_against(other, error=TrainError)
    selection.check_against(other, check_fingerprint=False)  # 41 pairs cover every row
    small = load_preferences("demo:20")
    with pytest.raises(SelectionError, match="refers to pair 39, but the data has 20 pairs") as info:
        selection.check_against(small, check_fingerprint=False)
    assert isinstance(info.value, AlignscopeError) and "\n" not in str(info.value)
    with pytest.raises(ExportError, match="fingerprint"):
        selected_pairs(other, selection)
    with pytest.raises(TrainError, match="fingerprint"):
        training_set(other, selection)


@pytest.mark.parametrize("rule", PAIR_RULES)
def test_one_pair_rule_for_training_export_and_the_pair_table(tmp_path, data, rule):
    assert TRAIN_PAIR_RULES is PAIR_RULES and "mean" not in PAIR_RULES  # one constant, defined once
    selection = completion_selection(data, k=30, seed=1)
    pairs = selection.pairs(rule)
    table = selection.table
    chosen = set(table.loc[table["selected"] & (table["label"] == 1), "pair_index"])
    rejected = set(table.loc[table["selected"] & (table["label"] == 0), "pair_index"])
    expected = {"any": chosen | rejected, "both": chosen & rejected, "chosen": chosen, "rejected": rejected}[rule]
    assert pairs.tolist() == sorted(expected)
    pair_level = selection.pair_selection(rule)
    assert pair_level.unit == "pair" and pair_level.config["pair_rule"] == rule
    assert pair_level.pairs().tolist() == pairs.tolist()
    if len(pairs):
        exported = selected_pairs(data, selection, pair_rule=rule, keep_metadata=True)
        assert exported["pair_index"].tolist() == pairs.tolist()
        tset = training_set(data, selection, test_fraction=0.25, pair_rule=rule)
        assert set(tset.pairs) == set(pairs) - set(tset.test_pairs)
    with pytest.raises(SelectionError, match="pair rule 'mean'"):
        selection.pairs("mean")


def test_hand_made_tables_and_top(data):
    manual = Selection.from_frame(pd.DataFrame({"index": [3, 1, 2], "selected": [True, False, True]}),
                                  {"method": "manual"}, data.fingerprint)
    assert manual["score"].tolist() == [1.0, 0.0, 1.0] and manual["rank"].tolist() == [1, 3, 2]
    assert manual.pairs().tolist() == [2, 3]
    assert manual.top(1).pairs().tolist() == [3] and manual.top(1).config["k"] == 1
    with pytest.raises(SelectionError, match="'index'"):
        Selection.from_frame(pd.DataFrame({"selected": [True]}))
    with pytest.raises(SelectionError, match="'rank' is missing"):
        Selection(pd.DataFrame({"index": [0], "score": [1.0], "selected": [True]}))
    legacy = pd.DataFrame({"index": [0, 1], "selected": [True, False]})
    legacy.attrs["alignscope_selection"] = {"method": "old", "data_fingerprint": "abc"}
    converted = Selection.from_frame(legacy)  # a DataFrame carrying its config the old way
    assert converted.method == "old" and converted.fingerprint == "abc"


def test_full_ranking_is_kept_on_disk_and_read_back(tmp_path, monkeypatch):
    """The Select page's ISA ranking: computed once per embedding file, then read from the cache
    (same table); another seed is another entry."""
    monkeypatch.setenv("ALIGNSCOPE_HOME", str(tmp_path / "home"))
    rng = np.random.default_rng(0)
    emb = Embeddings.from_matrix(rng.normal(size=(120, 8)).astype(np.float32), "completion")
    emb.save(tmp_path / "e.npy")
    emb = Embeddings.load(tmp_path / "e.npy")
    first = cache.full_ranking(emb, "isa", seed=0)
    entry = cache.ranking_cache_path(emb.path, emb.unit, "isa", 0, {})
    assert entry.is_file() and len(first) == 120
    calls = []
    monkeypatch.setattr("alignscope.select.selectors.select", lambda *a, **k: calls.append(a))
    again = cache.full_ranking(emb, "isa", seed=0)
    assert calls == [] and again.config["method"] == "isa"
    pd.testing.assert_frame_equal(again.table, first.table, check_dtype=False)
    assert cache.ranking_cache_path(emb.path, emb.unit, "isa", 1, {}) != entry  # another seed, another entry


def test_a_ranking_asked_for_twice_at_once_is_computed_once(tmp_path, monkeypatch):
    """A prefetch and a page asking for the same ranking: one computation, the second caller reads
    the first one's file; a prefetch of a ranking on disk starts nothing."""
    import threading
    import time

    from alignscope.select import selectors

    monkeypatch.setenv("ALIGNSCOPE_HOME", str(tmp_path / "home"))
    emb = Embeddings.from_matrix(np.random.default_rng(2).normal(size=(80, 4)).astype(np.float32), "completion")
    emb.save(tmp_path / "e.npy")
    emb = Embeddings.load(tmp_path / "e.npy")
    real_select, calls = selectors.select, []

    def slow_select(*args, **kwargs):
        calls.append(threading.current_thread().name)
        time.sleep(0.5)  # long enough for the page's call to arrive while the prefetch computes
        return real_select(*args, **kwargs)

    monkeypatch.setattr("alignscope.select.selectors.select", slow_select)
    thread = cache.prefetch_ranking(emb.path, emb.unit, "random", load=lambda: emb, seed=0)
    assert thread is not None and thread.name.startswith("alignscope-prefetch-")
    time.sleep(0.1)
    assert cache.prefetch_ranking(emb.path, emb.unit, "random", load=lambda: emb, seed=0) is None  # under way: not started twice
    ranked = cache.full_ranking(emb, "random", seed=0)  # waits for the prefetch, then reads its file
    thread.join()
    assert calls == [thread.name] and len(ranked) == 80
    assert cache.prefetch_ranking(emb.path, emb.unit, "random", load=lambda: emb, seed=0) is None  # on disk: nothing to do


def test_full_ranking_survives_a_home_it_cannot_write(tmp_path, monkeypatch):
    """The ranking cache is best effort: an unwritable home still gives the ranking."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "cache").write_text("not a folder")  # cache/rankings cannot be created
    monkeypatch.setenv("ALIGNSCOPE_HOME", str(home))
    emb = Embeddings.from_matrix(np.random.default_rng(1).normal(size=(60, 4)).astype(np.float32), "completion")
    emb.save(tmp_path / "e.npy")
    ranked = cache.full_ranking(Embeddings.load(tmp_path / "e.npy"), "random", seed=0)
    assert len(ranked) == 60 and sorted(ranked["rank"]) == list(range(1, 61))


def test_seed_agreement_counts_the_pairs_every_seed_keeps_at_every_size():
    """Against a direct count of the kept sets at each size, with random subsets as the baseline."""
    from alignscope.select.stats import seed_agreement

    rng = np.random.default_rng(0)
    n = 500
    base = rng.permutation(n).astype(float)
    near = base.copy()
    near[:50] = rng.permutation(base[:50])  # the same ranking with 50 pairs shuffled among themselves
    other = rng.permutation(n).astype(float)
    other[7] = np.inf  # a pair without a point comes last
    ranks = {0: base, 1: near, 2: other}
    sizes = [1, 10, 125, 250, 499, 500]
    curve = seed_agreement(ranks, sizes)
    top = {seed: lambda k, r=r: set(np.argsort(r, kind="stable")[:k]) for seed, r in ranks.items()}
    for row in curve.itertuples():
        k = row.size
        sets = [top[s](k) for s in ranks]
        assert row.kept_by_all == pytest.approx(len(sets[0] & sets[1] & sets[2]) / k)
        pairwise = [len(a & b) / k for i, a in enumerate(sets) for b in sets[i + 1:]]
        assert (row.pairwise_min, row.pairwise_max) == pytest.approx((min(pairwise), max(pairwise)))
        assert row.random_pairwise == pytest.approx(k / n) and row.random_all == pytest.approx((k / n) ** 2)
    assert curve["kept_by_all"].iloc[-1] == 1.0
    # two equal rankings agree everywhere; a random one near k/n
    assert (seed_agreement({0: base, 1: base.copy()}, sizes)["kept_by_all"] == 1.0).all()
    assert abs(curve.loc[curve["size"] == 250, "pairwise_min"].iloc[0] - 0.5) < 0.1
    with pytest.raises(ValueError, match="at least 2 seeds"):
        seed_agreement({0: base}, sizes)
    with pytest.raises(ValueError, match="ranks for 500 pairs"):
        seed_agreement({0: base, 1: base[:10]}, sizes)

"""The baselines (random, density, k-center, Ask-LLM), the shared interface, pair mapping and the
selection file. Real computations on planted data; the LLM test runs the tiny local model."""
from __future__ import annotations

import numpy as np
import pytest

from alignscope.select.selectors import (METHODS, DensitySelector, KCenterSelector, RandomSelector,
                               SelectionError, make_selector, resolve_k, select)
from alignscope.select.selection import Selection


def blobs(n_dense=900, n_sparse=100, d=8, seed=0):
    """A dense blob (sd 0.3) and a sparse one (sd 3) far away; returns X and is_sparse."""
    rng = np.random.default_rng(seed)
    dense = rng.normal(0.0, 0.3, (n_dense, d))
    sparse = rng.normal(20.0, 3.0, (n_sparse, d))
    X = np.concatenate([dense, sparse]).astype(np.float32)
    return X, np.arange(len(X)) >= n_dense


# ------------------------------------------------------------------------------ k / fraction
def test_resolve_k_validation():
    assert resolve_k(100, k=7) == 7
    assert resolve_k(100, fraction=0.05) == 5
    assert resolve_k(10, fraction=0.25) == 3  # 2.5 rounds half up
    assert resolve_k(10, fraction=0.01) == 1  # never zero
    assert resolve_k(10, fraction=1.0) == 10
    assert resolve_k(10, k=np.int64(3)) == 3
    for kwargs, message in [({"k": 0}, ">= 1"), ({"k": 11}, "larger"), ({"fraction": 0.0}, r"\(0, 1\]"),
                            ({"fraction": 1.5}, r"\(0, 1\]"), ({}, "exactly one"),
                            ({"k": 2, "fraction": 0.5}, "exactly one"), ({"k": True}, "integer"),
                            ({"k": 2.0}, "integer"), ({"fraction": "0.5"}, "number")]:
        with pytest.raises(SelectionError, match=message):
            resolve_k(10, **kwargs)


def test_unknown_method_and_bad_options_are_one_clear_error():
    X, _ = blobs()
    with pytest.raises(SelectionError, match="unknown selection method 'best'.*isa"):
        select(X, "best", k=3)
    with pytest.raises(SelectionError, match="options are: .*n_hashes"):
        select(X, "density", k=3, n_hash=4)
    with pytest.raises(SelectionError, match="seed"):
        select(X, "random", k=3, seed=-1)
    with pytest.raises(SelectionError, match="larger than the number of points"):
        select(X, "random", k=len(X) + 1)
    assert set(METHODS) == {"isa", "random", "density", "kcenter", "llm", "length", "margin", "rds", "lm-margin"}


@pytest.mark.parametrize("method", ["isa", "random", "density", "kcenter"])
def test_same_seed_same_subset_bitwise(method):
    X, _ = blobs(seed=1)
    a = select(X, method, k=40, seed=11)
    b = select(X, method, k=40, seed=11)
    assert a.equals(b)
    assert np.array_equal(a["score"].to_numpy().view(np.int64), b["score"].to_numpy().view(np.int64))
    assert a["selected"].sum() == 40 and sorted(a["rank"]) == list(range(1, len(X) + 1))
    # selected == the 40 best ranks
    assert set(a.table.loc[a["selected"], "rank"]) == set(range(1, 41))
    if method in ("random", "density", "kcenter"):  # the seed matters for these
        c = select(X, method, k=40, seed=12)
        assert not c["selected"].equals(a["selected"])


def test_selector_interface_fit_score_select():
    X, _ = blobs()
    selector = RandomSelector(seed=4)
    assert selector.fit(X) is selector
    scores = selector.score_samples()
    assert scores.shape == (len(X),) and scores.dtype == np.float64
    assert np.array_equal(scores, selector.score_samples(X))
    table = selector.select(k=10)
    top = np.argsort(-scores, kind="stable")[:10]
    assert set(table.table.loc[table["selected"], "index"]) == set(top)
    with pytest.raises(SelectionError, match="not fitted"):
        RandomSelector().score_samples()
    params = make_selector("kcenter", seed=2, n_centers=5).get_params()
    assert params["seed"] == 2 and params["n_centers"] == 5


# ------------------------------------------------------------------------------ random
def test_random_is_uniform():
    X = np.zeros((200, 2), dtype=np.float32)
    counts = np.zeros(200)
    for seed in range(300):
        counts += select(X, "random", k=20, seed=seed)["selected"].to_numpy()
    # each point expected 30 times (binomial sd ~5.2); all within 6 sd, overall exact
    assert counts.sum() == 300 * 20
    assert np.abs(counts - 30).max() < 32


# ------------------------------------------------------------------------------ density
@pytest.mark.parametrize("kde", ["lsh", "gaussian"])
def test_density_keeps_sparse_regions_more_often(kde):
    X, is_sparse = blobs()
    dens = DensitySelector(kde=kde, seed=0).fit(X).details_["density"]
    assert np.median(dens[is_sparse]) < np.median(dens[~is_sparse]) / 5
    sparse_rate, dense_rate = [], []
    for seed in range(20):
        kept = select(X, "density", k=100, seed=seed, kde=kde)["selected"].to_numpy()
        sparse_rate.append(kept[is_sparse].mean())
        dense_rate.append(kept[~is_sparse].mean())
    # uniform sampling keeps 10 % of both; inverse-propensity sampling keeps the sparse blob far
    # more often than the dense one
    assert np.mean(sparse_rate) > 3 * np.mean(dense_rate)
    assert np.mean(sparse_rate) > 0.3


def test_density_table_columns_and_weights():
    X, _ = blobs()
    table = select(X, "density", fraction=0.1, seed=0)
    assert {"density", "sampling_weight"} <= set(table.table.columns)
    assert table["sampling_weight"].sum() == pytest.approx(1.0)
    assert (table["density"] > 0).all() and (table["density"] <= 1).all()
    assert (table["score"] <= 0).all()  # log(u) / w with u in (0, 1]
    config = table.config
    assert config["method"] == "density" and config["options"]["kde"] == "lsh"


# ------------------------------------------------------------------------------ k-center
def naive_kcenter(X, first, m):
    X = X.astype(np.float64)
    mind = np.sqrt(((X - X[first]) ** 2).sum(1))
    mind[first] = -1
    centers = [first]
    for _ in range(1, m):
        nxt = int(np.argmax(mind))
        centers.append(nxt)
        mind = np.where(mind < 0, mind, np.minimum(mind, np.sqrt(((X - X[nxt]) ** 2).sum(1))))
        mind[nxt] = -1
    return centers


def test_kcenter_covers_planted_clusters():
    rng = np.random.default_rng(0)
    centers = rng.normal(0, 50, (10, 6))
    sizes = [300, 5, 80, 20, 150, 3, 60, 40, 200, 10]  # very unequal: random would miss some
    X = np.concatenate([c + rng.normal(0, 0.5, (s, 6)) for c, s in zip(centers, sizes)]).astype(np.float32)
    cluster = np.repeat(np.arange(10), sizes)
    table = select(X, "kcenter", k=10, seed=3)
    picked = cluster[table.table.loc[table["selected"], "index"].to_numpy()]
    assert sorted(picked) == list(range(10))
    ordered = table.table.sort_values("rank")["score"].to_numpy()
    assert np.isinf(ordered[0]) and np.all(np.diff(ordered[1:]) <= 0)


def test_kcenter_pruned_greedy_equals_naive_greedy():
    X = np.random.default_rng(5).normal(size=(3000, 12)).astype(np.float32)
    table = select(X, "kcenter", k=60, seed=9)
    first = int(table.table.loc[table["rank"] == 1, "index"].iloc[0])
    expected = naive_kcenter(X, first, 60)
    got = table.table.sort_values("rank")["index"].to_numpy()[:60].tolist()
    assert got == expected


def test_kcenter_is_fast_on_many_points():
    import time

    X = np.random.default_rng(0).normal(size=(100_000, 32)).astype(np.float32)
    start = time.perf_counter()
    table = KCenterSelector(seed=0).select(X, k=500)
    assert table["selected"].sum() == 500
    assert time.perf_counter() - start < 30


# ------------------------------------------------------------------------------ units and pairs
def completion_table():
    # 4 pairs; completion rows 0..3 chosen, 4..7 rejected
    scores = np.array([9.0, 1.0, 5.0, 3.0, 2.0, 8.0, 4.0, 0.0])
    table = select(scores[:, None].astype(np.float32), "random", k=2, seed=0, unit="completion")
    # overwrite with hand-made scores/selection to test the rule itself
    order = np.argsort(-scores, kind="stable")
    rank = np.empty(8, dtype=np.int64)
    rank[order] = np.arange(1, 9)
    frame = table.table.copy()
    frame["score"], frame["rank"], frame["selected"] = scores, rank, rank <= 3
    return table.replace(table=frame)  # selected completions: 0 (pair 0, chosen), 5 (pair 1, rejected), 2 (pair 2, chosen)


def test_completion_unit_layout():
    table = completion_table()
    assert table["pair_index"].tolist() == [0, 1, 2, 3, 0, 1, 2, 3]
    assert table["label"].tolist() == [1, 1, 1, 1, 0, 0, 0, 0]
    assert table.config["unit"] == "completion"
    with pytest.raises(SelectionError, match="2N rows"):
        select(np.zeros((5, 2), np.float32), "random", k=1, unit="completion")
    with pytest.raises(SelectionError, match="needs label too"):
        select(np.zeros((4, 2), np.float32), "random", k=1, pair_index=[0, 1, 0, 1], unit="completion")
    with pytest.raises(SelectionError, match="distinct pair_index"):
        select(np.zeros((4, 2), np.float32), "random", k=1, pair_index=[0, 1, 0, 1])
    # pair-level rows with their own pair ids (e.g. embeddings of a subset of the data)
    subset = select(np.zeros((3, 2), np.float32), "random", k=1, pair_index=[7, 2, 5])
    assert subset["index"].tolist() == [7, 2, 5] and subset.config["unit"] == "pair"


def test_pair_rules():
    table = completion_table()
    any_ = table.pair_selection("any")
    assert any_["index"].tolist() == [0, 1, 2, 3]
    assert any_["selected"].tolist() == [True, True, True, False]
    assert any_["score"].tolist() == [9.0, 8.0, 5.0, 3.0]  # max of the two
    assert any_["rank"].tolist() == [1, 2, 3, 4]
    assert table.pair_selection("both")["selected"].tolist() == [False, False, False, False]
    assert table.pair_selection("both")["score"].tolist() == [2.0, 1.0, 4.0, 0.0]
    assert table.pair_selection("chosen")["selected"].tolist() == [True, False, True, False]
    assert table.pair_selection("rejected")["selected"].tolist() == [False, True, False, False]
    top2_both = table.pair_selection("both", k=2)  # a new size: the top pairs by the rule's score
    assert top2_both["selected"].tolist() == [True, False, True, False]  # min scores 2, 1, 4, 0
    # `mean` is not a rule (no set form at the selector's cut-off; see alignscope.select.selection)
    with pytest.raises(SelectionError, match="pair rule 'mean'"):
        table.pair_selection("mean", k=2)
    assert table.pairs("any").tolist() == [0, 1, 2] and table.pairs("both").tolist() == []
    assert table.pairs("chosen").tolist() == [0, 2] and table.pairs("rejected").tolist() == [1]
    with pytest.raises(SelectionError, match="pair rule"):
        table.pair_selection("either")
    config = any_.config
    assert config["unit"] == "pair" and config["pair_rule"] == "any" and config["from_unit"] == "completion"


def test_embeddings_object_is_understood():
    class Embeddings:  # the shape of alignscope.embed.encoders.Embeddings, built here without importing it
        def __init__(self, matrix):
            n = len(matrix) // 2
            self.matrix = matrix
            self.pair_index = np.tile(np.arange(n), 2)
            self.label = np.repeat([1, 0], n)
            self.unit = "completion"
            self.encoder = "minilm"
            self.fingerprint = "0123456789abcdef"

    X, _ = blobs()
    table = select(Embeddings(X), "isa", k=10)
    config = table.config
    assert config["unit"] == "completion" and config["encoder"] == "minilm"
    assert table.fingerprint == "0123456789abcdef"
    assert table["pair_index"].max() == len(X) // 2 - 1


# ------------------------------------------------------------------------------ selection file
def test_selection_parquet_round_trip(tmp_path):
    X, _ = blobs()
    table = select(X, "isa", k=25, seed=2, unit="completion", data_fingerprint="feedface00000000")
    path = table.write(tmp_path / "sel.parquet")
    back = Selection.read(path)
    assert back.equals(table)
    assert back.config == table.config
    assert back["selected"].dtype == bool and back["rank"].dtype.kind == "i"
    assert back["label"].dtype.kind == "i"
    # pandas/pyarrow alone can read it too; the config sits in the schema metadata
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata[b"alignscope.selection"]
    assert b'"method": "isa"' in meta
    pairs = back.pair_selection("any")
    pairs.write(tmp_path / "pairs.parquet")
    assert Selection.read(tmp_path / "pairs.parquet").config["pair_rule"] == "any"


def test_read_selection_errors_name_file_and_column(tmp_path):
    X, _ = blobs()
    selection = select(X, "isa", k=5)
    table = selection.table
    with pytest.raises(SelectionError, match="no such"):
        Selection.read(tmp_path / "missing.parquet")
    (tmp_path / "junk.parquet").write_text("not parquet")
    with pytest.raises(SelectionError, match="junk.parquet: not a parquet file"):
        Selection.read(tmp_path / "junk.parquet")
    cases = {
        "no_rank": table.drop(columns=["rank"]),
        "float_rank": table.assign(rank=table["rank"].astype(float)),
        "int_selected": table.assign(selected=table["selected"].astype(int)),
        "dup_index": table.assign(index=0),
        "no_delta": table.drop(columns=["delta"]),
    }
    expected = {"no_rank": "'rank' is missing", "float_rank": "'rank' must be integer",
                "int_selected": "'selected' must be boolean", "dup_index": "'index' must hold distinct",
                "no_delta": "'delta' is missing"}
    import pyarrow as pa
    import pyarrow.parquet as pq

    for name, frame in cases.items():
        path = tmp_path / f"{name}.parquet"
        arrow = pa.Table.from_pandas(frame, preserve_index=False)
        arrow = arrow.replace_schema_metadata({**arrow.schema.metadata,
                                               b"alignscope.selection": b'{"method": "isa"}'})
        pq.write_table(arrow, path)
        with pytest.raises(SelectionError, match=f"{name}.parquet: column {expected[name]}"):
            Selection.read(path)
    with pytest.raises(SelectionError, match="'rank' is missing"):
        selection.replace(table=table.drop(columns=["rank"])).write(tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet").exists()


# ------------------------------------------------------------------------------ Ask-LLM
def test_llm_selector_on_the_tiny_model():
    texts = [f"User: what is {i} + {i}?\nAssistant: {2 * i}." for i in range(12)]
    texts += ["User: hi\nAssistant: " + "word " * 300]  # long: truncated to max_length
    a = select(texts, "llm", k=4, model="tiny", batch_size=5, max_length=128, progress=False)
    b = select(texts, "llm", k=4, model="tiny", batch_size=5, max_length=128, progress=False)
    assert a.equals(b)  # deterministic
    scores = a["score"].to_numpy()
    assert ((scores >= 0) & (scores <= 1)).all() and scores.std() > 0
    assert np.array_equal(a["score"].to_numpy(), a["p_yes"].to_numpy())
    assert a["selected"].sum() == 4
    # batching changes padding, not the probabilities (float32 rounding only)
    c = select(texts, "llm", k=4, model="tiny", batch_size=1, max_length=128, progress=False)
    assert np.allclose(c["score"], a["score"], rtol=1e-4, atol=1e-7)
    normalised = select(texts, "llm", k=4, model="tiny", normalise=True, progress=False)
    values = normalised["score"].to_numpy()
    assert ((values >= 0) & (values <= 1)).all() and (values > scores[: len(values)]).all()
    with pytest.raises(SelectionError, match="texts"):
        select(np.zeros((3, 2)), "llm", k=1)


def test_kcenter_score_samples_uses_n_centers():
    X, _ = blobs()
    selector = KCenterSelector(seed=1, n_centers=5)
    scores = selector.fit(X).score_samples()
    assert np.isinf(scores).sum() == 1 and scores.shape == (len(X),)
    kept = selector.select(k=5)["selected"].to_numpy()
    # the picks carry their coverage radius; every other point is within the last radius
    assert scores[~kept].max() <= scores[kept].min()
    assert np.array_equal(selector.score_samples(), scores)


def test_ask_llm_texts_follow_the_unit_layout():
    from alignscope.data.preferences import demo_preferences
    from alignscope.select.selectors import ask_llm_texts

    data = demo_preferences(30, seed=0)
    texts = ask_llm_texts(data, "completion")
    assert len(texts) == 60
    assert texts[0].endswith(data.frame["chosen"].iloc[0]) and texts[30].endswith(data.frame["rejected"].iloc[0])
    pairs = ask_llm_texts(data, "pair")
    assert len(pairs) == 30 and data.frame["rejected"].iloc[3] in pairs[3]
    with pytest.raises(SelectionError, match="unit"):
        ask_llm_texts(data, "token")


def test_kcenter_pair_budget_stops_the_greedy_run_once_its_picks_cover_that_many_pairs():
    """The greedy order is nested: stopping when the picks cover 30 pairs changes no pick, it only
    saves the rest of the run (what a sweep asks for its largest fraction)."""
    import numpy as np

    from alignscope.select.selectors import select

    X = np.random.default_rng(0).normal(size=(200, 8)).astype(np.float32)
    full = select(X, "kcenter", k=120, seed=3, unit="completion")
    cut = select(X, "kcenter", k=120, seed=3, unit="completion", pair_budget=30)
    picks = cut.config["greedy_picks"]
    assert full.config["greedy_picks"] == 120 and 30 <= picks < 120
    first_full = full.table.sort_values("rank")[["index", "pair_index"]].to_numpy()[:picks]
    first_cut = cut.table.sort_values("rank")[["index", "pair_index"]].to_numpy()[:picks]
    assert (first_full == first_cut).all()  # the same picks in the same order
    assert len(np.unique(first_cut[:, 1])) == 30 and len(np.unique(first_cut[:-1, 1])) == 29

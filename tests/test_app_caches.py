"""The cross-session caches behind the Select page's slider (issue 19) give the same answers as the
uncached path: pairs kept at every subset size, per-group shares, and the metadata column kinds."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from alignscope.data.preferences import load_preferences
from alignscope.select.stats import kept_pairs_mask, share_by_group


@pytest.fixture(scope="module")
def embedded(tmp_path_factory):
    """A static-encoder embedding run of demo:150 (completion level) in a fresh ALIGNSCOPE_HOME."""
    home = tmp_path_factory.mktemp("caches-home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ALIGNSCOPE_HOME", str(home))
        from alignscope.jobs import JobStore

        data = load_preferences("demo:150")
        store = JobStore()
        job = store.submit("embed", {"data": data.spec(), "encoder": "static", "unit": "completion"})
        finished = store.wait(job, timeout=600)
        assert finished.status == "succeeded", store.logs(job)
        from alignscope.embed.encoders import cached_path

        yield data, f"{cached_path(data, 'static')}#completion"  # the pages' embedding source: file and unit


@pytest.mark.slow
@pytest.mark.parametrize("method", ["isa", "random", "density"])
def test_kept_pairs_at_matches_the_pair_table(embedded, method):
    from alignscope.app import analysis

    data, source = embedded
    n_points = 2 * data.n_pairs
    for k in (1, 7, n_points // 10, n_points // 2, n_points - 1, n_points):
        table = analysis.selection_at(source, method, k)
        expected = kept_pairs_mask(analysis.pair_level(table).table, data.n_pairs)
        got = analysis.kept_pairs_at(source, method, k, data.n_pairs, table=table)
        assert got.dtype == bool and got.shape == (data.n_pairs,)
        np.testing.assert_array_equal(got, expected)
    # More points kept never drops a pair (the cut-off slides down one ranking).
    small = analysis.kept_pairs_at(source, "isa", 10, data.n_pairs)
    large = analysis.kept_pairs_at(source, "isa", 40, data.n_pairs)
    assert not (small & ~large).any() and large.sum() > small.sum()


@pytest.mark.slow
def test_group_shares_match_share_by_group(embedded):
    from alignscope.app import analysis

    data, _ = embedded
    rng = np.random.default_rng(0)
    for column in ("source", "topic", "is_flipped"):
        if column not in data.frame.columns:
            continue
        for share in (0.0, 0.1, 0.5, 1.0):
            kept = rng.random(data.n_pairs) < share
            expected = share_by_group(data.frame, column, kept)
            got = analysis.group_shares(data, column, kept)
            pd.testing.assert_frame_equal(got.reset_index(drop=True), expected.reset_index(drop=True),
                                          check_dtype=False)


def test_column_kinds_sorts_metadata_by_use():
    from alignscope.app import analysis

    data = load_preferences("demo:200")
    kinds = analysis.column_kinds(data)
    frame = data.frame
    for column in kinds["colour"]:
        assert frame[column].nunique() <= 50
    for column in kinds["groups"]:
        assert 2 <= frame[column].nunique() <= 30
    for column in kinds["numeric"]:
        assert pd.api.types.is_numeric_dtype(frame[column]) and column not in kinds["colour"]
    assert set(kinds["colour"]) | set(kinds["numeric"]) <= set(data.metadata_columns)
    assert "source" in kinds["groups"]


@pytest.mark.slow
def test_the_slider_cuts_the_cached_ranking(embedded):
    """The ranking the cache reads is the one ``Selection.top`` cuts (rank 1 = best)."""
    from alignscope.app import analysis

    data, source = embedded
    ranked = analysis.ranking(source, analysis.embedding_stamp(source), "isa", 0, "{}", None)
    cut = ranked.top(25).table
    assert int(cut["selected"].sum()) == 25
    assert set(cut.loc[cut["selected"], "rank"]) == set(range(1, 26))


def test_length_table_is_kept_on_disk_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNSCOPE_HOME", str(tmp_path))
    from alignscope.app import analysis
    from alignscope.data.preferences import length_table

    data = load_preferences("demo:300")
    expected = length_table(data)
    analysis._length_table.clear()
    first = analysis.lengths(data)
    pd.testing.assert_frame_equal(first, expected)
    stored = tmp_path / "cache" / "stats" / f"{data.fingerprint}-lengths.parquet"
    assert stored.is_file()
    # A stored table is what a restarted app reads (here: marked, to see it is the one returned).
    marked = expected.copy()
    marked.loc[0, "prompt"] = 12345
    marked.to_parquet(stored, index=False)
    analysis._length_table.clear()
    assert int(analysis.lengths(data).loc[0, "prompt"]) == 12345
    # A stored table of the wrong size is ignored and rewritten.
    expected.head(10).to_parquet(stored, index=False)
    analysis._length_table.clear()
    pd.testing.assert_frame_equal(analysis.lengths(data), expected)
    assert len(pd.read_parquet(stored)) == data.n_pairs

"""The seeded demo set: deterministic, with defects in exact, recorded numbers."""
from __future__ import annotations

import numpy as np
import pytest

from alignscope.data.demo import TOPICS, demo_frame
from alignscope.data.preferences import demo_preferences


def test_same_seed_same_rows_other_seed_other_rows():
    a, b = demo_frame(500, seed=7), demo_frame(500, seed=7)
    assert a.equals(b)
    assert not a.equals(demo_frame(500, seed=8))


def test_planted_defects_have_exact_known_shares():
    frame = demo_frame(2000, seed=0, flip_share=0.1, duplicate_share=0.05, low_quality_share=0.08)
    assert len(frame) == 2000
    assert frame["is_flipped"].sum() == 200
    assert (frame["duplicate_of"] >= 0).sum() == 100
    assert frame["is_low_quality"].sum() == 160
    # Defects are disjoint, so each effect can be measured on its own.
    assert not (frame["is_flipped"] & frame["is_low_quality"]).any()
    assert not ((frame["duplicate_of"] >= 0) & (frame["is_flipped"] | frame["is_low_quality"])).any()
    assert sorted(frame["id"]) == list(range(2000))


def test_near_duplicates_point_at_clean_originals_with_similar_text():
    frame = demo_frame(1000, seed=1).set_index("id")
    dups = frame[frame["duplicate_of"] >= 0]
    for dup_id, row in dups.head(20).iterrows():
        original = frame.loc[row["duplicate_of"]]
        assert row["topic"] == original["topic"] and row["rejected"] == original["rejected"]
        assert row["prompt"].strip(" :)?!").lower().replace(" ?", "?")[:15] == \
            original["prompt"].strip(" :)?!").lower().replace(" ?", "?")[:15]


def test_flipped_pairs_prefer_the_bad_answer():
    frame = demo_frame(1000, seed=2)
    words = lambda s: s.str.split().str.len()  # noqa: E731
    clean = frame[~frame["is_flipped"] & ~frame["is_low_quality"]]
    flipped = frame[frame["is_flipped"]]
    # Length is a weak rule on the demo: the bad answer is often as long or longer (padded, off-topic).
    assert 0.5 < (words(clean["chosen"]) > words(clean["rejected"])).mean() < 0.75
    # A flipped pair's rejected answer is the good one: it states facts of the pair's own topic.
    from alignscope.data.demo import TOPICS

    has_fact = [any(fact in row.rejected for fact in TOPICS[row.topic]["facts"]) for row in flipped.itertuples()]
    assert np.mean(has_fact) > 0.95


def test_topics_and_sources_are_all_present_and_topical():
    frame = demo_frame(3000, seed=0)
    assert set(frame["topic"]) == set(TOPICS)
    assert frame["source"].nunique() == 3
    counts = frame["topic"].value_counts().to_numpy()
    assert counts.min() > 0.5 * counts.mean()  # roughly balanced clusters
    cooking = frame[(frame["topic"] == "cooking") & ~frame["is_flipped"] & ~frame["is_low_quality"]
                     & (frame["duplicate_of"] < 0)]
    facts = set(TOPICS["cooking"]["facts"])
    assert np.mean([any(f in text for f in facts) for text in cooking["chosen"]]) == 1.0


def test_demo_preferences_are_valid_and_labelled_as_demo():
    data = demo_preferences(300, seed=0)
    assert data.is_demo and data.n_pairs == 300 and data.report.n_dropped == 0
    assert "demo" in data.source


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        demo_frame(5)
    with pytest.raises(ValueError):
        demo_frame(100, flip_share=1.5)

"""Near-duplicate review on the Audit page (AppTest, demo data with planted near-copies, a real embedding
job): the pair beside its copy, each field word-diffed with wrapped lines, and a keep-which choice that
the clean subset follows. Also: the count cards carry no delta (no rising arrow on a count)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from alignscope.audit import AuditError, duplicate_members, keep_duplicates
from alignscope.select.selection import Selection
from conftest import ROOT, wait_for_first_look

MAIN = str(ROOT / "app" / "main.py")


def test_keep_duplicates_moves_the_kept_pair_within_its_group():
    table = pd.DataFrame({"index": np.arange(6), "dup_group": [-1, 1, 1, 1, -1, 4],
                          "is_duplicate": [False, False, True, True, False, False]})
    assert duplicate_members(table, 3) == [1, 2, 3] and duplicate_members(table, 0) == []
    kept = keep_duplicates(table, {1: 3})
    assert kept["is_duplicate"].tolist() == [False, True, True, False, False, False]
    assert table["is_duplicate"].tolist() == [False, False, True, True, False, False]  # the input is not changed
    with pytest.raises(AuditError, match="not in the near-duplicate group"):
        keep_duplicates(table, {1: 4})


@pytest.mark.slow  # a real embedding job: about a minute on 2 shared cores
def test_the_pair_beside_its_copy_and_which_one_the_clean_subset_keeps(tmp_path, monkeypatch):
    monkeypatch.setenv("ALIGNSCOPE_DATA_ROOT", str(tmp_path))
    monkeypatch.setenv("ALIGNSCOPE_INITIAL_DATA", "demo:120")
    at = AppTest.from_file(MAIN, default_timeout=180).run()
    at.switch_page("views/audit.py").run()
    wait_for_first_look(at)
    assert not at.exception, [e.value for e in at.exception]
    # Counts are not changes: no delta (and so no arrow) on the count cards.
    cards = {m.label: m for m in at.metric}
    assert all(not cards[name].delta for name in ("Suspected flips", "Near-duplicates", "Outliers"))

    at.multiselect(key="audit_kinds").set_value(["is_duplicate"]).run()
    flagged = next(d.value for d in at.dataframe if "outlier_score" in d.value.columns)
    copy, first = int(flagged["pair"].iloc[0]) - 1, int(flagged["dup_group"].iloc[0]) - 1  # shown from 1
    assert copy != first
    texts = [t.value for t in at.text]
    assert any(t.startswith(f"CHOSEN of #{copy + 1}") for t in texts)
    assert any(t.startswith(f"CHOSEN of #{first + 1} (the group's first pair)") for t in texts)
    diffs = [c for c in at.code if c.proto.wrap_lines]
    assert len(diffs) >= 2  # the pair's own diff and at least one field against its copy, wrapped
    keep = at.radio(key=f"audit_keep_{first}")
    assert keep.value == first  # the rule's default: the group's first pair
    keep.set_value(copy).run()
    at.button(key="audit_use").click().run()
    assert not at.exception, [e.value for e in at.exception]
    selection = Selection.read(at.session_state["alignscope_selection"]["path"])
    kept = set(selection.pairs("any").tolist())
    assert copy in kept and first not in kept
    assert selection.config["kept_copies"] == {str(first): copy}

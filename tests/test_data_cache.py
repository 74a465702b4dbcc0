"""The loaded-data cache: a second load of the same file reads the cached parquet and gives the
same data and fingerprint; an edited file misses it; a damaged entry is ignored."""
from __future__ import annotations

import os

import pandas as pd

from alignscope.data import cache as data_cache
from alignscope.data.preferences import load_preferences
from conftest import STANDARD_ROWS, write_jsonl


def test_second_load_is_cached_and_identical_and_edits_or_damage_miss(isolated_home, tmp_path, monkeypatch):
    monkeypatch.setattr(data_cache, "MIN_BYTES", 0)
    path = write_jsonl(tmp_path / "pairs.jsonl", STANDARD_ROWS * 20)
    first = load_preferences(str(path))
    data_cache.flush()  # written in the background
    entries = sorted((isolated_home / "cache" / "data").glob("*.parquet"))
    assert len(entries) == 1
    again = load_preferences(str(path))
    assert "fingerprint" in again.__dict__  # came from the cache (not recomputed)
    pd.testing.assert_frame_equal(first.frame, again.frame)
    assert again.fingerprint == first.fingerprint and again.spec() == first.spec()

    write_jsonl(path, STANDARD_ROWS * 21)  # an edited file: new size and mtime
    os.utime(path, ns=(1, 1))
    edited = load_preferences(str(path))
    data_cache.flush()
    assert len(edited) == 63 and edited.fingerprint != first.fingerprint

    for entry in (isolated_home / "cache" / "data").glob("*.parquet"):
        entry.write_bytes(b"damaged")
    reloaded = load_preferences(str(path))
    assert len(reloaded) == 63 and reloaded.fingerprint == edited.fingerprint

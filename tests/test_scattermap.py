"""The WebGL map component without a browser: its binary payloads, its selection events, the
tooltips' text shards, and its committed build (present, current with its source, offline, no
HTML injection). The browser walk is tests/test_browser_map.py; nothing here needs node."""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
import tomllib

import numpy as np
import pytest

from alignscope.app.components import scattermap
from alignscope.app.components.scattermap import payload
from alignscope.embed.embeddings import completion_layout
from conftest import ROOT

COMPONENT = ROOT / "app" / "components" / "scattermap"


def test_coordinates_fill_the_unit_box_with_the_aspect_kept():
    coords = np.array([[10.0, 5.0], [14.0, 6.0], [12.0, np.nan], [11.0, 5.5]])
    xy = payload.normalise(coords)
    assert xy.dtype == np.float32 and xy.shape == (4, 2)
    assert xy[:, 0].min() == -1.0 and xy[:, 0].max() == 1.0  # the longer side spans [-1, 1]
    assert np.isclose(xy[1, 1] - xy[0, 1], 0.5)  # 1 unit of y = 1 unit of x = 0.5 of the box
    assert xy[2].tolist() == [0.0, 0.0]  # a point without coordinates sits in the centre


def test_alignscope_layout_sends_no_ids_and_any_other_order_sends_them():
    coords = np.random.default_rng(0).normal(size=(10, 2))
    pairs, label = completion_layout(5)
    scene = payload.point_scene(coords, pairs, label)
    assert scene.layout == "completion" and scene.ids is None and scene.n == 10 and len(scene.xy) == 80
    shuffled = np.random.default_rng(1).permutation(10)
    other = payload.point_scene(coords[shuffled], pairs[shuffled], label[shuffled])
    assert other.layout is None
    assert np.frombuffer(other.ids, "<u4").tolist() == pairs[shuffled].tolist()
    assert np.frombuffer(other.sides, np.uint8).tolist() == (label[shuffled] == 1).astype(int).tolist()
    assert other.key != scene.key
    assert payload.point_scene(coords, np.arange(10), None).layout == "pair"


def test_a_pair_is_a_segment_from_its_rejected_to_its_chosen_completion():
    coords = np.arange(20, dtype=float).reshape(10, 2)
    pairs, label = completion_layout(5)
    chosen, rejected = payload.completion_rows(pairs, label, 5)
    assert chosen.tolist() == [0, 1, 2, 3, 4] and rejected.tolist() == [5, 6, 7, 8, 9]
    values = np.array([0.9, np.nan, 0.1])
    scene = payload.pair_scene(coords, chosen, rejected, np.array([4, 0, 2]), order_by=values)
    xy = payload.normalise(coords)
    segments = np.frombuffer(scene.xy, np.float32).reshape(3, 4)
    assert np.allclose(segments[0], [*xy[9], *xy[4]])  # pair 4: rejected row 9 → chosen row 4
    assert np.frombuffer(scene.ids, "<u4").tolist() == [4, 0, 2]
    assert np.frombuffer(scene.order, "<u4").tolist() == [1, 2, 0]  # no value first, the largest last (on top)


def test_categories_get_codes_a_legend_and_an_other_entry_beyond_forty():
    values = np.array([f"v{i % 50}" for i in range(1000)] + ["kept"] * 30)
    colours = payload.categorical(values, "column")
    codes = np.frombuffer(colours.codes, np.uint8)
    entries = colours.legend["entries"]
    assert len(entries) == payload.MAX_CATEGORIES and entries[-1]["label"].startswith("other (")
    assert sum(e["count"] for e in entries) == len(values)
    for code, entry in enumerate(entries[:-1]):
        assert (codes == code).sum() == entry["count"]
        assert all(v == entry["label"] for v in values[codes == code])
    assert next(e for e in entries if e["label"] == "kept")["colour"] == payload.FIXED["kept"]
    assert all(re.fullmatch(r"#[0-9a-f]{6}", e["colour"]) for e in entries)


def test_numbers_become_255_levels_and_missing_values_their_own_code():
    colours = payload.continuous(np.array([0.0, 0.5, 1.0, np.nan, 7.0]), "p", vmin=0.0, vmax=1.0)
    assert np.frombuffer(colours.codes, np.uint8).tolist() == [0, 127, 254, payload.MISSING, 254]
    assert colours.legend["missing"] == 1 and colours.legend["min"] == 0.0 and colours.legend["max"] == 1.0
    robust = payload.continuous(np.r_[np.linspace(0, 1, 1000), 1e9], "x")
    assert robust.legend["max"] < 2  # one extreme value does not wash out the scale


def test_selection_events_decode_to_sorted_unique_items_and_bad_ones_are_refused():
    items = np.array([5, 1, 5, 3], dtype="<u4")
    encoded = base64.b64encode(items.tobytes()).decode()
    assert payload.decode_items(encoded, 6).tolist() == [1, 3, 5]
    with pytest.raises(ValueError, match="item 5 of a map of 5"):
        payload.decode_items(encoded, 5)
    with pytest.raises(ValueError):
        payload.decode_items("not base64!", 6)
    with pytest.raises(ValueError, match="whole uint32"):
        payload.decode_items(base64.b64encode(b"abc").decode(), 6)
    assert payload.items_of_pairs(np.array([0, 1, 2, 0, 1, 2]), np.array([2])).tolist() == [2, 5]


def test_text_shards_keep_the_texts_as_data(tmp_path):
    n = 1203
    prompts = [f"<script>alert({i})</script> prompt {i}" for i in range(n)]
    chosen, rejected = [f"good {i} " + "x" * 900 for i in range(n)], [f"bad {i}" for i in range(n)]
    folder = tmp_path / "fp"
    assert not payload.text_shards_ready(folder, n)
    assert payload.write_text_shards(prompts, chosen, rejected, folder) == 3
    assert payload.text_shards_ready(folder, n) and not payload.text_shards_ready(folder, n + 1)
    shard = json.loads(gzip.decompress((folder / "2.json.gz").read_bytes()))
    assert len(shard) == n - 1000 and shard[3][0] == prompts[1003] and shard[3][2] == "bad 1003"
    assert len(shard[3][1]) == 480  # cut: the tooltip shows the start, the pair view the whole text


def _source_digest() -> str:
    lines = "".join(f"{hashlib.sha256(path.read_bytes()).hexdigest()}  {path.name}\n"
                    for path in sorted((COMPONENT / "frontend" / "src").iterdir()))
    return hashlib.sha256(lines.encode()).hexdigest()


def test_the_built_component_is_committed_current_and_offline():
    assert scattermap.available()
    static = COMPONENT / "static"
    assert (static / "source.sha256").read_text().strip() == _source_digest(), \
        "frontend/src changed: run app/components/scattermap/frontend/build.sh and commit static/"
    code = (static / "main.js").read_text() + (static / "index.html").read_text()
    urls = set(re.findall(r"https?://[^\s\"'`)]+", code)) - {"http://www.w3.org/2000/svg"}
    assert urls == set()  # nothing to fetch from elsewhere: the map works offline
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"):
        assert sink not in code, sink  # dataset text only ever reaches the page as textContent
    lock = json.loads((COMPONENT / "frontend" / "package-lock.json").read_text())
    assert all(entry.get("integrity") for name, entry in lock["packages"].items() if name)  # pinned
    package_data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    assert {"static/index.html", "static/main.js"} <= set(package_data["alignscope.app.components.scattermap"])

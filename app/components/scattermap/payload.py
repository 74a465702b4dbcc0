"""What the WebGL map receives, as compact binary payloads (no Streamlit here: tested on its own).

A map is a *scene* (positions and identities: which pair and which side each item is, once per
projection and view) and a *colouring* (one byte per item and its legend, once per colour choice).
Positions are float32 normalised into the box [-1, 1]² with the aspect kept (the browser needs no
bounds), identities uint32, colour codes uint8: 123,904 completions cost at most 1.9 MB in all, a million
15 MB, sent as bytes beside the page, never as JSON lists (rows in alignscope's own layout send no
ids: 1.1 MB at 123,904 completions, 9 MB at a million).

Items are completions (mode ``points``: an embedding row each) or pairs (mode ``segments``: a
segment from the rejected to the chosen completion of a pair, four floats each).
"""
from __future__ import annotations

import base64
import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from alignscope.embed.embeddings import completion_layout
from alignscope.files import atomic_path, write_json

MISSING = 255          # the colour code of an item without a value
MAX_CATEGORIES = 40    # more values than this: the rest share one "other" entry
TEXT_SHARD_PAIRS = 500
TEXT_FORMAT = 1
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94",
           "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5"]
FIXED = {"kept": "#d62728", "dropped": "#b0b0b0", "chosen": "#2ca02c", "rejected": "#d62728",
         "no flag": "#b0b0b0", "other": "#7f7f7f"}
VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58",
           "#b5de2b", "#fde725"]
# Diverging, blue → light grey → red: red is the suspicious end (a likely flip, a probe that
# disagrees with the label); the middle is grey, not white, so that it shows on a white page.
DIVERGING = ["#2166ac", "#4393c3", "#92c5de", "#c8ccd2", "#f4a582", "#d6604d", "#b2182b"]


@dataclass(frozen=True)
class Scene:
    """Positions and identities of the items drawn (``n`` of them)."""

    mode: str                 # "points" | "segments"
    xy: bytes                 # float32, 2 (points) or 4 (segments: rejected x, y, chosen x, y) per item
    ids: bytes | None         # uint32: the pair of each item (None: given by ``layout``)
    sides: bytes | None       # uint8 per item: 0 rejected, 1 chosen, 2 a pair-level point (points only)
    order: bytes | None       # uint32 draw order (None: the browser shuffles)
    n: int
    key: str                  # changes whenever any of the above does
    layout: str | None = None  # "completion": rows 0..N-1 chosen, N..2N-1 rejected; "pair": row i is pair i

    @property
    def nbytes(self) -> int:
        return sum(len(b) for b in (self.xy, self.ids or b"", self.sides or b"", self.order or b""))


@dataclass(frozen=True)
class Colours:
    """One colour code per item (uint8 bytes) and the legend that says what the codes mean."""

    codes: bytes
    legend: dict[str, Any]
    key: str


def _digest(*parts: bytes | str) -> str:
    digest = hashlib.blake2b(digest_size=10)
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"|")
    return digest.hexdigest()


def normalise(coords: np.ndarray) -> np.ndarray:
    """(n, 2) coordinates → float32 in [-1, 1]², centred, the longer side spanning [-1, 1] and the
    aspect kept. Non-finite coordinates go to the centre (they cannot be drawn anywhere else)."""
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"map coordinates must have shape (n, 2), got {coords.shape}")
    finite = np.isfinite(coords).all(axis=1)
    if not finite.any():
        return np.zeros(coords.shape, dtype=np.float32)
    low, high = coords[finite].min(axis=0), coords[finite].max(axis=0)
    centre, half = (low + high) / 2, max(float((high - low).max()) / 2, 1e-12)
    out = (coords - centre) / half
    out[~finite] = 0.0
    return out.astype(np.float32)


def layout_of(pair_index: np.ndarray, label: np.ndarray | None) -> str | None:
    """"completion" or "pair" when the rows follow alignscope's layout (the browser then derives each
    row's pair and side: 5 bytes per point not sent), else None."""

    pair_index = np.asarray(pair_index)
    if label is None:
        return "pair" if np.array_equal(pair_index, np.arange(len(pair_index))) else None
    if len(pair_index) % 2:
        return None
    expected_pairs, expected_label = completion_layout(len(pair_index) // 2)
    same = np.array_equal(pair_index, expected_pairs) and np.array_equal(np.asarray(label), expected_label)
    return "completion" if same else None


def point_scene(coords: np.ndarray, pair_index: np.ndarray, label: np.ndarray | None) -> Scene:
    """One item per embedding row (a completion, or a pair for pair-level embeddings)."""
    xy_bytes = normalise(coords).tobytes()
    layout = layout_of(pair_index, label)
    if layout is not None:
        return Scene("points", xy_bytes, None, None, None, len(pair_index), _digest("points", xy_bytes, layout), layout)
    ids = np.asarray(pair_index, dtype=np.uint32)
    sides = np.full(len(ids), 2, dtype=np.uint8) if label is None else \
        (np.asarray(label) == 1).astype(np.uint8)
    ids_bytes, side_bytes = ids.tobytes(), sides.tobytes()
    return Scene("points", xy_bytes, ids_bytes, side_bytes, None, len(ids),
                 _digest("points", xy_bytes, ids_bytes, side_bytes))


def completion_rows(pair_index: np.ndarray, label: np.ndarray, n_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """Embedding rows of each pair's chosen and rejected completion, int64 ``(n_pairs,)`` each
    (−1 where a pair has no such row)."""
    chosen, rejected = np.full(n_pairs, -1, dtype=np.int64), np.full(n_pairs, -1, dtype=np.int64)
    rows = np.arange(len(pair_index), dtype=np.int64)
    is_chosen = np.asarray(label) == 1
    chosen[np.asarray(pair_index)[is_chosen]] = rows[is_chosen]
    rejected[np.asarray(pair_index)[~is_chosen]] = rows[~is_chosen]
    return chosen, rejected


def pair_scene(coords: np.ndarray, chosen_row: np.ndarray, rejected_row: np.ndarray, pairs: np.ndarray,
               order_by: np.ndarray | None = None) -> Scene:
    """One segment per pair in ``pairs`` (pair ids), from its rejected to its chosen completion on the
    same map as the points. ``order_by`` (one value per item): drawn in ascending order, so the
    largest values (the most suspicious pairs) end on top."""
    xy = normalise(coords)
    pairs = np.asarray(pairs, dtype=np.int64)
    segments = np.hstack([xy[rejected_row[pairs]], xy[chosen_row[pairs]]]).astype(np.float32)
    ids = pairs.astype(np.uint32)
    order = None
    if order_by is not None and len(pairs):
        values = np.asarray(order_by, dtype=np.float64)
        order = np.argsort(np.where(np.isfinite(values), values, -np.inf), kind="stable").astype(np.uint32).tobytes()
    xy_bytes, ids_bytes = segments.tobytes(), ids.tobytes()
    return Scene("segments", xy_bytes, ids_bytes, None, order, len(ids),
                 _digest("segments", xy_bytes, ids_bytes, order or b""))


def categorical(values: Sequence[Any] | np.ndarray, title: str) -> Colours:
    """Colours for a categorical column: the :data:`MAX_CATEGORIES` most frequent values get their
    own entry (named colours for kept/dropped, chosen/rejected, no flag), the rest one "other"."""
    labels = np.asarray(values).astype(str)
    uniques, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    by_count = np.argsort(-counts, kind="stable")
    if len(uniques) > MAX_CATEGORIES:
        top = by_count[:MAX_CATEGORIES - 1]
    else:
        top = by_count
    # Named values first in a fixed order, then by count; "dropped"/"no flag" last (the background).
    quiet = {"dropped", "no flag", "False"}
    top = sorted(top.tolist(), key=lambda u: (uniques[u] in quiet, -counts[u]))
    code_of = np.full(len(uniques), len(top), dtype=np.uint8)
    code_of[top] = np.arange(len(top), dtype=np.uint8)
    codes = code_of[inverse.ravel()].astype(np.uint8)
    entries, free = [], iter(c for c in PALETTE if c not in FIXED.values())
    for u in top:
        name = str(uniques[u])
        entries.append({"label": name, "colour": FIXED.get(name) or next(free, "#999999"), "count": int(counts[u])})
    rest = int(len(labels) - sum(e["count"] for e in entries))
    if rest:
        entries.append({"label": f"other ({len(uniques) - len(top)} values)", "colour": FIXED["other"], "count": rest})
    legend = {"kind": "categorical", "title": title, "entries": entries}
    code_bytes = codes.tobytes()
    return Colours(code_bytes, legend, _digest(code_bytes, json.dumps(legend, sort_keys=True)))


def continuous(values: np.ndarray, title: str, *, scheme: str = "viridis", vmin: float | None = None,
               vmax: float | None = None, note: str | None = None) -> Colours:
    """Colours for a number per item: 255 levels between ``vmin`` and ``vmax`` (default: the 1st and
    99th percentiles, so a few extreme values do not wash out the rest), :data:`MISSING` for NaN."""
    values = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(values)
    if vmin is None or vmax is None:
        low, high = (np.percentile(values[finite], [1, 99]) if finite.any() else (0.0, 1.0))
        vmin = float(low) if vmin is None else vmin
        vmax = float(high) if vmax is None else vmax
    span = vmax - vmin if vmax > vmin else 1.0
    codes = np.full(len(values), MISSING, dtype=np.uint8)
    codes[finite] = np.clip(np.rint((values[finite] - vmin) / span * 254), 0, 254).astype(np.uint8)
    legend = {"kind": "continuous", "title": title, "stops": DIVERGING if scheme == "diverging" else VIRIDIS,
              "min": float(vmin), "max": float(vmax), "missing": int((~finite).sum())}
    if note:
        legend["note"] = note
    code_bytes = codes.tobytes()
    return Colours(code_bytes, legend, _digest(code_bytes, json.dumps(legend, sort_keys=True)))


def decode_items(encoded: str, n: int) -> np.ndarray:
    """The item indices of a selection event (base64 of little-endian uint32), sorted and unique;
    raises ValueError for anything that is not that or points outside ``0..n-1``."""
    if not isinstance(encoded, str):
        raise ValueError("a selection event carries its items as a base64 string")
    raw = base64.b64decode(encoded.encode("ascii"), validate=True)
    if len(raw) % 4:
        raise ValueError("a selection event's items are not whole uint32 values")
    items = np.unique(np.frombuffer(raw, dtype="<u4").astype(np.int64))
    if len(items) and (items[0] < 0 or items[-1] >= n):
        raise ValueError(f"a selection event names item {int(items[-1])} of a map of {n} items")
    return items


def items_of_pairs(item_pairs: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Indices of the items whose pair is in ``pairs`` (uint32 for the browser)."""
    return np.flatnonzero(np.isin(np.asarray(item_pairs), np.asarray(pairs))).astype(np.uint32)


# ------------------------------------------------------------------------------ hover texts
def text_shards_ready(folder: Path, n_pairs: int) -> bool:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
    except (OSError, ValueError):
        return False
    return manifest.get("format") == TEXT_FORMAT and manifest.get("n_pairs") == n_pairs \
        and manifest.get("shard_pairs") == TEXT_SHARD_PAIRS


def write_text_shards(prompts: Sequence[str], chosen: Sequence[str], rejected: Sequence[str], folder: Path, *,
                      prompt_chars: int = 240, completion_chars: int = 480) -> int:
    """The start of every pair's texts for the map's tooltips: ``folder/K.json.gz`` holds pairs
    ``K·500 … K·500+499`` as ``[prompt, chosen, rejected]`` (plain text, cut to ``prompt_chars`` /
    ``completion_chars``), ``manifest.json`` is written last, so a half-written folder is never
    taken as ready. Returns the number of shards (about 0.3 kB per AlpacaEval pair, gzipped)."""

    folder.mkdir(parents=True, exist_ok=True)
    n = len(prompts)
    shards = 0
    for start in range(0, n, TEXT_SHARD_PAIRS):
        stop = min(n, start + TEXT_SHARD_PAIRS)
        rows = [[prompts[i][:prompt_chars], chosen[i][:completion_chars], rejected[i][:completion_chars]]
                for i in range(start, stop)]
        with atomic_path(folder / f"{start // TEXT_SHARD_PAIRS}.json.gz") as tmp:
            Path(tmp).write_bytes(gzip.compress(json.dumps(rows, ensure_ascii=False).encode(), compresslevel=5))
        shards += 1
    write_json(folder / "manifest.json", {"format": TEXT_FORMAT, "n_pairs": n, "shard_pairs": TEXT_SHARD_PAIRS,
                                          "prompt_chars": prompt_chars, "completion_chars": completion_chars})
    return shards

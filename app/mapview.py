"""What the Map page draws, cached per data set and embedding for every session: the 2-D maps
(PCA at once, UMAP as a job), the WebGL map's scenes and colourings (:mod:`alignscope.app.components.scattermap`),
the tooltips' text shards, text search, the map's own selection and a clicked pair's neighbours.

A page switch to the Map reads everything here from caches: a rerun at 123,904 completions builds
nothing and sends 1.9 MB of bytes (positions, pair ids, sides, colour codes) to the browser.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
import streamlit as st

from alignscope.app import analysis, state
from alignscope.app.components.scattermap import payload, texts_root
from alignscope.audit import search_pairs
from alignscope.data.preferences import PreferenceData
from alignscope.embed.embeddings import Embeddings
from alignscope.embed.projection import project
from alignscope.embed.regions import density_contours, map_regions
from alignscope.run_files import MAP_FILE

SELECTION_KEY = "map_selection"    # {"fingerprint", "pairs", "rows" (None: every row of the pairs), "how"}
FOCUS_KEY = "map_focus"            # {"fingerprint", "pair", "row"}: the clicked pair (and completion)
EVENT_KEY = "map_last_event"       # (token, n) of the last component event handled
NO_WEBGL_KEY = "map_no_webgl"      # the browser said it cannot draw WebGL: the Plotly map from then on

LABEL = "label (chosen / rejected)"
GMM, LOGLIK, CURRENT, FLAG = "GMM component", "ISA log-likelihood l′ (high = typical)", "current selection", "audit flag"
FLIP, MARGIN, LENGTH_GAP = "flip probability", "probe margin", "length gap (chosen − rejected words)"
NEEDS_AUDIT = (FLIP, MARGIN, FLAG)


def _memo_key(*parts: Any) -> str:
    return hashlib.blake2b(repr(parts).encode(), digest_size=12).hexdigest()


@st.cache_resource(show_spinner=False, max_entries=8)
def _scene(key: str, _build: Callable[[], payload.Scene]) -> payload.Scene:
    return _build()


@st.cache_resource(show_spinner=False, max_entries=24)
def _colours(key: str, _build: Callable[[], payload.Colours]) -> payload.Colours:
    return _build()


# ----------------------------------------------------------------------------------- projections
@st.cache_resource(show_spinner="Computing the PCA map…", max_entries=4)
def _pca(run: str, stamp: float) -> np.ndarray:

    coords = project(analysis.load_embeddings(run).matrix, "pca")
    coords.setflags(write=False)
    return coords


def pca(source: str) -> np.ndarray:
    """The PCA map of the embeddings of ``source`` (:func:`alignscope.app.analysis.source_of`), (n, 2),
    shared and read-only."""
    return _pca(source, analysis.embedding_stamp(source))


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_map(path: str, mtime: float) -> np.ndarray:
    coords = np.load(path, allow_pickle=False)
    coords.setflags(write=False)
    return coords


def umap_jobs(embeddings: Embeddings) -> tuple[np.ndarray | None, Any, Any]:
    """(the finished UMAP map or None, the running UMAP job or None, the last failed one or None)."""
    jobs = [j for j in state.job_store().list_jobs(kind="map", limit=200)
            if j.config.get("embeddings") == str(embeddings.path) and j.config.get("unit") == embeddings.unit
            and j.config.get("method") == "umap"]
    done = next((j for j in jobs if j.status == "succeeded" and (j.run_dir / MAP_FILE).exists()), None)
    if done is not None:
        path = done.run_dir / MAP_FILE
        return _load_map(str(path), path.stat().st_mtime), None, None
    active = next((j for j in jobs if j.is_active), None)
    failed = next((j for j in jobs if j.status == "failed"), None)
    return None, active, failed


# ---------------------------------------------------------------------------------------- scenes
def points_scene(coords_key: str, coords: np.ndarray, embeddings: Embeddings) -> payload.Scene:
    """Every embedding row as a point."""
    return _scene(_memo_key("points", coords_key),
                  lambda: payload.point_scene(coords, embeddings.pair_index, embeddings.label))


@st.cache_resource(show_spinner=False, max_entries=4)
def _rows(run: str, stamp: float, n_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    embeddings = analysis.load_embeddings(run)
    return payload.completion_rows(embeddings.pair_index, embeddings.label, n_pairs)


def completion_rows(source: str, n_pairs: int) -> tuple[np.ndarray, np.ndarray]:
    """Embedding rows of each pair's chosen and rejected completion, (n_pairs,) each."""
    return _rows(source, analysis.embedding_stamp(source), n_pairs)


def pairs_scene(coords_key: str, coords: np.ndarray, source: str, n_pairs: int, pairs: np.ndarray,
                order_by: np.ndarray | None, order_key: str) -> payload.Scene:
    """One segment per pair in ``pairs``, drawn in ascending ``order_by`` (the largest on top)."""
    chosen, rejected = completion_rows(source, n_pairs)
    pairs_key = hashlib.blake2b(np.ascontiguousarray(pairs, dtype=np.int64).tobytes(), digest_size=12).hexdigest()
    return _scene(_memo_key("pairs", coords_key, pairs_key, order_key),
                  lambda: payload.pair_scene(coords, chosen, rejected, pairs, order_by))


# --------------------------------------------------------------------------------------- colours
def point_colour_options(data: PreferenceData, label: np.ndarray | None) -> list[str]:
    kinds = analysis.column_kinds(data)  # cached per data set
    options = ([LABEL] if label is not None else []) + kinds["colour"] + kinds["numeric"] + [GMM, LOGLIK, CURRENT]
    if _audit_flags(data) is not None:
        options.append(FLAG)
    return options


def pair_colour_options(data: PreferenceData) -> list[str]:
    kinds = analysis.column_kinds(data)
    return [FLIP, MARGIN, LENGTH_GAP, FLAG] + kinds["colour"] + kinds["numeric"]


def _audit_flags(data: PreferenceData) -> np.ndarray | None:
    flags = st.session_state.get(analysis.AUDIT_FLAGS_KEY)
    return flags["issue"] if flags and flags.get("fingerprint") == data.fingerprint else None


def _audit_key(data: PreferenceData) -> str:

    return json.dumps(dataclasses.asdict(analysis.audit_config(data)), sort_keys=True)


def isa_pairs(data: PreferenceData) -> int:
    """The pairs the Select page's slider keeps (its share is of the pairs, as every size a user picks)."""
    return max(1, int(round(isa_fraction() * data.n_pairs)))


def isa_fraction() -> float:
    return float(st.session_state.get("alignscope_fraction", 0.05))


def point_colours(choice: str, data: PreferenceData, embeddings: Embeddings) -> payload.Colours:
    """The colouring of every embedding row by ``choice`` (one of :func:`point_colour_options`)."""
    source = analysis.source_of(embeddings)
    k = isa_pairs(data)
    key = _memo_key("points", data.fingerprint, source, analysis.embedding_stamp(source), choice,
                    k if choice in (GMM, LOGLIK, CURRENT) else None, _audit_key(data) if choice == FLAG else None)

    def build() -> payload.Colours:
        kind, values = point_values(choice, data, embeddings, k)
        return payload.categorical(values, choice) if kind == "categorical" else payload.continuous(values, choice)
    return _colours(key, build)


def point_values(choice: str, data: PreferenceData, embeddings: Embeddings, k_pairs: int) -> tuple[str, np.ndarray]:
    """("categorical" | "continuous", one value per embedding row) for a point colouring (also what
    the Plotly map draws)."""
    pair_index, label = embeddings.pair_index, embeddings.label
    if choice == LABEL:
        return "categorical", np.where(label == 1, "chosen", "rejected")
    if choice in (GMM, LOGLIK, CURRENT):
        table = analysis.selection_for_pairs(analysis.source_of(embeddings), "isa", k_pairs, data.n_pairs)
        if choice == GMM:
            return "categorical", np.char.add("component ", table["component"].to_numpy().astype(str))
        if choice == LOGLIK:
            return "continuous", table["loglik_scaled"].to_numpy(dtype=float)
        return "categorical", np.where(table["selected"].to_numpy(), "kept", "dropped")
    if choice == FLAG:
        flags = _audit_flags(data)
        return "categorical", np.asarray(flags, dtype=object)[pair_index].astype(str)
    if choice in analysis.column_kinds(data)["numeric"]:
        return "continuous", data.frame[choice].to_numpy(dtype=float, na_value=np.nan)[pair_index]
    return "categorical", data.frame[choice].astype(str).to_numpy()[pair_index]


def pair_values(choice: str, data: PreferenceData, table: pd.DataFrame | None) -> tuple[str, np.ndarray, dict]:
    """("categorical" | "continuous", one value per pair, colour options) for the pair view. Red is
    the suspicious end of the diverging scales: a likely flip, a probe that disagrees with the label."""
    if choice in (FLIP, MARGIN):
        flip = table["flip_probability" if "flip_probability" in table.columns else "flip_score"].to_numpy(dtype=float)
        if choice == FLIP:
            calibrated = "flip_probability" in table.columns
            return "continuous", flip, {"scheme": "diverging", "vmin": 0.0, "vmax": 1.0, "note": (
                "calibrated P(rejected is better)" if calibrated else
                "the audit's flip score: out-of-fold P(rejected ≻ chosen) of the probe")}
        score = np.clip(table["flip_score"].to_numpy(dtype=float), 1e-9, 1 - 1e-9)
        margin = np.log((1 - score) / score)  # w·(e_c − e_r) of the out-of-fold probe
        bound = float(np.percentile(np.abs(margin), 99)) or 1.0
        return "continuous", -margin, {"scheme": "diverging", "vmin": -bound, "vmax": bound, "note": (
            "−w·(e_c − e_r): red where the probe prefers the rejected answer")}
    if choice == FLAG:
        return "categorical", analysis.first_flags(table), {}
    if choice == LENGTH_GAP:
        lengths = analysis.lengths(data)
        gap = (lengths["chosen"] - lengths["rejected"]).to_numpy(dtype=float)
        bound = float(np.percentile(np.abs(gap), 90)) or 1.0  # heavy tails: the top 10 % saturate
        return "continuous", gap, {"scheme": "diverging", "vmin": -bound, "vmax": bound,
                                   "note": "red: chosen longer; blue: rejected longer"}
    if choice in analysis.column_kinds(data)["numeric"]:
        return "continuous", data.frame[choice].to_numpy(dtype=float, na_value=np.nan), {}
    return "categorical", data.frame[choice].astype(str).to_numpy(), {}


def pair_colours(choice: str, data: PreferenceData, table: pd.DataFrame | None, pairs: np.ndarray,
                 pairs_key: str) -> tuple[payload.Colours, np.ndarray]:
    """The colouring of the drawn pairs and their values (the draw order)."""
    kind, values, options = pair_values(choice, data, table)
    values = values[pairs]
    key = _memo_key("pairs", data.fingerprint, choice, pairs_key, _audit_key(data) if choice in NEEDS_AUDIT else None)
    title = choice if choice != FLIP or "flip_probability" in (table.columns if table is not None else ()) \
        else "flip score"
    colours = _colours(key, lambda: payload.categorical(values, title) if kind == "categorical" else
                       payload.continuous(values, title, **options))
    order = values if kind == "continuous" else np.zeros(len(values))
    return colours, order


# ------------------------------------------------------------------------------------ hover texts
def _write_texts(folder: Path, data: PreferenceData) -> None:
    from alignscope.data.preferences import render_text

    frame = data.frame
    columns = [[render_text(v) for v in frame[c].to_numpy(dtype=object)] for c in ("prompt", "chosen", "rejected")]
    try:
        payload.write_text_shards(*columns, folder)
    except OSError:
        pass  # a read-only home: tooltips show pair numbers only


@st.cache_resource(show_spinner=False, max_entries=8)
def _texts(fingerprint: str, _data: PreferenceData) -> str:
    """Starts writing the shards once per data set, in a thread, 2 s later: the map opens first (a
    million pairs take ~10 s of Python to write, which would slow the page's own run) and a
    tooltip shows its texts as soon as its shard exists (the map asks again while hovering)."""

    folder = texts_root() / fingerprint
    if not payload.text_shards_ready(folder, _data.n_pairs):
        writer = threading.Timer(2.0, _write_texts, args=(folder, _data))
        writer.name, writer.daemon = f"map-texts-{fingerprint}", True
        writer.start()
    return fingerprint


def text_folder(data: PreferenceData) -> str:
    """The folder name of the data's tooltip texts under the served cache (written once per data set)."""
    return _texts(data.fingerprint, data)


# ------------------------------------------------------------------------------------- regions
class _RowTexts:
    """The text of each embedding row, looked up when read: the regions read a few thousand of them,
    and gathering all 500,000 of a 250k-pair set first took 1.2 s. A completion row's text is its
    answer; a pair row's is its prompt (what the pair is about)."""

    def __init__(self, data: PreferenceData, embeddings: Embeddings):
        self.pair_index = np.asarray(embeddings.pair_index)
        self.label = None if embeddings.label is None else np.asarray(embeddings.label)
        frame = data.frame
        self.columns = {name: frame[name].to_numpy() for name in ("prompt", "chosen", "rejected")}

    def __len__(self) -> int:
        return len(self.pair_index)

    def __getitem__(self, row: int) -> str:
        name = "prompt" if self.label is None else "chosen" if self.label[row] == 1 else "rejected"
        return self.columns[name][self.pair_index[row]]


@st.cache_resource(show_spinner="Naming the map's regions…", max_entries=8)
def _regions(coords_key: str, fingerprint: str, _coords: np.ndarray, _embeddings: Embeddings,
             _data: PreferenceData) -> list[dict]:
    # Named on the drawn (normalised) coordinates, so the centres are where the browser draws the points.
    found = map_regions(payload.normalise(_coords), _RowTexts(_data, _embeddings))
    return [{"x": float(x), "y": float(y), "text": label, "count": int(size)}
            for (x, y), label, size in zip(found.centres, found.labels, found.sizes) if label]


def regions(coords_key: str, coords: np.ndarray, embeddings: Embeddings, data: PreferenceData) -> list[dict]:
    """The map's named regions (:func:`alignscope.embed.regions.map_regions`) as the WebGL map draws
    them: ``{"x", "y"`` (normalised like the scene), ``"text", "count"}``, cached per map and data set."""
    return _regions(coords_key, data.fingerprint, coords, embeddings, data)


@st.cache_resource(show_spinner=False, max_entries=8)
def _contours(coords_key: str, _coords: np.ndarray) -> list[dict]:
    return density_contours(payload.normalise(_coords), box=(-1.0, -1.0, 1.0, 1.0))


def contours(coords_key: str, coords: np.ndarray) -> list[dict]:
    """The map's density contours (:func:`alignscope.embed.regions.density_contours`: the lines
    around the densest parts holding 25/50/75 % of the points) in the scene's normalised coordinates."""
    return _contours(coords_key, coords)


# ------------------------------------------------------------------------------- search, neighbours
@st.cache_data(show_spinner="Searching the texts…", max_entries=32)
def _search(fingerprint: str, query: str, _data: PreferenceData) -> np.ndarray:

    return search_pairs(_data, query)


def search(data: PreferenceData, query: str) -> np.ndarray:
    """Pairs whose prompt, chosen or rejected text contains ``query`` (any case)."""
    return _search(data.fingerprint, query.strip(), data)


@st.cache_resource(show_spinner=False, max_entries=2)
def _norms(run: str, stamp: float) -> np.ndarray:
    matrix = analysis.load_embeddings(run).matrix
    return np.maximum(np.linalg.norm(matrix, axis=1), 1e-12)


def nearest_rows(source: str, row: int, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` embedding rows most similar (cosine) to ``row``, itself excluded: (rows, similarity)."""
    matrix = analysis.load_embeddings(source).matrix
    norms = _norms(source, analysis.embedding_stamp(source))
    similarity = (matrix @ matrix[row]) / (norms * norms[row])
    similarity[row] = -np.inf
    k = min(k, len(similarity) - 1)
    top = np.argpartition(-similarity, k - 1)[:k] if k > 0 else np.array([], dtype=np.int64)
    top = top[np.argsort(-similarity[top], kind="stable")]
    return top.astype(np.int64), similarity[top]


# ------------------------------------------------------------------------------------- selection
def selection(data: PreferenceData) -> dict | None:
    chosen = st.session_state.get(SELECTION_KEY)
    return chosen if chosen and chosen.get("fingerprint") == data.fingerprint else None


def set_selection(data: PreferenceData, pairs: np.ndarray, how: str, rows: np.ndarray | None = None) -> None:
    """The map's selection: pairs (and, for a lasso on completions, the rows drawn around)."""
    st.session_state[SELECTION_KEY] = {"fingerprint": data.fingerprint, "pairs": np.unique(np.asarray(pairs, np.int64)),
                                       "rows": None if rows is None else np.unique(np.asarray(rows, np.int64)),
                                       "how": how}


def clear_selection() -> None:
    st.session_state.pop(SELECTION_KEY, None)


def selected_items(chosen: dict | None, item_pairs: np.ndarray, item_rows: np.ndarray | None) -> np.ndarray:
    """Which drawn items show the map's selection: its rows when it was drawn on these rows, else every
    item of its pairs."""
    if not chosen:
        return np.empty(0, dtype=np.uint32)
    if chosen.get("rows") is not None and item_rows is not None:
        return np.flatnonzero(np.isin(item_rows, chosen["rows"])).astype(np.uint32)
    return payload.items_of_pairs(item_pairs, chosen["pairs"])


def keep_selection(data: PreferenceData, pairs: np.ndarray, name: str, encoder: str, how: str) -> Path:
    """The map's selection as the session's active :class:`~alignscope.select.selection.Selection`
    (pair level, method ``manual``): what Select exports and Train trains on."""
    from alignscope.select.selection import Selection

    index = np.arange(data.n_pairs)
    table = pd.DataFrame({"index": index, "selected": np.isin(index, pairs)})
    chosen = Selection.from_frame(table, {"method": "manual", "unit": "pair", "name": name, "how": how,
                                          "k": int(len(pairs)), "encoder": encoder}, data.fingerprint)
    return analysis.save_active_selection(data, chosen, name)

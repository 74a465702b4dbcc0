"""The analysis context shared by the Map and Select pages: which encoder and unit, the embedding
job that computes them, the cached ranking of a selection method, and the active selection that the
Train page uses. Long work (embedding, UMAP) runs as jobs; this module only submits and reads them.

Why one module of ~570 lines: it is the pages' one door to long work (embedding, audit, map and
ranking lookups, each with its Streamlit cache and the job that fills it); splitting it would give
each page two places to look for the same cached value.
"""
from __future__ import annotations

import dataclasses
import hashlib
import html
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import streamlit as st

from alignscope import settings
from alignscope.app import state
from alignscope.audit import FLAGS, AuditConfig, audit_cache_path, cached_audit
from alignscope.data.preferences import PreferenceData
from alignscope.embed.embeddings import Embeddings
from alignscope.embed.encoders import (
    cached_path,
    describe_estimate,
    element_texts,
    rates_path,
)
from alignscope.embed.tasks import load_embed_result, load_unit
from alignscope.files import atomic_path
from alignscope.select.cache import full_ranking, prefetch_ranking, ranking_cache_path
from alignscope.select.selection import Selection
from alignscope.select.stats import group_codes, kept_pairs_mask, pair_first_rank, shares_from_codes

ENCODERS = ["static", "minilm", "lm-last-token:tiny", "lm-last-token:smollm2-135m"]
CONTEXT_KEY = "alignscope_analysis"  # plain session keys survive page switches; widget keys do not
SELECTION_KEY = state.SELECTION_KEY  # one key: the link (state.sync_link) reads it too


# The pages explore with the static encoder at every size: it embeds 3,000 pairs in seconds where
# MiniLM took 13 minutes for a new user on a loaded 2-core machine, with the same probe accuracy on
# AlpacaEval and HH (README, "Encoders: static vs MiniLM"; benchmarks/results/embed_static.json).
# MiniLM and the LM encoders are an upgrade the user asks for; they run in the background.
DEFAULT_ENCODER = "static"


def default_encoder(n_pairs: int) -> str:
    return DEFAULT_ENCODER


def context() -> dict[str, Any]:
    data = state.active_data()
    return st.session_state.setdefault(CONTEXT_KEY, {"encoder": default_encoder(data.n_pairs if data else 0),
                                                     "unit": "completion"})


def encoder_controls(prefix: str) -> tuple[str, str]:
    """Encoder and unit pickers; their values carry across pages."""
    ctx = context()
    cols = st.columns([2, 2, 3])
    encoder = cols[0].selectbox("Encoder", ENCODERS, index=ENCODERS.index(ctx["encoder"])
                                if ctx["encoder"] in ENCODERS else 0, key=f"{prefix}_encoder",
                                help="static (default): Model2Vec distilled from MiniLM, seconds for any data set, "
                                     "blind to word order. minilm: the sentence encoder itself, ~100x slower on a "
                                     "CPU (computed in the background). lm-last-token: the ISA paper's encoder, the "
                                     "last token's hidden state of a causal LM.")
    unit = cols[1].radio("Unit", ["completion", "pair"], index=0 if ctx["unit"] == "completion" else 1,
                         horizontal=True, key=f"{prefix}_unit",
                         help="completion: chosen and rejected are two points (as in the paper); "
                              "pair: one point per pair.")
    ctx.update(encoder=encoder, unit=unit)
    return encoder, unit


def _matches(job, data: PreferenceData, encoder: str) -> bool:
    config = job.config
    return config.get("data", {}).get("fingerprint") == data.fingerprint and config.get("encoder") == encoder


def embed_jobs(data: PreferenceData, encoder: str) -> list:
    """Embed jobs of ``data`` with ``encoder``, newest first (an embed job computes completion rows,
    whatever unit it was asked for: pair rows are derived from them)."""
    return [job for job in state.job_store().list_jobs(kind="embed", limit=500) if _matches(job, data, encoder)]


# An embedding *source* names the embeddings a page works on: ``PATH#unit`` (PATH the file that holds
# them, the shared cache entry for anything computed here). Every cached value below is keyed by it
# and by the file's modification time, so a recomputed entry is never served stale.
def source_of(embeddings: Embeddings) -> str:
    return f"{embeddings.path}#{embeddings.unit}"


def embedding_stamp(source: str) -> float:
    """When the file of ``source`` was last written (part of every cache key below)."""
    return Path(source.rsplit("#", 1)[0]).stat().st_mtime


@st.cache_resource(show_spinner=False, max_entries=4)
def _load_embedding(source: str, stamp: float) -> Embeddings:

    path, unit = source.rsplit("#", 1)
    return load_unit(path, unit)


def load_embeddings(source: str) -> Embeddings:
    """The :class:`~alignscope.embed.embeddings.Embeddings` of ``source`` (shared, read once)."""
    return _load_embedding(source, embedding_stamp(source))


# Encoders whose embedding of a whole data set takes seconds to a minute: a page starts them
# without asking, so the first look at any data set needs no click (the others show an estimate
# and a button).
_START_WITHOUT_ASKING = {"static"}


def require_embeddings(data: PreferenceData, encoder: str, unit: str, prefix: str) -> Embeddings:
    """The :class:`~alignscope.embed.embeddings.Embeddings` of the active data (``.path`` is the
    file that holds them: the embedding cache entry that ``alignscope embed``, sweeps and embed jobs
    all write), or — when they are not computed yet — their progress or the controls to compute
    them, and ``st.stop()``."""

    path = cached_path(data, encoder)
    if path is not None:
        return load_embeddings(f"{path}#{unit}")
    jobs = embed_jobs(data, encoder)
    done = next((j for j in jobs if j.status == "succeeded"), None)
    if done is not None:  # an entry written where the cache could not be (see embed.tasks)

        found = load_embed_result(done.run_dir)
        return load_embeddings(f"{found.path}#{unit}")
    active = next((j for j in jobs if j.is_active), None)
    if active is not None:
        job_progress(active.id, "Embedding")
        st.stop()
    failed = next((j for j in jobs if j.status in ("failed", "cancelled")), None)
    if failed is not None:
        st.error(f"The last embedding job {failed.status}: {failed.error or 'cancelled'} "
                 "(its log is on the Runs page).")
    elif encoder in _START_WITHOUT_ASKING:
        state.job_store().submit("embed", {"data": data.spec(), "encoder": encoder, "unit": "completion"})
        st.rerun()
    n_points = 2 * data.n_pairs
    st.info(f"This page needs the embeddings of the {n_points:,} completions of the active data set "
            f"({encoder}): {_estimate(data.fingerprint, encoder, _rates_stamp(), data)}. The job runs in the "
            "background and is cached, so this happens once per data set and encoder; the static encoder "
            "shows a first result in the meantime.")
    if st.button("Compute embeddings", type="primary", key=f"{prefix}_embed"):
        state.job_store().submit("embed", {"data": data.spec(), "encoder": encoder, "unit": "completion"})
        st.rerun()
    st.stop()


def require_audit(data: PreferenceData, config: Any) -> pd.DataFrame:
    """The audit table of the active data with ``config`` (an AuditConfig) from the audit cache
    that ``alignscope audit``, sweeps and earlier visits share; when it is not computed yet, an
    ``audit`` job computes it in the background (started without a click: the page has nothing
    else to show) with its progress here, and ``st.stop()``."""


    table = _cached_audit_table(data.fingerprint, json.dumps(dataclasses.asdict(config), sort_keys=True),
                                _audit_stamp(data, config), data, config)
    if table is not None:
        return table
    options = dataclasses.asdict(config)
    jobs = _audit_jobs(data, options)
    active = next((j for j in jobs if j.is_active), None)
    if active is not None:
        job_progress(active.id, "Auditing every pair")
        st.stop()
    failed = next((j for j in jobs if j.status in ("failed", "cancelled")), None)
    if failed is not None and cached_audit(data, config) is None:
        st.error(f"The last audit job {failed.status}: {failed.error or 'cancelled'} (its log is on the Runs page).")
        if not st.button("Audit again", key="audit_again"):
            st.stop()
    state.job_store().submit("audit", {"data": data.spec(), "audit": options})
    st.rerun()


def _audit_stamp(data: PreferenceData, config: Any) -> float | None:
    """When the cached audit was written (None before): part of the in-memory cache's key."""

    path = audit_cache_path(data, config, cached_path(data, config.encoder))
    return path.stat().st_mtime if path.is_file() else None


@st.cache_resource(show_spinner=False, max_entries=4)
def _cached_audit_table(fingerprint: str, options_json: str, stamp: float | None, _data: PreferenceData, _config):
    """The cached audit read once per (data, options, file version) for every session."""

    return None if stamp is None else cached_audit(_data, _config)


@st.fragment(run_every=1)
def job_progress(job_id: str, what: str) -> None:
    """A background job's progress bar with its ETA (from its own pace), rerunning the page when it ends."""

    from alignscope.scaling.measure import format_eta

    job = state.job_store().get(job_id)
    eta = ""
    if job.started_at and 0.02 < job.progress < 1:
        eta = f", about {format_eta((time.time() - job.started_at) / job.progress * (1 - job.progress))} left"
    elif job.status == "queued":
        eta = " (queued)"
    st.progress(job.progress, text=f"{what}… {job.progress:.0%}{eta} {job.message or ''}".strip())
    if job.is_terminal:
        st.rerun()


def _rates_stamp() -> tuple:
    """Changes when a run measures a new embedding rate (or distils the static encoder): the
    estimate below is recomputed then, not on a timer (it joins every text: 0.6 s at 124k)."""

    try:
        stat = rates_path().stat()
        return str(rates_path()), stat.st_mtime_ns, stat.st_size
    except OSError:
        return str(rates_path()), None, None


@st.cache_data(show_spinner=False, max_entries=16)
def _estimate(fingerprint: str, encoder: str, rates_stamp: tuple, _data: PreferenceData) -> str:
    """"about N s (measured X texts/s on this machine)", from the rate stored by earlier runs."""

    return describe_estimate(encoder, element_texts(_data))


# ------------------------------------------------------------------------------------- ranking
_THRESHOLDABLE = {"isa", "random"}  # their ranking does not depend on k: rank once, slide a cut-off
# The Select page's ISA options at their defaults: what a prefetch ranks, so that the page finds it.
ISA_PAGE_DEFAULTS = {"covariance_type": "full", "variant": "published"}


def prefetch_isa_ranking(source: str) -> None:
    """Start ranking the embeddings of ``source`` by ISA (the Select page's defaults, seed 0) in the
    background, unless it is on disk or under way, so that the Select page opens on a ranking already
    made (124k points: ~4 s of EM). The Data page calls it when the embeddings exist, the Map once its
    map is drawn; the embeddings are read in the background too."""
    path, unit = source.rsplit("#", 1)
    stamp = embedding_stamp(source)
    prefetch_ranking(path, unit, "isa", load=lambda: _load_embedding(source, stamp), seed=0,
                     options=ISA_PAGE_DEFAULTS)


def computed_source(data: PreferenceData) -> str | None:
    """The embeddings source (``path#unit``) of ``data`` at the pages' shared encoder and unit, when
    they are already computed; else None (nothing is started)."""
    ctx = context()
    path = cached_path(data, ctx["encoder"])
    return None if path is None else f"{path}#{ctx['unit']}"


@st.cache_data(show_spinner="Scoring every point…", max_entries=24)
def ranking(source: str, stamp: float, method: str, seed: int, options_json: str, k: int | None) -> Selection:
    """The method's selection for the embeddings of ``source``. For ISA and random the full
    ranking (``k=None``: every point ranked, cut off later by the slider; kept on disk, so that a
    new session or a restarted server reads it instead of fitting again); else the selection at k."""
    from alignscope.select.selectors import select

    embeddings = _load_embedding(source, stamp)
    if k is None:
        return full_ranking(embeddings, method, seed=seed, options=json.loads(options_json))
    return select(embeddings, method, k=k, seed=seed, **json.loads(options_json))


def selection_at(source: str, method: str, k: int, *, seed: int = 0, options: dict | None = None,
                 fraction: float | None = None) -> Selection:
    """The selection of ``k`` points; ``fraction``: what the user asked for, kept in the provenance."""
    stamp = embedding_stamp(source)
    options_json = json.dumps(options or {}, sort_keys=True)
    asked = {"k": k, "n_selected": k, "k_requested": None if fraction is not None else k, "fraction": fraction}
    if method in _THRESHOLDABLE:
        ranked = ranking(source, stamp, method, seed, options_json, None)
        return ranked.top(k).replace(config={**ranked.config, **asked})
    ranked = ranking(source, stamp, method, seed, options_json, k)
    return ranked.replace(config={**ranked.config, **asked})


@st.cache_resource(show_spinner="Scoring every pair…", max_entries=16)
def pair_ranking(fingerprint: str, encoder: str, unit: str, stamp: float | None, method: str, seed: int,
                 options_json: str, _data: PreferenceData, _embeddings: Embeddings | None = None,
                 _on_progress=None) -> Selection:
    """The full ranking of a pair method (``length``, ``margin``, ``rds``, ``lm-margin``: every pair
    ranked, cut off later by the slider), through ``select_data`` as the CLI and sweeps run it;
    completion embeddings already loaded are reused. Shared read-only by every session."""
    from alignscope.select.selectors import select_data

    embeddings = _embeddings if unit == "completion" else None  # pair rows: select_data reads the cache
    return select_data(_data, method, encoder=encoder, embeddings=embeddings, k=_data.n_pairs, seed=seed,
                       on_progress=_on_progress, **json.loads(options_json))


def pair_selection_at(data: PreferenceData, embeddings: Embeddings, encoder: str, unit: str, method: str, k: int, *,
                      seed: int = 0, options: dict | None = None, fraction: float | None = None,
                      on_progress=None) -> Selection:
    """A pair method's top-``k`` pairs (``fraction``: what the user asked for, kept in the provenance)."""
    stamp = embedding_stamp(source_of(embeddings)) if embeddings.path is not None else None
    ranked = pair_ranking(data.fingerprint, encoder, unit, stamp, method, seed, json.dumps(options or {}, sort_keys=True),
                          data, embeddings, on_progress)
    asked = {"k": k, "n_selected": k, "k_requested": None if fraction is not None else k, "fraction": fraction}
    return ranked.top(k).replace(config={**ranked.config, **asked})


@st.cache_resource(show_spinner=False, max_entries=16)
def _pair_first_rank(source: str, stamp: float, method: str, seed: int, options_json: str,
                     n_pairs: int) -> np.ndarray:
    """Once per ranking, shared by every session: each pair's best (smallest) rank over its points,
    shape (n_pairs,) (``inf`` for a pair without a point), so that the pairs kept at any subset
    size k are ``first_rank <= k``: a slider move reads this instead of re-deriving pairs from 124k
    ranked points (pair rule ``any``; 0.2 s per move at AlpacaEval's size)."""
    first = pair_first_rank(ranking(source, stamp, method, seed, options_json, None).table, n_pairs)
    first.setflags(write=False)
    return first


def ranking_on_disk(source: str, method: str, seed: int, options: dict | None = None) -> bool:
    """Whether the full ranking of ``source`` by ``method`` at ``seed`` is in the ranking cache
    (reading it takes a fraction of a second; computing it, ISA's EM)."""
    path, unit = source.rsplit("#", 1)
    try:
        return ranking_cache_path(path, unit, method, int(seed), dict(options or {})).is_file()
    except OSError:
        return False


def seed_first_ranks(source: str, method: str, seeds, n_pairs: int, *, options: dict | None = None,
                     on_seed=None) -> dict[int, np.ndarray]:
    """Each pair's best rank under each of ``seeds`` (the rankings computed once and cached like the
    page's own); ``on_seed(i, seed)`` is called before each one, for a progress bar."""
    stamp, options_json = embedding_stamp(source), json.dumps(options or {}, sort_keys=True)
    ranks = {}
    for i, seed in enumerate(seeds):
        if on_seed is not None:
            on_seed(i, int(seed))
        ranks[int(seed)] = _pair_first_rank(source, stamp, method, int(seed), options_json, n_pairs)
    return ranks


def kept_pairs_at(source: str, method: str, k: int, n_pairs: int, *, seed: int = 0,
                  options: dict | None = None, table: Selection | None = None) -> np.ndarray:
    """Boolean mask (n_pairs,) of the pairs the top-``k`` selection touches (rule ``any``), equal to
    ``kept_pairs_mask(pair_level(selection_at(...)).table, n_pairs)``. For ranking methods (ISA, random)
    it is read from the cached per-pair best rank; other methods derive it from ``table`` (their
    selection at k, computed when not given)."""
    if method in _THRESHOLDABLE:
        first = _pair_first_rank(source, embedding_stamp(source), method, seed,
                                 json.dumps(options or {}, sort_keys=True), n_pairs)
        return first <= k
    if table is None:
        table = selection_at(source, method, k, seed=seed, options=options)
    return kept_pairs_mask(pair_level(table).table, n_pairs)


def points_for_pairs(source: str, method: str, k_pairs: int, n_pairs: int, *, seed: int = 0,
                     options: dict | None = None) -> int:
    """For a ranking method (ISA, random): how many top points keep exactly ``k_pairs`` pairs
    (rule ``any``), read from the cached per-pair best rank."""
    first = _pair_first_rank(source, embedding_stamp(source), method, seed,
                             json.dumps(options or {}, sort_keys=True), n_pairs)
    k_pairs = max(1, min(int(k_pairs), int(np.isfinite(first).sum())))
    return int(np.partition(first, k_pairs - 1)[k_pairs - 1])


def selection_for_pairs(source: str, method: str, k_pairs: int, n_pairs: int, *, seed: int = 0,
                        options: dict | None = None, pair_fraction: float | None = None) -> Selection:
    """The selection that keeps exactly ``k_pairs`` pairs (pair rule ``any``: a pair is kept when
    either completion is), whatever the unit: the size users pick is in pairs. Ranking methods cut
    their cached ranking; the others (their first picks do not depend on how many follow: density's
    keys, k-center's greedy order) select ``2·k_pairs`` points, enough for any ``k_pairs`` pairs, and
    cut that ranking (:meth:`Selection.top_pairs`). ``pair_fraction``: what the user asked for, kept
    in the provenance."""
    asked = {"k_pairs": int(k_pairs), "pair_fraction": pair_fraction}
    embeddings = load_embeddings(source)
    n_points = len(embeddings)
    if embeddings.unit == "pair":  # one point per pair
        picked = selection_at(source, method, int(k_pairs), seed=seed, options=options)
    elif method in _THRESHOLDABLE:
        k = points_for_pairs(source, method, k_pairs, n_pairs, seed=seed, options=options)
        picked = selection_at(source, method, k, seed=seed, options=options)
    else:
        picked = selection_at(source, method, min(n_points, 2 * int(k_pairs)), seed=seed,
                              options=options).top_pairs(int(k_pairs))
    return picked.replace(config={**picked.config, **asked})


def kept_pairs_for(source: str, method: str, k_pairs: int, n_pairs: int, *, seed: int = 0,
                   options: dict | None = None, table: Selection | None = None) -> np.ndarray:
    """Boolean mask (n_pairs,) of the ``k_pairs`` pairs :func:`selection_for_pairs` keeps; ranking
    methods read it from the cached per-pair best rank (no per-pair work on a slider move)."""
    if method in _THRESHOLDABLE:
        k = points_for_pairs(source, method, k_pairs, n_pairs, seed=seed, options=options)
        return kept_pairs_at(source, method, k, n_pairs, seed=seed, options=options)
    if table is None:
        table = selection_for_pairs(source, method, k_pairs, n_pairs, seed=seed, options=options)
    return kept_pairs_mask(pair_level(table).table, n_pairs)


@st.cache_resource(show_spinner=False, max_entries=16)
def _group_codes(fingerprint: str, column: str, _data: PreferenceData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return group_codes(_data.frame[column].to_numpy())


def column_codes(data: PreferenceData, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`alignscope.select.stats.group_codes` of ``column`` (its distinct values as text, each
    pair's index into them, pairs per value), computed once per data set for every session."""
    return _group_codes(data.fingerprint, column, data)


def group_shares(data: PreferenceData, column: str, kept: np.ndarray) -> pd.DataFrame:
    """``selection_stats.share_by_group(data.frame, column, kept)`` with the column's groups coded
    once per data set for every session: a slider move only counts the kept pairs per group."""
    return shares_from_codes(*column_codes(data, column), kept)


def pair_level(selection: Selection) -> Selection:
    """Pair-level view of a selection (completion-level ones keep a pair when either completion
    is selected: the documented default pair rule ``any``)."""
    return selection.pair_selection("any")


def save_active_selection(data: PreferenceData, selection: Selection, name: str) -> Path:
    """Write the selection under ALIGNSCOPE_HOME/selections and make it the session's active one
    (the Train page trains on it)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name)[:80] or "selection"
    path = settings.home() / "selections" / f"{data.fingerprint}-{safe}.parquet"
    selection.check_against(data)
    selection.replace(fingerprint=selection.fingerprint or data.fingerprint).write(path)
    st.session_state[SELECTION_KEY] = {"path": str(path), "name": name, "fingerprint": data.fingerprint,
                                       "n_selected": selection.n_selected, "n_pairs": int(len(selection.pairs("any")))}
    return path


def selection_size_text(chosen: dict, data: PreferenceData) -> str:
    """An active selection's size in pairs and as a share of the data set's pairs, e.g. "300 pairs,
    10.0 % of 3,000" (selections saved before pairs were recorded count the file's pairs)."""
    n = chosen.get("n_pairs")
    if n is None:
        try:
            n = int(len(Selection.read(chosen["path"]).pairs("any")))
        except (OSError, ValueError):
            return f"{chosen.get('n_selected', 0):,} rows"
    return f"{n:,} pairs, {n / max(1, data.n_pairs):.1%} of {data.n_pairs:,}"


def active_selection(data: PreferenceData) -> dict | None:
    chosen = st.session_state.get(SELECTION_KEY)
    if chosen and chosen.get("fingerprint") == data.fingerprint and Path(chosen["path"]).exists():
        return chosen
    return None


def hover_texts(data: PreferenceData, pair_index: np.ndarray, label: np.ndarray | None, rows: np.ndarray) -> list[str]:
    """Hover text per drawn point, HTML-escaped: Plotly hover labels accept a few tags, and dataset
    text must never be interpreted as markup."""

    from alignscope.data.preferences import render_text

    # A text budget for the whole map (~8 MB of hover text): full snippets for a few thousand
    # points, shorter ones as more are drawn, only the pair number at 100k+ (the browser would
    # otherwise receive ~50 MB of JSON for 124k points).
    per_point = int(min(400, max(0, 8_000_000 / max(1, len(rows)) - 30)))
    prompt_chars, completion_chars = int(per_point * 0.4), int(per_point * 0.6)
    pairs = np.asarray(pair_index)[rows].astype(np.int64)
    which = np.full(len(rows), "pair", dtype=object) if label is None else \
        np.where(np.asarray(label)[rows] == 1, "chosen", "rejected").astype(object)
    if prompt_chars < 20:
        # Pair numbers only: no data set text, nothing to escape, no column converted (converting
        # the three text columns of 62k pairs took 1.5 s per map draw).
        return [f"#{pair + 1} ({kind})" for pair, kind in zip(pairs.tolist(), which.tolist())]
    # Only the drawn pairs' texts are read.
    frame = data.frame.iloc[pairs]
    prompt, chosen, rejected = (frame[c].to_numpy(dtype=object) for c in ("prompt", "chosen", "rejected"))
    out = []
    for i, (pair, kind) in enumerate(zip(pairs.tolist(), which.tolist())):
        completion = render_text(rejected[i] if kind == "rejected" else chosen[i])
        text = (f"#{pair + 1} ({kind})\nPROMPT: {render_text(prompt[i])[:prompt_chars]}"
                f"\n{kind.upper()}: {completion[:completion_chars]}")
        out.append(html.escape(text).replace("\n", "<br>"))
    return out


@st.cache_resource(show_spinner=False, max_entries=8)
def _hover_cached(fingerprint: str, run: str, rows_digest: str, _data: PreferenceData, _pair_index: np.ndarray,
                  _label: np.ndarray | None, _rows: np.ndarray) -> list[str]:
    return hover_texts(_data, _pair_index, _label, _rows)


def map_hover_texts(data: PreferenceData, source: str, pair_index: np.ndarray, label: np.ndarray | None,
                    rows: np.ndarray) -> list[str]:
    """:func:`hover_texts`, built once per data set, embedding and drawn sample for every session
    and rerun (reading 50k texts out of the data set took ~1 s per Map rerun). The list is shared:
    read it, do not change it."""

    stamp = embedding_stamp(source)
    digest = hashlib.blake2b(np.ascontiguousarray(rows, dtype=np.int64).tobytes(), digest_size=16).hexdigest()
    return _hover_cached(data.fingerprint, f"{source}@{stamp}", digest, data, pair_index, label, rows)


@st.cache_resource(show_spinner=False, max_entries=4)
def _prompt_previews(fingerprint: str, chars: int, _data: PreferenceData) -> np.ndarray:
    from alignscope.data.preferences import render_text

    previews = np.array([render_text(v)[:chars] for v in _data.frame["prompt"].to_numpy(dtype=object)], dtype=object)
    previews.setflags(write=False)
    return previews


def prompt_previews(data: PreferenceData, chars: int = 120) -> np.ndarray:
    """The first ``chars`` characters of every prompt as plain text, shape (n_pairs,), once per data
    set for every session (tables of flagged or nearest pairs index it)."""
    return _prompt_previews(data.fingerprint, chars, data)


@st.cache_data(show_spinner="Counting words…", max_entries=8)
def _length_table(fingerprint: str, _data: PreferenceData) -> pd.DataFrame:
    """Counted once per data set, kept on disk (``ALIGNSCOPE_HOME/cache/stats``, 1.5 MB at 62k
    pairs) so that a restarted app does not count 186k texts again before its first page (2.5 s)."""
    from alignscope.data.preferences import CANONICAL, length_table

    stored = settings.home() / "cache" / "stats" / f"{fingerprint}-lengths.parquet"
    try:
        table = pd.read_parquet(stored)
        if list(table.columns) == list(CANONICAL) and len(table) == _data.n_pairs:
            return table
    except (OSError, ValueError, ImportError):
        pass
    table = length_table(_data)
    try:
        with atomic_path(stored) as tmp:
            table.to_parquet(tmp, index=False)
    except OSError:
        pass  # a read-only home: counted again next start
    return table


def lengths(data: PreferenceData) -> pd.DataFrame:
    """Words per prompt/chosen/rejected, counted once per data set for every page (shape (n_pairs, 3))."""
    return _length_table(data.fingerprint, data)


@st.cache_data(show_spinner=False, max_entries=8)
def _column_kinds(fingerprint: str, _data: PreferenceData) -> dict[str, list[str]]:
    frame = _data.frame
    kinds: dict[str, list[str]] = {"colour": [], "numeric": [], "groups": []}
    for column in _data.metadata_columns:
        values = frame[column]
        types = values.map(type)
        if types.isin([str, bool, int, float]).all() and values.nunique() <= 50:
            kinds["colour"].append(column)
        elif pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values):
            kinds["numeric"].append(column)
        if types.isin([str, bool, int]).all() and 2 <= values.nunique() <= 30:
            kinds["groups"].append(column)
    return kinds


def column_kinds(data: PreferenceData) -> dict[str, list[str]]:
    """The metadata columns by use, once per data set for every session (a type check of every
    value: 0.1-0.2 s per rerun at 62k pairs otherwise). ``colour``: scalar (str/bool/int/float),
    at most 50 values (Map colours); ``numeric``: other numeric, non-boolean columns (a colour
    scale); ``groups``: str/bool/int with 2-30 values (Select's and Spectra's group comparisons)."""
    return _column_kinds(data.fingerprint, data)


def default_group(groups: list[str]) -> str:
    """The group column a page compares by until the user picks one: ``source`` when the data has
    it (where the pairs come from is what people compare first), else the first."""
    return "source" if "source" in groups else groups[0]


# ------------------------------------------------------------------------------------ the audit
AUDIT_FLAGS_KEY = "alignscope_audit_flags"  # set by the Audit page: {fingerprint, issue}
AUDIT_CONFIG_KEY = "alignscope_audit_config"  # the Audit page's options: what the Map's audit colours read
FLAG_LABELS = {"suspect_flip": "suspected flip", "is_duplicate": "near-duplicate", "is_outlier": "outlier",
               "identical": "chosen = rejected"}


def audit_config(data: PreferenceData):
    """The audit options of this session (the Audit page's, else the defaults with the session's encoder)."""

    chosen = st.session_state.get(AUDIT_CONFIG_KEY)
    if chosen and chosen.get("fingerprint") == data.fingerprint:
        return AuditConfig(**chosen["config"])
    return AuditConfig(encoder=context()["encoder"])


def audit_table(data: PreferenceData) -> pd.DataFrame | None:
    """The audit table of the data with this session's options when it has been computed (by the
    Audit page, ``alignscope audit`` or a job: the shared audit cache), else None; never computes."""

    config = audit_config(data)
    return _cached_audit_table(data.fingerprint, json.dumps(dataclasses.asdict(config), sort_keys=True),
                               _audit_stamp(data, config), data, config)


def start_audit(data: PreferenceData) -> None:
    """Submit the ``audit`` job for this session's options (unless one is queued or running)."""

    options = dataclasses.asdict(audit_config(data))
    if not any(j.is_active for j in _audit_jobs(data, options)):
        state.job_store().submit("audit", {"data": data.spec(), "audit": options})


def running_audit(data: PreferenceData):
    """The active ``audit`` job of this session's options, or None."""

    return next((j for j in _audit_jobs(data, dataclasses.asdict(audit_config(data))) if j.is_active), None)


def _audit_jobs(data: PreferenceData, options: dict) -> list:
    return [j for j in state.job_store().list_jobs(kind="audit", limit=200)
            if j.config.get("data", {}).get("fingerprint") == data.fingerprint and j.config.get("audit") == options]


def first_flags(table: pd.DataFrame) -> np.ndarray:
    """Each pair's first audit flag as a label (``"no flag"`` when none), shape (n_pairs,)."""

    issue = np.full(len(table), "no flag", dtype=object)
    for flag in reversed(FLAGS):
        issue[table[flag].to_numpy(dtype=bool)] = FLAG_LABELS[flag]
    return issue

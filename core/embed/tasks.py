"""Job functions for the app's long work that is not training: embedding a data set and drawing its
2-D map. Each runs in a worker process (:mod:`alignscope.jobs`) as ``fn(config, run_dir, report)``
and leaves its result where every front end finds it, so the app only reads files.

An ``embed`` job computes the data's completion embeddings into the embedding cache
(:func:`alignscope.embed.encoders.embed`), the one place the CLI, sweeps and the pages all read, and
leaves ``source.json`` in its run directory naming that entry (no second copy of the matrix).
Run directories of earlier versions (``embeddings.npy`` + ``.json``, or ``embeddings.json``,
``pair_index.npy``, ``label.npy``) still load. A ``map`` job writes ``map.npy`` (float32, (n, 2)):
the 2-D projection of the embeddings file it was given.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from alignscope.embed.embeddings import Embeddings
from alignscope.embed.encoders import cached_path, embed
from alignscope.embed.projection import matrix_key, project
from alignscope.files import atomic_path, write_json
from alignscope.run_files import MAP_FILE, SOURCE_FILE

EMBEDDINGS_FILE = "embeddings.npy"  # run directories of earlier versions kept their own copy


def _save_array(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)


def embed_job(config: dict[str, Any], run_dir: Path, report: Callable[..., None]) -> dict[str, Any]:
    """config: ``{"data": PreferenceData.spec(), "encoder", "unit", "layer", "batch_size"}``."""
    from alignscope.data.preferences import load_spec

    data = load_spec(config["data"])
    encoder, unit, layer = config.get("encoder", "static"), config.get("unit", "completion"), config.get("layer")
    report(0.0, f"embedding {2 * data.n_pairs:,} completions with {encoder}")
    embeddings = embed(data, encoder, "completion", layer, batch_size=config.get("batch_size"),
                       on_progress=lambda done, total: report(done / max(total, 1), f"{done:,}/{total:,} texts"))
    path = cached_path(data, encoder, layer)
    if path is None:  # the cache could not be written (read-only or full disk): keep the result here
        path = embeddings.save(Path(run_dir) / EMBEDDINGS_FILE, extra={"data": config["data"]})
    write_json(Path(run_dir) / SOURCE_FILE, {"path": str(path), "unit": unit})
    info = {**embeddings.to_unit(unit).info(), "data": config["data"], "path": str(path)}
    report(1.0, f"{len(embeddings):,} × {embeddings.dim} embeddings" + (" (from cache)" if embeddings.from_cache else ""))
    return info


def load_embed_result(run_dir: str | Path) -> Embeddings:
    """The :class:`~alignscope.embed.embeddings.Embeddings` an ``embed`` job left (``.path`` is the
    file that holds them), in the unit the job was asked for."""
    run_dir = Path(run_dir)
    try:
        source = json.loads((run_dir / SOURCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Embeddings.load(run_dir / EMBEDDINGS_FILE)
    return load_unit(source["path"], source.get("unit", "completion"))


def load_unit(path: str | Path, unit: str) -> Embeddings:
    """The embeddings file at ``path`` in ``unit`` (pair rows are computed from completion rows)
    with ``.path`` kept, so whoever holds the result knows which file it came from."""
    embeddings = Embeddings.load(path)
    if embeddings.unit == unit:
        return embeddings
    return dataclasses.replace(embeddings.to_unit(unit), path=embeddings.path)


def map_job(config: dict[str, Any], run_dir: Path, report: Callable[..., None]) -> dict[str, Any]:
    """config: ``{"embeddings": PATH, "unit", "method": "umap"|"pca", "seed"}`` (earlier versions:
    ``{"embed_run_dir"}``); writes ``map.npy``."""
    if "embeddings" in config:
        matrix = load_unit(config["embeddings"], config.get("unit", "completion")).matrix
    else:
        matrix = load_embed_result(config["embed_run_dir"]).matrix
    method, seed = config.get("method", "umap"), int(config.get("seed", 0))
    report(0.0, f"{method} map of {len(matrix):,} points")
    coords = project(matrix, method, seed=seed, key=matrix_key(matrix),
                     on_progress=lambda fraction, message: report(fraction, message))
    _save_array(run_dir / MAP_FILE, coords)
    report(1.0, "map ready")
    return {"n": int(len(coords)), "method": method}

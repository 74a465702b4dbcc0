"""Job functions for the app's long work that is not training: embedding a data set and drawing its
2-D map. Each runs in a worker process (:mod:`alignscope.jobs.store`) as ``fn(config, run_dir, report)``
and leaves its result in the run directory, so the app only reads files.

Run directory of an ``embed`` job: ``embeddings.npy`` + ``embeddings.npy.json``, one
:class:`~alignscope.embed.embeddings.Embeddings` file (float32 ``(n, d)`` and what the rows are, with the
data spec); run directories of earlier versions (``embeddings.json``, ``pair_index.npy``,
``label.npy``) still load. A ``map`` job adds ``map.npy`` (float32, (n, 2)) of the embed job it was given.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np

from alignscope.embed.embeddings import Embeddings
from alignscope.files import atomic_path

EMBEDDINGS_FILE = "embeddings.npy"


def _save_array(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, array, allow_pickle=False)


def embed_job(config: dict[str, Any], run_dir: Path, report: Callable[..., None]) -> dict[str, Any]:
    """config: ``{"data": PreferenceData.spec(), "encoder", "unit", "layer", "batch_size"}``."""
    from alignscope.data.preferences import load_spec
    from alignscope.embed.encoders import embed

    data = load_spec(config["data"])
    report(0.0, f"embedding {2 * data.n_pairs:,} completions with {config.get('encoder', 'minilm')}")
    embeddings = embed(data, config.get("encoder", "minilm"), config.get("unit", "completion"),
                       config.get("layer"), batch_size=config.get("batch_size"),
                       on_progress=lambda done, total: report(done / max(total, 1), f"{done:,}/{total:,} texts"))
    embeddings.save(run_dir / EMBEDDINGS_FILE, extra={"data": config["data"]})
    info = {**embeddings.info(), "data": config["data"]}
    report(1.0, f"{len(embeddings):,} × {embeddings.dim} embeddings" + (" (from cache)" if embeddings.from_cache else ""))
    return info


def load_embed_result(run_dir: str | Path) -> Embeddings:
    """The :class:`~alignscope.embed.embeddings.Embeddings` an ``embed`` job left in ``run_dir``
    (``.path`` is its ``embeddings.npy``; ``.extra["data"]`` the data spec)."""
    return Embeddings.load(Path(run_dir) / EMBEDDINGS_FILE)


def map_job(config: dict[str, Any], run_dir: Path, report: Callable[..., None]) -> dict[str, Any]:
    """config: ``{"embed_run_dir", "method": "umap"|"pca", "seed"}``; writes ``map.npy``."""
    from alignscope.embed.projection import matrix_key, project

    matrix = load_embed_result(config["embed_run_dir"]).matrix
    method, seed = config.get("method", "umap"), int(config.get("seed", 0))
    report(0.0, f"{method} map of {len(matrix):,} points")
    coords = project(matrix, method, seed=seed, key=matrix_key(matrix),
                     on_progress=lambda fraction, message: report(fraction, message))
    _save_array(run_dir / "map.npy", coords)
    report(1.0, "map ready")
    return {"n": int(len(coords)), "method": method}

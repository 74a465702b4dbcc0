"""Embedding as Ray tasks: ``alignscope embed DATA --executor ray [--address auto] [--workers N]``.

The distinct element texts of the data (see :func:`alignscope.embed.encoders.distinct_texts`) are cut into
contiguous shards; each shard is one Ray task that calls :func:`alignscope.embed.encoders.embed_texts` with
the options the driver resolved (precision included, so a worker's hardware cannot change the
numbers silently); the driver concatenates the shards in order, scatters the vectors back to all
``2N`` rows and writes the SAME cache entry that a local :func:`alignscope.embed.encoders.embed` writes.
Every encoder maps a text to its vector independently of the other texts, so the result is the
local one (bitwise for ``static``; for the transformer encoders up to the floating-point effect of
different batch compositions).

Without ``address`` a local Ray instance with ``workers`` CPUs starts; with ``address="auto"`` (or
``ray://host:10001``) the tasks run on your cluster, whose nodes must have alignscope installed
and, for ``static``, mount ``ALIGNSCOPE_HOME`` and ``ALIGNSCOPE_MODELS`` (the driver distills the
static model once into the models folder before submitting, so no task distills it again). Ray is imported here only, when called.
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np

from alignscope.embed import encoders as E
from alignscope import settings

__all__ = ["embed_ray"]

SHARDS_PER_WORKER = 4  # a few shards per worker balance uneven text lengths


def _ray():
    try:
        import ray
    except ImportError:
        raise E.EmbeddingError("--executor ray needs Ray: pip install 'alignscope[ray]' (or pip install ray)") from None
    return ray


def _embed_shard(texts: list[str], encoder: str, layer: int | None, max_length: int, precision: str,
                 batch_size: int | None, device: str | None, home: str, models: str) -> np.ndarray:
    """Body of one Ray task: the vectors of ``texts`` (float32 ``(len(texts), d)``), in order."""
    os.environ["ALIGNSCOPE_HOME"] = home  # the driver's caches on a shared mount
    os.environ["ALIGNSCOPE_MODELS"] = models  # and its models folder (the static model distilled once)
    return E.embed_texts(texts, encoder, layer, batch_size=batch_size, device=device, max_length=max_length,
                         precision=precision, dedupe=False)


def _connect(address: str | None, workers: int | None):
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage reports from a user's machine
    ray = _ray()
    if not ray.is_initialized():
        options: dict[str, Any] = dict(ignore_reinit_error=True, include_dashboard=False, log_to_driver=False,
                                       configure_logging=False)
        if address is None:
            options["num_cpus"] = max(1, int(workers or os.cpu_count() or 1))
        ray.init(address=address, **options)
    return ray


def embed_ray(data: Any, encoder: str = E.DEFAULT_ENCODER, unit: str = "completion", layer: int | None = None, *,
              address: str | None = None, workers: int | None = None, shards: int | None = None,
              batch_size: int | None = None, max_length: int | None = None, precision: str = "auto",
              cache: bool = True, progress: bool = True) -> E.Embeddings:
    """:func:`alignscope.embed.encoders.embed` with the encoding spread over Ray tasks (see the module docstring).

    ``workers``: CPUs of the local Ray instance (default all cores; ignored with ``address``).
    ``shards``: number of tasks (default ``4 × workers`` or ``4 ×`` the cluster's CPUs).
    Returns :class:`~alignscope.embed.encoders.Embeddings` (``matrix`` float32 ``(2N, d)`` or ``(N, 2d)``).
    """
    from alignscope.data.preferences import PreferenceData, load_preferences

    if not isinstance(data, PreferenceData):
        data = load_preferences(data)
    if unit not in E.UNITS:
        raise E.EmbeddingError(f"unit must be one of {', '.join(E.UNITS)}, got {unit!r}")
    if workers is not None and (isinstance(workers, bool) or int(workers) < 1):
        raise E.EmbeddingError(f"workers must be a positive integer, got {workers!r}")
    E._check_positive("shards", shards)
    kind, info, layer, max_length, device, use_bf16 = E._resolve_options(encoder, layer, batch_size, max_length,
                                                                         None, precision)
    key = E.cache_key(data, encoder, info, layer, max_length, use_bf16)
    cached = E._read_cache(key) if cache else None
    if cached is not None:
        return E._as_unit(cached.matrix, unit, key, from_cache=True)
    if kind == E.LSA:  # one fit over every text: shards would each fit their own space
        return E.embed(data, encoder, unit, layer, batch_size=batch_size, max_length=max_length, precision=precision,
                       cache=cache, progress=progress)
    if kind == E.STATIC:
        E.static_folder(device, create=True)  # distill once here, not once per task
    unique, inverse = E.distinct_texts(E.element_texts(data))
    ray = _connect(address, workers)
    n_shards = shards or SHARDS_PER_WORKER * max(1, int(ray.cluster_resources().get("CPU", 1)))
    bounds = np.array_split(np.arange(len(unique)), max(1, min(n_shards, len(unique))))
    task = ray.remote(num_cpus=1, max_retries=1)(_embed_shard)
    home, models = str(settings.home()), str(settings.models())
    shard_device = device if kind == E.STATIC else None  # static: the distillation folder's device
    refs = [task.remote([unique[i] for i in rows], encoder.strip(), layer, max_length,
                        "bf16" if use_bf16 else "fp32", batch_size, shard_device, home, models)
            for rows in bounds if len(rows)]
    bar = E._progress_bar(len(unique), progress, f"{encoder.strip()} on ray, {len(refs)} shards")
    sizes = {ref: len(rows) for ref, rows in zip(refs, [b for b in bounds if len(b)])}
    pending = list(refs)
    while pending:
        ready, pending = ray.wait(pending, num_returns=1)
        bar.update(sum(sizes[r] for r in ready))
    bar.close()
    parts = ray.get(refs)  # in submission order: shard i holds unique[bounds[i]]
    if parts:
        matrix = np.concatenate(parts).astype(np.float32, copy=False)[inverse]
    else:
        matrix = np.zeros((0, 0), np.float32)
    result = E._as_unit(matrix, "completion", key)
    if cache:
        E._write_cache(key, result)
    return result.to_unit(unit)

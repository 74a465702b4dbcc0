"""2-D maps of embeddings for the Map page: PCA (instant) or UMAP (minutes at 100k points), cached.

UMAP is run on a 50-d PCA of the embeddings (the usual recipe: it removes noise dimensions and
makes the neighbour search several times faster). Above ``max_fit`` points UMAP is fitted on a
seeded subsample and the remaining points are placed with ``UMAP.transform`` in chunks (with
progress and an ETA), which keeps a million points feasible on a laptop CPU. The map is for looking, never for computation: selection always runs on
the full embedding matrix.
"""
from __future__ import annotations

import hashlib
import time
from pathlib import Path
from typing import Callable

import numpy as np

from alignscope import settings
from alignscope.files import atomic_path, write_json

METHODS = ("pca", "umap")


def pca_2d(matrix: np.ndarray, n_components: int = 2, seed: int = 0, max_fit: int = 50_000) -> np.ndarray:
    """Principal components of ``matrix`` (n, d) → (n, n_components) float32. Above ``max_fit`` rows
    the components are fitted on a seeded sample of ``max_fit`` rows and every row is projected on
    them: a million 64-d rows take ~1-2 s instead of 12 s of randomized SVD on all of them, and the
    sampled components span the same plane up to a fraction of a degree when the leading variances
    are distinct (tests/test_projection.py measures the principal angles)."""
    from sklearn.decomposition import PCA

    matrix = np.asarray(matrix, dtype=np.float32)
    n_components = min(n_components, matrix.shape[1], matrix.shape[0])
    solver = "randomized" if matrix.shape[0] > 5000 and n_components < matrix.shape[1] else "full"
    pca = PCA(n_components=n_components, svd_solver=solver, random_state=seed)
    if matrix.shape[0] <= max_fit:
        return pca.fit_transform(matrix).astype(np.float32)
    rows = np.sort(np.random.default_rng(seed).choice(matrix.shape[0], size=max_fit, replace=False))
    pca.fit(matrix[rows])
    out = np.empty((matrix.shape[0], n_components), dtype=np.float32)
    for start in range(0, matrix.shape[0], 200_000):  # bounded temporary memory
        out[start:start + 200_000] = pca.transform(matrix[start:start + 200_000])
    return out


def umap_2d(matrix: np.ndarray, *, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1,
            max_fit: int = 20_000, chunk: int = 20_000,
            on_progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """UMAP (McInnes et al. 2018) of ``matrix`` (n, d) → (n, 2) float32, seeded.

    Above ``max_fit`` rows UMAP is fitted on a seeded sample of ``max_fit`` rows and the others are
    placed with ``UMAP.transform``, ``chunk`` rows at a time, with a progress report and an ETA after
    each. (Placing rows at the weighted mean of their nearest fitted rows, without transform's
    optimisation epochs, was measured and dropped: slower here and less trustworthy, 0.78 vs 0.82 —
    ``benchmarks/results/projection_60000.json``.)
    """
    import umap

    report = on_progress or (lambda fraction, message: None)
    matrix = np.asarray(matrix, dtype=np.float32)
    reduced = pca_2d(matrix, n_components=50, seed=seed) if matrix.shape[1] > 50 else matrix
    report(0.05, "PCA to 50 dimensions done")
    n = reduced.shape[0]
    reducer = umap.UMAP(n_neighbors=min(n_neighbors, max(n - 1, 2)), min_dist=min_dist, random_state=seed,
                        low_memory=True, n_jobs=1)
    if n <= max_fit:
        coords = reducer.fit_transform(reduced)
        report(1.0, "UMAP done")
        return coords.astype(np.float32)
    rng = np.random.default_rng(seed)
    fit_rows = np.sort(rng.choice(n, size=max_fit, replace=False))
    coords = np.empty((n, 2), dtype=np.float32)
    report(0.06, f"fitting UMAP on {max_fit:,} of {n:,} points")
    coords[fit_rows] = reducer.fit_transform(reduced[fit_rows])
    rest = np.setdiff1d(np.arange(n), fit_rows)
    report(0.3, f"UMAP fitted on {max_fit:,} points; placing the other {len(rest):,}")
    started = time.perf_counter()
    for start in range(0, len(rest), chunk):
        part = rest[start:start + chunk]
        coords[part] = reducer.transform(reduced[part])
        done = start + len(part)
        left = (time.perf_counter() - started) / done * (len(rest) - done)
        report(0.3 + 0.7 * done / len(rest), f"placed {done:,} of {len(rest):,} points, about {left:.0f} s left")
    return coords


def matrix_key(matrix: np.ndarray) -> str:
    """Content hash of a matrix (shape + bytes), 16 hex digits: keys the map cache."""
    digest = hashlib.sha256(str(matrix.shape).encode())
    digest.update(np.ascontiguousarray(matrix, dtype=np.float32).tobytes())
    return digest.hexdigest()[:16]


def map_cache_path(key: str, method: str, seed: int) -> Path:
    return settings.home() / "cache" / "maps" / f"{key}-{method}-s{seed}.npy"


def load_cached_map(key: str, method: str, seed: int = 0, n_rows: int | None = None) -> np.ndarray | None:
    """The cached map, or None when absent, unreadable or of the wrong shape (then recompute)."""
    path = map_cache_path(key, method, seed)
    try:
        coords = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    if coords.ndim != 2 or coords.shape[1] != 2 or (n_rows is not None and coords.shape[0] != n_rows):
        return None
    return coords


def project(matrix: np.ndarray, method: str = "pca", *, seed: int = 0, key: str | None = None,
            on_progress: Callable[[float, str], None] | None = None) -> np.ndarray:
    """A 2-D map (n, 2) of ``matrix``, from the disk cache when it exists, else computed and cached."""
    if method not in METHODS:
        raise ValueError(f"unknown map method {method!r}: choose {', '.join(METHODS)}")
    key = key or matrix_key(matrix)
    cached = load_cached_map(key, method, seed, n_rows=matrix.shape[0])
    if cached is not None:
        return cached
    coords = pca_2d(matrix, seed=seed) if method == "pca" else umap_2d(matrix, seed=seed, on_progress=on_progress)
    path = map_cache_path(key, method, seed)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, coords, allow_pickle=False)
    write_json(path.with_suffix(".json"), {"method": method, "seed": seed, "n": int(matrix.shape[0])})
    return coords


def display_sample(n: int, max_points: int, seed: int = 0, keep: np.ndarray | None = None) -> np.ndarray:
    """Row indices to draw: all when ``n <= max_points``, else a seeded sample that always includes
    the rows in ``keep`` (e.g. the selected subset, so it is never hidden by downsampling)."""
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    keep = np.unique(keep) if keep is not None and len(keep) else np.empty(0, dtype=np.int64)
    keep = keep[: max_points]
    rest = np.setdiff1d(np.arange(n), keep, assume_unique=True)
    extra = rng.choice(rest, size=max(max_points - len(keep), 0), replace=False)
    return np.sort(np.concatenate([keep, extra]).astype(np.int64))


"""2-D maps: PCA/UMAP shapes, the disk cache, and display downsampling."""
from __future__ import annotations

import numpy as np
import pytest

from alignscope.embed.projection import display_sample, map_cache_path, matrix_key, project


def _blobs(n=400, d=32, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 5, size=(4, d))
    labels = rng.integers(0, 4, size=n)
    return (centres[labels] + rng.normal(size=(n, d))).astype(np.float32), labels


def test_pca_map_is_cached_and_a_corrupt_cache_is_recomputed():
    matrix, _ = _blobs()
    first = project(matrix, "pca")
    assert first.shape == (400, 2) and first.dtype == np.float32
    path = map_cache_path(matrix_key(matrix), "pca", 0)
    assert path.exists()
    path.write_bytes(b"not a numpy file")
    again = project(matrix, "pca")
    np.testing.assert_allclose(again, first, rtol=1e-5, atol=1e-5)


def test_umap_separates_clusters_and_is_seeded():
    matrix, labels = _blobs(n=300)
    coords = project(matrix, "umap", seed=1)
    assert coords.shape == (300, 2) and np.isfinite(coords).all()
    # Points of the same blob sit closer to their own centroid than to other blobs' centroids.
    centroids = np.stack([coords[labels == k].mean(axis=0) for k in range(4)])
    nearest = np.argmin(((coords[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).mean() > 0.95


def test_display_sample_keeps_requested_rows():
    keep = np.array([5, 17, 999])
    rows = display_sample(10_000, 500, seed=0, keep=keep)
    assert len(rows) == 500 and set(keep) <= set(rows.tolist())
    assert np.array_equal(rows, display_sample(10_000, 500, seed=0, keep=keep))
    assert np.array_equal(display_sample(100, 500), np.arange(100))


def test_unknown_method_is_refused():
    with pytest.raises(ValueError, match="unknown map method"):
        project(np.zeros((5, 3), dtype=np.float32), "tsne")


def test_pca_fitted_on_a_sample_spans_the_same_plane():
    """Above max_fit rows the axes come from a seeded sample; with distinct leading variances the
    plane they span is the full PCA's up to a fraction of a degree."""
    from scipy.linalg import subspace_angles

    from alignscope.embed.projection import pca_2d

    rng = np.random.default_rng(0)
    scales = np.r_[10.0, 6.0, np.ones(30)]
    matrix = (rng.normal(size=(60_000, 32)) * scales) @ np.linalg.qr(rng.normal(size=(32, 32)))[0]
    sampled = pca_2d(matrix, max_fit=20_000)
    full = pca_2d(matrix, max_fit=len(matrix))
    assert sampled.shape == (60_000, 2) and sampled.dtype == np.float32
    assert np.degrees(subspace_angles(sampled.astype(np.float64), full.astype(np.float64))).max() < 0.5


def test_umap_above_the_fit_size_places_the_other_points_with_progress():
    from alignscope.embed.projection import umap_2d

    matrix, labels = _blobs(n=900)
    progress = []
    coords = umap_2d(matrix, max_fit=300, chunk=200, on_progress=lambda f, m: progress.append((f, m)))
    assert coords.shape == (900, 2) and np.isfinite(coords).all()
    centroids = np.stack([coords[labels == k].mean(axis=0) for k in range(4)])
    nearest = np.argmin(((coords[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert (nearest == labels).mean() > 0.95  # placed points land in their own blob
    fractions = [f for f, _ in progress]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0
    assert "placed 600 of 600 points" in progress[-1][1] and "s left" in progress[-2][1]

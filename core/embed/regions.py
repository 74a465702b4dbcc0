"""Named regions of a 2-D map (k-means on the map's coordinates, each region labelled by the words
that set its texts apart from the others': class-based TF-IDF) and its density contours.

What a reader of a million-point map needs first is where the topics are. Embedding Atlas and
BERTopic do it the same way in spirit: cluster, then name each cluster by its distinctive terms.
Here the clusters are k-means cells of the 2-D map itself (so a label sits over the points it names,
whatever the projection), and the terms come from class-based TF-IDF (Grootendorst 2022, BERTopic,
arXiv:2203.05794): a region's word counts, weighted by ``log(1 + A / f_t)`` with ``A`` the mean
number of words per region and ``f_t`` the word's count over all regions. Only a seeded sample of at
most ``texts_per_region`` texts per region is read, so the cost does not grow with the data.

Density contours (:func:`density_contours`) are highest-density regions: on a smoothed 2-D
histogram, the line around the densest cells that together hold 25 %, 50 % or 75 % of the points
(so "50 %" reads as "half of the data lies inside"), traced by contourpy (matplotlib's contouring
library). Where a million points overplot, they show where the mass is.

Shapes: ``xy (n, 2)`` float, ``texts`` ``n`` strings; :class:`MapRegions` holds ``region (n,)``
int32, ``centres (k, 2)``, ``sizes (k,)``, ``labels`` ``k`` strings.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from alignscope.errors import AlignscopeError

__all__ = ["MapRegions", "RegionError", "map_regions", "default_region_count", "density_contours"]

_WORDS = r"(?u)\b[^\W\d_]{3,}\b"  # words of 3+ letters: no numbers, no code punctuation


class RegionError(AlignscopeError, ValueError):
    """Coordinates or texts the regions cannot be computed from; the message says which."""


@dataclass(frozen=True)
class MapRegions:
    """The regions of a map: each point's region, each region's centre, size and label."""

    region: np.ndarray     # (n,) int32: the region of each point
    centres: np.ndarray    # (k, 2): where each region's label goes (its k-means centre)
    sizes: np.ndarray      # (k,) points per region
    labels: list[str]      # k labels: the region's top terms joined by " · " ("" when it has none)
    terms: list[list[str]]  # k lists of its top terms, most distinctive first


def default_region_count(n: int) -> int:
    """About one region per 5,000 points, between 4 and 16 (fewer for maps of under 40 points)."""
    return int(min(16, max(4, round(n / 5000)), max(1, n // 10)))


def map_regions(xy: np.ndarray, texts: Sequence[str], *, n_regions: int | None = None, n_terms: int = 3,
                texts_per_region: int = 300, seed: int = 0) -> MapRegions:
    """Cut the map ``xy`` (``(n, 2)``) into ``n_regions`` k-means regions (default
    :func:`default_region_count`) and name each by its ``n_terms`` most distinctive words among
    ``texts`` (one per point). Non-finite coordinates are left out of the fit and assigned as if
    at the origin."""
    from sklearn.cluster import KMeans
    from sklearn.feature_extraction.text import CountVectorizer

    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise RegionError(f"map coordinates must have shape (n, 2), got {xy.shape}")
    n = len(xy)
    if len(texts) != n:
        raise RegionError(f"{len(texts)} texts for {n} points: one text per point is needed")
    k = default_region_count(n) if n_regions is None else int(n_regions)
    if not 1 <= k <= n:
        raise RegionError(f"n_regions must be between 1 and the number of points ({n}), got {n_regions}")
    finite = np.isfinite(xy).all(axis=1)
    if finite.sum() < k:
        raise RegionError(f"only {int(finite.sum())} points have finite coordinates; {k} regions need at least {k}")
    xy = np.where(finite[:, None], xy, 0.0)
    rng = np.random.default_rng(seed)
    fit_rows = np.flatnonzero(finite)
    if len(fit_rows) > 50_000:  # k-means in 2-D converges on a sample; every point is then assigned
        fit_rows = np.sort(rng.choice(fit_rows, 50_000, replace=False))
    model = KMeans(n_clusters=k, n_init=3, random_state=seed).fit(xy[fit_rows])
    region = model.predict(xy).astype(np.int32)
    sizes = np.bincount(region, minlength=k)

    # A seeded sample of each region's texts, vectorised once; counts summed per region.
    sampled = [rng.permutation(np.flatnonzero(region == r))[:texts_per_region] for r in range(k)]
    owner = np.repeat(np.arange(k), [len(rows) for rows in sampled])
    vectorizer = CountVectorizer(stop_words="english", token_pattern=_WORDS, lowercase=True, max_features=50_000)
    try:
        per_text = vectorizer.fit_transform([str(texts[i])[:2000] for rows in sampled for i in rows])
    except ValueError:  # no word in any text (empty or non-alphabetic texts): regions without names
        return MapRegions(region, model.cluster_centers_, sizes, [""] * k, [[] for _ in range(k)])
    by_region = sp.csr_matrix((np.ones(len(owner)), (owner, np.arange(len(owner)))), shape=(k, len(owner)))
    counts = (by_region @ per_text).toarray().astype(np.float64)  # (k, vocabulary)
    words = vectorizer.get_feature_names_out()
    per_region = counts.sum(axis=1, keepdims=True)
    tf = counts / np.maximum(per_region, 1.0)
    mean_words = float(per_region.mean())
    idf = np.log1p(mean_words / np.maximum(counts.sum(axis=0), 1.0))
    weight = tf * idf[None, :]
    # A term only one text of the region uses is noise, not a topic.
    texts_using = (by_region @ (per_text > 0).astype(np.float64)).toarray()
    present = texts_using >= np.minimum(2, np.bincount(owner, minlength=k))[:, None]
    weight[~present] = 0.0
    terms = []
    for r in range(k):
        top = [int(j) for j in np.argsort(-weight[r], kind="stable")[:n_terms] if weight[r, j] > 0]
        terms.append([str(words[j]) for j in top])
    return MapRegions(region, model.cluster_centers_, sizes, [" · ".join(t) for t in terms], terms)


def density_contours(xy: np.ndarray, *, shares: Sequence[float] = (0.25, 0.5, 0.75), grid: int = 128,
                     smoothing: float = 2.0, box: tuple[float, float, float, float] | None = None,
                     max_vertices: int = 4000) -> list[dict]:
    """Highest-density contours of the points ``xy`` (``(n, 2)``): for each share ``p``, the
    polylines around the densest cells of a ``grid x grid`` histogram over ``box`` (``(x0, y0, x1,
    y1)``, default the points' extent), Gaussian-smoothed by ``smoothing`` cells, that together hold
    ``p`` of the points. Returns ``[{"share": p, "lines": [[x0, y0, x1, y1, ...], ...]}, ...]`` in
    ``xy``'s coordinates, the smallest share first; at most ``max_vertices`` vertices in all (the
    longest lines are kept)."""
    from contourpy import contour_generator
    from scipy.ndimage import gaussian_filter

    xy = np.asarray(xy, dtype=np.float64)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise RegionError(f"map coordinates must have shape (n, 2), got {xy.shape}")
    if not all(0 < float(p) < 1 for p in shares):
        raise RegionError(f"every share must be between 0 and 1, got {list(shares)}")
    xy = xy[np.isfinite(xy).all(axis=1)]
    if len(xy) < 10:
        return []
    x0, y0, x1, y1 = box if box is not None else (*xy.min(axis=0), *xy.max(axis=0))
    if not (x1 > x0 and y1 > y0):
        return []
    counts, x_edges, y_edges = np.histogram2d(xy[:, 0], xy[:, 1], bins=grid, range=[[x0, x1], [y0, y1]])
    density = gaussian_filter(counts.T, smoothing)  # rows: y, columns: x (contourpy's z[y, x])
    ordered = np.sort(density.ravel())[::-1]
    held = np.cumsum(ordered) / max(ordered.sum(), 1e-300)
    x_mid, y_mid = (x_edges[:-1] + x_edges[1:]) / 2, (y_edges[:-1] + y_edges[1:]) / 2
    generator = contour_generator(x_mid, y_mid, density)
    out = []
    for share in sorted(float(p) for p in shares):
        level = float(ordered[min(len(ordered) - 1, int(np.searchsorted(held, share)))])
        lines = [line for line in generator.lines(level) if len(line) >= 3]
        out.append({"share": share, "lines": lines})
    # Keep the payload small: the longest lines first, until the vertex budget is spent.
    ranked = sorted(((len(line), i, j) for i, c in enumerate(out) for j, line in enumerate(c["lines"])), reverse=True)
    keep, spent = set(), 0
    for size, i, j in ranked:
        if spent + size > max_vertices:
            continue
        keep.add((i, j))
        spent += size
    return [{"share": c["share"], "lines": [np.round(line, 4).ravel().tolist() for j, line in enumerate(c["lines"])
                                            if (i, j) in keep]} for i, c in enumerate(out)]

"""The ``lsa`` encoder: latent semantic analysis of the data's own texts, a judge whose features owe
nothing to MiniLM.

Deerwester, Dumais, Furnas, Landauer & Harshman 1990, "Indexing by Latent Semantic Analysis": word
counts of every text weighted by TF-IDF (sublinear term frequency, words seen in at least two
texts, the 2^18 most frequent), projected on the ``dim`` leading singular vectors of that matrix
(randomized SVD, Halko, Martinsson & Tropp 2011, seeded) and L2-normalised.

Why it exists: a sweep judges subsets with a probe on frozen features. When the probe reads the same
features the selectors chose with (the static encoder, itself distilled from MiniLM), a selector
that covers that space well is favoured by construction ("circular"). MiniLM as the judge costs
about an hour for AlpacaEval's 53,801 distinct texts on 2 CPU cores; LSA costs about a minute and
shares no parameter with the static encoder: its directions come from the co-occurrence of words in
the user's own data. On AlpacaEval (61,952 pairs, all training pairs) the probe on LSA features scores
length-controlled 0.641 [0.630, 0.652] where the static encoder's scores 0.661 [0.650, 0.673].

A vector depends on the corpus it was fitted with: ``fit_transform(texts)`` embeds exactly the
texts it is given (for :func:`alignscope.embed.encoders.embed`, every distinct text of one data set,
whose fingerprint is in the cache key). It is not for embedding texts one at a time.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

LSA = "lsa"
DIM = 256
MAX_FEATURES = 1 << 18
VERSION = 1  # bump when the vectors change
SMALL = 20_000_000  # texts x words below which the SVD is exact


def fit_transform(texts: list[str], *, dim: int = DIM, seed: int = 0,
                  on_progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """float32 ``(len(texts), d)`` unit rows, ``d = min(dim, rank available)``. ``on_progress(done,
    total)`` is called after the weighting (half the work) and at the end."""
    from sklearn.decomposition import TruncatedSVD
    from sklearn.feature_extraction.text import TfidfVectorizer

    n = len(texts)
    if n == 0:
        return np.empty((0, dim), dtype=np.float32)
    vectorizer = TfidfVectorizer(sublinear_tf=True, min_df=2 if n >= 50 else 1, max_features=MAX_FEATURES,
                                 dtype=np.float32)
    try:
        counts = vectorizer.fit_transform(texts)
    except ValueError:  # no word in any text (empty or punctuation only)
        return np.zeros((n, 1), dtype=np.float32)
    if on_progress is not None:
        on_progress(n // 2, n)
    components = max(1, min(dim, counts.shape[0] - 1, counts.shape[1] - 1))
    if counts.shape[0] * counts.shape[1] <= SMALL:  # a small corpus: the exact SVD is quicker than sketching it
        from sklearn.utils.extmath import svd_flip

        u, s, vt = np.linalg.svd(counts.toarray(), full_matrices=False)
        u, vt = svd_flip(u, vt)
        vectors = u[:, :components] * s[:components]
    else:
        vectors = TruncatedSVD(components, algorithm="randomized", n_iter=4, random_state=seed).fit_transform(counts)
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors /= np.where(norms > 0, norms, 1.0)
    if on_progress is not None:
        on_progress(n, n)
    return vectors

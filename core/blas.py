"""One BLAS thread for loops of small products: logistic-regression fits and small eigen-solves.

A logistic regression fitted by L-BFGS spends its time in matrix-vector products of a few thousand
to a few hundred thousand rows, and a bootstrap makes hundreds of ``d x d`` eigen-solves. Each call
is too small to amortise waking BLAS worker threads: on the 2-core test machine OpenBLAS's two
threads made a 50,000 x 256 probe fit 5x slower than one thread (0.79 s vs 0.16 s, with or
without torch loaded), the Spectra page's five one-vs-rest probes 4.4x slower (2.04 s vs 0.46 s)
and a 384 x 384 ``eigh`` ~100x slower. The results agree to rounding (the order of a threaded
sum can differ): the Spectra probe's errors and accuracy on AlpacaEval were identical.
"""
from __future__ import annotations

import functools

__all__ = ["one_blas_thread"]


@functools.lru_cache(maxsize=1)
def _controller():
    """threadpoolctl's view of the loaded BLAS libraries, built once (~20 ms each time). numpy's
    and SciPy's OpenBLAS are loaded first, so that both are in the view."""
    import numpy  # noqa: F401
    import scipy.linalg  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def one_blas_thread():
    """A context manager: every BLAS library runs on one thread inside it, as before after it."""
    return _controller().limit(limits=1, user_api="blas")

"""alignscope.blas: one BLAS thread inside the context, the previous counts restored after."""
import scipy.linalg  # noqa: F401 - loads numpy's and SciPy's BLAS, as one_blas_thread does
from threadpoolctl import threadpool_info

from alignscope.blas import one_blas_thread


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


def test_one_blas_thread_limits_and_restores():
    before = _blas_threads()
    assert before, "numpy's BLAS is loaded"
    with one_blas_thread():
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == before

"""single_threaded_blas: limits the loaded BLAS to one thread inside the block and restores it."""

import numpy as np
from threadpoolctl import threadpool_info

from fr_data.mining.blas import single_threaded_blas


def _blas_threads() -> list[int]:
    return [p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"]


def test_thread_count_is_one_inside_and_restored_after():
    a = np.arange(12.0).reshape(3, 4)
    before = _blas_threads()
    with single_threaded_blas():
        assert all(t == 1 for t in _blas_threads())
        np.testing.assert_allclose(a @ a.T, np.einsum("ij,kj->ik", a, a))
    assert _blas_threads() == before


def test_restored_after_an_exception():
    before = _blas_threads()
    try:
        with single_threaded_blas():
            raise KeyError("boom")
    except KeyError:
        pass
    assert _blas_threads() == before

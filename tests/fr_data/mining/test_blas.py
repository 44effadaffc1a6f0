"""single_threaded_blas: limits numpy's OpenBLAS inside the block and restores it."""

import numpy as np

from fr_data.mining.blas import _openblas, single_threaded_blas


def test_thread_count_is_one_inside_and_restored_after():
    fns = _openblas()
    a = np.arange(12.0).reshape(3, 4)
    if fns is None:  # another BLAS: the context manager must simply be harmless
        with single_threaded_blas():
            np.testing.assert_allclose(a @ a.T, np.einsum("ij,kj->ik", a, a))
        return
    get, _ = fns
    before = get()
    with single_threaded_blas():
        assert get() == 1
        np.testing.assert_allclose(a @ a.T, np.einsum("ij,kj->ik", a, a))
    assert get() == before

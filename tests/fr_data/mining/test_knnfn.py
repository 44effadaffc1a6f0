"""knnfn: the default k-NN (knn_search with the tuned backend) and the timing wrapper."""

import numpy as np

from fr_data.mining.knnfn import BackendKnn, TimedKnn, default_knn
from tests.fr_data.mining.planted import brute_knn


def _unit(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_default_knn_matches_brute_force_and_names_its_backend():
    q, db = _unit(30, 16, 1), _unit(200, 16, 2)
    knn = default_knn()
    assert isinstance(knn, BackendKnn) and knn.name.startswith("fr_data.knn.knn_search[")
    got, ref = knn(q, db, 4), brute_knn(q, db, 4)
    np.testing.assert_array_equal(np.asarray(got.ids), np.asarray(ref.ids))
    np.testing.assert_allclose(np.asarray(got.sims), np.asarray(ref.sims), atol=1e-5)


def test_timed_knn_counts_calls_and_gemm_flops():
    q, db = _unit(10, 8, 3), _unit(50, 8, 4)
    timed = TimedKnn(brute_knn)
    res = timed(q, db, 3)
    timed(db, db, 2, exclude_self=True)
    np.testing.assert_array_equal(np.asarray(res.ids), np.asarray(brute_knn(q, db, 3).ids))
    assert timed.totals.calls == 2
    assert timed.totals.flops == 2 * 10 * 50 * 8 + 2 * 50 * 50 * 8
    assert timed.totals.seconds > 0

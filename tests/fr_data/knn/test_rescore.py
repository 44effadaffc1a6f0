"""fr_data.knn.rescore: exact candidate scores, the float32 error bound and the open-row test by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fr_data.knn import FaissCpuBackend, FaissGpuBackend, NumpyBackend, TorchBackend
from fr_data.knn.rescore import exact_scores, float32_score_error, open_rows, score_error


def test_exact_scores_equal_correctly_rounded_sums_and_identical_rows_score_identically(tmp_path):
    rng = np.random.default_rng(3)
    db = rng.standard_normal((50, 37)).astype(np.float16)
    db[[3, 17, 18, 49]] = db[40]  # copies at odd, even and neighbouring positions
    path = tmp_path / "db.npy"
    np.save(path, db)
    mm = np.load(path, mmap_mode="r")
    q = rng.standard_normal((6, 37)).astype(np.float32)
    ids = np.array([[40, 3, 17, 18, 49, 0]] * 3 + [[49, 18, 17, 3, 40, 1]] * 3)
    scores, norms = exact_scores(q, mm, ids, block=4)
    for r in range(6):
        for c in range(6):
            want = math.fsum(q[r].astype(np.float64) * db[ids[r, c]].astype(np.float64))
            assert scores[r, c] == pytest.approx(want, rel=1e-14, abs=1e-14)
        assert len(set(scores[r, :5].tolist())) == 1  # the five copies: bit-identical
    np.testing.assert_allclose(norms, np.linalg.norm(q.astype(np.float64), axis=1), rtol=1e-14)


def test_float32_error_bound_holds_for_float32_products():
    rng = np.random.default_rng(0)
    q = rng.standard_normal((20, 512)).astype(np.float32)
    db = rng.standard_normal((300, 512)).astype(np.float32)
    approx = (q @ db.T).astype(np.float64)
    exact = q.astype(np.float64) @ db.astype(np.float64).T
    scale = np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(db, axis=1)[None, :]
    assert (np.abs(approx - exact) <= float32_score_error(512) * scale).all()
    assert float32_score_error(512) == pytest.approx(516 * 2.0 ** -24, rel=1e-4)


def test_open_rows_by_hand():
    last = np.array([0.5, 0.5, 0.5, -0.25])
    up = float(np.nextafter(np.float32(0.5), np.float32(1)))  # one float32 ulp above 0.5
    kth = np.array([0.6, 0.51, up, -0.2])
    tol = np.array([0.01, 0.01, 0.0, 0.06])
    # row 0: 0.51 < 0.6 final; row 1: 0.51 reaches the k-th; row 2: one ulp is not enough room
    # (an unseen 0.5 + half an ulp would round up to a tie); row 3: -0.19 > -0.2
    np.testing.assert_array_equal(open_rows(last, kth, tol), [1, 2, 3])
    up2 = float(np.nextafter(np.float32(up), np.float32(1)))
    assert len(open_rows(last[2:3], np.array([up2]), tol[2:3])) == 0  # two ulps: final


def test_backend_error_bounds():
    d = 64
    assert NumpyBackend().score_error(d) == FaissCpuBackend().score_error(d) == float32_score_error(d)
    assert FaissGpuBackend(use_float16=True).score_error(d) > 2 * 2.0 ** -11
    assert FaissGpuBackend(use_float16=False).score_error(d) == float32_score_error(d)
    assert TorchBackend("cpu").score_error(d) == float32_score_error(d)
    assert TorchBackend("cpu", dtype=torch.bfloat16, rescore_margin=8).score_error(d) == float32_score_error(d)
    assert TorchBackend("cpu", dtype=torch.bfloat16, rescore_margin=0).score_error(d) > 2.0 ** -8
    assert score_error(object(), d) == float32_score_error(d)  # a backend without its own bound

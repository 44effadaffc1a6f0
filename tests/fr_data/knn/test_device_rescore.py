"""Exact re-scoring on a torch device (issue 25, point 2): the same float64 values as the host's
``exact_scores`` bit for bit (checked with torch on the CPU here, on CUDA under the ``gpu`` marker), so
knn_search on a CUDA torch backend returns the ids and similarities of the CPU backends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from fr_data.knn import knn_search
from fr_data.knn.backends import NumpyBackend, TorchBackend
from fr_data.knn.device_rescore import device_exact_scores, pairwise_sum
from fr_data.knn.rescore import exact_scores


@pytest.mark.parametrize("dim", [1, 7, 8, 9, 64, 127, 128, 129, 200, 512, 513])
def test_pairwise_sum_adds_in_numpys_order(dim):
    rng = np.random.default_rng(dim)
    a = rng.standard_normal((6, 5, dim)) * np.exp(3 * rng.standard_normal((6, 5, dim)))  # cancellation
    assert np.array_equal(pairwise_sum(torch.from_numpy(a)).numpy(), a.sum(axis=2))


def _data(dtype=np.float16, n=300, dim=96, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x[[20, 41, 250]] = x[3]  # equal rows: exact ties, the smaller id first
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_device_scores_equal_the_hosts_bit_for_bit(dtype):
    x = _data(dtype)
    ids = np.random.default_rng(1).integers(0, len(x), (50, 12))
    ids[:, :4] = [3, 20, 41, 250]
    want = exact_scores(x[:50], x, ids)
    got = device_exact_scores(x[:50], x, ids, torch.device("cpu"), block=16)
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    assert len(set(got[0][0, :4].tolist())) == 1  # the copies tie exactly


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_search_with_device_rescoring_equals_the_cpu():
    x = _data(np.float16, n=5000, dim=128)
    ids = np.random.default_rng(2).integers(0, len(x), (400, 20))
    want = exact_scores(x[:400], x, ids)
    got = device_exact_scores(x[:400], x, ids, torch.device("cuda"))
    assert np.array_equal(got[0], want[0]) and np.array_equal(got[1], want[1])
    cpu = knn_search(x, x, 10, backend=NumpyBackend(), exclude_self=True)
    cuda = knn_search(x, x, 10, backend=TorchBackend("cuda"), exclude_self=True)
    np.testing.assert_array_equal(cuda.ids, cpu.ids)
    np.testing.assert_array_equal(cuda.sims, cpu.sims)
    assert cpu.ids[3, :3].tolist() == [20, 41, 250]

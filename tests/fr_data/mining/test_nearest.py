"""``samples.nn_cos``: the cosine to the nearest other sample, by hand and against brute force."""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq

from fr_data.mining.nearest import nearest_sample_cos
from fr_data.mining.neighbours import TopK
from tests.golden.scenario import mining_scenario


def test_the_first_neighbour_or_nan_when_there_is_none():
    topk = TopK(np.array([[0.9, 0.5], [0.7, -np.inf], [-np.inf, -np.inf]], np.float32),
                np.array([[2, 1], [0, -1], [-1, -1]]))
    got = nearest_sample_cos(topk)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.array([0.9, 0.7, np.nan], np.float32))
    none = nearest_sample_cos(TopK.empty(3, 0))  # k = 0: no neighbour searched
    assert none.shape == (3,) and np.isnan(none).all()


def test_a_mined_run_holds_the_brute_force_nearest_cosine(tmp_path):
    run = mining_scenario(tmp_path)  # exact neighbours (float64 numpy k-NN)
    samples = pq.read_table(run / "samples.parquet")
    x = np.load(tmp_path / "emb" / "embeddings.npy").astype(np.float64)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    ok = np.asarray(samples.column("vector_ok"))
    assert ok.all()
    np.testing.assert_allclose(samples.column("nn_cos").to_numpy(), sims.max(axis=1), atol=1e-5)
    assert samples.column_names.index("nn_cos") > samples.column_names.index("group")

"""fr_data.knn: every backend against a brute-force float64 numpy reference."""

from __future__ import annotations

import math

import faiss
import numpy as np
import pytest
import torch

from fr_data.io.errors import DataError
from fr_data.knn import (
    FaissCpuBackend,
    FaissGpuBackend,
    IvfSearcher,
    KnnResult,
    NumpyBackend,
    TorchBackend,
    canonical_topk,
    default_backend,
    get_backend,
    knn_search,
    measure_recall,
    tuned_backend,
)
from fr_data.knn.backends import faiss_settings, fill_shards, search_shards, shard_bounds


def unit_rows(n: int, d: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, d)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def exact_matrix(q: np.ndarray, db: np.ndarray) -> np.ndarray:
    """Every inner product correctly rounded to float32 (``math.fsum`` of the exact float64 products)."""
    q64, db64 = q.astype(np.float64), db.astype(np.float64)
    return np.array([[math.fsum(a * b) for b in db64] for a in q64], dtype=np.float64).astype(np.float32)


def brute(q: np.ndarray, db: np.ndarray, k: int, exclude_self: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Exact scores, full sort by (-sim, id) as documented: independent of the code under test."""
    s = exact_matrix(q, db)
    if exclude_self:
        np.fill_diagonal(s, -np.inf)
    ids = np.array([sorted(range(s.shape[1]), key=lambda j: (-s[r, j], j))[:k] for r in range(len(s))])
    return np.take_along_axis(s, ids, 1), ids


CPU_BACKENDS = {
    "numpy": lambda: NumpyBackend(),
    "faiss-cpu": lambda: FaissCpuBackend(),
    "faiss-cpu-tuned": lambda: FaissCpuBackend.tuned(),
    "torch-cpu": lambda: TorchBackend("cpu"),
    "torch-cpu-bf16-rescored": lambda: TorchBackend("cpu", dtype=torch.bfloat16, rescore_margin=64),
}


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    return unit_rows(60, 24, seed=1), unit_rows(500, 24, seed=2)


@pytest.mark.parametrize("name", sorted(CPU_BACKENDS))
def test_backends_match_brute_force(data, name):
    q, db = data
    ref_s, ref_i = brute(q, db, 10)
    res = knn_search(q, db, 10, backend=CPU_BACKENDS[name]())
    assert res.ids.dtype == np.int64 and res.sims.dtype == np.float32
    np.testing.assert_array_equal(res.ids, ref_i)
    np.testing.assert_allclose(res.sims, ref_s, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CPU_BACKENDS))
def test_chunks_that_do_not_divide_n_and_k_larger_than_a_chunk(data, name):
    q, db = data
    ref_s, ref_i = brute(q, db, 50)
    res = knn_search(q, db, 50, backend=CPU_BACKENDS[name](), query_chunk=7, db_chunk=37)
    np.testing.assert_array_equal(res.ids, ref_i)
    np.testing.assert_allclose(res.sims, ref_s, atol=1e-5)


def test_float16_memmap_database_and_queries(tmp_path, data):
    q, db = data
    path = tmp_path / "emb.npy"
    mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=db.shape)
    mm[:] = db
    mm.flush()
    emb = np.load(path, mmap_mode="r")
    ref_s, ref_i = brute(emb[:40].astype(np.float32), emb.astype(np.float32), 5)
    for backend in (NumpyBackend(), FaissCpuBackend(), TorchBackend("cpu")):
        res = knn_search(emb[:40], emb, 5, backend=backend, db_chunk=64)
        np.testing.assert_array_equal(res.ids, ref_i)
        np.testing.assert_allclose(res.sims, ref_s, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CPU_BACKENDS))
def test_exclude_self_across_chunks(data, name):
    _, db = data
    x = db[:120].copy()
    x[77] = x[5]  # an exact twin: it must stay, only the row itself goes
    ref_s, ref_i = brute(x, x, 4, exclude_self=True)
    res = knn_search(x, x, 4, backend=CPU_BACKENDS[name](), exclude_self=True, query_chunk=25, db_chunk=33)
    np.testing.assert_array_equal(res.ids, ref_i)
    np.testing.assert_allclose(res.sims, ref_s, atol=1e-5)
    assert res.ids[5, 0] == 77 and res.ids[77, 0] == 5
    assert not (res.ids == np.arange(120)[:, None]).any()


def test_bf16_without_rescoring_is_visibly_rounded_and_knn_search_repairs_it(data):
    q, db = data
    backend = TorchBackend("cpu", dtype=torch.bfloat16, rescore_margin=0)
    sims, ids = canonical_topk(*backend.search(q, db, 10), 10)
    exact = np.take_along_axis(exact_matrix(q, db), ids, 1)
    assert np.abs(sims - exact).max() > 1e-4  # the backend's own scores are bf16-rounded
    ref_s, ref_i = brute(q, db, 10)
    res = knn_search(q, db, 10, backend=backend)  # re-scored exactly; rows left open are widened
    np.testing.assert_array_equal(res.ids, ref_i)
    np.testing.assert_array_equal(res.sims, ref_s)


def test_ties_ordered_by_smaller_id():
    db = np.eye(4, dtype=np.float32)[[0, 1, 0, 2, 0]]  # rows 0, 2, 4 are identical
    q = np.eye(4, dtype=np.float32)[[0]]
    for backend in (NumpyBackend(), FaissCpuBackend(), TorchBackend("cpu")):
        res = knn_search(q, db, 3, backend=backend, db_chunk=2)
        np.testing.assert_array_equal(res.ids, [[0, 2, 4]])
        np.testing.assert_allclose(res.sims, [[1, 1, 1]])
    # the reference also keeps the smaller id when the tie crosses the k-th place inside one chunk
    res = knn_search(q, db, 2, backend=NumpyBackend())
    np.testing.assert_array_equal(res.ids, [[0, 2]])


class JitterBackend(NumpyBackend):
    """NumpyBackend whose scores are off by up to 3 float32 ulps, differently for every row id: a BLAS
    whose chunked products disagree in the last bits, as happens across kernels, chunkings and CPUs."""

    name = "numpy"

    def _search(self, q, chunk, k):
        sims, ids = super()._search(q, chunk, k)
        wobble = ((ids * 2654435761 + self.salt) % 7 - 3).astype(np.float32)
        return sims + wobble * np.spacing(np.abs(sims)), ids

    def __init__(self, salt: int = 0, max_k: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.salt, self.max_k = salt, max_k


def planted_twins(n: int = 400, d: int = 24, copies: int = 20, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Random unit rows with one row copied to ``copies`` scattered places; returns (db, copy rows)."""
    db = unit_rows(n, d, seed)
    rows = np.sort(np.random.default_rng(seed).choice(np.arange(1, n), copies - 1, replace=False))
    db[rows] = db[0]
    return db, np.concatenate([[0], rows])


@pytest.mark.parametrize("salt", [0, 1, 2])
@pytest.mark.parametrize("db_chunk", [37, 64, 400])
def test_equal_rows_tie_exactly_and_smaller_ids_win_whatever_the_blas(salt, db_chunk):
    db, twins = planted_twins()  # 20 copies: more than the candidate margin, so rows must be widened
    queries = np.vstack([db[:1], db[200:230]])
    for k in (3, 10, 25):
        ref_s, ref_i = brute(queries, db, k)
        res = knn_search(queries, db, k, backend=JitterBackend(salt), query_chunk=9, db_chunk=db_chunk)
        np.testing.assert_array_equal(res.ids, ref_i)
        np.testing.assert_array_equal(res.sims, ref_s)
        np.testing.assert_array_equal(res.ids[0, :min(k, 20)], twins[:min(k, 20)])
    self_res = knn_search(db, db, 4, backend=JitterBackend(salt), exclude_self=True, db_chunk=db_chunk)
    np.testing.assert_array_equal(self_res.ids[twins], [np.setdiff1d(twins, [t])[:4] for t in twins])


def test_widening_past_a_backend_k_limit_falls_back_to_the_cpu_reference():
    db, twins = planted_twins(copies=30)
    res = knn_search(db[:1], db, 12, backend=JitterBackend(1, max_k=14), db_chunk=50)
    np.testing.assert_array_equal(res.ids[0], twins[:12])
    assert res.sims[0, 0] == res.sims[0, 11]


@pytest.mark.parametrize("name", sorted(CPU_BACKENDS))
def test_every_backend_gives_bitwise_the_same_result_for_every_chunking(name):
    db, _ = planted_twins(copies=12)
    first = knn_search(db, db, 6, backend=CPU_BACKENDS[name](), exclude_self=True)
    for qc, dc in ((7, 37), (64, 129), (400, 11)):
        again = knn_search(db, db, 6, backend=CPU_BACKENDS[name](), exclude_self=True,
                           query_chunk=qc, db_chunk=dc)
        np.testing.assert_array_equal(again.ids, first.ids)
        np.testing.assert_array_equal(again.sims, first.sims)
    ref_s, ref_i = brute(db, db, 6, exclude_self=True)
    np.testing.assert_array_equal(first.ids, ref_i)


def test_k_limits(data):
    q, db = data
    small = db[:6]
    assert knn_search(q, small, 6, backend=NumpyBackend()).ids.shape == (60, 6)
    with pytest.raises(ValueError, match="k=7"):
        knn_search(q, small, 7, backend=NumpyBackend())
    with pytest.raises(ValueError, match="exclude_self"):
        knn_search(small, small, 6, backend=NumpyBackend(), exclude_self=True)
    with pytest.raises(ValueError, match="k=0"):
        knn_search(q, small, 0, backend=NumpyBackend())
    with pytest.raises(ValueError, match="dimension"):
        knn_search(q[:, :5], small, 1, backend=NumpyBackend())


def test_nan_row_is_named(tmp_path, data):
    q, db = data
    bad = db.copy()
    bad[123, 4] = np.nan
    path = tmp_path / "bad.npy"
    np.save(path, bad)
    with pytest.raises(DataError, match=r"bad\.npy \(row 123\).*database"):
        knn_search(q, np.load(path, mmap_mode="r"), 3, backend=FaissCpuBackend(), db_chunk=50)
    badq = q.copy()
    badq[41, 0] = np.inf
    with pytest.raises(DataError, match=r"<queries> \(row 41\)"):
        knn_search(badq, db, 3, backend=NumpyBackend(), query_chunk=16)


def test_backend_search_accepts_a_raw_chunk(data):
    q, db = data
    for backend in (NumpyBackend(), FaissCpuBackend(), TorchBackend("cpu")):
        sims, ids = backend.search(q, db[:100], 3)
        s, i = canonical_topk(sims, ids, 3)
        np.testing.assert_array_equal(i, brute(q, db[:100], 3)[1])


def test_canonical_topk_and_merge_by_hand():
    sims = np.array([[0.5, 0.9, 0.5, -np.inf]], np.float32)
    ids = np.array([[7, 3, 2, -1]])
    s, i = canonical_topk(sims, ids, 3)
    np.testing.assert_array_equal(i, [[3, 2, 7]])
    np.testing.assert_allclose(s, [[0.9, 0.5, 0.5]])
    s, i = canonical_topk(sims[:, :1], ids[:, :1], 2)  # padded with empty slots
    np.testing.assert_array_equal(i, [[7, -1]])


def test_faiss_shards_filled_by_contiguous_ranges(data):
    q, db = data
    shards = [faiss.IndexFlatIP(db.shape[1]) for _ in range(3)]
    bounds = shard_bounds(len(db), 3)
    assert bounds == [0, 166, 333, 500]
    fill_shards(shards, (db[i:i + 70] for i in range(0, len(db), 70)), bounds)
    assert [s.ntotal for s in shards] == [166, 167, 167]
    sims, ids = search_shards(shards, q, 8)
    s, i = canonical_topk(sims, ids, 8)
    np.testing.assert_array_equal(i, brute(q, db, 8)[1])


def test_registry_and_default_backend():
    assert isinstance(get_backend("numpy"), NumpyBackend)
    with pytest.raises(ValueError, match="unknown knn backend"):
        get_backend("annoy")
    if faiss.get_num_gpus() == 0 and not torch.cuda.is_available():
        assert isinstance(default_backend(), FaissCpuBackend)


def test_ivf_exhaustive_probe_recalls_everything(data):
    _, db = data
    queries = db[:50]
    exact = knn_search(queries, db, 5, backend=NumpyBackend())
    ivf = IvfSearcher(nlist=8, nprobe=8, seed=3).fit(db)
    approx = ivf.search(queries, 5)
    assert measure_recall(approx, exact) == pytest.approx(1.0)
    np.testing.assert_allclose(approx.sims, exact.sims, atol=1e-5)
    narrow = IvfSearcher(nlist=8, nprobe=1, seed=3).fit(db).search(queries, 5)
    assert 0.0 < measure_recall(narrow, exact) <= 1.0


def test_ivf_exclude_self(data):
    _, db = data
    exact = knn_search(db, db, 3, backend=NumpyBackend(), exclude_self=True)
    approx = IvfSearcher(nlist=4, nprobe=4).fit(db).search(db, 3, exclude_self=True)
    np.testing.assert_array_equal(approx.ids, exact.ids)


def test_measure_recall_by_hand():
    exact = KnnResult(np.zeros((2, 2), np.float32), np.array([[1, 2], [3, 4]]))
    approx = KnnResult(np.zeros((2, 2), np.float32), np.array([[2, 9], [-1, 4]]))
    assert measure_recall(approx, exact) == pytest.approx(0.5)


@pytest.mark.gpu
@pytest.mark.parametrize("make", [
    lambda: FaissGpuBackend(use_float16=True),
    lambda: FaissGpuBackend(use_float16=False),
    lambda: TorchBackend("cuda", dtype=torch.float16),
    lambda: TorchBackend("cuda", dtype=torch.bfloat16, rescore_margin=64),
])
def test_gpu_backends_equal_cpu(tmp_path, make):
    if isinstance(make(), FaissGpuBackend) and faiss.get_num_gpus() == 0:
        pytest.skip("faiss without GPU support")
    emb = unit_rows(3000, 64, seed=4).astype(np.float16)  # fp16 data: exact in fp16 storage
    cpu = knn_search(emb[:300], emb, 10, backend=FaissCpuBackend(), exclude_self=False)
    gpu = knn_search(emb[:300], emb, 10, backend=make(), db_chunk=1100, query_chunk=128)
    np.testing.assert_array_equal(gpu.ids, cpu.ids)
    np.testing.assert_allclose(gpu.sims, cpu.sims, atol=1e-5)


def _faiss_globals() -> tuple[int, int, int]:
    cv = faiss.cvar
    return faiss.omp_get_max_threads(), cv.distance_compute_blas_query_bs, cv.distance_compute_blas_database_bs


def test_faiss_settings_are_set_inside_and_restored_after_even_on_error():
    before = _faiss_globals()
    with faiss_settings(1, 512, 256):
        assert _faiss_globals() == (1, 512, 256)
    assert _faiss_globals() == before
    with pytest.raises(KeyError):
        with faiss_settings(None, 1024, None):
            assert _faiss_globals() == (before[0], 1024, before[2])
            raise KeyError("boom")
    assert _faiss_globals() == before


def test_tuned_backend_search_leaves_process_wide_faiss_settings_alone(data):
    q, db = data
    before = _faiss_globals()
    backend = FaissCpuBackend(threads=1, blas_db_block=64, blas_query_block=32)
    res = knn_search(q, db, 5, backend=backend, query_chunk=40, db_chunk=300)
    assert _faiss_globals() == before
    s_ref, i_ref = brute(q, db, 5)
    np.testing.assert_array_equal(res.ids, i_ref)
    if faiss.get_num_gpus() == 0 and not torch.cuda.is_available():
        tuned = tuned_backend()
        assert (tuned.blas_query_block, tuned.blas_db_block) == (4096, 2048)

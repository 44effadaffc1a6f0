"""Inner-product top-k backends with one small interface.

A backend turns one database chunk into a searchable form (``prepare``) and answers top-k queries
against it (``search``). It returns *local* ids (0 = first row of the chunk) in any order and may return
more than ``k`` candidates; ``fr_data.knn.knn_search`` adds the chunk offset, merges the candidates,
re-scores them exactly from the stored rows and orders them canonically (descending sim, then ascending
id), so all backends agree exactly, equal rows included; a backend's own scores only need to lie within
its ``score_error`` bound.

Backends: ``NumpyBackend`` (reference), ``FaissCpuBackend``, ``FaissGpuBackend`` (fp16 storage,
resident chunk, sharded over every GPU), ``TorchBackend`` (chunked matmul + topk; CUDA fp16/bf16 with
float32 re-scoring, or CPU float32). ``default_backend()`` picks faiss-gpu > torch-cuda > faiss-cpu.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from fr_data.knn.rescore import float32_score_error
from fr_data.knn.topk import exact_topk_rows

# faiss GPU k-selection limit (GPU_MAX_SELECTION_K in faiss/gpu/utils/DeviceDefs.cuh, CUDA > 9).
GPU_MAX_K = 2048


@dataclass
class PreparedChunk:
    """A database chunk in a backend's searchable form.

    Attributes:
        backend: name of the backend that made it.
        rows: number of database rows in the chunk.
        payload: backend-specific data (an array, a tensor, a list of faiss indexes).
    """

    backend: str
    rows: int
    payload: Any


@runtime_checkable
class KnnBackend(Protocol):
    """What ``knn_search`` needs from a backend.

    Optional: ``score_error(dim) -> float``, a bound on |returned score - exact inner product| relative
    to ``|q| * |x|`` (default: a float32 computation, ``fr_data.knn.rescore.float32_score_error``), and
    ``max_k``, the largest ``k`` its ``search`` accepts (default: no limit).
    """

    name: str
    query_chunk: int
    db_chunk: int

    def host_dtype(self, source: np.dtype) -> np.dtype:
        """dtype in which database rows should be handed to ``prepare``."""

    def prepare(self, blocks: Iterable[np.ndarray], rows: int) -> PreparedChunk:
        """Make a searchable chunk from consecutive validated row blocks (``rows`` rows in all)."""

    def search(self, q: np.ndarray, db_chunk: PreparedChunk | np.ndarray,
               k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top ``k`` (or more) of float32 queries ``q``: (sims float32, local ids int64)."""


class BaseBackend:
    """Shared plumbing: raw arrays given to ``search`` are prepared on the fly."""

    name = "base"
    query_chunk = 4096
    db_chunk = 65536

    def host_dtype(self, source: np.dtype) -> np.dtype:
        """CPU backends compute in float32."""
        return np.dtype(np.float32)

    def score_error(self, dim: int) -> float:
        """Bound on |returned score - exact| relative to ``|q| * |x|``: a float32 inner product."""
        return float32_score_error(dim)

    def prepare(self, blocks: Iterable[np.ndarray], rows: int) -> PreparedChunk:
        """Concatenate the blocks into one contiguous float32 array (CPU backends)."""
        return PreparedChunk(self.name, rows, _stack_blocks(blocks, rows, np.float32))

    def search(self, q: np.ndarray, db_chunk: PreparedChunk | np.ndarray,
               k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-k of ``q`` against a prepared chunk or a raw (rows, D) array."""
        if not isinstance(db_chunk, PreparedChunk):
            raw = np.asarray(db_chunk)
            db_chunk = self.prepare([raw.astype(self.host_dtype(raw.dtype), copy=False)], len(raw))
        if db_chunk.backend != self.name:
            raise ValueError(f"chunk prepared by {db_chunk.backend!r} given to {self.name!r}")
        q = np.ascontiguousarray(q, dtype=np.float32)
        return self._search(q, db_chunk, min(k, db_chunk.rows))

    def _search(self, q: np.ndarray, chunk: PreparedChunk, k: int) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError


class NumpyBackend(BaseBackend):
    """Reference backend: float32 BLAS matmul and an exactly canonical partial sort.

    Args:
        query_chunk: query rows per call (bounds the (query_chunk, db_chunk) score matrix).
        db_chunk: database rows per chunk.
    """

    name = "numpy"

    def __init__(self, query_chunk: int = 1024, db_chunk: int = 16384):
        self.query_chunk, self.db_chunk = query_chunk, db_chunk

    def _search(self, q: np.ndarray, chunk: PreparedChunk, k: int) -> tuple[np.ndarray, np.ndarray]:
        return exact_topk_rows(q @ chunk.payload.T, k)


class FaissCpuBackend(BaseBackend):
    """``faiss.knn`` (exhaustive inner product, BLAS + heap selection) on each chunk.

    Args:
        threads: OpenMP threads for faiss (``faiss.omp_set_num_threads``); None keeps faiss's default.
        query_chunk: query rows per call.
        db_chunk: database rows per chunk (float32, so 65536 x 512 = 128 MiB).
        blas_db_block: faiss's internal database block per GEMM
            (``faiss.cvar.distance_compute_blas_database_bs``); None keeps it.
        blas_query_block: faiss's internal query block per GEMM
            (``faiss.cvar.distance_compute_blas_query_bs``); None keeps it.

    The three faiss settings are process-wide: each search sets them and restores the previous values
    afterwards (``faiss_settings``), so a tuned backend leaves other faiss users untouched.
    """

    name = "faiss-cpu"

    def __init__(self, threads: int | None = None, query_chunk: int = 16384, db_chunk: int = 65536,
                 blas_db_block: int | None = None, blas_query_block: int | None = None):
        self.threads, self.query_chunk, self.db_chunk = threads, query_chunk, db_chunk
        self.blas_db_block, self.blas_query_block = blas_db_block, blas_query_block

    @classmethod
    def tuned(cls) -> FaissCpuBackend:
        """The settings measured fastest for small-k search on CPU (k = 33, D = 512).

        BLAS blocks of 4096 queries x 2048 database rows (faiss's defaults are 4096 x 1024) and
        faiss's OpenMP threads left at the process default (all cores: faiss-cpu's OpenBLAS is the
        OpenMP build, so one OpenMP thread would also make its GEMM single-threaded). Measured on the
        2-core development machine against 50,000 centres: 93% of numpy's float32 GEMM rate, against
        79% with faiss's defaults and ~40% with one thread (at 5,000 centres: 76% / 71% / 38%).
        """
        return cls(threads=None, query_chunk=16384, blas_db_block=2048, blas_query_block=4096)

    def _search(self, q: np.ndarray, chunk: PreparedChunk, k: int) -> tuple[np.ndarray, np.ndarray]:
        import faiss

        with faiss_settings(self.threads, self.blas_query_block, self.blas_db_block):
            sims, ids = faiss.knn(q, chunk.payload, k, metric=faiss.METRIC_INNER_PRODUCT)
        return sims, ids.astype(np.int64, copy=False)


@contextlib.contextmanager
def faiss_settings(threads: int | None = None, blas_query_block: int | None = None,
                   blas_db_block: int | None = None) -> Iterator[None]:
    """Set faiss's process-wide OpenMP threads and BLAS block sizes inside the block (None keeps a
    value); the previous values are restored on exit, also after an exception."""
    import faiss

    cv = faiss.cvar
    saved = (faiss.omp_get_max_threads(), cv.distance_compute_blas_query_bs,
             cv.distance_compute_blas_database_bs)
    try:
        if threads:
            faiss.omp_set_num_threads(threads)
        if blas_query_block:
            cv.distance_compute_blas_query_bs = blas_query_block
        if blas_db_block:
            cv.distance_compute_blas_database_bs = blas_db_block
        yield
    finally:
        faiss.omp_set_num_threads(saved[0])
        cv.distance_compute_blas_query_bs, cv.distance_compute_blas_database_bs = saved[1:]


class FaissGpuBackend(BaseBackend):
    """Exact search on every GPU: ``IndexFlatIP`` cloned with ``faiss.index_cpu_to_all_gpus``.

    The chunk stays resident on the GPUs while all queries stream through it (``knn_search`` loops
    over database chunks outside, queries inside). With several GPUs the chunk is sharded
    (``GpuMultipleClonerOptions.shard=True``): GPU i holds a contiguous slice, filled block by block
    so the host never holds the chunk in float32; each shard is searched in its own thread and the
    shard results are merged with their row offsets. ``use_float16`` stores the database as fp16
    (``GpuIndexFlatConfig.useFloat16``), exact for fp16 inputs (the embeddings format); queries are
    then also rounded to fp16, so pass ``use_float16=False`` for float32 data that must match the CPU
    to the last bit.

    Args:
        ngpu: GPUs to use (-1 = all).
        use_float16: fp16 database storage on the GPU.
        query_chunk: query rows per call.
        db_chunk: database rows per resident chunk (default 8M rows = 8 GiB fp16 at D=512).
        add_block: rows uploaded per ``add`` call.
    """

    name = "faiss-gpu"
    max_k = GPU_MAX_K

    def __init__(self, ngpu: int = -1, use_float16: bool = True, query_chunk: int = 65536,
                 db_chunk: int = 8 << 20, add_block: int = 262144):
        self.ngpu, self.use_float16 = ngpu, use_float16
        self.query_chunk, self.db_chunk, self.add_block = query_chunk, db_chunk, add_block

    def score_error(self, dim: int) -> float:
        """float32 accumulation, plus fp16 rounding of the query and the stored row with ``use_float16``."""
        return float32_score_error(dim) + (2 * 2.0 ** -11 if self.use_float16 else 0.0)

    def prepare(self, blocks: Iterable[np.ndarray], rows: int) -> PreparedChunk:
        """Create the (sharded) GPU index and fill each shard with its contiguous slice."""
        import faiss

        first, blocks = _peek(blocks)
        co = faiss.GpuMultipleClonerOptions()
        co.shard, co.useFloat16 = True, self.use_float16
        index = faiss.index_cpu_to_all_gpus(faiss.IndexFlatIP(first.shape[1]), co=co, ngpu=self.ngpu)
        shards = shard_list(index)
        fill_shards(shards, _reblock(blocks, self.add_block), shard_bounds(rows, len(shards)))
        return PreparedChunk(self.name, rows, (index, shards))

    def _search(self, q: np.ndarray, chunk: PreparedChunk, k: int) -> tuple[np.ndarray, np.ndarray]:
        if k > GPU_MAX_K:
            raise ValueError(f"k={k} exceeds the faiss GPU selection limit {GPU_MAX_K}")
        return search_shards(chunk.payload[1], q, k)


class TorchBackend(BaseBackend):
    """Chunked matmul + ``torch.topk`` on a torch device.

    On CUDA the database is kept resident in ``dtype`` (float16 or bfloat16) and the matmul runs on
    tensor cores. Its output is rounded to ``dtype`` (~3 significant digits), so each query fetches
    ``k + rescore_margin`` candidates, re-scores them exactly in float32 against the database in its
    source precision (an extra resident copy only when ``dtype`` cannot hold the source exactly, e.g.
    float32 centres, or float16 data with bfloat16 compute), and ``knn_search`` keeps the canonical
    top k (after its own exact float64 re-scoring). Results then equal FAISS CPU unless more than
    ``rescore_margin`` candidates lie within the rounding band of the k-th similarity: the low-precision
    product decides which rows become candidates. On CPU use ``dtype=torch.float32`` (the default there).

    Args:
        device: torch device string.
        dtype: compute dtype; default float16 on CUDA, float32 elsewhere.
        rescore_margin: extra candidates re-scored in float32 when ``dtype`` is not float32.
        query_chunk: query rows per call.
        db_chunk: database rows per resident chunk.
        tile: database rows per matmul inside a chunk (bounds the score matrix).
    """

    name = "torch"

    def __init__(self, device: str = "cuda", dtype: Any = None, rescore_margin: int = 32,
                 query_chunk: int = 8192, db_chunk: int = 8 << 20, tile: int = 131072):
        import torch

        self.device = torch.device(device)
        default = torch.float16 if self.device.type == "cuda" else torch.float32
        self.dtype = dtype or default
        self.rescore_margin = rescore_margin if self.dtype != torch.float32 else 0
        self.query_chunk, self.db_chunk, self.tile = query_chunk, db_chunk, tile

    def host_dtype(self, source: np.dtype) -> np.dtype:
        """float16 sources travel as float16 (half the transfer); everything else as float32."""
        return np.dtype(np.float16 if np.dtype(source) == np.float16 else np.float32)

    def score_error(self, dim: int) -> float:
        """float32 (re-scored) values; without re-scoring a low ``dtype`` also rounds inputs and output."""
        import torch

        if self.rescore_margin or self.dtype == torch.float32:
            return float32_score_error(dim)
        return float32_score_error(dim) + 3 * float(torch.finfo(self.dtype).eps)

    def prepare(self, blocks: Iterable[np.ndarray], rows: int) -> PreparedChunk:
        """Upload the chunk block by block: a compute copy, plus an exact copy when needed."""
        import torch

        first, blocks = _peek(blocks)
        src = torch.from_numpy(np.empty(0, first.dtype)).dtype
        low = torch.empty((rows, first.shape[1]), dtype=self.dtype, device=self.device)
        exact = None if src == self.dtype or not self.rescore_margin else torch.empty_like(low, dtype=src)
        start = 0
        for block in blocks:
            t = torch.from_numpy(np.require(block, requirements=["C", "W"])).to(self.device)
            low[start:start + len(block)] = t
            if exact is not None:
                exact[start:start + len(block)] = t
            start += len(block)
        return PreparedChunk(self.name, rows, (low, low if exact is None else exact))

    def rescore_exact(self, queries: np.ndarray, database: np.ndarray,
                      ids: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """``knn_search``'s exact re-scoring on this backend's CUDA device (the host's float64 values,
        bit for bit: :mod:`fr_data.knn.device_rescore`); None on the CPU (the host path runs)."""
        if self.device.type != "cuda":
            return None
        from fr_data.knn.device_rescore import device_exact_scores

        return device_exact_scores(queries, database, ids, self.device)

    def _search(self, q: np.ndarray, chunk: PreparedChunk, k: int) -> tuple[np.ndarray, np.ndarray]:
        import torch

        low, exact = chunk.payload
        qt = torch.from_numpy(q).to(self.device)
        want = min(k + self.rescore_margin, chunk.rows)
        with torch.no_grad():
            sims, ids = _tiled_topk(qt.to(self.dtype), low, want, self.tile)
            if self.rescore_margin:
                sims = _rescore(qt, exact, ids)
        return sims.float().cpu().numpy(), ids.cpu().numpy().astype(np.int64)


def _tiled_topk(q: Any, db: Any, k: int, tile: int) -> tuple[Any, Any]:
    """Running top-k of ``q @ db.T`` over database tiles of ``tile`` rows (torch tensors)."""
    import torch

    best_s = best_i = None
    for t0 in range(0, db.shape[0], tile):
        scores = q @ db[t0:t0 + tile].T
        s, i = torch.topk(scores, min(k, scores.shape[1]), dim=1)
        i = i + t0
        if best_s is not None:
            s, i = torch.cat([best_s, s], 1), torch.cat([best_i, i], 1)
            s, pos = torch.topk(s, min(k, s.shape[1]), dim=1)
            i = torch.gather(i, 1, pos)
        best_s, best_i = s, i
    return best_s, best_i


def _rescore(q32: Any, exact: Any, ids: Any, block: int = 1024) -> Any:
    """Exact float32 inner products of each query with its candidate rows."""
    import torch

    out = torch.empty(ids.shape, dtype=torch.float32, device=ids.device)
    for r0 in range(0, ids.shape[0], block):
        rows = exact[ids[r0:r0 + block]].float()
        out[r0:r0 + block] = torch.einsum("qd,qmd->qm", q32[r0:r0 + block].float(), rows)
    return out


def shard_bounds(rows: int, nshards: int) -> list[int]:
    """Row boundaries of ``nshards`` contiguous, nearly equal slices: [0, ..., rows]."""
    return [rows * s // nshards for s in range(nshards + 1)]


def shard_list(index: Any) -> list[Any]:
    """The sub-indexes of a faiss ``IndexShards`` (or ``[index]`` for a single index)."""
    import faiss

    if hasattr(index, "count") and hasattr(index, "at"):
        return [faiss.downcast_index(index.at(i)) for i in range(index.count())]
    return [index]


def fill_shards(shards: list[Any], blocks: Iterable[np.ndarray], bounds: list[int]) -> None:
    """Add consecutive row blocks so that shard s holds exactly rows [bounds[s], bounds[s+1])."""
    row = 0
    for block in blocks:
        start = 0
        while start < len(block):
            s = int(np.searchsorted(bounds, row, side="right")) - 1
            take = min(len(block) - start, bounds[s + 1] - row)
            shards[s].add(np.ascontiguousarray(block[start:start + take], dtype=np.float32))
            start, row = start + take, row + take
    if row != bounds[-1]:
        raise ValueError(f"fill_shards got {row} rows, expected {bounds[-1]}")


def search_shards(shards: list[Any], q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Search every shard (one thread each; faiss releases the GIL) and offset their ids."""
    offsets = np.cumsum([0] + [s.ntotal for s in shards[:-1]])

    def one(i: int) -> tuple[np.ndarray, np.ndarray]:
        sims, ids = shards[i].search(q, min(k, shards[i].ntotal))
        return sims, np.where(ids >= 0, ids.astype(np.int64) + offsets[i], -1)

    with ThreadPoolExecutor(max_workers=len(shards)) as pool:
        parts = list(pool.map(one, range(len(shards))))
    return np.hstack([p[0] for p in parts]), np.hstack([p[1] for p in parts])


def faiss_gpu_count() -> int:
    """Number of GPUs faiss can use (0 with faiss-cpu or without faiss)."""
    try:
        import faiss
    except ImportError:
        return 0
    get = getattr(faiss, "get_num_gpus", None)
    return int(get()) if get else 0


def default_backend() -> KnnBackend:
    """faiss-gpu if faiss sees a GPU, else torch on CUDA, else faiss-cpu (numpy without faiss)."""
    if faiss_gpu_count() > 0:
        return FaissGpuBackend()
    try:
        import torch

        if torch.cuda.is_available():
            return TorchBackend("cuda")
    except ImportError:
        pass
    try:
        import faiss  # noqa: F401
    except ImportError:
        return NumpyBackend()
    return FaissCpuBackend()


# Names a config or CLI may use; values build a backend with keyword arguments.
BACKENDS: dict[str, Callable[..., KnnBackend]] = {
    "numpy": NumpyBackend,
    "faiss-cpu": FaissCpuBackend,
    "faiss-gpu": FaissGpuBackend,
    "torch": TorchBackend,
}


def tuned_backend() -> KnnBackend:
    """``default_backend()``, with ``FaissCpuBackend.tuned()`` settings when that is faiss-cpu (the
    choice for small-k search such as mining's sample-to-centre search)."""
    backend = default_backend()
    return FaissCpuBackend.tuned() if isinstance(backend, FaissCpuBackend) else backend


def get_backend(name: str, **kwargs: Any) -> KnnBackend:
    """Build a backend by registry name (``"default"`` = ``default_backend()``)."""
    if name == "default":
        return default_backend()
    if name not in BACKENDS:
        raise ValueError(f"unknown knn backend {name!r}; known: {sorted(BACKENDS)} or 'default'")
    return BACKENDS[name](**kwargs)


def _peek(blocks: Iterable[np.ndarray]) -> tuple[np.ndarray, Iterator[np.ndarray]]:
    it = iter(blocks)
    first = next(it)
    return first, itertools.chain([first], it)


def _reblock(blocks: Iterable[np.ndarray], size: int) -> Iterator[np.ndarray]:
    for block in blocks:
        for start in range(0, len(block), size):
            yield block[start:start + size]


def _stack_blocks(blocks: Iterable[np.ndarray], rows: int, dtype: Any) -> np.ndarray:
    first, blocks = _peek(blocks)
    out = np.empty((rows, first.shape[1]), dtype=dtype)
    start = 0
    for block in blocks:
        out[start:start + len(block)] = block
        start += len(block)
    if start != rows:
        raise ValueError(f"prepare got {start} rows, expected {rows}")
    return out


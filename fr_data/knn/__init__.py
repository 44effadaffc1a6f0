"""Exact (and optional IVF) inner-product top-k over millions of embeddings, GPU or CPU.

Interface: ``knn_search(queries, database, k, *, backend=None, exclude_self=False, query_chunk=None,
db_chunk=None) -> KnnResult``; backends share ``prepare(blocks, rows)`` and ``search(q, chunk, k)``
(``fr_data.knn.backends``); ``default_backend()``. Results are ordered by descending exact similarity,
ties by smaller id, on every backend (``fr_data.knn.rescore``).
"""

from fr_data.knn.backends import (
    BACKENDS,
    BaseBackend,
    FaissCpuBackend,
    FaissGpuBackend,
    KnnBackend,
    NumpyBackend,
    PreparedChunk,
    TorchBackend,
    default_backend,
    get_backend,
    tuned_backend,
)
from fr_data.knn.ivf import IvfSearcher, measure_recall
from fr_data.knn.search import knn_search
from fr_data.knn.topk import KnnResult, canonical_topk, merge_topk

__all__ = [
    "BACKENDS", "BaseBackend", "FaissCpuBackend", "FaissGpuBackend", "IvfSearcher", "KnnBackend",
    "KnnResult", "NumpyBackend", "PreparedChunk", "TorchBackend", "canonical_topk", "default_backend",
    "get_backend", "knn_search", "measure_recall", "merge_topk", "tuned_backend",
]

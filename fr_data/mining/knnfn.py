"""The k-NN function mining is given (dependency injection), its default, and a timing wrapper.

Any callable ``knn(queries, database, k, *, exclude_self=False)`` returning an object with ``sims``
(float32, nq x k, descending) and ``ids`` (int64, nq x k) works. The default is
``fr_data.knn.knn_search`` with ``fr_data.knn.tuned_backend()``: mining's main search is small-k
(k = 33 against class centres), where faiss's default BLAS blocks leave 10-15% of the machine's GEMM
rate unused on CPU; the tuned backend sets its process-wide faiss settings around each search and
restores them afterwards.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np


class KnnFn(Protocol):
    """Inner-product top-k of ``queries`` against ``database`` (rows L2-normalised by the caller)."""

    def __call__(self, queries: np.ndarray, database: np.ndarray, k: int, *,
                 exclude_self: bool = False) -> Any: ...


class BackendKnn:
    """``fr_data.knn.knn_search`` bound to one backend (built once: picking it imports torch)."""

    def __init__(self, backend: Any):
        self.backend = backend

    def __call__(self, queries: np.ndarray, database: np.ndarray, k: int, *,
                 exclude_self: bool = False) -> Any:
        from fr_data.knn import knn_search

        return knn_search(queries, database, k, backend=self.backend, exclude_self=exclude_self)

    @property
    def name(self) -> str:
        """``knn_search[<backend name>]`` for ``run.json``."""
        return f"fr_data.knn.knn_search[{getattr(self.backend, 'name', type(self.backend).__name__)}]"


def default_knn() -> KnnFn:
    """``knn_search`` with the tuned default backend (imported on first use)."""
    from fr_data.knn import tuned_backend

    return BackendKnn(tuned_backend())


@dataclass
class KnnTotals:
    """Time spent inside the k-NN function and the multiply-adds it did (2 nq ndb D flops a call)."""

    seconds: float = 0.0
    flops: float = 0.0
    calls: int = 0


class TimedKnn:
    """Wraps a ``KnnFn``, adding each call's wall time and GEMM flops to ``totals``."""

    def __init__(self, knn: KnnFn):
        self.knn, self.totals = knn, KnnTotals()

    def __call__(self, queries: np.ndarray, database: np.ndarray, k: int, *,
                 exclude_self: bool = False) -> Any:
        t0 = time.perf_counter()
        res = self.knn(queries, database, k, exclude_self=exclude_self)
        self.totals.seconds += time.perf_counter() - t0
        self.totals.flops += 2.0 * len(queries) * len(database) * queries.shape[1]
        self.totals.calls += 1
        return res

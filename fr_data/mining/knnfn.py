"""The k-NN function mining is given (dependency injection), and its default.

Any callable ``knn(queries, database, k, *, exclude_self=False)`` returning an object with ``sims``
(float32, nq x k, descending) and ``ids`` (int64, nq x k) works; the default is
``fr_data.knn.knn_search`` (exact inner-product top-k, FAISS/torch/numpy backends), imported lazily.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class KnnFn(Protocol):
    """Inner-product top-k of ``queries`` against ``database`` (rows L2-normalised by the caller)."""

    def __call__(self, queries: np.ndarray, database: np.ndarray, k: int, *,
                 exclude_self: bool = False) -> Any: ...


def default_knn() -> KnnFn:
    """``fr_data.knn.knn_search`` (imported on first use)."""
    from fr_data.knn import knn_search

    return knn_search

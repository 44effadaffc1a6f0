"""Approximate inner-product search with an inverted file (``faiss.IndexIVFFlat``) for very large sets.

Exact search costs 2·nq·N·D flops; IVF scans only ``nprobe`` of ``nlist`` k-means cells per query, so
roughly nprobe/nlist of that, at the price of recall. Always report ``measure_recall`` against exact
search on a sample of queries before trusting an IVF result (Johnson, Douze, Jégou, "Billion-scale
similarity search with GPUs", https://arxiv.org/abs/1702.08734). Memory: the index holds every vector in
float32 (N·D·4 bytes) plus ids.
"""

from __future__ import annotations

import numpy as np

from fr_data.knn.search import read_blocks, read_rows
from fr_data.knn.topk import EMPTY_ID, KnnResult, canonical_topk, drop_self


class IvfSearcher:
    """Inverted-file index over a database, trained on a random sample of its rows.

    Args:
        nlist: number of k-means cells.
        nprobe: cells visited per query (nprobe = nlist is exhaustive).
        train_size: rows used to train the cells (default ``min(N, 64 * nlist)``).
        seed: sampling and k-means seed.
        add_block: rows converted to float32 and added per call.
    """

    def __init__(self, nlist: int, nprobe: int, *, train_size: int | None = None, seed: int = 0,
                 add_block: int = 65536):
        if not 1 <= nprobe <= nlist:
            raise ValueError(f"nprobe={nprobe} must be in [1, nlist={nlist}]")
        self.nlist, self.nprobe, self.train_size = nlist, nprobe, train_size
        self.seed, self.add_block = seed, add_block
        self.index = None

    def fit(self, database: np.ndarray) -> IvfSearcher:
        """Train the cells on a sample of ``database`` rows, then add all rows block by block."""
        import faiss

        n, dim = database.shape
        if n < self.nlist:
            raise ValueError(f"database of {n} rows is smaller than nlist={self.nlist}")
        quantizer = faiss.IndexFlatIP(dim)
        index = faiss.IndexIVFFlat(quantizer, dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
        index.cp.spherical = True
        index.cp.seed = self.seed
        index.train(self._sample(database))
        for block in read_blocks(database, 0, n, np.float32, "database", self.add_block):
            index.add(block)
        index.nprobe = self.nprobe
        self.index, self._quantizer = index, quantizer
        return self

    def search(self, queries: np.ndarray, k: int, *, exclude_self: bool = False,
               query_chunk: int = 8192) -> KnnResult:
        """Approximate top-``k`` in the canonical order; missing neighbours are id -1, sim -inf."""
        if self.index is None:
            raise RuntimeError("IvfSearcher.search before fit")
        nq = len(queries)
        sims = np.empty((nq, k), np.float32)
        ids = np.empty((nq, k), np.int64)
        for q0 in range(0, nq, query_chunk):
            q1 = min(nq, q0 + query_chunk)
            s, i = self.index.search(read_rows(queries, q0, q1, np.float32, "queries"), k + int(exclude_self))
            i = i.astype(np.int64)
            s[i == EMPTY_ID] = -np.inf
            if exclude_self:
                drop_self(s, i, q0)
            sims[q0:q1], ids[q0:q1] = canonical_topk(s, i, k)
        return KnnResult(sims, ids)

    def _sample(self, database: np.ndarray) -> np.ndarray:
        n = len(database)
        size = min(n, self.train_size or 64 * self.nlist)
        rows = np.sort(np.random.default_rng(self.seed).choice(n, size, replace=False))
        sample = np.ascontiguousarray(database[rows], dtype=np.float32)
        bad = ~np.isfinite(sample).all(axis=1)
        if bad.any():
            read_rows(database, int(rows[bad.argmax()]), int(rows[bad.argmax()]) + 1, np.float32, "database")
        return sample


def measure_recall(approx: KnnResult, exact: KnnResult) -> float:
    """Recall@k: mean share of each row's exact top-k ids that the approximate result also found."""
    if approx.ids.shape != exact.ids.shape:
        raise ValueError(f"shape mismatch: approx {approx.ids.shape} vs exact {exact.ids.shape}")
    k = exact.k
    hits = 0
    for a, e in zip(approx.ids, exact.ids):
        hits += len(np.intersect1d(a[a != EMPTY_ID], e, assume_unique=True))
    return hits / (len(exact) * k)

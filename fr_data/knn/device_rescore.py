"""Exact re-scoring on a torch device: the float64 scores of :func:`fr_data.knn.rescore.exact_scores`,
bit for bit, computed where the search ran.

The host computes each exact score as float64 element products (exact for float16/float32 inputs: a
product of two 24-bit significands fits float64's 53) summed along D by numpy's pairwise summation,
whose order depends only on D. :func:`pairwise_sum` performs the same additions in the same order with
torch tensor operations (each a separate, correctly rounded IEEE float64 addition; no fused
multiply-add, no reordering), so the device returns the very values the host would: the tie rule
(equal rows tie, the smaller id wins) and the float32 ``sims`` are the same on CPU and CUDA. The host
only gathers the candidate rows in their stored precision (a quarter of the float64 bytes for float16).
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: numpy's pairwise summation: below this many terms one loop, up to ``BLOCK`` eight running sums.
UNROLL, BLOCK = 8, 128
#: Query rows re-scored per device call.
DEVICE_BLOCK = 4096


def pairwise_sum(t: Any) -> Any:
    """Sum of ``t`` over its last axis in the order of numpy's ``pairwise_sum`` (float64 tensors)."""
    import torch

    n = t.shape[-1]
    if n < UNROLL:
        res = torch.zeros(t.shape[:-1], dtype=t.dtype, device=t.device)
        for i in range(n):
            res = res + t[..., i]
        return res
    if n <= BLOCK:
        r = t[..., :UNROLL].clone()
        i = UNROLL
        while i < n - n % UNROLL:
            r += t[..., i:i + UNROLL]
            i += UNROLL
        res = ((r[..., 0] + r[..., 1]) + (r[..., 2] + r[..., 3])) + ((r[..., 4] + r[..., 5]) + (r[..., 6] + r[..., 7]))
        for j in range(i, n):
            res = res + t[..., j]
        return res
    half = n // 2
    half -= half % UNROLL
    return pairwise_sum(t[..., :half]) + pairwise_sum(t[..., half:])


def device_exact_scores(queries: np.ndarray, database: np.ndarray, ids: np.ndarray, device: Any,
                        block: int = DEVICE_BLOCK) -> tuple[np.ndarray, np.ndarray]:
    """:func:`fr_data.knn.rescore.exact_scores` computed on torch ``device``: float64 (nq, m) scores and
    (nq,) query norms, equal bit for bit to the host's."""
    import torch

    scores = np.empty(ids.shape, np.float64)
    norms = np.empty(len(ids), np.float64)
    with torch.no_grad():
        for r0 in range(0, len(ids), block):
            r1 = min(len(ids), r0 + block)
            q = torch.from_numpy(np.ascontiguousarray(queries[r0:r1])).to(device).double()
            rows = torch.from_numpy(np.ascontiguousarray(database[ids[r0:r1]])).to(device).double()
            scores[r0:r1] = pairwise_sum(rows * q[:, None, :]).cpu().numpy()
            norms[r0:r1] = torch.sqrt(pairwise_sum(q * q)).cpu().numpy()
    return scores, norms

"""Rank transforms shared by the miners and the ground-truth scoring (no scipy at run time)."""

from __future__ import annotations

import numpy as np

__all__ = ["average_ranks", "percentile_ranks"]


def average_ranks(x: np.ndarray) -> np.ndarray:
    """1-based ranks of ``x``; tied values share the mean of the ranks they span."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    starts = np.cumsum(counts) - counts
    return (starts + (counts + 1) / 2.0)[inverse]


def percentile_ranks(x: np.ndarray) -> np.ndarray:
    """float64 ranks scaled to ``[0, 1]`` (smallest 0, largest 1, ties averaged); NaN stays NaN.

    A single finite value gets 0.5.
    """
    x = np.asarray(x, np.float64)
    out = np.full(len(x), np.nan)
    ok = np.isfinite(x)
    n = int(ok.sum())
    if n == 1:
        out[ok] = 0.5
    elif n > 1:
        out[ok] = (average_ranks(x[ok]) - 1.0) / (n - 1)
    return out

"""Groups (race or any attribute, else k-means clusters of identities) and the bias report.

The bias report is the FPR of each group at one global threshold: the CIFP unified threshold T (the
cosine at which the overall FPR over all sample-vs-other-centre negatives equals ``target_fpr``,
https://arxiv.org/abs/2106.05519). A group's FPR is the share of its members' negatives above T, i.e.
the mean instance FPR of its samples; ``fpr_ratio`` = group FPR / overall FPR (1 = fair). This is the
disparity that RFW-style reports show as unequal FPR across races at a shared threshold.

Without annotations, groups are found by k-means (``faiss.Kmeans``) over class centres: each identity
lands in one cluster and its samples inherit it, so demographic-like structure of the embedding space
shows up without labels.
"""

from __future__ import annotations

from collections.abc import Sequence

import faiss
import numpy as np
import pyarrow as pa

from fr_data.folders.run_folder import GROUPS_SCHEMA


def kmeans_class_groups(centres: np.ndarray, k: int, niter: int, seed: int) -> np.ndarray:
    """Cluster id (0..k'-1) of each unit centre row; k' = min(k, rows)."""
    k = max(1, min(k, len(centres)))
    if len(centres) == 0:
        return np.zeros(0, dtype=np.int64)
    km = faiss.Kmeans(centres.shape[1], k, niter=niter, seed=seed, spherical=True, verbose=False,
                      min_points_per_centroid=1)
    km.train(np.ascontiguousarray(centres, dtype=np.float32))
    _, assign = km.index.search(np.ascontiguousarray(centres, dtype=np.float32), 1)
    return assign[:, 0].astype(np.int64)


def bias_report(codes: np.ndarray, names: Sequence[str], class_of: np.ndarray, instance_fpr: np.ndarray,
                source: str) -> pa.Table:
    """One row per group: member counts, FPR at the unified threshold and its ratio to the overall FPR.

    Args:
        codes: per-sample group, an index into ``names`` (-1 = no group).
        names: the group names, sorted, each held by some sample.
        class_of: per-sample class id.
        instance_fpr: per-sample instance FPR (NaN for samples without negatives).
        source: where the groups came from (``attribute:<column>`` or ``kmeans``).
    """
    known = np.flatnonzero(codes >= 0)
    names, inv = np.asarray(list(names), dtype=object), codes[known].astype(np.int64)
    fpr = instance_fpr[known]
    has = ~np.isnan(fpr)
    g = len(names)
    n_samples = np.bincount(inv, minlength=g)
    n_fpr = np.bincount(inv[has], minlength=g)
    sum_fpr = np.bincount(inv[has], weights=fpr[has].astype(np.float64), minlength=g)
    pairs = np.unique(np.stack([inv, class_of[known]]), axis=1)
    n_classes = np.bincount(pairs[0], minlength=g) if pairs.size else np.zeros(g, dtype=np.int64)
    overall = float(fpr[has].mean()) if has.any() else float("nan")
    with np.errstate(invalid="ignore", divide="ignore"):
        g_fpr = np.where(n_fpr > 0, sum_fpr / np.maximum(n_fpr, 1), np.nan)
        ratio = g_fpr / overall if overall > 0 else np.full(g, np.nan)
    return pa.table({"group": names.tolist(), "source": [source] * g, "n_samples": n_samples,
                     "n_classes": n_classes, "fpr": g_fpr, "fpr_ratio": ratio}, schema=GROUPS_SCHEMA)

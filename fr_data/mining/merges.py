"""Merge candidates: two labels that are probably one person (an identity split under two labels).

Two rules; a class is a candidate with its nearest other class when either fires (a rule set to null
is off):

* **centre cosine** ``>= classes.merge_cos``: the published cleaning rule (MS-Celeb-1M_WashList, 0.5),
  tied to the cosine scale of a well-trained backbone.
* **neighbour mix** ``>= classes.merge_mix``: of the k-NN votes that class A's samples give to A or to
  its nearest class B, the share that goes to B, averaged with B's share for A when the two are each
  other's nearest class. If A and B are one person, a sample's nearest neighbours are drawn from both
  labels in proportion to their sizes, so the two shares average 0.5 whatever the sizes; two different
  people who merely look alike keep most votes at home. The rule needs no cosine scale, so it also works
  for small or briefly trained backbones whose centres all sit at high cosine (the synthetic demo: true
  split identities 0.50-0.55, the closest look-alike pair 0.35, over three seeds).
  The k-NN graph is the one the label-noise vote uses (``neighbours.k``), cf. cleanlab's
  near-duplicate / label-issue checks on a shared k-NN graph (https://github.com/cleanlab/cleanlab).
"""

from __future__ import annotations

import numpy as np

__all__ = ["neighbour_mix", "merge_candidates"]


def neighbour_mix(neigh_ids: np.ndarray, class_of: np.ndarray, class_nearest: np.ndarray,
                  chunk: int = 65_536) -> np.ndarray:
    """Per class, the neighbour-vote share its samples give to its nearest class (see module doc).

    Args:
        neigh_ids: ``(N, k)`` neighbour row ids, -1 = empty slot.
        class_of: class id of each row.
        class_nearest: nearest other class of each class id (-1 if none).

    Returns:
        float32 per class id; NaN where the class's samples gave no vote to either class.
    """
    num = len(class_nearest)
    home = np.zeros(num, np.int64)
    away = np.zeros(num, np.int64)
    for s in range(0, len(neigh_ids), chunk):
        ids, own = neigh_ids[s:s + chunk], class_of[s:s + chunk]
        present = ids >= 0
        cls = np.where(present, class_of[np.maximum(ids, 0)], -2)
        partner = class_nearest[own]
        home += np.bincount(own, weights=(cls == own[:, None]).sum(axis=1), minlength=num).astype(np.int64)
        hits = ((cls == partner[:, None]) & (partner[:, None] >= 0)).sum(axis=1)
        away += np.bincount(own, weights=hits, minlength=num).astype(np.int64)
    with np.errstate(invalid="ignore", divide="ignore"):
        one_way = np.where(home + away > 0, away / (home + away), np.nan)
    b = np.maximum(class_nearest, 0)
    mutual = (class_nearest >= 0) & (class_nearest[b] == np.arange(num)) & np.isfinite(one_way[b])
    both = np.where(mutual & np.isfinite(one_way), (one_way + one_way[b]) / 2, one_way)
    return both.astype(np.float32)


def merge_candidates(nearest_cos: np.ndarray, merge_cos: float | None, mix: np.ndarray | None = None,
                     merge_mix: float | None = None) -> np.ndarray:
    """Classes flagged by the centre-cosine rule or the neighbour-mix rule (None = rule off)."""
    flag = np.zeros(len(nearest_cos), dtype=bool)
    if merge_cos is not None:
        flag |= np.nan_to_num(nearest_cos, nan=-np.inf) >= merge_cos
    if merge_mix is not None and mix is not None:
        flag |= np.nan_to_num(mix, nan=-np.inf) >= merge_mix
    return flag

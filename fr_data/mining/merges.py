"""Merge candidates: two labels that are probably one person (an identity split under two labels).

Two rules; a class is a candidate with its nearest other class when either fires (a rule set to null
is off):

* **centre cosine** ``>= classes.merge_cos``: the published cleaning rule (MS-Celeb-1M_WashList, 0.5),
  tied to the cosine scale of a well-trained backbone.
* **neighbour mix** ``>= classes.merge_mix``: how freely the k-NN votes of the two labels' samples cross
  between them, as a share of what one person would give. Take class A and its nearest class B, with
  ``n_A`` and ``n_B`` samples. If they are one person, a sample of A has neighbours drawn from the whole
  person, so a vote that lands in A or B lands in B with probability ``n_B / (n_A + n_B - 1)`` (and a
  vote of B's samples lands in A with ``n_A / (n_A + n_B - 1)``). The mix is the observed number of such
  crossing votes over that expectation: about 1 for one person under two labels, whatever the two sizes,
  and near 0 for two different people, who keep their votes at home. It needs no cosine scale, so it
  also works for small or briefly trained backbones whose centres all sit at high cosine (the synthetic
  demo, three seeds: split identities 0.97-1.07, the closest look-alike pair 0.68). The k-NN graph is
  the one the label-noise vote uses (``neighbours.k``), as cleanlab runs its label and near-duplicate
  checks on one shared k-NN graph (https://github.com/cleanlab/cleanlab).
"""

from __future__ import annotations

import numpy as np

__all__ = ["merge_candidates", "mix_of_votes", "neighbour_mix", "pair_votes"]


def neighbour_mix(neigh_ids: np.ndarray, class_of: np.ndarray, class_nearest: np.ndarray,
                  chunk: int = 65_536) -> np.ndarray:
    """Per class A, observed / expected k-NN votes crossing between A and its nearest class B.

    Args:
        neigh_ids: ``(N, k)`` neighbour row ids, -1 = empty slot (rows without any neighbour do not count).
        class_of: class id of each row.
        class_nearest: nearest other class of each class id (-1 if none).

    Returns:
        float32 per class id (see the module docstring); NaN where no vote of either class lands in the
        pair or the class has no nearest class.
    """
    return mix_of_votes(pair_votes(neigh_ids, class_of, class_nearest, chunk), class_nearest)


def mix_of_votes(votes: np.ndarray, class_nearest: np.ndarray) -> np.ndarray:
    """:func:`neighbour_mix` from the summed :func:`pair_votes` (a rank's votes add up to the run's)."""
    home, away, back, n = votes
    b = np.maximum(class_nearest, 0)
    n_a, n_b = n, n[b]
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = ((home + away) * n_b + (home[b] + back) * n_a) / (n_a + n_b - 1)
        mix = np.where((class_nearest >= 0) & (expected > 0), (away + back) / expected, np.nan)
    return mix.astype(np.float32)


def pair_votes(neigh_ids: np.ndarray, class_of: np.ndarray, class_nearest: np.ndarray, chunk: int = 65_536,
               own: np.ndarray | None = None) -> np.ndarray:
    """``(4, C)`` counts per class C (float64, integer-valued: sums of them are exact): votes of its
    samples for C (home) and for its nearest class (away), votes for C by the samples of C's nearest
    class (back), and its samples that have neighbours (n). ``own``: the class of each row of
    ``neigh_ids`` when they are a share of the rows (``class_of`` then maps the neighbour ids)."""
    num = len(class_nearest)
    own_of = class_of if own is None else own
    home, away, back, n = (np.zeros(num) for _ in range(4))
    for s in range(0, len(neigh_ids), chunk):
        ids, own_c = neigh_ids[s:s + chunk], own_of[s:s + chunk]
        present = ids >= 0
        voters = present.any(axis=1)
        cls = np.where(present, class_of[np.maximum(ids, 0)], -1)
        partner = class_nearest[own_c]
        home += np.bincount(own_c, weights=(cls == own_c[:, None]).sum(axis=1), minlength=num)
        away += np.bincount(own_c, weights=((cls == partner[:, None]) & present).sum(axis=1), minlength=num)
        from_partner = present & (class_nearest[np.maximum(cls, 0)] == own_c[:, None])
        back += np.bincount(cls[from_partner], minlength=num)
        n += np.bincount(own_c[voters], minlength=num)
    return np.stack([home, away, back, n])


def merge_candidates(nearest_cos: np.ndarray, merge_cos: float | None, mix: np.ndarray | None = None,
                     merge_mix: float | None = None) -> np.ndarray:
    """Classes flagged by the centre-cosine rule or the neighbour-mix rule (None = rule off)."""
    flag = np.zeros(len(nearest_cos), dtype=bool)
    if merge_cos is not None:
        flag |= np.nan_to_num(nearest_cos, nan=-np.inf) >= merge_cos
    if merge_mix is not None and mix is not None:
        flag |= np.nan_to_num(mix, nan=-np.inf) >= merge_mix
    return flag

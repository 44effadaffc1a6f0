"""Label noise: a self-excluded k-NN label vote combined with the centre margin.

The vote is cleanlab's feature-based label check (``Datalab`` label issues from features: a k-NN
classifier with the sample itself excluded), which scales to hundreds of thousands of classes where
confident learning's C x C joint does not. A sample is a suspect only when the vote *and* the
geometry agree: its neighbours mostly carry another label and it is closer to another class centre
than to its own leave-one-out centre (CR-FIQA's CCS vs NNCCS, https://arxiv.org/abs/2112.06592).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Vote:
    """Per-sample k-NN vote (class ids; -1 / NaN where a sample has no neighbours).

    Attributes:
        agreement: share of the found neighbours carrying the sample's own class.
        winner: the plurality class among the neighbours (ties: the one met first, i.e. nearest).
        winner_share: share of the neighbours voting for ``winner``.
    """

    agreement: np.ndarray
    winner: np.ndarray
    winner_share: np.ndarray


def knn_vote(neigh_ids: np.ndarray, class_of: np.ndarray, chunk: int = 65_536, own: np.ndarray | None = None) -> Vote:
    """Vote over the neighbour graph ``neigh_ids`` (N, k; -1 = empty slot), in row chunks.

    ``own``: the class of each row of ``neigh_ids`` when they are not rows ``0..`` of ``class_of`` (a
    rank's share of the graph); ``class_of`` then maps the neighbour ids."""
    n = len(neigh_ids)
    own = class_of if own is None else own
    agreement = np.full(n, np.nan, dtype=np.float32)
    winner = np.full(n, -1, dtype=np.int64)
    share = np.full(n, np.nan, dtype=np.float32)
    for s in range(0, n, chunk):
        sl = slice(s, s + chunk)
        agreement[sl], winner[sl], share[sl] = _vote_block(neigh_ids[sl], own[sl], class_of)
    return Vote(agreement, winner, share)


def _vote_block(ids: np.ndarray, own: np.ndarray, class_of: np.ndarray):
    present = ids >= 0
    found = present.sum(axis=1)
    cls = np.where(present, class_of[np.maximum(ids, 0)], -1)
    same = (cls == own[:, None]) & present
    counts = ((cls[:, :, None] == cls[:, None, :]) & present[:, None, :]).sum(axis=2)
    counts[~present] = -1
    first = np.argmax(counts, axis=1)
    rows = np.arange(len(ids))
    with np.errstate(invalid="ignore", divide="ignore"):
        agreement = np.where(found > 0, same.sum(axis=1) / found, np.nan)
        share = np.where(found > 0, counts[rows, first] / found, np.nan)
    winner = np.where(found > 0, cls[rows, first], -1)
    return agreement, winner, share


def suspects(vote: Vote, own: np.ndarray, margin: np.ndarray, vote_min: float, margin_max: float,
             same_person: np.ndarray | None = None) -> np.ndarray:
    """Suspected mislabels.

    Another class wins the vote with share >= ``vote_min`` and the leave-one-out centre margin is below
    ``margin_max``. NaN margins (single-image classes) are never flagged. When ``same_person[c]`` names
    the merge-candidate partner of class c (-1 if none), a vote for the partner is not a mislabel: the
    identity is split over two labels and the fix is a merge, reported in classes.parquet.
    """
    other_wins = (vote.winner >= 0) & (vote.winner != own) & (np.nan_to_num(vote.winner_share) >= vote_min)
    if same_person is not None:
        w = np.maximum(vote.winner, 0)
        other_wins &= (same_person[own] != vote.winner) & (same_person[w] != own)
    return other_wins & (np.nan_to_num(margin, nan=np.inf) < margin_max)

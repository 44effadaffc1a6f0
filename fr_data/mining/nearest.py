"""The cosine of each sample to its nearest other sample (``samples.nn_cos``).

The first column of the sample k-NN graph (self excluded, any label): a continuous near-duplicate score
(``duplicate_of`` only marks pairs at or above ``duplicates.cos``) and a measure of how isolated a sample
is. With the ``candidates`` neighbour strategy the nearest is searched among the sample's own class and
its candidate classes, like every k-NN finding of the run.
"""

from __future__ import annotations

import numpy as np

from fr_data.mining.neighbours import TopK


def nearest_sample_cos(topk: TopK) -> np.ndarray:
    """float32 cosine to the nearest neighbour of each row; NaN where the row has none (invalid vector,
    no other valid sample searched)."""
    if topk.ids.shape[1] == 0:
        return np.full(topk.ids.shape[0], np.nan, dtype=np.float32)
    return np.where(topk.ids[:, 0] >= 0, topk.sims[:, 0], np.nan).astype(np.float32)

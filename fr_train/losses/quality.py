"""SDD-FIQA quality regression: a scalar head on the backbone's embedding, fitted to per-sample pseudo-labels.

SDD-FIQA (Ou et al., CVPR 2021, https://arxiv.org/abs/2103.05977) labels every training image with the
Wasserstein distance between its intra-class and inter-class similarity distributions (normalised to
0-100; :mod:`fr_data.mining.quality` computes it as the mining run's ``quality_sdd``), then trains a
regression network on those labels "under the constraint of Huber loss" (the paper's Fig. 2; the authors'
reference training in TFace uses SmoothL1, i.e. Huber with delta 1 on the 0-100 labels). Here the head
predicts ``target / scale`` and the loss is ``smooth_l1(prediction, target / scale, beta=delta / scale)``:
the Huber loss of the labels with threshold ``delta`` (in label units) divided by ``delta * scale``, so the
gradient is bounded by 1 whatever the label scale. Samples without a label (NaN) do not count.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fr_train.losses.functional import LossOutput

__all__ = ["QualityRegression"]


class QualityRegression(nn.Module):
    """The scalar quality head and its Huber loss (see the module docstring).

    Args:
        embedding_size: width of the backbone's embedding (the head's input).
        scale: label units per head unit (SDD-FIQA labels span 0-100: 100 puts them in [0, 1]).
        delta: the Huber threshold in label units (1: TFace's SmoothL1 on the 0-100 labels).

    The ``scale`` is a buffer, so a checkpoint of the objective alone turns head outputs back into labels.
    """

    def __init__(self, embedding_size: int, scale: float = 100.0, delta: float = 1.0):
        super().__init__()
        if scale <= 0 or delta <= 0:
            raise ValueError(f"scale and delta must be > 0, got scale {scale}, delta {delta}")
        self.head = nn.Linear(embedding_size, 1)
        self.register_buffer("scale", torch.tensor(float(scale)))
        self.delta = float(delta)

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """Predicted quality ``(B,)`` in label units (higher = better)."""
        return self.head(embeddings.float()).squeeze(1) * self.scale

    def batch_loss(self, batch) -> LossOutput:
        """Huber loss of the embeddings' predictions against ``batch.targets`` (NaN targets skipped).

        Parts: ``mae``, the mean absolute error in label units (0 when the batch has no label).
        """
        targets = batch.require("targets", self).float()
        predicted = self.head(batch.embeddings.float()).squeeze(1)
        known = torch.isfinite(targets)
        if not bool(known.any()):  # keep the graph: every rank must run the same backward under DDP
            zero = predicted.sum() * 0.0
            return LossOutput(zero, {"mae": zero.detach()})
        scale = float(self.scale)
        loss = F.smooth_l1_loss(predicted[known], targets[known] / scale, beta=self.delta / scale)
        mae = ((predicted[known] * scale - targets[known]).abs().mean()).detach()
        return LossOutput(loss, {"mae": mae})

    def extra_repr(self) -> str:
        return f"scale={float(self.scale)}, delta={self.delta}"

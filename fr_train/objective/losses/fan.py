"""FAN's feature adaptation (Yin et al., ACCV 2020, https://arxiv.org/abs/1911.11680): identity features of
low-resolution faces moved onto those of high-resolution faces, as two terms.

* :class:`PairedConsistency` (``fan_paired``): the same image at two resolutions. The identity feature of
  the low-resolution copy (``Batch.lowres_embeddings``, made on the fly by
  :class:`fr_train.objective.kd.LowResCopy`) is pulled to that of the original (``Batch.embeddings``,
  stop-gradient: the high-resolution side is the target, not moved towards the degraded one):
  ``mean_i (1 - cos(l_i, sg(h_i)))``.
* :class:`UnpairedAlignment` (``fan_unpaired``): low-resolution images with no high-resolution twin (the
  composer's ``resolution_bin = 'low'`` branch: its negatives and the low side of its pairs) aligned to
  the distribution of high-resolution identity features (the easy branch, ``Batch.reference``,
  stop-gradient) by the squared maximum mean discrepancy with a fixed Gaussian kernel on unit-normalised
  features, ``k(x, y) = exp(-|x - y|^2 / (2 sigma^2))``::

      MMD^2 = mean_ij k(l_i, l_j) + mean_ij k(h_i, h_j) - 2 mean_ij k(l_i, h_j)

  (the biased V-statistic: never negative, zero for equal samples). The paper aligns with an adversarial
  discriminator; a fixed kernel has no discriminator to train or balance and is zero only when the two
  distributions agree in every moment the kernel sees (docs/losses.md).

The identity feature is the backbone's embedding itself (what the margin head classifies and verification
scores), so a checkpoint trained with these terms embeds and evaluates like any other.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fr_train.objective.losses.functional import LossOutput

__all__ = ["PairedConsistency", "UnpairedAlignment", "gaussian_mmd2", "paired_consistency"]


def paired_consistency(low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """``mean_i (1 - cos(low_i, high_i))`` with no gradient into ``high``."""
    return (1.0 - F.cosine_similarity(low, high.detach(), dim=1)).mean()


def gaussian_mmd2(x: torch.Tensor, y: torch.Tensor, sigma: float) -> torch.Tensor:
    """Biased squared MMD between the rows of ``x`` (n, d) and ``y`` (m, d), Gaussian kernel of width
    ``sigma`` (features used as given)."""
    def kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-torch.cdist(a, b).pow(2) / (2.0 * sigma ** 2)).mean()
    return kernel(x, x) + kernel(y, y) - 2.0 * kernel(x, y)


class PairedConsistency(nn.Module):
    """``fan_paired``: each low-resolution copy's identity feature pulled to its original's (cosine)."""

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> LossOutput:
        loss = paired_consistency(low, high)
        cos = F.cosine_similarity(low.detach(), high.detach(), dim=1).mean()
        return LossOutput(loss, {"cos": cos})

    def batch_loss(self, batch: Any) -> LossOutput:
        """The loss of a :class:`fr_train.objective.Batch` (``lowres_embeddings`` against ``embeddings``)."""
        return self(batch.require("lowres_embeddings", self), batch.embeddings)


class UnpairedAlignment(nn.Module):
    """``fan_unpaired``: low-resolution identity features aligned to high-resolution ones by Gaussian MMD.

    Args:
        branch: index of the composer branch holding the unpaired low-resolution images (0 is the easy
            branch; 1 the first of ``data.composer.hard``).
        sigma: kernel width on unit-normalised features (squared distances lie in [0, 4]).
    """

    def __init__(self, branch: int = 1, sigma: float = 0.5):
        super().__init__()
        if branch < 1:
            raise ValueError(f"branch must be >= 1 (a hard composer branch), got {branch}")
        if sigma <= 0:
            raise ValueError(f"sigma must be > 0, got {sigma}")
        self.branch, self.sigma = branch, sigma

    def forward(self, low: torch.Tensor, high: torch.Tensor) -> LossOutput:
        """MMD^2 between the normalised ``low`` features and the normalised, detached ``high`` ones."""
        loss = gaussian_mmd2(F.normalize(low, dim=1), F.normalize(high.detach(), dim=1), self.sigma)
        return LossOutput(loss, {"mmd2": loss.detach()})

    def batch_loss(self, batch: Any) -> LossOutput:
        """Branch ``branch``'s negatives and first pair images against the easy branch (``reference``)."""
        negatives = batch.require("neg_branches", self)
        if self.branch >= len(negatives):
            raise ValueError(f"UnpairedAlignment reads composer branch {self.branch}, the batch has "
                             f"{len(negatives)} branches")
        low = torch.cat([negatives[self.branch], batch.require("pos_a", self)[self.branch]])
        return self(low, batch.require("reference", self))

    def extra_repr(self) -> str:
        return f"branch={self.branch}, sigma={self.sigma}"

"""Hard-sample losses: DDL, OT (after OTFace) and EKD, plus the ``LOSSES`` name registry; the SDD-FIQA
quality regression (:class:`QualityRegression`, a term built with the embedding width, so not in ``LOSSES``).

Every loss returns a :class:`~fr_train.losses.functional.LossOutput` (scalar ``loss`` plus logging
``parts``) and offers ``batch_loss(batch)`` so :mod:`fr_train.objective` can combine it by name.
"""

from __future__ import annotations

from torch import nn

from fr_train.losses.ddl import DistributionDistillationLoss, ddl_loss
from fr_train.losses.ekd import EKDLoss
from fr_train.losses.functional import LossOutput
from fr_train.losses.ot import OTLoss, sinkhorn_cost
from fr_train.losses.quality import QualityRegression

LOSSES: dict[str, type[nn.Module]] = {
    "ddl": DistributionDistillationLoss,
    "ot": OTLoss,
    "ekd": EKDLoss,
}
"""Config name -> loss class (constructor keyword arguments come from the config entry)."""

__all__ = [
    "LOSSES",
    "DistributionDistillationLoss",
    "EKDLoss",
    "LossOutput",
    "OTLoss",
    "QualityRegression",
    "ddl_loss",
    "sinkhorn_cost",
]

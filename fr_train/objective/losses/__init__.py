"""Hard-sample losses: DDL, OT (after OTFace), EKD and FAN's feature adaptation, plus the ``LOSSES`` name registry (the SDD-FIQA
quality regression, a term built with the embedding width, lives with the regressor in
:mod:`fr_train.objective.quality`).

Every loss returns a :class:`~fr_train.objective.losses.functional.LossOutput` (scalar ``loss`` plus logging
``parts``) and offers ``batch_loss(batch)`` so :mod:`fr_train.objective` can combine it by name.
"""

from __future__ import annotations

from torch import nn

from fr_train.objective.losses.ddl import DistributionDistillationLoss, ddl_loss
from fr_train.objective.losses.ekd import EKDLoss
from fr_train.objective.losses.fan import PairedConsistency, UnpairedAlignment
from fr_train.objective.losses.functional import LossOutput
from fr_train.objective.losses.ot import OTLoss, sinkhorn_cost

LOSSES: dict[str, type[nn.Module]] = {
    "ddl": DistributionDistillationLoss,
    "ot": OTLoss,
    "ekd": EKDLoss,
    "fan_paired": PairedConsistency,
    "fan_unpaired": UnpairedAlignment,
}
"""Config name -> loss class (constructor keyword arguments come from the config entry)."""

__all__ = [
    "LOSSES",
    "DistributionDistillationLoss",
    "EKDLoss",
    "LossOutput",
    "OTLoss",
    "PairedConsistency",
    "UnpairedAlignment",
    "ddl_loss",
    "sinkhorn_cost",
]

"""One adversarial training step: PGD examples against the training objective, then AFA or PGD-AT.

The attack maximises the classification loss of the objective (the margin head's cross-entropy against
the batch labels) over an L-inf ball around each classification image (:func:`fr_train.adversarial.pgd.
pgd_linf`), with the whole training module in eval mode (BatchNorm running statistics; no statistic, no
CurricularFace ``t`` updated by the attack) and, for a dual-BN backbone, through its adversarial branch.
Then, with ``B`` classification images:

- ``pgd_at`` (standard adversarial training, one BN): the objective on the attacked images in place of the
  clean ones (composer branches, low-resolution copies and teachers as usual);
- ``afa`` (dual-BN backbone): the objective on the clean batch through the clean BNs (``w = 0``), plus
  ``adversarial_weight`` x the classification loss of the attacked batch through the adversarial BNs
  (``w = 1``), plus ``predictor_weight`` x the binary cross-entropy of the fusion predictor against
  ``0`` (clean images) and ``eps / eps_max`` (attacked images): the predicted weight follows the strength.

Compute: :func:`fr_train.adversarial.config.attack_passes` passes per classification image are added to
``Inputs.last_images`` (the run's forwarded images).
"""

from __future__ import annotations

import contextlib
import dataclasses

import torch
from torch import nn

from fr_train.adversarial.config import AdversarialConfig, attack_passes
from fr_train.adversarial.pgd import eval_mode, pgd_linf
from fr_train.data import ImageBatch
from fr_train.models.dual_bn import DualBNNet
from fr_train.objective import Inputs, Objective

__all__ = ["AdversarialTraining", "build_adversarial"]


class AdversarialTraining:
    """The adversarial step of one rank.

    Args:
        cfg: the ``adversarial:`` section (mode not ``off``).
        generator: draws the strengths and the random starts (checkpointed as ``adversarial``).
    """

    def __init__(self, cfg: AdversarialConfig, generator: torch.Generator):
        self.cfg, self.generator = cfg, generator

    @property
    def generators(self) -> dict[str, torch.Generator]:
        return {"adversarial": self.generator}

    def strengths(self, n: int) -> torch.Tensor:
        """Per-image eps in pixel units: ``U[0, eps_max]`` or ``eps_max``."""
        if self.cfg.strength == "fixed":
            return torch.full((n,), self.cfg.eps_max)
        return torch.rand(n, generator=self.generator) * self.cfg.eps_max

    def attack(self, backbone: nn.Module, objective: Objective, batch: ImageBatch, eps: torch.Tensor,
               modules: nn.Module) -> torch.Tensor:
        """PGD examples of the classification images against the classification loss (``modules``: what
        runs in eval mode meanwhile, i.e. the training module)."""
        route = backbone.routed("adversarial") if isinstance(backbone, DualBNNet) else contextlib.nullcontext()

        def loss(images: torch.Tensor) -> torch.Tensor:
            return objective.classification_loss(backbone(images).float(), batch.labels)

        with eval_mode(modules), route:
            return pgd_linf(loss, batch.images, eps.to(batch.images.device), steps=self.cfg.steps,
                            step_ratio=self.cfg.step_ratio, generator=self.generator)

    def __call__(self, backbone: nn.Module, objective: Objective, inputs: Inputs, batch: ImageBatch,
                 modules: nn.Module) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Total loss and its parts (``adv_ce``, ``fusion`` for AFA) of one batch."""
        eps = self.strengths(len(batch.images))
        attacked = self.attack(backbone, objective, batch, eps, modules)
        if self.cfg.mode == "pgd_at":
            out = objective(inputs.features(backbone, dataclasses.replace(batch, images=attacked)))
            loss, parts = out.loss, dict(out.parts)
        else:
            loss, parts = self._afa(backbone, objective, inputs, batch, attacked, eps)
        inputs.last_images += attack_passes(self.cfg) * len(batch.images)
        return loss, parts

    def _afa(self, backbone: nn.Module, objective: Objective, inputs: Inputs, batch: ImageBatch,
             attacked: torch.Tensor, eps: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if not isinstance(backbone, DualBNNet):
            raise TypeError("adversarial.mode afa needs a dual-BN backbone (model.options.dual_bn: true)")
        with backbone.routed("clean"):
            out = objective(inputs.features(backbone, batch))
        with backbone.routed("adversarial"):
            adv_ce = objective.classification_loss(backbone(attacked).float(), batch.labels)
        predicted = torch.cat([backbone.predictor(batch.images), backbone.predictor(attacked)]).float()
        target = torch.cat([torch.zeros_like(eps), eps / self.cfg.eps_max]).to(predicted.device)
        fusion = _bce(predicted, target)
        loss = out.loss + self.cfg.adversarial_weight * adv_ce + self.cfg.predictor_weight * fusion
        parts = {**out.parts, "adv_ce": adv_ce.detach(), "fusion": fusion.detach(), "total": loss.detach()}
        return loss, parts


def _bce(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy of probabilities against soft targets, in float32 (autocast refuses
    ``F.binary_cross_entropy``)."""
    p = predicted.float().clamp(1e-6, 1 - 1e-6)
    return -(target * torch.log(p) + (1 - target) * torch.log1p(-p)).mean()


def build_adversarial(cfg: AdversarialConfig, seed: int) -> AdversarialTraining | None:
    """The adversarial step of ``cfg`` (None when ``mode`` is ``off``), its generator seeded by ``seed``."""
    if cfg.mode == "off":
        return None
    return AdversarialTraining(cfg, torch.Generator().manual_seed(seed))

"""The ``adversarial:`` section of a training config (torch-free)::

    adversarial:
      mode: afa              # off | afa (dual-BN backbone, clean + attacked batch) | pgd_at (attacked batch only)
      eps_max: 0.0313725     # L-inf radius in pixel units of [0, 1] (8/255)
      strength: uniform      # uniform: eps ~ U[0, eps_max] per image; fixed: eps = eps_max
      steps: 3               # PGD steps per training batch (each costs one forward + backward)
      step_ratio: 0.25       # PGD step size = step_ratio * eps
      adversarial_weight: 1.0  # afa: weight of the attacked batch's classification loss
      predictor_weight: 1.0    # afa: weight of the fusion predictor's loss (BCE against eps / eps_max)

Formulas and the compute rule: docs/losses.md, "Adversarial training (AFA, PGD-AT)".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["AdversarialConfig", "adversarial_checks", "attack_passes"]


@dataclass
class AdversarialConfig:
    """Adversarial training (see the module docstring for the keys).

    Attributes:
        mode: ``off``, ``afa`` (needs ``model.options.dual_bn: true``) or ``pgd_at`` (a single-BN backbone).
        eps_max: largest L-inf perturbation, in pixel units of [0, 1].
        strength: ``uniform`` (eps drawn per image in [0, eps_max]) or ``fixed`` (eps_max).
        steps: PGD steps per batch.
        step_ratio: PGD step size as a fraction of each image's eps.
        adversarial_weight: ``afa``: weight of the attacked images' classification loss beside the clean
            objective (``pgd_at`` trains on the attacked images only).
        predictor_weight: ``afa``: weight of the fusion predictor's binary cross-entropy.
    """

    mode: Literal["off", "afa", "pgd_at"] = "off"
    eps_max: float = 8 / 255
    strength: Literal["uniform", "fixed"] = "uniform"
    steps: int = 3
    step_ratio: float = 0.25
    adversarial_weight: float = 1.0
    predictor_weight: float = 1.0


def adversarial_checks(cfg: AdversarialConfig, *, dual_bn: bool, head: bool, partial_fc: bool
                       ) -> list[tuple[bool, str]]:
    """(ok, message) pairs of the section's ranges and its agreement with the model and the objective."""
    on = cfg.mode != "off"
    return [
        (0 < cfg.eps_max <= 1, f"adversarial.eps_max must lie in (0, 1] (pixel units), got {cfg.eps_max}"),
        (cfg.steps >= 1, f"adversarial.steps must be >= 1, got {cfg.steps}"),
        (cfg.step_ratio > 0, f"adversarial.step_ratio must be > 0, got {cfg.step_ratio}"),
        (cfg.adversarial_weight >= 0, f"adversarial.adversarial_weight must be >= 0, got {cfg.adversarial_weight}"),
        (cfg.predictor_weight >= 0, f"adversarial.predictor_weight must be >= 0, got {cfg.predictor_weight}"),
        (cfg.mode != "afa" or dual_bn, "adversarial.mode afa needs a dual-BN backbone: model.options.dual_bn: true"),
        (cfg.mode != "pgd_at" or not dual_bn,
         "adversarial.mode pgd_at is standard adversarial training with one BN: drop model.options.dual_bn"),
        (not on or (head and not partial_fc),
         "adversarial training attacks the classification loss of a local margin head: it needs objective.head "
         "and objective.partial_fc.enabled: false"),
    ]


def attack_passes(cfg: AdversarialConfig) -> int:
    """Backbone passes (forward + backward) per classification image that adversarial training adds to a
    step: ``steps`` PGD steps, plus (``afa``) the attacked batch's own training pass; 0 when off. The
    equal-compute rule counts each as one forwarded image."""
    if cfg.mode == "off":
        return 0
    return cfg.steps + (1 if cfg.mode == "afa" else 0)

"""Knowledge distillation from frozen teachers: teacher embeddings and low-resolution distillation.

* :class:`FrozenTeacher`: a backbone loaded from a checkpoint (``objective.teacher``), always in eval
  mode, never trained; it embeds every classification batch into ``Batch.teacher_embeddings`` when a term
  needs them: the EKD loss (Huang et al., https://arxiv.org/abs/2206.02325), or OT with a teacher reference.
* :class:`LowResCopy`: the low-resolution copy of a batch (``objective.lowres_scale``), for the terms that
  need one.
* :class:`LowResDistillation`: the ``kd_lowres`` term, the classification-consistency idea of CCFace
  (Saadabadi et al., https://arxiv.org/abs/2308.09230): the student's embeddings of the low-resolution
  copy are classified by the high-resolution teacher's frozen classifier, with an additive angular margin
  on the target (ArcFace form, :func:`fr_train.objective.heads.arc_target`). CCFace's adaptive margin schedule
  and its asymmetric cross-resolution term are not public; this is the fixed-margin core (an assumption).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from fr_data.io.errors import ConfigError
from fr_train.checkpoints.resume import load_tensors
from fr_train.data.augment import draw_scale
from fr_train.data.config import ScaleDist
from fr_train.checkpoints.weights import load_weights
from fr_train.models import get_model
from fr_train.models.config import ModelConfig
from fr_train.objective.heads import arc_target, cosine_logits

__all__ = ["FrozenTeacher", "LowResCopy", "LowResDistillation", "degrade_batch", "load_classifier"]


class FrozenTeacher:
    """A frozen backbone: eval mode, no gradients, kept outside the trained module (and its state).

    Args:
        backbone: the teacher network (its weights already loaded, on the training device).
    """

    def __init__(self, backbone: nn.Module):
        self.backbone = backbone.eval().requires_grad_(False)

    @classmethod
    def from_config(cls, cfg: ModelConfig, device: torch.device | str = "cpu") -> FrozenTeacher:
        """Build ``cfg.name`` and load ``cfg.weights`` (restricted loader, strict) onto ``device``."""
        if cfg.weights is None:
            raise ConfigError("objective.teacher.weights: a teacher checkpoint is required")
        model = get_model(cfg.name, embedding_size=cfg.embedding_size, **cfg.options)
        return cls(load_weights(model, cfg.weights).to(device))

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """Teacher embeddings ``(B, Dt)`` (float32, no gradient)."""
        return self.backbone(images).float()


def degrade_batch(images: torch.Tensor, scales: torch.Tensor) -> torch.Tensor:
    """Each image downsampled by its side factor (bilinear, antialiased) and upsampled back (bilinear)."""
    size = images.shape[-2:]
    out = []
    for image, scale in zip(images, scales.tolist()):
        small = [max(1, round(side * scale)) for side in size]
        low = F.interpolate(image[None], size=small, mode="bilinear", antialias=True, align_corners=False)
        out.append(F.interpolate(low, size=tuple(size), mode="bilinear", align_corners=False))
    return torch.cat(out)


def load_classifier(path: str | os.PathLike, key: str, num_classes: int, embedding_size: int) -> torch.Tensor:
    """The teacher's ``(C, D)`` classifier from a checkpoint, checked against the student's task.

    Raises:
        ConfigError: missing key or a shape other than ``(num_classes, embedding_size)``.
    """
    state = load_tensors(path)
    weight = state.get(key) if isinstance(state, dict) else None
    if not isinstance(weight, torch.Tensor):
        raise ConfigError(f"{path}: objective.terms.kd_lowres.classifier_key {key!r} is not a tensor in "
                          "this checkpoint")
    if tuple(weight.shape) != (num_classes, embedding_size):
        raise ConfigError(f"{path}: teacher classifier has shape {tuple(weight.shape)}, the student needs "
                          f"({num_classes}, {embedding_size}) (same classes and embedding size)")
    return weight.float()


class LowResCopy:
    """Low-resolution copies of batches: each image degraded by a random side factor (:func:`degrade_batch`).

    Args:
        scale_range: ``(min, max)`` of each image's downsampling factor.
        generator: draws the factors (CPU; the trainer checkpoints its state).
        dist: how a factor is drawn from the range (:func:`fr_train.data.augment.draw_scale`).
    """

    def __init__(self, scale_range: tuple[float, float] = (0.125, 0.5),
                 generator: torch.Generator | None = None, dist: ScaleDist = "uniform"):
        self.scale_min, self.scale_max = scale_range
        self.dist = dist
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """The low-resolution copy of ``images`` (one random factor per image)."""
        u = torch.rand(images.shape[0], generator=self.generator, dtype=torch.float64).tolist()
        scales = [draw_scale(v, self.scale_min, self.scale_max, self.dist) for v in u]
        return degrade_batch(images, torch.tensor(scales, dtype=torch.float64))


class LowResDistillation(nn.Module):
    """The student's embeddings of a low-resolution copy classified by the teacher's frozen classifier.

    ``loss = CE(s * [cos(theta_j) for j != y ; cos(theta_y + m)], y)`` where ``theta`` are the angles
    between the student's embeddings of the degraded images and the teacher's class centres (CCFace idea,
    https://arxiv.org/abs/2308.09230).

    Args:
        classifier: ``(C, D)`` teacher class centres (kept as a frozen, non-persistent buffer).
        s: logit scale.
        m: additive angular margin.
    """

    def __init__(self, classifier: torch.Tensor, s: float = 64.0, m: float = 0.2):
        super().__init__()
        self.register_buffer("classifier", classifier.detach().clone(), persistent=False)
        self.s, self.m = s, m

    def forward(self, embeddings: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Margin cross-entropy of the student's low-resolution ``embeddings`` on the teacher's classes."""
        cos = cosine_logits(embeddings, self.classifier.to(embeddings.dtype))
        target = cos.gather(1, labels[:, None]).squeeze(1)
        logits = cos.scatter(1, labels[:, None], arc_target(target, self.m)[:, None])
        return F.cross_entropy(logits * self.s, labels)

    def batch_loss(self, batch: Any) -> torch.Tensor:
        """The loss of a :class:`fr_train.objective.Batch` (``lowres_embeddings``, ``labels``)."""
        return self(batch.require("lowres_embeddings", self), batch.labels)

    def extra_repr(self) -> str:
        return f"classes={self.classifier.shape[0]}, s={self.s}, m={self.m}"

"""FAN's normalisation (Yin et al., ACCV 2020, https://arxiv.org/abs/1911.11680, part (c)): a decoder that
renders a high-resolution face from the identity feature and a non-identity feature of a low-resolution one.

Small and CPU-friendly (35K parameters for a 64-d identity feature), with the paper's split:

* identity feature: the frozen recognition backbone's embedding of the low-resolution image (the same
  feature FAN's adaptation terms train, :mod:`fr_train.objective.losses.fan`), L2-normalised;
* :class:`NonIdentityEncoder`: a 14 x 14 feature map of the image (pose, lighting, framing, background);
* :class:`Decoder`: the map modulated channel-wise by the identity feature (FiLM: ``x * (1 + gamma) + beta``,
  both linear in the identity feature) and upsampled 14 -> 112 to a residual added to the bicubic
  upsampling of the input's capture grid, so the network learns only the detail bicubic cannot recover.

:func:`train_normaliser` fits it to pairs of the same face (:mod:`fr_data.synth.paired`) by L1 distance to
the clean high-resolution render. Images are ``(N, 3, 112, 112)`` floats in [-1, 1] (the pipeline's
``(x - 127.5) / 127.5``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "Decoder",
    "NonIdentityEncoder",
    "Normaliser",
    "NormaliserConfig",
    "bicubic_from_capture",
    "to_uint8",
    "to_unit",
    "train_normaliser",
]


def to_unit(images: np.ndarray) -> torch.Tensor:
    """``(N, H, W, 3)`` uint8 -> ``(N, 3, H, W)`` float32 in [-1, 1]."""
    return (torch.from_numpy(images).permute(0, 3, 1, 2).float() - 127.5) / 127.5


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """``(N, 3, H, W)`` in [-1, 1] -> ``(N, H, W, 3)`` uint8 (clipped, rounded)."""
    pixels = (images.detach().clamp(-1, 1) * 127.5 + 127.5).round()
    return pixels.permute(0, 2, 3, 1).to(torch.uint8).numpy()


def bicubic_from_capture(images: torch.Tensor, downsample: torch.Tensor) -> torch.Tensor:
    """Each image area-averaged onto its capture grid (``112 / factor``) and upsampled back bicubically:
    the classical normalisation the decoder is compared with (and adds its residual to)."""
    size = images.shape[-2:]
    out = []
    for image, factor in zip(images, downsample.tolist()):
        small = F.avg_pool2d(image[None], int(factor)) if factor > 1 else image[None]
        out.append(F.interpolate(small, size=tuple(size), mode="bicubic", align_corners=False))
    return torch.cat(out)


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1), nn.LeakyReLU(0.2))


class NonIdentityEncoder(nn.Module):
    """``(N, 3, 112, 112)`` -> ``(N, width, 14, 14)``: three stride-2 convolutions."""

    def __init__(self, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(_conv(3, 16, 2), _conv(16, width, 2), _conv(width, width, 2))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


class Decoder(nn.Module):
    """Identity feature + non-identity map -> a ``(N, 3, 112, 112)`` residual.

    Args:
        identity_size: width of the identity feature.
        width: channels of the non-identity map.
    """

    def __init__(self, identity_size: int, width: int = 32):
        super().__init__()
        self.film = nn.Linear(identity_size, 2 * width)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.up = nn.ModuleList([_conv(width, width), _conv(width, 16), _conv(16, 16)])
        self.out = nn.Conv2d(16, 3, 3, 1, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, identity: torch.Tensor, nonidentity: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.film(identity)[:, :, None, None].chunk(2, dim=1)
        x = nonidentity * (1 + gamma) + beta
        for layer in self.up:
            x = layer(F.interpolate(x, scale_factor=2, mode="nearest"))
        return self.out(x)


class Normaliser(nn.Module):
    """The encoder-decoder: ``bicubic(x) + Decoder(identity(x), NonIdentityEncoder(bicubic(x)))``.

    Args:
        identity_size: width of the identity feature (the backbone's embedding size).
        width: channels of the non-identity map.
        use_identity: feed the identity feature (False: the decoder sees a zero vector, the ablation).
    """

    def __init__(self, identity_size: int, width: int = 32, use_identity: bool = True):
        super().__init__()
        self.encoder = NonIdentityEncoder(width)
        self.decoder = Decoder(identity_size, width)
        self.use_identity = use_identity

    def forward(self, upsampled: torch.Tensor, identity: torch.Tensor) -> torch.Tensor:
        """``upsampled``: :func:`bicubic_from_capture` of the low-resolution images; ``identity``: (N, D)."""
        identity = F.normalize(identity, dim=1) if self.use_identity else torch.zeros_like(identity)
        return upsampled + self.decoder(identity, self.encoder(upsampled))


@dataclass(frozen=True)
class NormaliserConfig:
    """Training settings of :func:`train_normaliser`.

    Attributes:
        steps: optimiser steps (Adam).
        batch_size: pairs per step.
        lr: learning rate.
        width: channels of the non-identity map.
        use_identity: feed the identity feature.
        seed: seeds the initial weights and the batch draws.
    """

    steps: int = 400
    batch_size: int = 16
    lr: float = 2e-3
    width: int = 32
    use_identity: bool = True
    seed: int = 0


def train_normaliser(low: torch.Tensor, high: torch.Tensor, downsample: torch.Tensor,
                     identity: Callable[[torch.Tensor], torch.Tensor], identity_size: int,
                     cfg: NormaliserConfig = NormaliserConfig()) -> tuple[Normaliser, list[float]]:
    """Fit a :class:`Normaliser` to pairs: L1 between its output for ``low`` and ``high``.

    Args:
        low / high: ``(N, 3, 112, 112)`` in [-1, 1], row by row the same face.
        downsample: ``(N,)`` capture factors of ``low``.
        identity: the frozen identity encoder (``(N, 3, 112, 112)`` -> ``(N, D)``, no gradient needed).

    Returns:
        the trained normaliser (eval mode) and the loss of every step.
    """
    torch.manual_seed(cfg.seed)
    model = Normaliser(identity_size, cfg.width, cfg.use_identity)
    optimiser = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    with torch.no_grad():
        upsampled, features = bicubic_from_capture(low, downsample), identity(low)
    rng = np.random.default_rng(cfg.seed)
    losses = []
    for _ in range(cfg.steps):
        rows = torch.from_numpy(rng.choice(len(low), size=min(cfg.batch_size, len(low)), replace=False))
        loss = F.l1_loss(model(upsampled[rows], features[rows]), high[rows])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(float(loss.detach()))
    return model.eval(), losses

"""arcface_torch's MobileFaceNet variant (``mbf``, ``mbf_large``), loading its ``backbone.pth`` unchanged.

InsightFace's arcface_torch trains a widened MobileFaceNet (``backbones/mobilefacenet.py``, ``get_mbf``)
that differs from the paper's layout in :mod:`fr_train.models.mobilefacenet`: all body widths are
multiplied by ``scale`` (2 for ``mbf``, 4 for ``mbf_large``), the inverted-residual stages have
``blocks`` = (1, 4, 6, 2) (``mbf_large``: (2, 8, 12, 4)) repeats, and the expansion widths are fixed
(128, 256, 512) instead of a multiple of the input. Module names follow that checkpoint's state dict:

=================  ==========================================================  =======
name               unit (input 112x112)                                         output
=================  ==========================================================  =======
``layers.0``       conv3x3 stride 2, 3 -> 64s                                   56x56
``layers.1``       conv3x3 with 64 groups (blocks[0] = 1), or blocks[0]         56x56
                   residual inverted blocks with expansion width 128
``layers.2``       inverted block, expansion 128, stride 2                      28x28
``layers.3``       blocks[1] residual inverted blocks, expansion 128            28x28
``layers.4``       inverted block 64s -> 128s, expansion 256, stride 2          14x14
``layers.5``       blocks[2] residual inverted blocks, expansion 256            14x14
``layers.6``       inverted block, expansion 512, stride 2                      7x7
``layers.7``       blocks[3] residual inverted blocks, expansion 256            7x7
``conv_sep``       conv1x1 128s -> 512                                          7x7
``features``       linear depthwise conv7x7 (GDC), flatten, linear 512 -> emb,   emb
                   BatchNorm1d
=================  ==========================================================  =======

Every conv is bias-free and followed by BatchNorm2d, then PReLU unless the unit is linear (the
projection of an inverted block and the GDC). Paper: Chen et al., "MobileFaceNets",
https://arxiv.org/abs/1804.07573. Input ``(N, 3, 112, 112)`` normalised as ``(x / 255 - 0.5) / 0.5``.
"""

from __future__ import annotations

import torch
from torch import nn

from fr_train.models.autocast import body_autocast

__all__ = ["MBF", "mbf", "mbf_large", "MBF_BLOCKS"]

#: (blocks, scale) of the two arcface_torch variants.
MBF_BLOCKS: dict[str, tuple[tuple[int, int, int, int], int]] = {
    "mbf": ((1, 4, 6, 2), 2),
    "mbf_large": ((2, 8, 12, 4), 4),
}
_GDC_WIDTH = 512


class ConvUnit(nn.Module):
    """``layers`` = Conv2d (no bias) -> BatchNorm2d [-> PReLU]; 3x3 kernels are padded by 1."""

    def __init__(self, cin: int, cout: int, kernel: int = 1, stride: int = 1, groups: int = 1,
                 act: bool = True):
        super().__init__()
        parts: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=1 if kernel == 3 else 0, groups=groups,
                      bias=False),
            nn.BatchNorm2d(cout),
        ]
        if act:
            parts.append(nn.PReLU(cout))
        self.layers = nn.Sequential(*parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class InvertedBlock(nn.Module):
    """1x1 expand to ``width`` -> 3x3 depthwise (``stride``) -> linear 1x1 project, plus the input when
    ``residual``."""

    def __init__(self, cin: int, cout: int, width: int, stride: int = 1, residual: bool = False):
        super().__init__()
        self.residual = residual
        self.layers = nn.Sequential(
            ConvUnit(cin, width),
            ConvUnit(width, width, 3, stride=stride, groups=width),
            ConvUnit(width, cout, act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return x + out if self.residual else out


class ResidualStage(nn.Module):
    """``repeats`` residual inverted blocks of ``channels`` channels and expansion ``width``."""

    def __init__(self, channels: int, repeats: int, width: int):
        super().__init__()
        self.layers = nn.Sequential(*(InvertedBlock(channels, channels, width, residual=True)
                                      for _ in range(repeats)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class GDCHead(nn.Module):
    """``layers`` = linear depthwise 7x7 conv -> flatten -> Linear (no bias) -> BatchNorm1d."""

    def __init__(self, embedding_size: int):
        super().__init__()
        self.layers = nn.Sequential(
            ConvUnit(_GDC_WIDTH, _GDC_WIDTH, 7, groups=_GDC_WIDTH, act=False),
            nn.Flatten(),
            nn.Linear(_GDC_WIDTH, embedding_size, bias=False),
            nn.BatchNorm1d(embedding_size),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _body(blocks: tuple[int, int, int, int], scale: int) -> list[nn.Module]:
    """``layers.0`` .. ``layers.7`` (see the module table)."""
    narrow, wide = 64 * scale, 128 * scale
    second = (ConvUnit(narrow, narrow, 3, groups=64) if blocks[0] == 1
              else ResidualStage(narrow, blocks[0], 128))
    return [
        ConvUnit(3, narrow, 3, stride=2),
        second,
        InvertedBlock(narrow, narrow, 128, stride=2),
        ResidualStage(narrow, blocks[1], 128),
        InvertedBlock(narrow, wide, 256, stride=2),
        ResidualStage(wide, blocks[2], 256),
        InvertedBlock(wide, wide, 512, stride=2),
        ResidualStage(wide, blocks[3], 256),
    ]


class MBF(nn.Module):
    """arcface_torch's MobileFaceNet for 112x112 faces.

    Args:
        embedding_size: output dimension (arcface_torch ``num_features``), 512 by default.
        blocks: residual repeats of the four stages.
        scale: width multiplier of the body.
        fp16: run the body under CUDA autocast (float16); ``conv_sep`` and the head run in float32.
    """

    def __init__(self, embedding_size: int = 512, blocks: tuple[int, int, int, int] = (1, 4, 6, 2),
                 scale: int = 2, fp16: bool = False):
        super().__init__()
        self.fp16 = fp16
        self.layers = nn.ModuleList(_body(tuple(blocks), scale))
        self.conv_sep = ConvUnit(128 * scale, _GDC_WIDTH)
        self.features = GDCHead(embedding_size)
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with body_autocast(self.fp16, x):
            for layer in self.layers:
                x = layer(x)
        return self.features(self.conv_sep(x.float() if self.fp16 else x))


def mbf(**kwargs) -> MBF:
    """arcface_torch ``mbf``: blocks (1, 4, 6, 2), scale 2."""
    blocks, scale = MBF_BLOCKS["mbf"]
    return MBF(blocks=blocks, scale=scale, **kwargs)


def mbf_large(**kwargs) -> MBF:
    """arcface_torch ``mbf_large``: blocks (2, 8, 12, 4), scale 4."""
    blocks, scale = MBF_BLOCKS["mbf_large"]
    return MBF(blocks=blocks, scale=scale, **kwargs)

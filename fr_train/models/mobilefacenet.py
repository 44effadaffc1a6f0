"""MobileFaceNet, the usual lightweight student for face recognition.

Chen, Liu, Gao, Han, "MobileFaceNets: Efficient CNNs for Accurate Real-Time Face Verification on Mobile
Devices" (https://arxiv.org/abs/1804.07573). Layout of the paper's Table 1 for a 112x112 input:

==========================  ======  ===  ===  ===
operator                    t       c    n    s
==========================  ======  ===  ===  ===
conv3x3                     -       64   1    2
depthwise conv3x3           -       64   1    1
bottleneck                  2       64   5    2
bottleneck                  4       128  1    2
bottleneck                  2       128  6    1
bottleneck                  4       128  1    2
bottleneck                  2       128  2    1
conv1x1                     -       512  1    1
linear GDConv7x7            -       512  1    1
linear conv1x1              -       emb  1    1
==========================  ======  ===  ===  ===

PReLU activations, BatchNorm after every convolution, a final BatchNorm1d on the embedding.

This is not arcface_torch's ``mbf`` (a widened variant with other stage sizes and module names): its
``backbone.pth`` files load into :mod:`fr_train.models.mbf` (``get_model("mbf")``) instead.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MobileFaceNet", "mobilefacenet"]

#: (expansion t, output channels c, repeats n, first stride s) of the bottleneck stages.
BOTTLENECKS: tuple[tuple[int, int, int, int], ...] = (
    (2, 64, 5, 2),
    (4, 128, 1, 2),
    (2, 128, 6, 1),
    (4, 128, 1, 2),
    (2, 128, 2, 1),
)


class ConvBN(nn.Sequential):
    """Convolution + BatchNorm, followed by PReLU unless ``linear``."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1,
                 linear: bool = False):
        layers: list[nn.Module] = [
            nn.Conv2d(cin, cout, kernel, stride=stride, padding=(kernel - 1) // 2 if kernel == 3 else 0,
                      groups=groups, bias=False),
            nn.BatchNorm2d(cout),
        ]
        if not linear:
            layers.append(nn.PReLU(cout))
        super().__init__(*layers)


class Bottleneck(nn.Module):
    """Inverted residual: 1x1 expand -> 3x3 depthwise (stride) -> linear 1x1 project (+ identity)."""

    def __init__(self, cin: int, cout: int, stride: int, expansion: int):
        super().__init__()
        hidden = cin * expansion
        self.block = nn.Sequential(
            ConvBN(cin, hidden, 1),
            ConvBN(hidden, hidden, 3, stride=stride, groups=hidden),
            ConvBN(hidden, cout, 1, linear=True),
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block(x)
        return x + out if self.residual else out


def _bottleneck_stages(cin: int) -> tuple[nn.Sequential, int]:
    blocks: list[nn.Module] = []
    for expansion, cout, repeats, stride in BOTTLENECKS:
        for index in range(repeats):
            blocks.append(Bottleneck(cin, cout, stride if index == 0 else 1, expansion))
            cin = cout
    return nn.Sequential(*blocks), cin


class MobileFaceNet(nn.Module):
    """MobileFaceNet for 112x112 faces.

    Args:
        embedding_size: output dimension (the paper uses 128; 512 by default for drop-in use with the
            IResNet teachers).
    """

    def __init__(self, embedding_size: int = 512):
        super().__init__()
        self.stem = nn.Sequential(ConvBN(3, 64, 3, stride=2), ConvBN(64, 64, 3, groups=64))
        self.stages, channels = _bottleneck_stages(64)
        self.expand = ConvBN(channels, 512, 1)
        self.gdc = ConvBN(512, 512, 7, groups=512, linear=True)  # global depthwise conv, 7x7 -> 1x1
        self.project = nn.Conv2d(512, embedding_size, 1, bias=False)
        self.features = nn.BatchNorm1d(embedding_size)
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.gdc(self.expand(self.stages(self.stem(x))))
        return self.features(torch.flatten(self.project(x), 1))


def mobilefacenet(**kwargs) -> MobileFaceNet:
    """MobileFaceNet (``embedding_size`` 512 by default; 128 as in the paper)."""
    return MobileFaceNet(**kwargs)

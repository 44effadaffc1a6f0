"""A tiny CPU-friendly backbone for tests and the demo (not a published architecture).

Four stride-2 3x3 conv stages (16, 32, 64, 128 channels, BatchNorm + PReLU) bring 112x112 down to
7x7, a global depthwise 7x7 convolution (as in MobileFaceNet) keeps the spatial layout information,
then a linear layer and BatchNorm1d give the embedding. About 12 M multiply-adds per image, i.e. a
few milliseconds on one CPU core, yet enough to separate synthetic identities.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["TinyNet", "tiny"]

_WIDTHS = (16, 32, 64, 128)


def _stage(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cout, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(cout), nn.PReLU(cout)
    )


class TinyNet(nn.Module):
    """Tiny 112x112 -> ``embedding_size`` backbone.

    Args:
        embedding_size: output dimension, 512 by default (use e.g. 64 for faster demos).
    """

    def __init__(self, embedding_size: int = 512):
        super().__init__()
        channels = (3, *_WIDTHS)
        self.body = nn.Sequential(*[_stage(cin, cout) for cin, cout in zip(channels, channels[1:])])
        width = _WIDTHS[-1]
        self.gdc = nn.Sequential(nn.Conv2d(width, width, 7, groups=width, bias=False), nn.BatchNorm2d(width))
        self.fc = nn.Linear(width, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.flatten(self.gdc(self.body(x)), 1)
        return self.features(self.fc(x))


def tiny(**kwargs) -> TinyNet:
    """The tiny test/demo backbone."""
    return TinyNet(**kwargs)

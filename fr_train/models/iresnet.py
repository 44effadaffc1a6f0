"""IResNet backbones whose ``state_dict`` matches InsightFace arcface_torch checkpoints key for key.

Improved residual networks (Duta et al., "Improved Residual Networks for Image and Video Recognition",
https://arxiv.org/abs/2004.04989) as used by ArcFace (https://arxiv.org/abs/1801.07698). The layout,
parameter names and shapes follow arcface_torch ``backbones/iresnet.py`` so its ``backbone.pth`` files
for ``r18``, ``r34``, ``r50``, ``r100`` and ``r200`` load strictly into ``iresnet18`` .. ``iresnet200``:

- stem: ``conv1`` (3x3, 64, stride 1), ``bn1``, ``prelu``;
- ``layer1`` .. ``layer4`` (64, 128, 256, 512 channels, each starting with a stride-2 block) of
  :class:`IBasicBlock` (``bn1, conv1, bn2, prelu, conv2, bn3`` and ``downsample.0`` (1x1 conv) /
  ``downsample.1`` (BN) on the first block);
- head: ``bn2`` (BatchNorm2d 512), ``dropout``, ``fc`` (Linear 512*7*7 -> embedding), ``features``
  (BatchNorm1d whose weight is frozen to 1).

Input: ``(N, 3, 112, 112)`` RGB normalised as ``(x / 255 - 0.5) / 0.5``; output ``(N, embedding_size)``.
"""

from __future__ import annotations

import torch
from torch import nn

from fr_train.models.autocast import body_autocast

__all__ = ["IBasicBlock", "IResNet", "iresnet18", "iresnet34", "iresnet50", "iresnet100", "iresnet200",
           "LAYERS"]

#: Blocks per stage for each published depth.
LAYERS: dict[int, tuple[int, int, int, int]] = {
    18: (2, 2, 2, 2),
    34: (3, 4, 6, 3),
    50: (3, 4, 14, 3),
    100: (3, 13, 30, 3),
    200: (6, 26, 60, 6),
}
_WIDTHS = (64, 128, 256, 512)
_BN_EPS = 1e-5
_FEATURE_MAP = 7  # 112 -> 56 -> 28 -> 14 -> 7 after the four stride-2 stages


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, kernel_size=3, stride=stride, padding=1, bias=False)


class IBasicBlock(nn.Module):
    """Pre-activation-style residual block: BN -> conv3x3 -> BN -> PReLU -> conv3x3(stride) -> BN."""

    def __init__(self, inplanes: int, planes: int, stride: int = 1, downsample: nn.Module | None = None):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes, eps=_BN_EPS)
        self.conv1 = _conv3x3(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes, eps=_BN_EPS)
        self.prelu = nn.PReLU(planes)
        self.conv2 = _conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes, eps=_BN_EPS)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn3(self.conv2(self.prelu(self.bn2(self.conv1(self.bn1(x))))))
        shortcut = x if self.downsample is None else self.downsample(x)
        return out + shortcut


def _make_stage(inplanes: int, planes: int, blocks: int) -> nn.Sequential:
    """One stage: a stride-2 block with a projection shortcut, then ``blocks - 1`` identity blocks."""
    downsample = nn.Sequential(
        nn.Conv2d(inplanes, planes, kernel_size=1, stride=2, bias=False),
        nn.BatchNorm2d(planes, eps=_BN_EPS),
    )
    layers = [IBasicBlock(inplanes, planes, stride=2, downsample=downsample)]
    layers += [IBasicBlock(planes, planes) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class IResNet(nn.Module):
    """IResNet for 112x112 faces.

    Args:
        layers: blocks per stage, e.g. ``LAYERS[50]``.
        embedding_size: output dimension (arcface_torch ``num_features``), 512 by default.
        dropout: dropout probability before ``fc`` (0 in arcface_torch's configs).
        fp16: run the convolutional body under CUDA autocast (float16); the ``fc``/``features`` head
            always runs in float32. Has no effect on CPU tensors.
    """

    def __init__(self, layers: tuple[int, int, int, int], embedding_size: int = 512,
                 dropout: float = 0.0, fp16: bool = False):
        super().__init__()
        self.fp16 = fp16
        self.conv1 = _conv3x3(3, _WIDTHS[0])
        self.bn1 = nn.BatchNorm2d(_WIDTHS[0], eps=_BN_EPS)
        self.prelu = nn.PReLU(_WIDTHS[0])
        inplanes = _WIDTHS[0]
        for index, (planes, blocks) in enumerate(zip(_WIDTHS, layers), start=1):
            setattr(self, f"layer{index}", _make_stage(inplanes, planes, blocks))
            inplanes = planes
        self.bn2 = nn.BatchNorm2d(_WIDTHS[-1], eps=_BN_EPS)
        self.dropout = nn.Dropout(p=dropout)
        self.fc = nn.Linear(_WIDTHS[-1] * _FEATURE_MAP * _FEATURE_MAP, embedding_size)
        self.features = nn.BatchNorm1d(embedding_size, eps=_BN_EPS)
        self._init_weights()

    def _init_weights(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.normal_(module.weight, 0, 0.1)
            elif isinstance(module, (nn.BatchNorm2d, nn.GroupNorm)):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.ones_(self.features.weight)
        self.features.weight.requires_grad = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with body_autocast(self.fp16, x):
            x = self.prelu(self.bn1(self.conv1(x)))
            x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
            x = self.dropout(torch.flatten(self.bn2(x), 1))
        return self.features(self.fc(x.float()))


def iresnet18(**kwargs) -> IResNet:
    """IResNet-18 (arcface_torch ``r18``)."""
    return IResNet(LAYERS[18], **kwargs)


def iresnet34(**kwargs) -> IResNet:
    """IResNet-34 (arcface_torch ``r34``)."""
    return IResNet(LAYERS[34], **kwargs)


def iresnet50(**kwargs) -> IResNet:
    """IResNet-50 (arcface_torch ``r50``)."""
    return IResNet(LAYERS[50], **kwargs)


def iresnet100(**kwargs) -> IResNet:
    """IResNet-100 (arcface_torch ``r100``)."""
    return IResNet(LAYERS[100], **kwargs)


def iresnet200(**kwargs) -> IResNet:
    """IResNet-200 (arcface_torch ``r200``)."""
    return IResNet(LAYERS[200], **kwargs)

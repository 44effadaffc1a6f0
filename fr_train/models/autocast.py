"""The ``fp16`` switch of the arcface_torch-style backbones: float16 autocast of the body on CUDA."""

from __future__ import annotations

import contextlib

import torch


def body_autocast(enabled: bool, x: torch.Tensor) -> contextlib.AbstractContextManager:
    """CUDA float16 autocast when ``enabled`` and ``x`` is on a GPU; otherwise a context that does nothing."""
    if enabled and x.is_cuda:
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()

"""ONNX export in the InsightFace convention and a numerical check with onnxruntime.

InsightFace's released ONNX recognition models take an input named ``data`` of shape
``(batch, 3, 112, 112)`` (RGB, ``(x / 255 - 0.5) / 0.5``) with a dynamic batch axis and return the
embedding as ``fc1``. The export uses torch's TorchScript-based exporter (``dynamo=False``), which
works with the installed torch and needs no extra package (the dynamo exporter needs ``onnxscript``).
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from fr_data.io.atomic import atomic_path

__all__ = ["export_onnx", "run_onnx", "max_onnx_error", "INPUT_NAME", "OUTPUT_NAME"]

INPUT_NAME = "data"
OUTPUT_NAME = "fc1"
DEFAULT_OPSET = 17


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def export_onnx(model: nn.Module, path: str | os.PathLike, *, image_size: int = 112,
                opset: int = DEFAULT_OPSET, input_name: str = INPUT_NAME,
                output_name: str = OUTPUT_NAME) -> Path:
    """Export ``model`` (in eval mode, on CPU) to ONNX at ``path`` atomically.

    Args:
        model: a backbone taking ``(N, 3, image_size, image_size)``; its training flag is restored.
        path: target ``.onnx`` file.
        image_size: input height and width.
        opset: ONNX opset version.
        input_name: name of the input (``data`` in InsightFace models).
        output_name: name of the embedding output (``fc1`` in InsightFace models).

    Returns:
        ``path``.
    """
    device = next(model.parameters()).device
    dummy = torch.zeros(2, 3, image_size, image_size, device=device)
    axes = {input_name: {0: "batch"}, output_name: {0: "batch"}}
    with _eval_mode(model), atomic_path(path) as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the legacy exporter announces itself
        torch.onnx.export(model, (dummy,), str(tmp), input_names=[input_name], output_names=[output_name],
                          dynamic_axes=axes, opset_version=opset, dynamo=False, do_constant_folding=True)
    return Path(path)


def run_onnx(path: str | os.PathLike, images: np.ndarray) -> np.ndarray:
    """Run an exported model with onnxruntime (CPU) on ``images`` ``(N, 3, H, W)`` float32."""
    import onnxruntime as ort  # optional dependency (extra "dev")

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return session.run(None, {name: np.ascontiguousarray(images, dtype=np.float32)})[0]


@torch.no_grad()
def max_onnx_error(model: nn.Module, path: str | os.PathLike, images: torch.Tensor) -> float:
    """Largest absolute difference between ``model`` (eval mode) and the ONNX file on ``images``."""
    with _eval_mode(model):
        expected = model(images).float().cpu().numpy()
    got = run_onnx(path, images.cpu().numpy())
    return float(np.max(np.abs(expected - got)))

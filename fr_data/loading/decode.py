"""Decoding stored face images into the tensors InsightFace models expect: RGB, 112 x 112, ``(x/255 - 0.5)/0.5``."""

from __future__ import annotations

import io

import numpy as np
import torch
from PIL import Image

FACE_SIZE = 112


def decode_face(data: bytes, size: int = FACE_SIZE) -> torch.Tensor:
    """Decode image bytes to a 3 x size x size float32 tensor, RGB, normalised as ``(x/255 - 0.5)/0.5``.

    Images that are not ``size`` x ``size`` are resized with bilinear interpolation (InsightFace's
    aligned crops are already 112 x 112).
    """
    out = np.empty((3, size, size), np.float32)
    decode_into(data, out)
    return torch.from_numpy(out)


def decode_into(data: bytes, out: np.ndarray) -> None:
    """Decode image bytes into a preallocated array ``out`` of shape 3 x size x size.

    A float32 ``out`` receives ``(x/255 - 0.5)/0.5``; a uint8 ``out`` receives the raw RGB values
    (normalise later with :func:`normalize_faces`, e.g. on the GPU). The arithmetic runs in numpy on
    one thread: torch's intra-op threads only slow down tensors this small, most of all inside
    DataLoader workers on a busy machine.
    """
    size = out.shape[-1]
    with Image.open(io.BytesIO(data)) as img:
        rgb = img if img.mode == "RGB" else img.convert("RGB")
        if rgb.size != (size, size):
            rgb = rgb.resize((size, size), Image.BILINEAR)
        pixels = np.asarray(rgb)
    if out.dtype == np.uint8:
        out[...] = pixels.transpose(2, 0, 1)
        return
    np.multiply(pixels.transpose(2, 0, 1), np.float32(1 / 255), out=out, casting="unsafe")
    out -= np.float32(0.5)
    out /= np.float32(0.5)


def normalize_faces(images: torch.Tensor) -> torch.Tensor:
    """uint8 RGB images (``... x 3 x H x W``) to float32 ``(x/255 - 0.5)/0.5`` on their device."""
    return images.to(torch.float32).div_(255.0).sub_(0.5).div_(0.5)


def flip_face(tensor: torch.Tensor) -> torch.Tensor:
    """Mirror a C x H x W image horizontally."""
    return tensor.flip(-1)

"""One forward pass of a face backbone over a batch: flip-sum features, raw norms, flip consistency."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class BatchEmbedding:
    """Per-batch model output: normalised rows, raw norms, flip cosines (None without flip)."""

    features: torch.Tensor
    norm: torch.Tensor
    flip_cos: torch.Tensor | None


@torch.inference_mode()
def embed_batch(model: nn.Module, images: torch.Tensor, *, flip: bool = True,
                amp: bool = False) -> BatchEmbedding:
    """Embed a batch ``(B, 3, H, W)`` (already on the model's device).

    With ``flip`` the image and its horizontal mirror go through the model in one ``2B`` forward; the
    row is ``normalise(f(x) + f(flip x))``. ``norm`` is always ``||f(x)||``. A model returning a tuple
    (e.g. ``(features, norms)``) contributes its first element.
    """
    inputs = torch.cat([images, images.flip(-1)]) if flip else images
    with torch.autocast(images.device.type, enabled=amp):
        out = model(inputs)
    out = (out[0] if isinstance(out, (tuple, list)) else out).float()
    plain, mirrored = out.chunk(2) if flip else (out, None)
    combined = plain + mirrored if flip else plain
    features = combined / combined.norm(dim=1, keepdim=True)
    flip_cos = torch.nn.functional.cosine_similarity(plain, mirrored, dim=1) if flip else None
    return BatchEmbedding(features, plain.norm(dim=1), flip_cos)

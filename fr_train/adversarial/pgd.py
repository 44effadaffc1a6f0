"""L-inf projected gradient descent (Madry et al., https://arxiv.org/abs/1706.06083) on normalised images.

Images are normalised ``(x / 255 - 0.5) / 0.5``, so the valid range is ``[-1, 1]`` and a perturbation of
``eps`` in pixel units of [0, 1] is ``2 * eps`` in normalised units (:data:`PIXEL_SCALE`). PGD starts at a
uniform random point of the eps-ball, takes ``steps`` signed-gradient steps of ``step_ratio * eps`` and
projects back onto the ball and the valid range after each.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import torch
from torch import nn

__all__ = ["PIXEL_SCALE", "BOUNDS", "pgd_linf", "eval_mode"]

#: Normalised units per pixel unit of [0, 1].
PIXEL_SCALE = 2.0
#: The valid range of normalised images.
BOUNDS = (-1.0, 1.0)


def pgd_linf(loss: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, eps: torch.Tensor | float, *,
             steps: int, step_ratio: float = 0.25, generator: torch.Generator | None = None) -> torch.Tensor:
    """Images within L-inf distance ``eps`` of ``images`` (and within :data:`BOUNDS`) that increase ``loss``.

    Args:
        loss: images -> a loss to maximise (a scalar, or one value per image, which is summed); its gradient
            with respect to the images is all that is used (parameters receive none).
        images: ``(N, C, H, W)`` normalised images.
        eps: the radius in pixel units of [0, 1]: one for all, or ``(N,)`` per image.
        steps: signed-gradient steps.
        step_ratio: step size as a fraction of each image's eps.
        generator: draws the random start (CPU generator; None: the global one).

    Returns:
        Detached attacked images; ``images`` itself when every eps is 0.
    """
    radius = torch.as_tensor(eps, dtype=images.dtype, device=images.device) * PIXEL_SCALE
    radius = radius.expand(images.shape[0]).reshape(-1, *([1] * (images.dim() - 1)))
    if not bool((radius > 0).any()):
        return images
    low, high = images - radius, images + radius
    start = torch.rand(images.shape, generator=generator, dtype=images.dtype).to(images.device)
    attacked = (images + (2 * start - 1) * radius).clamp(*BOUNDS)
    for _ in range(steps):
        attacked.requires_grad_(True)
        (grad,) = torch.autograd.grad(loss(attacked).sum(), attacked)
        attacked = attacked.detach() + step_ratio * radius * grad.sign()
        attacked = torch.minimum(torch.maximum(attacked, low), high).clamp(*BOUNDS)
    return attacked.detach()


@contextlib.contextmanager
def eval_mode(module: nn.Module) -> Iterator[None]:
    """``module`` in eval mode within the block (BatchNorm running statistics, no statistic or buffer
    updates), its training flag restored after."""
    was_training = module.training
    module.eval()
    try:
        yield
    finally:
        module.train(was_training)

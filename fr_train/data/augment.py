"""Per-sample augmentation: horizontal flip and random-scale resolution loss.

Resolution loss downsamples a face by a random side factor ``s`` in ``[min, max]``, drawn continuously
(:func:`draw_scale`: uniform in ``s``, or log-uniform: uniform in ``log s``, as many draws per octave of
shrink; FAN's random scale augmentation, https://arxiv.org/abs/1911.11680) (antialiased
bilinear: the filter widens with the shrink factor, averaging like an area filter) and upsamples it
back to its size (bilinear): the image keeps its shape but loses the detail above the lower
resolution's Nyquist limit, the way low-resolution
probes look after alignment. Training on such copies is the usual recipe for resolution-robust face
recognition (e.g. the cross-resolution training of CCFace, https://arxiv.org/abs/2308.09230).

Every sample draws the same three uniforms in the same order (flip, loss, scale), whatever happens, so a
given RNG state always yields the same augmentation of a batch.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from fr_train.data.config import AugmentConfig, ScaleDist


def flip(image: np.ndarray) -> None:
    """Mirror a C x H x W image horizontally, in place."""
    image[...] = image[..., ::-1].copy()


def draw_scale(u: float, low: float, high: float, dist: ScaleDist = "uniform") -> float:
    """The side factor of a uniform draw ``u`` in [0, 1): ``low + (high - low) * u`` (``uniform``) or
    ``low * (high / low) ** u`` (``log_uniform``: each octave of ``[low, high]`` equally likely)."""
    if dist == "log_uniform":
        return low * (high / low) ** u
    return low + (high - low) * u


def degrade_resolution(image: np.ndarray, scale: float) -> None:
    """Downsample a C x H x W float image by ``scale`` (side ratio in (0, 1]) and upsample it back, in place.

    Uses PIL's float ("F") bilinear resampling, which widens its filter when shrinking (antialiasing)
    and runs single-threaded: the result is bit-identical in the training process and in DataLoader
    workers (torch's interpolate differs in the last bits with the thread count). It agrees with
    ``torch.nn.functional.interpolate(..., mode="bilinear", antialias=True)`` to about 1e-6.
    """
    height, width = image.shape[-2:]
    small = (max(1, round(width * scale)), max(1, round(height * scale)))
    if small == (width, height):
        return
    for channel in image:
        plane = Image.fromarray(np.ascontiguousarray(channel, dtype=np.float32), mode="F")
        channel[...] = np.asarray(plane.resize(small, Image.BILINEAR).resize((width, height), Image.BILINEAR))


class Augmenter:
    """Apply the configured flip and resolution loss to one image at a time.

    Args:
        cfg: probabilities and the scale range.
    """

    def __init__(self, cfg: AugmentConfig):
        self.flip_p = cfg.flip_p
        self.lowres_p = cfg.lowres_p
        self.scale_min, self.scale_max = cfg.lowres_scale
        self.scale_dist = cfg.lowres_dist

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> None:
        """Augment ``image`` (C x H x W float32) in place with draws from ``rng``."""
        u_flip, u_low, u_scale = rng.random(3)
        if u_flip < self.flip_p:
            flip(image)
        if u_low < self.lowres_p:
            degrade_resolution(image, draw_scale(float(u_scale), self.scale_min, self.scale_max, self.scale_dist))

"""Per-image nuisance variation: pose, framing, lighting, background, and the capture degradations
(resolution loss, sensor noise, JPEG) applied after rendering.

Variation is sampled as a struct of arrays (:class:`Variations`, one entry per image) from a
:class:`VariationPrior`; the verification packs use narrowed priors (frontal only, profile only, low
resolution only) built with :func:`dataclasses.replace`.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, fields

import numpy as np
from PIL import Image

__all__ = ["VariationPrior", "Variations", "TRAIN_PRIOR", "FRONTAL_PRIOR", "PROFILE_PRIOR", "LOWRES_PRIOR",
           "sample_variations", "resolution_loss", "encode_jpeg", "degrade"]


@dataclass(frozen=True)
class VariationPrior:
    """Distributions of the per-image variation.

    Attributes:
        yaw_bins: ``(low, high, probability)`` bins over ``|yaw|`` in degrees (uniform inside a bin, random
            sign).
        downsample: ``(factor, probability)`` pairs; the image is area-downsampled by the factor and
            upsampled back (factor 1 = full resolution).
        roll_std: standard deviation of the in-plane rotation (degrees, clipped to +-2.5 std).
        face_scale: range of the face size relative to the canonical crop.
        shift_std: standard deviation of the face-centre shift (fraction of half the image).
        jpeg_quality: inclusive range of the JPEG quality.
        noise_max: largest sensor-noise standard deviation (0-255 scale); drawn uniformly in [0, max].
    """

    yaw_bins: tuple[tuple[float, float, float], ...]
    downsample: tuple[tuple[int, float], ...]
    roll_std: float = 7.0
    face_scale: tuple[float, float] = (0.88, 1.08)
    shift_std: float = 0.03
    jpeg_quality: tuple[int, int] = (45, 95)
    noise_max: float = 7.0


#: Training images: 8% with |yaw| >= 60 degrees, 10% at 1/4 resolution or below, so ~17% are truly hard
#: (either), a minority as in web-crawled sets, where most faces are near-frontal and sharp.
TRAIN_PRIOR = VariationPrior(yaw_bins=((0, 20, 0.50), (20, 45, 0.27), (45, 60, 0.15), (60, 90, 0.08)),
                             downsample=((1, 0.62), (2, 0.28), (4, 0.06), (8, 0.04)))
#: Frontal, full-resolution, good-quality images (the easy side of every verification pair).
FRONTAL_PRIOR = VariationPrior(yaw_bins=((0, 15, 1.0),), downsample=((1, 1.0),), roll_std=4.0,
                               jpeg_quality=(75, 95), noise_max=4.0)
#: Profile views, |yaw| in [60, 90], full resolution.
PROFILE_PRIOR = VariationPrior(yaw_bins=((60, 90, 1.0),), downsample=((1, 1.0),), roll_std=4.0,
                               jpeg_quality=(75, 95), noise_max=4.0)
#: Frontal views at 1/4 or 1/8 resolution.
LOWRES_PRIOR = VariationPrior(yaw_bins=((0, 15, 1.0),), downsample=((4, 0.5), (8, 0.5)), roll_std=4.0,
                              jpeg_quality=(75, 95), noise_max=4.0)


@dataclass(frozen=True)
class Variations:
    """Variation of ``n`` images as parallel arrays (angles in degrees)."""

    yaw: np.ndarray
    roll: np.ndarray
    face_scale: np.ndarray
    shift: np.ndarray  # (n, 2): x, y
    light: np.ndarray  # (n, 3): unit light direction in camera space
    ambient: np.ndarray
    diffuse: np.ndarray
    tint: np.ndarray  # (n, 3)
    background: np.ndarray  # (n, 3), 0-1
    bg_gradient: np.ndarray
    downsample: np.ndarray  # int
    noise: np.ndarray
    jpeg_quality: np.ndarray  # int

    def __len__(self) -> int:
        return len(self.yaw)

    def take(self, index: np.ndarray | slice) -> Variations:
        """The variations of a subset of the images."""
        return Variations(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    @staticmethod
    def concat(parts: list[Variations]) -> Variations:
        """Concatenate variation blocks in order."""
        return Variations(**{f.name: np.concatenate([getattr(p, f.name) for p in parts])
                             for f in fields(Variations)})


def sample_variations(rng: np.random.Generator, n: int, prior: VariationPrior = TRAIN_PRIOR) -> Variations:
    """Draw the variation of ``n`` images from ``prior``."""
    return Variations(
        yaw=_sample_yaw(rng, n, prior.yaw_bins),
        roll=np.clip(rng.normal(0, prior.roll_std, n), -2.5 * prior.roll_std, 2.5 * prior.roll_std),
        face_scale=rng.uniform(*prior.face_scale, n),
        shift=np.clip(rng.normal(0, prior.shift_std, (n, 2)), -3 * prior.shift_std, 3 * prior.shift_std),
        light=_sample_light(rng, n),
        ambient=rng.uniform(0.25, 0.5, n),
        diffuse=rng.uniform(0.45, 0.85, n),
        tint=1 + rng.uniform(-0.07, 0.07, (n, 3)),
        background=rng.uniform(0.05, 0.95, (n, 3)),
        bg_gradient=rng.uniform(-0.3, 0.3, n),
        downsample=_sample_choice(rng, n, prior.downsample).astype(np.int64),
        noise=rng.uniform(0, prior.noise_max, n),
        jpeg_quality=rng.integers(prior.jpeg_quality[0], prior.jpeg_quality[1] + 1, n),
    )


def _sample_choice(rng: np.random.Generator, n: int, table: tuple[tuple[float, float], ...]) -> np.ndarray:
    values = np.array([v for v, _ in table])
    probs = np.array([p for _, p in table], dtype=np.float64)
    return values[rng.choice(len(values), size=n, p=probs / probs.sum())]


def _sample_yaw(rng: np.random.Generator, n: int, bins: tuple[tuple[float, float, float], ...]) -> np.ndarray:
    probs = np.array([p for _, _, p in bins], dtype=np.float64)
    which = rng.choice(len(bins), size=n, p=probs / probs.sum())
    low = np.array([b[0] for b in bins])[which]
    high = np.array([b[1] for b in bins])[which]
    magnitude = rng.uniform(low, high)
    return magnitude * rng.choice([-1.0, 1.0], size=n)


def _sample_light(rng: np.random.Generator, n: int) -> np.ndarray:
    azimuth = np.radians(rng.uniform(-65, 65, n))
    elevation = np.radians(rng.uniform(-5, 50, n))
    return np.stack([np.sin(azimuth) * np.cos(elevation), np.sin(elevation),
                     np.cos(azimuth) * np.cos(elevation)], axis=1)


def _upsample_taps(size: int, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of bilinear (half-pixel centred) upsampling by ``factor`` to ``size``."""
    small = size // factor
    pos = np.clip((np.arange(size) + 0.5) / factor - 0.5, 0, small - 1)
    lo = np.floor(pos).astype(np.intp)
    hi = np.minimum(lo + 1, small - 1)
    return lo, hi, (pos - lo).astype(np.float32)


def resolution_loss(images: np.ndarray, factor: int) -> np.ndarray:
    """Area-downsample ``(M, H, W, 3)`` images by ``factor`` and upsample them back bilinearly.

    Pure gathers and blends (no BLAS): tiny matrix products thrash BLAS threads on shared machines.
    """
    if factor == 1:
        return images
    return _upsample(_downsample(images, factor), factor, images.shape[1:3])


def _downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """Area (box) downsampling of ``(M, H, W, C)`` by an integer factor dividing H and W."""
    m, h, w, c = images.shape
    return images.reshape(m, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def _upsample(small: np.ndarray, factor: int, size: tuple[int, int]) -> np.ndarray:
    """Bilinear (half-pixel centred) upsampling of ``(M, h, w, C)`` back to ``size``."""
    lo, hi, frac = _upsample_taps(size[0], factor)
    tall = small[:, lo] + (small[:, hi] - small[:, lo]) * frac[None, :, None, None]
    lo, hi, frac = _upsample_taps(size[1], factor)
    return tall[:, :, lo] + (tall[:, :, hi] - tall[:, :, lo]) * frac[None, None, :, None]


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    """Encode one ``(H, W, 3)`` uint8 RGB image as a baseline JPEG (deterministic for equal input)."""
    buf = io.BytesIO()
    Image.fromarray(image, "RGB").save(buf, format="JPEG", quality=int(quality))
    return buf.getvalue()


def _unit_noise(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Zero-mean, unit-variance triangular noise (sum of two uniform bytes; ~10x cheaper than normal)."""
    pairs = np.frombuffer(rng.bytes(2 * int(np.prod(shape))), np.uint8).reshape(*shape, 2)
    total = pairs[..., 0].astype(np.float32) + pairs[..., 1]
    return (total - np.float32(255)) * np.float32(1 / np.sqrt(2 * (256**2 - 1) / 12))


def degrade(images: np.ndarray, var: Variations, rng: np.random.Generator) -> list[bytes]:
    """Apply resolution loss, sensor noise and JPEG compression to rendered ``(M, H, W, 3)`` images.

    A low-resolution image models a small capture that the face aligner upsampled to the crop size: the
    render is area-downsampled, sensor noise is added on the capture's own pixel grid, and only then is
    it upsampled back (bilinear); full-resolution images get their noise at full resolution. JPEG
    compression comes last, at the crop size, as when a training set is packed.

    Args:
        images: float32 renders on the 0-255 scale, modified in place.
        var: the images' variations (``downsample``, ``noise``, ``jpeg_quality`` are used).
        rng: generator for the noise.
    """
    sigma = var.noise.astype(np.float32)[:, None, None, None]
    for factor in np.unique(var.downsample):
        sel = np.flatnonzero(var.downsample == factor)
        small = _downsample(images[sel], int(factor)) if factor > 1 else images[sel]
        small = small + _unit_noise(rng, small.shape) * sigma[sel]
        images[sel] = _upsample(small, int(factor), images.shape[1:3]) if factor > 1 else small
    pixels = np.clip(np.rint(images), 0, 255).astype(np.uint8)
    return [encode_jpeg(p, q) for p, q in zip(pixels, var.jpeg_quality)]

"""Tests of fr_data.embed.resolution: ranking of synthetic resolution loss, monotonicity, invariances."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw
from scipy.stats import spearmanr

from fr_data.embed.resolution import DEFAULT_MAX_FACTOR, estimate_resolution, estimate_resolution_np


def textured(seed: int, size: int = 112) -> Image.Image:
    """Smooth random noise over several octaves plus straight edges and an ellipse (face-like outline)."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3))
    for cells in (7, 14, 28, 56, 112):
        octave = rng.normal(size=(cells, cells, 3)).astype(np.float32)
        img += np.stack([np.asarray(Image.fromarray(octave[..., c]).resize((size, size), Image.BICUBIC))
                         for c in range(3)], axis=-1)
    pil = Image.fromarray(np.clip(128 + 20 * img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(4):
        x0, y0, x1, y1 = (int(v) for v in rng.integers(0, size, 4))
        draw.line((x0, y0, x1, y1), fill=tuple(int(v) for v in rng.integers(0, 256, 3)), width=2)
    draw.ellipse((28, 20, 84, 96), outline=(240, 220, 200), width=2)
    return pil


def degrade(img: Image.Image, factor: float, quality: int | None = None) -> np.ndarray:
    """Downsample by ``factor`` (bilinear, antialiased), upsample back (bicubic), optionally JPEG."""
    size = img.size[0]
    if factor > 1:
        small = round(size / factor)
        img = img.resize((small, small), Image.BILINEAR).resize((size, size), Image.BICUBIC)
    if quality is not None:
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=quality)
        img = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    return np.array(img)


@pytest.mark.parametrize("quality", [None, 85])
def test_spearman_against_true_downsample_factor(quality):
    factors, estimates = [], []
    for seed in range(8):
        img = textured(seed)
        for factor in (1, 2, 4, 8):
            factors.append(factor)
            estimates.append(estimate_resolution_np(degrade(img, factor, quality)))
    rho = spearmanr(factors, estimates).statistic
    assert rho <= -0.8  # higher factor = lower resolution
    assert np.mean(np.array(estimates)[np.array(factors) == 1]) > 0.7


def test_monotone_on_one_image():
    img = textured(42)
    estimates = [estimate_resolution_np(degrade(img, f)) for f in (1, 1.5, 2, 3, 4, 6, 8)]
    assert all(a > b for a, b in zip(estimates, estimates[1:])), estimates


def test_estimate_tracks_the_factor_roughly():
    img = textured(3)
    for factor in (2, 4, 8):
        estimate = estimate_resolution_np(degrade(img, factor))
        assert 0.5 / factor < estimate < 1.5 / factor


def test_range_flat_image_and_batch_consistency():
    flat = torch.full((1, 3, 112, 112), 0.3)
    assert estimate_resolution(flat).item() == pytest.approx(1 / DEFAULT_MAX_FACTOR)
    images = [degrade(textured(s), f) for s, f in ((0, 1), (1, 4), (2, 8))]
    batch = torch.stack([torch.from_numpy(i).permute(2, 0, 1) for i in images])
    batched = estimate_resolution(batch)
    single = [estimate_resolution_np(i) for i in images]
    np.testing.assert_allclose(batched.numpy(), single, rtol=1e-6)
    assert ((batched >= 1 / DEFAULT_MAX_FACTOR) & (batched <= 1)).all()


def test_invariant_to_affine_intensity_and_grey_input():
    rgb = degrade(textured(5), 2).astype(np.float32)
    grey = rgb @ np.array([0.299, 0.587, 0.114], np.float32)
    base = estimate_resolution_np(rgb)
    assert estimate_resolution_np(rgb / 127.5 - 1.0) == pytest.approx(base)  # the backbone input range
    assert estimate_resolution_np(grey) == pytest.approx(base)


def test_bad_arguments():
    with pytest.raises(ValueError, match="expected"):
        estimate_resolution(torch.zeros(2, 2, 8, 8))
    with pytest.raises(ValueError, match="tolerance"):
        estimate_resolution(torch.zeros(1, 8, 8), tolerance=1.5)

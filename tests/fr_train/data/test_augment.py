"""Flip exactness, resolution loss removing high frequencies, determinism of the Augmenter."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fr_data.io.errors import ConfigError
from fr_data.io.config import from_dict
from fr_train.data.augment import Augmenter, degrade_resolution, draw_scale, flip
from fr_train.data.config import AugmentConfig, DataConfig, validate_data_config


def noise_image(seed: int = 0, size: int = 112) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (3, size, size)).astype(np.float32)


def high_frequency_share(image: np.ndarray, cutoff: float = 0.25) -> float:
    """Share of spectral energy (mean removed) at spatial frequencies above ``cutoff`` cycles/pixel."""
    spectrum = np.abs(np.fft.fft2(image - image.mean(axis=(1, 2), keepdims=True))) ** 2
    freqs = np.abs(np.fft.fftfreq(image.shape[-1]))
    high = (freqs[:, None] > cutoff) | (freqs[None, :] > cutoff)
    return float(spectrum[:, high].sum() / spectrum.sum())


def test_flip_is_an_exact_mirror_and_an_involution():
    image = noise_image()
    original = image.copy()
    flip(image)
    np.testing.assert_array_equal(image, original[:, :, ::-1])
    flip(image)
    np.testing.assert_array_equal(image, original)


def test_resolution_loss_removes_high_frequencies_and_keeps_the_mean():
    image = noise_image()
    before = high_frequency_share(image)
    degraded = image.copy()
    degrade_resolution(degraded, 0.25)
    assert degraded.shape == image.shape
    assert before > 0.7  # white noise: most energy above a quarter of the sampling rate
    assert high_frequency_share(degraded) < 0.05 * before
    np.testing.assert_allclose(degraded.mean(axis=(1, 2)), image.mean(axis=(1, 2)), atol=0.02)


def test_resolution_loss_matches_an_independent_torch_reference():
    image = noise_image(3)
    out = image.copy()
    degrade_resolution(out, 0.5)
    t = torch.from_numpy(image)[None]
    small = F.interpolate(t, size=(56, 56), mode="bilinear", antialias=True, align_corners=False)
    expected = F.interpolate(small, size=(112, 112), mode="bilinear", align_corners=False)[0].numpy()
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_stronger_loss_removes_more_detail():
    shares = []
    for scale in (0.75, 0.5, 0.25, 0.125):
        image = noise_image(1)
        degrade_resolution(image, scale)
        shares.append(high_frequency_share(image, cutoff=0.05))
    assert shares == sorted(shares, reverse=True)


def test_scale_one_leaves_the_image_unchanged():
    image = noise_image()
    original = image.copy()
    degrade_resolution(image, 1.0)
    np.testing.assert_array_equal(image, original)


def run(augmenter: Augmenter, seed: int, count: int = 40) -> np.ndarray:
    rng = np.random.default_rng(seed)
    images = np.stack([noise_image(i, 32) for i in range(count)])
    for image in images:
        augmenter(image, rng)
    return images


def test_augmenter_is_deterministic_per_seed():
    augmenter = Augmenter(AugmentConfig(flip_p=0.5, lowres_p=0.5, lowres_scale=[0.25, 0.75]))
    np.testing.assert_array_equal(run(augmenter, 5), run(augmenter, 5))
    assert not np.array_equal(run(augmenter, 5), run(augmenter, 6))


def test_augmenter_probabilities_select_the_operations():
    originals = np.stack([noise_image(i, 32) for i in range(40)])
    np.testing.assert_array_equal(run(Augmenter(AugmentConfig(flip_p=0.0, lowres_p=0.0)), 1), originals)
    flipped_all = run(Augmenter(AugmentConfig(flip_p=1.0, lowres_p=0.0)), 1)
    np.testing.assert_array_equal(flipped_all, originals[..., ::-1])
    half = run(Augmenter(AugmentConfig(flip_p=0.5, lowres_p=0.0)), 2)
    flipped = [np.array_equal(a, o[..., ::-1]) for a, o in zip(half, originals)]
    untouched = [np.array_equal(a, o) for a, o in zip(half, originals)]
    assert all(f != u for f, u in zip(flipped, untouched)) and 10 <= sum(flipped) <= 30
    degraded = run(Augmenter(AugmentConfig(flip_p=0.0, lowres_p=1.0, lowres_scale=[0.25, 0.25])), 3)
    assert all(high_frequency_share(d) < 0.1 * high_frequency_share(o) for d, o in zip(degraded, originals))


@pytest.mark.parametrize("scale", [[0.0, 0.5], [0.6, 0.4], [0.5]])
def test_bad_scale_range_is_rejected(scale):
    with pytest.raises(ConfigError, match="lowres_scale"):
        validate_data_config(DataConfig(shards="x", augment=AugmentConfig(lowres_scale=scale)))


def test_scale_draws_by_hand():
    assert draw_scale(0.5, 0.125, 0.5) == pytest.approx(0.3125)  # uniform: the midpoint
    assert draw_scale(0.5, 0.125, 0.5, "log_uniform") == pytest.approx(0.25)  # geometric mean
    assert draw_scale(0.0, 0.125, 0.5, "log_uniform") == pytest.approx(0.125)
    # log-uniform: each octave equally likely; u = 1/3 ends the first of the three octaves of [1/8, 1]
    assert draw_scale(1 / 3, 0.125, 1.0, "log_uniform") == pytest.approx(0.25)


class FixedDraws:
    """An rng whose ``random(3)`` returns given uniforms (flip, loss, scale)."""

    def __init__(self, draws):
        self.draws = np.asarray(draws)

    def random(self, n):
        return self.draws[:n]


@pytest.mark.parametrize("dist, scale", [("uniform", 0.625), ("log_uniform", 0.5)])
def test_the_augmenter_degrades_by_the_drawn_factor(dist, scale):
    augmenter = Augmenter(AugmentConfig(flip_p=0.0, lowres_p=1.0, lowres_scale=[0.25, 1.0], lowres_dist=dist))
    image, expected = noise_image(4, 8), noise_image(4, 8)
    augmenter(image, FixedDraws([0.9, 0.0, 0.5]))
    degrade_resolution(expected, scale)  # 8 px -> 5 px (uniform) or 4 px (log-uniform) and back
    np.testing.assert_array_equal(image, expected)
    assert not np.array_equal(image, noise_image(4, 8))


def test_a_misspelt_scale_distribution_is_rejected():
    with pytest.raises(ConfigError, match="lowres_dist"):
        from_dict(DataConfig, {"shards": "x", "augment": {"lowres_dist": "loguniform"}})

"""FAN's normaliser: conversions, the bicubic reference, the zero-initialised residual (an untrained
normaliser is bicubic), the identity ablation, and that training lowers the L1 loss on a tiny task."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fr_train.normalise import (
    Normaliser,
    NormaliserConfig,
    bicubic_from_capture,
    to_uint8,
    to_unit,
    train_normaliser,
)


def test_pixel_conversions_round_trip_and_scale():
    pixels = np.array([[[[0, 127, 255]]]], dtype=np.uint8)  # one 1 x 1 RGB image
    unit = to_unit(pixels)
    assert unit.shape == (1, 3, 1, 1)
    torch.testing.assert_close(unit.flatten(), torch.tensor([-1.0, -0.5 / 127.5, 1.0]))
    np.testing.assert_array_equal(to_uint8(unit), pixels)


def test_bicubic_keeps_constants_and_leaves_full_resolution_alone():
    flat = torch.full((1, 3, 16, 16), 0.3)
    torch.testing.assert_close(bicubic_from_capture(flat, torch.tensor([4])), flat)
    noise = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(bicubic_from_capture(noise, torch.tensor([1])), noise)
    smoothed = bicubic_from_capture(noise, torch.tensor([4]))
    assert smoothed.std() < 0.6 * noise.std()


def test_an_untrained_normaliser_is_bicubic_and_the_ablation_ignores_identity():
    upsampled = torch.rand(2, 3, 112, 112) * 2 - 1
    identity = torch.randn(2, 5)
    torch.testing.assert_close(Normaliser(5)(upsampled, identity), upsampled)  # zero-initialised residual
    ablation = Normaliser(5, use_identity=False)
    torch.nn.init.normal_(ablation.decoder.film.weight)
    torch.nn.init.normal_(ablation.decoder.out.weight)
    torch.testing.assert_close(ablation(upsampled, identity), ablation(upsampled, -3 * identity))


def test_training_lowers_the_loss_on_a_tiny_task():
    g = torch.Generator().manual_seed(0)
    low = F.interpolate(torch.rand(6, 3, 28, 28, generator=g) * 2 - 1, size=(112, 112), mode="bilinear")
    factors = torch.full((6,), 4)
    high = bicubic_from_capture(low, factors) + 0.3  # a learnable residual: a brightness offset
    start = F.l1_loss(bicubic_from_capture(low, factors), high).item()
    model, losses = train_normaliser(low, high, factors, lambda x: x.mean(dim=(2, 3)), 3,
                                     NormaliserConfig(steps=40, batch_size=4, lr=5e-3))
    with torch.no_grad():
        end = F.l1_loss(model(bicubic_from_capture(low, factors), low.mean(dim=(2, 3))), high).item()
    assert start == pytest.approx(0.3, abs=1e-5)
    assert len(losses) == 40 and end < 0.5 * start

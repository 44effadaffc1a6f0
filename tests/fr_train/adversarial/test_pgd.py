"""L-inf PGD against a linear objective, whose optimum is known in closed form: x + radius * sign(w)."""

from __future__ import annotations

import torch

from fr_train.adversarial.pgd import PIXEL_SCALE, pgd_linf

W = torch.tensor([[[[0.5, -2.0], [1.0, -0.25]]]])  # one 1 x 2 x 2 image's weights


def _dot(x: torch.Tensor) -> torch.Tensor:
    return (x * W).sum(dim=(1, 2, 3))


def test_pgd_reaches_the_sign_of_the_gradient_corner():
    images = torch.tensor([[[[0.1, -0.2], [0.0, 0.3]]], [[[-0.4, 0.5], [0.2, 0.0]]]])
    eps = 8 / 255
    got = pgd_linf(_dot, images, eps, steps=10, step_ratio=0.25, generator=torch.Generator().manual_seed(0))
    expected = images + PIXEL_SCALE * eps * torch.sign(W)  # 16/255 in normalised units, towards sign(w)
    assert torch.allclose(got, expected, atol=1e-6)


def test_per_image_eps_and_eps_zero_leave_images_alone():
    images = torch.zeros(2, 1, 2, 2)
    got = pgd_linf(_dot, images, torch.tensor([0.0, 4 / 255]), steps=10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(got[0], images[0])
    assert torch.allclose(got[1], PIXEL_SCALE * 4 / 255 * torch.sign(W[0]), atol=1e-6)
    assert pgd_linf(_dot, images, 0.0, steps=10) is images  # all zero: the very same tensor


def test_the_attack_stays_in_the_valid_pixel_range():
    images = torch.full((1, 1, 2, 2), 0.99)
    got = pgd_linf(_dot, images, 8 / 255, steps=10, generator=torch.Generator().manual_seed(2))
    # towards +: capped at 1; towards -: the full radius
    expected = torch.where(W > 0, torch.tensor(1.0), 0.99 - PIXEL_SCALE * 8 / 255)
    assert torch.allclose(got, expected, atol=1e-6) and float(got.max()) <= 1.0


def test_fewer_steps_than_needed_stop_short_of_the_corner():
    images = torch.zeros(1, 1, 2, 2)
    got = pgd_linf(_dot, images, 8 / 255, steps=1, step_ratio=0.25, generator=torch.Generator().manual_seed(3))
    # one step of radius / 4 from a random start inside the ball cannot reach every corner coordinate
    assert not torch.allclose(got, PIXEL_SCALE * 8 / 255 * torch.sign(W), atol=1e-6)

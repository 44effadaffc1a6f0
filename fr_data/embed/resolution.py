"""Image-based effective-resolution estimate: how much of an image's frequency band carries detail.

Method (spectral cut-off). A face crop that was downsampled by a factor ``s`` and upsampled back to its
frame holds (almost) no energy above ``1/s`` of the Nyquist frequency. So we ask, for each image: what is
the *largest* downsample factor ``d`` whose ideal low-pass (keeping frequencies ``max(|fx|, |fy|) <=
nyquist / d``, the pass band of separable resampling) leaves the image nearly unchanged? Nearly unchanged
means: the energy it removes is at most ``tolerance`` times the energy that the coarsest considered
low-pass (``max_factor``) removes. The estimate is ``1 / d`` in ``[1 / max_factor, 1]``; 1 = full
resolution.

Steps, batched in torch on any device:

1. grey = ITU-R BT.601 luma of the RGB image (any affine intensity scale: the measure is a ratio);
2. subtract the mean, apply a 2-D Hann window (removes the edge discontinuity that would otherwise show as
   broadband high-frequency energy), take the power spectrum ``|FFT|^2``;
3. ``rho = max(|fx|, |fy|) / 0.5`` is each frequency's position relative to Nyquist; ``C(r)`` = energy
   with ``rho > r``; reference ``C(1 / max_factor)``;
4. the estimate is the smallest ``r`` with ``C(r) <= tolerance * C(1 / max_factor)``.

Calibration: for a pure power-law spectrum (amplitude ~ 1/f, typical of natural images) downsampled by
``s`` the estimate is ``(1/s) * (s / max_factor) ** tolerance``, i.e. a little under the truth (0.87 at
full resolution with the defaults); flatter (noise-like) spectra come out closer to ``1/s``. The ranking
of resolution losses of one image is exact in expectation; across images it depends on content only
through the shape of the spectrum, not its amplitude. Flat images (no energy above ``1/max_factor`` of
Nyquist) are reported at the lowest level ``1 / max_factor``: with no detail they cannot be told from an
infinitely blurred image. JPEG blocking and sensor noise add broadband energy and bias the estimate
upwards; ``tolerance`` absorbs a little of it.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["DEFAULT_MAX_FACTOR", "DEFAULT_TOLERANCE", "estimate_resolution", "estimate_resolution_np"]

DEFAULT_MAX_FACTOR = 16.0
DEFAULT_TOLERANCE = 0.05
_LUMA = (0.299, 0.587, 0.114)


def estimate_resolution(images: torch.Tensor, *, max_factor: float = DEFAULT_MAX_FACTOR,
                        tolerance: float = DEFAULT_TOLERANCE) -> torch.Tensor:
    """Estimate the effective resolution of a batch of images (see the module docstring).

    Args:
        images: ``(B, 3, H, W)`` RGB or ``(B, 1, H, W)`` / ``(B, H, W)`` grey images, any value range.
        max_factor: the coarsest downsample factor considered; the lowest possible estimate is its inverse.
        tolerance: share of the reference high-frequency energy a low-pass may remove and still count as
            leaving the image unchanged.

    Returns:
        float32 tensor ``(B,)`` in ``[1 / max_factor, 1]`` on the input's device; 1 = full resolution.
    """
    if max_factor <= 1 or not 0 < tolerance < 1:
        raise ValueError(f"need max_factor > 1 and 0 < tolerance < 1, got {max_factor}, {tolerance}")
    grey = _grey(images)
    power = _power_spectrum(grey)
    b, h, w = power.shape
    rho, order = _chebyshev_radius(h, w, power.device)
    energy_above = torch.cumsum(power.reshape(b, -1)[:, order], dim=1)  # rho descending
    rho_desc = rho[order]
    n_above_ref = int(torch.count_nonzero(rho_desc > 1.0 / max_factor))
    reference = energy_above[:, n_above_ref - 1]
    # first position where the removed energy exceeds the budget: everything above that rho is removable
    budget = (tolerance * reference).unsqueeze(1)
    first = torch.searchsorted(energy_above.contiguous(), budget.contiguous(), right=True).squeeze(1)
    first = first.clamp(max=n_above_ref - 1)
    estimate = rho_desc[first]
    # no detail relative to the raw image energy (Parseval: sum |FFT|^2 = H W sum x^2): a flat image
    flat = reference <= 1e-9 * h * w * grey.square().sum(dim=(1, 2))
    estimate = torch.where(flat, torch.full_like(estimate, 1.0 / max_factor), estimate)
    return estimate.clamp(1.0 / max_factor, 1.0).float()


def estimate_resolution_np(image: np.ndarray, **kwargs: float) -> float:
    """Single-image convenience wrapper: ``image`` is ``(H, W)`` grey or ``(H, W, 3)`` RGB (any dtype)."""
    tensor = torch.tensor(np.asarray(image), dtype=torch.float32)
    tensor = tensor.permute(2, 0, 1) if tensor.ndim == 3 else tensor.unsqueeze(0)
    return float(estimate_resolution(tensor.unsqueeze(0), **kwargs)[0])


def _grey(images: torch.Tensor) -> torch.Tensor:
    """``(B, H, W)`` float32 luma of ``(B, 3, H, W)``, ``(B, 1, H, W)`` or ``(B, H, W)`` input."""
    x = images.float()
    if x.ndim == 3:
        return x
    if x.ndim != 4 or x.shape[1] not in (1, 3):
        raise ValueError(f"expected (B, 3|1, H, W) or (B, H, W) images, got shape {tuple(images.shape)}")
    if x.shape[1] == 1:
        return x[:, 0]
    weights = torch.tensor(_LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x * weights).sum(dim=1)


def _power_spectrum(grey: torch.Tensor) -> torch.Tensor:
    """Power spectrum of the mean-removed, Hann-windowed images, ``(B, H, W)``."""
    _, h, w = grey.shape
    window = torch.outer(torch.hann_window(h, periodic=False, device=grey.device),
                         torch.hann_window(w, periodic=False, device=grey.device))
    centred = grey - grey.mean(dim=(1, 2), keepdim=True)
    spectrum = torch.fft.fft2(centred * window)
    return spectrum.real.square() + spectrum.imag.square()


def _chebyshev_radius(h: int, w: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-frequency ``max(|fx|, |fy|) / Nyquist`` (flattened) and the order sorting it descending."""
    fy = torch.fft.fftfreq(h, device=device).abs() / 0.5
    fx = torch.fft.fftfreq(w, device=device).abs() / 0.5
    rho = torch.maximum(fy[:, None], fx[None, :]).reshape(-1)
    order = torch.argsort(rho, descending=True, stable=True)
    return rho, order

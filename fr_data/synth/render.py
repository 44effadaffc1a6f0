"""Vectorised ray-casting renderer for synthetic heads (orthographic camera, numpy only).

The head is a generalised ellipsoid whose horizontal cross-section at height ``y`` is an ellipse with
half-axes ``a(y)`` (width) and ``c(y)`` (depth) following a superellipse vertical profile with a narrowing
jaw. A nose (ellipsoid) protrudes from the front and a cylindrical neck sits below. The head is rotated by
the yaw angle about the vertical axis and every pixel's viewing ray is intersected with the rotated
surfaces, so far-side features foreshorten and disappear behind the head exactly as in a 3-D projection;
the nose occludes the far cheek and shapes the profile silhouette. Surface points are mapped to
head-surface coordinates ``(theta, phi)`` and shaded with a Lambertian light.

Image coordinates: x to the right, y up, both in [-1, 1] across the frame; the camera looks down -z.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fr_data.synth.identity import Identity
from fr_data.synth.variation import Variations

__all__ = ["IMAGE_SIZE", "Surface", "cast_surface", "prepare_texture", "render"]

IMAGE_SIZE = 112
#: Head units to image units at face_scale 1 (a tight, ArcFace-like crop).
ZOOM = 1.45
#: Image-space height of the head centre (places the eyes a little above the middle, as aligned crops do).
CENTRE_Y = -0.12

_GRID = ((np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5) / IMAGE_SIZE * 2 - 1)
_NECK_SKIN = np.float32(0.9)


@dataclass
class _Hit:
    """Ray hits of one surface: depth ``t`` (larger = nearer), head-space point and normal."""

    mask: np.ndarray
    t: np.ndarray
    hx: np.ndarray
    hz: np.ndarray
    normal: tuple[np.ndarray, np.ndarray, np.ndarray]  # head-space (nx, ny, nz), unnormalised


def prepare_texture(texture: np.ndarray) -> np.ndarray:
    """Upsample a ``build_texture`` output 2x (linear) and pad one wrapped column on each side.

    Rendering then needs a single nearest-texel gather per pixel (half-pixel texels: no visible blocks).
    """
    rows = _upsample2(texture, np.concatenate([texture[:1], texture[:-1]]),
                      np.concatenate([texture[1:], texture[-1:]]), axis=0)
    big = _upsample2(rows, np.roll(rows, 1, axis=1), np.roll(rows, -1, axis=1), axis=1)
    return np.ascontiguousarray(np.concatenate([big[:, -1:], big, big[:, :1]], axis=1), dtype=np.float32)


def _upsample2(x: np.ndarray, before: np.ndarray, after: np.ndarray, axis: int) -> np.ndarray:
    """Linear 2x upsampling along ``axis`` given the neighbours of every sample (half-pixel centred)."""
    even = np.float32(0.75) * x + np.float32(0.25) * before
    odd = np.float32(0.75) * x + np.float32(0.25) * after
    return np.stack([even, odd], axis=axis + 1).reshape(
        *x.shape[:axis], 2 * x.shape[axis], *x.shape[axis + 1:])


@dataclass
class Surface:
    """What every pixel sees: face visibility, head-surface coordinates and the camera-space normal parts.

    Attributes:
        face: ``(M, H, W)`` bool, the pixel sees the head or the nose.
        theta: longitude of the seen point (0 = front of the face; positive yaw hides positive theta).
        phi: height of the seen point (``y / B``).
        normal: head-space normal ``(nx, ny, nz)`` of the seen point (unnormalised).
        sin_yaw, cos_yaw: ``(M, 1, 1)`` yaw rotation.
        nose, nose_vis: the nose hits and where the nose is the visible surface.
        x, y: head-centred camera coordinates of every pixel.
    """

    face: np.ndarray
    theta: np.ndarray
    phi: np.ndarray
    normal: list[np.ndarray]
    sin_yaw: np.ndarray
    cos_yaw: np.ndarray
    nose: _Hit
    nose_vis: np.ndarray
    x: np.ndarray
    y: np.ndarray


def cast_surface(ident: Identity, var: Variations) -> Surface:
    """Intersect every pixel's viewing ray with the yawed head and nose (nearest hit wins)."""
    x, y = _camera_coords(var)
    yaw = np.radians(var.yaw).astype(np.float32)[:, None, None]
    sn, cs = np.sin(yaw), np.cos(yaw)
    a, c, jaw_w = _head_profile(ident, y)
    head = _cast_head(ident, x, y, a, c, jaw_w, sn, cs)
    nose = _cast_nose(ident, x, y, sn, cs)
    nose_vis = nose.mask & (~head.mask | (nose.t > head.t))
    hx = np.where(nose_vis, nose.hx, head.hx)
    hz = np.where(nose_vis, nose.hz, head.hz)
    normal = [np.where(nose_vis, n_nose, n_head) for n_nose, n_head in zip(nose.normal, head.normal)]
    theta = np.arctan2(hx / a, hz / c)
    return Surface(head.mask | nose_vis, theta, y / np.float32(ident.head_b), normal, sn, cs, nose, nose_vis,
                   x, y)


def render(ident: Identity, texture: np.ndarray, var: Variations) -> np.ndarray:
    """Render ``len(var)`` images of one identity.

    Args:
        ident: the identity's geometry.
        texture: its ``build_texture`` output passed through ``prepare_texture``.
        var: per-image variation (yaw, roll, face_scale, shift, light, tint, background are used).

    Returns:
        float32 array ``(M, IMAGE_SIZE, IMAGE_SIZE, 3)`` on the 0-255 scale (not clipped).
    """
    surf = cast_surface(ident, var)
    albedo = _sample_texture(texture, surf.theta, surf.phi)
    shade = (_shade(surf.normal, surf.sin_yaw, surf.cos_yaw, var) * albedo[..., 3]
             * _nostrils(ident, surf.nose, surf.y, surf.nose_vis))
    neck, neck_shade = _cast_neck(ident, surf.x, surf.y, surf.sin_yaw, var)
    neck &= ~surf.face
    shade = np.where(neck, neck_shade, shade)
    albedo = np.where(neck[..., None], ident.skin.astype(np.float32) * _NECK_SKIN, albedo[..., :3])
    tint = var.tint.astype(np.float32)[:, None, None, :] * np.float32(255)
    colour = albedo * (shade[..., None] * tint)
    return np.where((surf.face | neck)[..., None], colour, _background(var) * np.float32(255))


def _camera_coords(var: Variations) -> tuple[np.ndarray, np.ndarray]:
    """Map the pixel grid through shift, roll and scale into head-centred camera coordinates."""
    roll = np.radians(var.roll).astype(np.float32)[:, None, None]
    scale = (var.face_scale * ZOOM).astype(np.float32)[:, None, None]
    u = _GRID[None, None, :] - var.shift[:, 0].astype(np.float32)[:, None, None]
    v = -_GRID[None, :, None] - (var.shift[:, 1].astype(np.float32)[:, None, None] + np.float32(CENTRE_Y))
    cr, sr = np.cos(roll), np.sin(roll)
    return (cr * u + sr * v) / scale, (cr * v - sr * u) / scale


def _head_profile(ident: Identity, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Half-width ``a(y)``, half-depth ``c(y)`` and the jaw factor at every pixel row."""
    k = np.float32(ident.squareness)
    u = np.minimum(np.abs(y) / np.float32(ident.head_b), np.float32(1))
    w = np.power(np.maximum(1 - np.power(u, k), 0), 1 / k)
    jaw = 1 - np.float32(ident.jaw) * np.where(y < 0, u * u, 0)
    w = np.maximum(w, np.float32(1e-3))
    return np.float32(ident.head_a) * w * jaw, np.float32(ident.head_c) * w, jaw


def _cast_head(ident: Identity, x, y, a, c, jaw, sn, cs) -> _Hit:
    ia2, ic2 = 1 / (a * a), 1 / (c * c)
    qa = sn * sn * ia2 + cs * cs * ic2
    qb = 2 * x * sn * cs * (ic2 - ia2)
    qc = x * x * (cs * cs * ia2 + sn * sn * ic2) - 1
    disc = qb * qb - 4 * qa * qc
    mask = (disc > 0) & (np.abs(y) < np.float32(ident.head_b * 0.999))
    t = (np.sqrt(np.maximum(disc, 0)) - qb) / (2 * qa)
    hx, hz = x * cs - t * sn, x * sn + t * cs
    b, k = np.float32(ident.head_b), np.float32(ident.squareness)
    u = np.minimum(np.abs(y) / b, np.float32(0.999))
    ny = np.sign(y) * np.power(u, k - 1) * np.power(1 - np.power(u, k), 2 / k - 1) / b
    normal = (hx / np.square(np.float32(ident.head_a) * jaw), ny, hz / np.float32(ident.head_c) ** 2)
    return _Hit(mask, t, hx, hz, normal)


def _cast_nose(ident: Identity, x, y, sn, cs) -> _Hit:
    b = ident.head_b
    yn = np.float32(ident.nose_y * b)
    nw, nh, nd = (np.float32(v) for v in (ident.nose_width, ident.nose_length, ident.nose_depth))
    zn = np.float32(_depth_at(ident, ident.nose_y * b) - 0.4 * ident.nose_depth)
    iw2, id2 = 1 / (nw * nw), 1 / (nd * nd)
    xz = x * sn - zn
    qa = sn * sn * iw2 + cs * cs * id2
    qb = 2 * (-x * cs * sn * iw2 + xz * cs * id2)
    qc = np.square(x * cs) * iw2 + xz * xz * id2 + np.square((y - yn) / nh) - 1
    disc = qb * qb - 4 * qa * qc
    t = (np.sqrt(np.maximum(disc, 0)) - qb) / (2 * qa)
    hx, hz = x * cs - t * sn, x * sn + t * cs
    normal = (hx * iw2, (y - yn) / (nh * nh), (hz - zn) * id2)
    return _Hit(disc > 0, t, hx, hz, normal)


def _depth_at(ident: Identity, y: float) -> float:
    u = min(abs(y) / ident.head_b, 1.0)
    return ident.head_c * (1 - u**ident.squareness) ** (1 / ident.squareness)


def _nostrils(ident: Identity, nose: _Hit, y: np.ndarray, nose_vis: np.ndarray) -> np.ndarray:
    """Darkening factor of the nostrils (1 elsewhere)."""
    u = np.abs(nose.hx) / np.float32(ident.nose_width)
    v = (y - np.float32(ident.nose_y * ident.head_b)) / np.float32(ident.nose_length)
    d2 = np.square((u - 0.45) / 0.28) + np.square((v + 0.78) / 0.22)
    return 1 - np.float32(0.7) * np.clip(1 - d2, 0, 1) * nose_vis


def _sample_texture(texture: np.ndarray, theta: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """Nearest-texel lookup of a ``prepare_texture`` output at surface coordinates."""
    height, width = texture.shape[0], texture.shape[1] - 2
    col = (theta * np.float32(1 / np.pi) + 1) * np.float32(width / 2) + np.float32(1)
    row = np.clip((1 - phi) * np.float32(height / 2), 0, height - 1)
    index = row.astype(np.int32) * (width + 2) + col.astype(np.int32)
    return np.take(texture.reshape(-1, texture.shape[-1]), index, axis=0)


def _shade(normal, sn, cs, var: Variations) -> np.ndarray:
    """Lambertian shading of head-space normals rotated into the camera frame."""
    nx, ny, nz = normal
    cx, cz = nx * cs + nz * sn, nz * cs - nx * sn
    inv = 1 / np.sqrt(cx * cx + ny * ny + cz * cz + np.float32(1e-12))
    light = var.light.astype(np.float32)
    lam = (cx * light[:, 0, None, None] + ny * light[:, 1, None, None] + cz * light[:, 2, None, None]) * inv
    ambient = var.ambient.astype(np.float32)[:, None, None]
    diffuse = var.diffuse.astype(np.float32)[:, None, None]
    return ambient + diffuse * np.maximum(lam, 0)


def _cast_neck(ident: Identity, x, y, sn, var: Variations) -> tuple[np.ndarray, np.ndarray]:
    """Visibility and shading of a vertical cylindrical neck set slightly behind the head centre."""
    radius = np.float32(ident.head_a * 0.62)
    z0 = np.float32(-0.15 * ident.head_c)
    nx = (x - z0 * sn) / radius
    mask = (np.abs(nx) < 1) & (y < np.float32(-0.3 * ident.head_b))
    nz = np.sqrt(np.maximum(1 - nx * nx, 0))
    light = var.light.astype(np.float32)
    lam = nx * light[:, 0, None, None] + nz * light[:, 2, None, None]
    ambient = var.ambient.astype(np.float32)[:, None, None]
    diffuse = var.diffuse.astype(np.float32)[:, None, None]
    return mask, (ambient + diffuse * np.maximum(lam, 0)) * np.float32(0.85)


def _background(var: Variations) -> np.ndarray:
    grad = 1 + var.bg_gradient.astype(np.float32)[:, None, None, None] * _GRID[None, :, None, None]
    return var.background.astype(np.float32)[:, None, None, :] * grad

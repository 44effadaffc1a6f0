"""Per-identity surface texture: albedo (RGB) and an ambient-occlusion factor on the head surface.

The texture is a grid over head-surface coordinates (longitude ``theta`` in [-pi, pi) along the width,
height ``phi`` in [1, -1] down the rows). Faces are painted on it once per identity, then every image of
that identity samples it through the renderer's ray casting, so features foreshorten and disappear with
yaw exactly as surface markings do.
"""

from __future__ import annotations

import numpy as np

from fr_data.synth.identity import Identity

__all__ = ["TEXTURE_HEIGHT", "TEXTURE_WIDTH", "build_texture"]

TEXTURE_HEIGHT = 128
TEXTURE_WIDTH = 256

_THETA = ((np.arange(TEXTURE_WIDTH, dtype=np.float32) + 0.5) / TEXTURE_WIDTH * 2 - 1) * np.float32(np.pi)
_PHI = 1 - (np.arange(TEXTURE_HEIGHT, dtype=np.float32) + 0.5) / TEXTURE_HEIGHT * 2
_SCLERA = np.array([0.86, 0.84, 0.80], np.float32)


def build_texture(ident: Identity) -> np.ndarray:
    """Paint the identity's face on a ``(TEXTURE_HEIGHT, TEXTURE_WIDTH, 4)`` float32 texture.

    Channels 0-2 are the albedo, channel 3 multiplies the shading (eye sockets, ear folds, under the nose).
    Local features are painted inside their bounding window only.
    """
    tex = np.empty((TEXTURE_HEIGHT, TEXTURE_WIDTH, 4), np.float32)
    tex[..., :3] = _skin(ident, _THETA[None, :], _PHI[:, None])
    tex[..., 3] = 1
    for t0, p0, r in ident.moles:
        view, th, ph = _window(tex, t0, p0, r, r * 1.3)
        view[..., :3] *= (1 - 0.55 * _blob(th, ph, t0, p0, r, r * 1.3))[..., None]
    _paint_ears(ident, tex)
    _paint_beard(ident, tex)
    _paint_hair(ident, tex)
    for side in (-1.0, 1.0):
        _paint_eye(ident, side, tex)
    _paint_mouth(ident, tex)
    p0 = ident.nose_y - ident.nose_length * 0.9 / ident.head_b
    view, th, ph = _window(tex, 0.0, p0, ident.nose_width * 1.6, 0.04)
    view[..., 3] *= 1 - 0.25 * _blob(th, ph, 0.0, p0, ident.nose_width * 1.6, 0.04)
    return tex


def _window(tex: np.ndarray, t0: float, p0: float, wt: float, wp: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The texture view covering ``theta in t0 +- wt``, ``phi in p0 +- wp``, and its coordinate grids."""
    c0 = int(np.searchsorted(_THETA, t0 - wt))
    c1 = int(np.searchsorted(_THETA, t0 + wt))
    r0 = int(np.searchsorted(-_PHI, -(p0 + wp)))
    r1 = int(np.searchsorted(-_PHI, -(p0 - wp)))
    return tex[r0:r1, c0:c1], _THETA[None, c0:c1], _PHI[r0:r1, None]


def _blob(th: np.ndarray, ph: np.ndarray, t0: float, p0: float, wt: float, wp: float) -> np.ndarray:
    """Smooth elliptical bump: 1 at (t0, p0), 0 outside the ellipse with half-axes (wt, wp)."""
    d2 = np.square((th - t0) / wt) + np.square((ph - p0) / wp)
    return np.square(np.clip(1 - d2, 0, 1))


def _mix(view: np.ndarray, mask: np.ndarray, colour: np.ndarray) -> None:
    """Blend ``colour`` into the albedo channels of ``view`` with weight ``mask``."""
    albedo = view[..., :3]
    albedo += mask[..., None] * (np.asarray(colour, np.float32) - albedo)


def _skin(ident: Identity, th: np.ndarray, ph: np.ndarray) -> np.ndarray:
    field = np.zeros((TEXTURE_HEIGHT, TEXTURE_WIDTH, 3), np.float32)
    for (ft, fp, phase, amp), tint in zip(ident.texture_modes, ident.texture_tint):
        wave = amp * np.cos(ft * th + fp * ph + phase)
        field += wave[..., None] * tint
    field *= ident.texture_strength / np.sqrt(len(ident.texture_modes) / 2)
    return ident.skin * (1 + field)


def _paint_hair(ident: Identity, tex: np.ndarray) -> None:
    front, side, back = ident.hairline
    lowest = min(front, side, back) - 0.04
    rows = int(np.searchsorted(-_PHI, -lowest))
    view, th, ph = tex[:rows], _THETA[None, :], _PHI[:rows, None]
    a = np.abs(th - ident.hair_part)
    t_side = np.clip((a - 0.5) / 1.0, 0, 1)
    t_back = np.clip((np.abs(th) - 1.75) / 0.6, 0, 1)
    line = front + (side - front) * t_side * t_side * (3 - 2 * t_side)
    line = line + (back - line) * t_back * t_back * (3 - 2 * t_back)
    mask = np.clip((ph - line) / 0.035, 0, 1)
    streaks = 1 + 0.18 * np.cos(th * 23 + 3 * np.sin(ph * 7 + ident.hair_part * 5))
    _mix(view, mask, ident.hair * streaks[..., None])


def _paint_beard(ident: Identity, tex: np.ndarray) -> None:
    if ident.beard <= 0:
        return
    top = ident.mouth_phi + 0.1 + 0.2
    view, th, ph = _window(tex, 0.0, (top - 1) / 2, 1.45, (top + 1) / 2 + 0.02)
    top = ident.mouth_phi + 0.1 + 0.2 * np.square(th / 1.2)
    mask = np.clip((top - ph) / 0.06, 0, 1) * np.clip((1.45 - np.abs(th)) / 0.15, 0, 1)
    mask *= 1 - _blob(th, ph, 0.0, ident.mouth_phi, ident.mouth_width * 1.05, ident.lip * 1.3)
    grain = 0.85 + 0.15 * np.cos(th * 41 + 2 * np.sin(ph * 29)) * np.cos(ph * 37 + 2 * np.sin(th * 23))
    _mix(view, ident.beard * mask * grain, ident.hair * 0.8)


def _paint_eye(ident: Identity, side: float, tex: np.ndarray) -> None:
    t0, p0 = side * ident.eye_theta, ident.eye_phi
    w, h = ident.eye_width, ident.eye_height
    reach = max(h * 3.0, ident.brow_gap + ident.brow_thickness + abs(ident.brow_tilt) * w * 1.5)
    view, th, ph = _window(tex, t0, p0, w * 1.6, reach + 0.02)
    view[..., 3] *= 1 - 0.3 * _blob(th, ph, t0, p0 + 0.01, w * 1.5, h * 3.0)
    sclera = np.clip((1 - np.square((th - t0) / w) - np.square((ph - p0) / h)) * 6, 0, 1)
    lid = np.clip((1.25 - np.square((th - t0) / (w * 1.12)) - np.square((ph - p0) / (h * 1.5))) * 4, 0, 1)
    _mix(view, lid * (1 - sclera) * 0.7, np.array([0.12, 0.08, 0.07]))
    _mix(view, sclera, _SCLERA)
    r2 = np.square(th - t0) + np.square(ph - p0)
    iris_r = h * 0.95
    _mix(view, np.clip((1 - r2 / iris_r**2) * 5, 0, 1) * sclera, ident.iris)
    _mix(view, np.clip((1 - r2 / (iris_r * 0.45) ** 2) * 5, 0, 1) * sclera, np.array([0.03, 0.03, 0.03]))
    brow_p = p0 + ident.brow_gap + side * ident.brow_tilt * (th - t0)
    brow = _blob(th, ph, t0 + side * 0.02, 0, w * 1.35, 1.0) * np.clip(
        1 - np.abs(ph - brow_p) / ident.brow_thickness, 0, 1)
    _mix(view, np.clip(brow * 2.5, 0, 1) * 0.9, ident.hair * 0.75)


def _paint_mouth(ident: Identity, tex: np.ndarray) -> None:
    p0, w, lip = ident.mouth_phi, ident.mouth_width, ident.lip
    view, th, ph = _window(tex, 0.0, p0 - lip * 0.6, w * 1.05, lip * 2.6)
    lips = np.clip((1 - np.square(th / w) - np.square((ph - p0) / lip)) * 4, 0, 1)
    _mix(view, lips, ident.lip_colour)
    line = np.clip((1 - np.square(th / (w * 0.97)) - np.square((ph - p0 - lip * 0.1) / (lip * 0.18))) * 3,
                   0, 1)
    _mix(view, line * 0.85, np.array([0.1, 0.04, 0.04]))
    view[..., 3] *= 1 - 0.2 * _blob(th, ph, 0.0, p0 - lip * 1.6, w * 0.6, lip * 0.8)


def _paint_ears(ident: Identity, tex: np.ndarray) -> None:
    s = ident.ear_size
    for side in (-1.0, 1.0):
        t0 = side * (np.pi / 2 + 0.05)
        view, th, ph = _window(tex, t0, ident.ear_phi, s * 0.55, s)
        ring = np.clip(_blob(th, ph, t0, ident.ear_phi, s * 0.55, s)
                       - 0.8 * _blob(th, ph, t0, ident.ear_phi, s * 0.35, s * 0.7), 0, 1)
        view[..., 3] *= 1 - 0.45 * ring
        _mix(view, ring * 0.3, ident.skin * np.array([0.9, 0.75, 0.72]))

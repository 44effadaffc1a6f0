"""Synthetic identities: per-identity appearance drawn from one of four demographic-like group priors.

An :class:`Identity` holds everything that stays fixed across the images of one person: head shape, skin
and hair colours, eye/brow/nose/mouth geometry, hairline, beard and a random skin texture (Fourier modes
plus moles). Face-feature positions live in head-surface coordinates: longitude ``theta`` (radians, 0 at the
front of the face, +-pi/2 at the ears) and height ``phi = y / B`` in [-1, 1] (chin to crown).

Groups differ in their priors (skin tone, hair and iris colour palettes, face width, nose and lip shape), not
in how identities are rendered, so a recogniser trained on an unbalanced mix shows realistic group gaps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["GroupPrior", "GROUPS", "GROUP_SHARES", "Identity", "sample_identity", "identity_rng", "identity_group"]

# Shared colour palettes (linear-ish RGB in [0, 1]); group priors weight them differently.
HAIR_PALETTE = np.array([
    [0.05, 0.04, 0.04],  # black
    [0.18, 0.11, 0.07],  # dark brown
    [0.36, 0.23, 0.13],  # brown
    [0.74, 0.60, 0.36],  # blond
    [0.52, 0.22, 0.10],  # red
    [0.58, 0.57, 0.55],  # grey
], dtype=np.float32)
IRIS_PALETTE = np.array([
    [0.12, 0.07, 0.04],  # dark brown
    [0.30, 0.18, 0.08],  # brown
    [0.38, 0.33, 0.15],  # hazel
    [0.22, 0.38, 0.22],  # green
    [0.25, 0.40, 0.62],  # blue
    [0.42, 0.46, 0.50],  # grey
], dtype=np.float32)


@dataclass(frozen=True)
class GroupPrior:
    """Appearance prior of one demographic-like group.

    Attributes:
        skin: mean skin albedo (RGB).
        skin_std: per-channel standard deviation of the skin albedo around ``skin``.
        hair_probs: probabilities over ``HAIR_PALETTE``.
        iris_probs: probabilities over ``IRIS_PALETTE``.
        width: mean face width-to-height ratio (A / B).
        nose_width: mean nose half-width (head units).
        nose_depth: mean nose protrusion (head units).
        lip: mean lip half-thickness (in phi units).
        beard_prob: probability that an identity has a beard.
    """

    skin: tuple[float, float, float]
    skin_std: float
    hair_probs: tuple[float, ...]
    iris_probs: tuple[float, ...]
    width: float
    nose_width: float
    nose_depth: float
    lip: float
    beard_prob: float


GROUPS: tuple[GroupPrior, ...] = (
    GroupPrior((0.86, 0.70, 0.60), 0.035, (0.05, 0.25, 0.30, 0.22, 0.10, 0.08),
               (0.05, 0.20, 0.20, 0.15, 0.30, 0.10), 0.72, 0.075, 0.13, 0.060, 0.30),
    GroupPrior((0.80, 0.63, 0.46), 0.035, (0.70, 0.22, 0.05, 0.0, 0.0, 0.03),
               (0.55, 0.35, 0.10, 0.0, 0.0, 0.0), 0.79, 0.085, 0.10, 0.065, 0.15),
    GroupPrior((0.63, 0.45, 0.32), 0.035, (0.45, 0.40, 0.10, 0.0, 0.02, 0.03),
               (0.45, 0.35, 0.15, 0.05, 0.0, 0.0), 0.75, 0.085, 0.125, 0.07, 0.35),
    GroupPrior((0.40, 0.27, 0.19), 0.030, (0.85, 0.12, 0.0, 0.0, 0.0, 0.03),
               (0.80, 0.20, 0.0, 0.0, 0.0, 0.0), 0.77, 0.105, 0.11, 0.085, 0.25),
)
#: Share of identities drawn from each group (deliberately unbalanced, as in real web-scraped sets).
GROUP_SHARES: tuple[float, ...] = (0.40, 0.25, 0.20, 0.15)

NUM_TEXTURE_MODES = 10
MAX_MOLES = 5


@dataclass(frozen=True)
class Identity:
    """Everything that is constant across the images of one synthetic person (see module docstring)."""

    identity: int
    group: int
    head_a: float  # half-width (head units, B = head_b)
    head_b: float  # half-height
    head_c: float  # half-depth
    squareness: float  # superellipse exponent of the vertical profile (2 = ellipsoid)
    jaw: float  # narrowing of the lower face
    skin: np.ndarray  # (3,)
    texture_strength: float
    texture_modes: np.ndarray  # (K, 4): freq_theta, freq_phi, phase, amplitude
    texture_tint: np.ndarray  # (K, 3): per-mode colour weights
    moles: np.ndarray  # (n, 3): theta, phi, radius
    hair: np.ndarray  # (3,)
    hairline: tuple[float, float, float]  # phi of the hairline at front, side, back
    hair_part: float  # theta offset of the hairline's highest point
    beard: float  # beard density in [0, 1]
    eye_theta: float
    eye_phi: float
    eye_width: float
    eye_height: float
    iris: np.ndarray  # (3,)
    brow_gap: float
    brow_thickness: float
    brow_tilt: float
    nose_y: float  # nose centre height (phi units)
    nose_length: float  # half-length (head units)
    nose_width: float
    nose_depth: float
    mouth_phi: float
    mouth_width: float
    lip: float
    lip_colour: np.ndarray  # (3,)
    ear_phi: float
    ear_size: float


def identity_rng(seed: int, identity: int) -> np.random.Generator:
    """The generator that fixes the appearance of ``identity`` for data-set seed ``seed``."""
    return np.random.default_rng([seed, 0, identity])


def sample_identity(seed: int, identity: int, group: int | None = None) -> Identity:
    """Draw the appearance of one identity, deterministically from ``(seed, identity)``.

    Args:
        seed: data-set seed.
        identity: identity number (train and held-out identities share one numbering).
        group: force a group; by default it is drawn from ``GROUP_SHARES``.
    """
    rng = identity_rng(seed, identity)
    g = int(rng.choice(len(GROUPS), p=GROUP_SHARES))
    group = g if group is None else group
    prior = GROUPS[group]
    shape = _sample_shape(rng, prior)
    colours = _sample_colours(rng, prior)
    features = _sample_features(rng, prior)
    texture = _sample_texture(rng)
    return Identity(identity=identity, group=group, **shape, **colours, **features, **texture)


def _sample_shape(rng: np.random.Generator, prior: GroupPrior) -> dict:
    head_b = float(rng.normal(0.74, 0.03))
    return {
        "head_b": head_b,
        "head_a": float(head_b * np.clip(rng.normal(prior.width, 0.05), 0.6, 0.92)),
        "head_c": float(head_b * np.clip(rng.normal(0.82, 0.05), 0.7, 0.95)),
        "squareness": float(np.clip(rng.normal(2.4, 0.4), 1.8, 3.4)),
        "jaw": float(np.clip(rng.normal(0.28, 0.09), 0.05, 0.5)),
    }


def _sample_colours(rng: np.random.Generator, prior: GroupPrior) -> dict:
    skin = np.clip(np.asarray(prior.skin) + rng.normal(0, prior.skin_std, 3)
                   + rng.normal(0, prior.skin_std), 0.08, 0.97)
    hair = HAIR_PALETTE[rng.choice(len(HAIR_PALETTE), p=prior.hair_probs)]
    hair = np.clip(hair * rng.uniform(0.8, 1.2) + rng.normal(0, 0.02, 3), 0.02, 0.95)
    iris = IRIS_PALETTE[rng.choice(len(IRIS_PALETTE), p=prior.iris_probs)]
    lip = skin * np.array([0.85, 0.58, 0.58]) * rng.uniform(0.8, 1.05)
    return {
        "skin": skin.astype(np.float32),
        "hair": hair.astype(np.float32),
        "iris": np.clip(iris + rng.normal(0, 0.03, 3), 0.02, 0.9).astype(np.float32),
        "lip_colour": np.clip(lip, 0.03, 0.95).astype(np.float32),
        "beard": float(rng.uniform(0.35, 0.9)) if rng.random() < prior.beard_prob else 0.0,
    }


def _sample_features(rng: np.random.Generator, prior: GroupPrior) -> dict:
    front = float(rng.uniform(0.50, 0.72)) if rng.random() > 0.08 else float(rng.uniform(0.85, 0.98))
    eye_phi = float(rng.normal(0.16, 0.035))
    return {
        "hairline": (front, float(front - rng.uniform(0.05, 0.3)), float(rng.uniform(-0.75, 0.05))),
        "hair_part": float(rng.normal(0.0, 0.25)),
        "eye_theta": float(np.clip(rng.normal(0.44, 0.045), 0.32, 0.58)),
        "eye_phi": eye_phi,
        "eye_width": float(np.clip(rng.normal(0.16, 0.02), 0.11, 0.22)),
        "eye_height": float(np.clip(rng.normal(0.052, 0.01), 0.03, 0.08)),
        "brow_gap": float(np.clip(rng.normal(0.12, 0.02), 0.08, 0.18)),
        "brow_thickness": float(np.clip(rng.normal(0.028, 0.008), 0.012, 0.05)),
        "brow_tilt": float(rng.normal(0.0, 0.12)),
        "nose_y": float(eye_phi - np.clip(rng.normal(0.26, 0.04), 0.16, 0.36)),
        "nose_length": float(np.clip(rng.normal(0.15, 0.025), 0.09, 0.22)),
        "nose_width": float(np.clip(rng.normal(prior.nose_width, 0.014), 0.045, 0.15)),
        "nose_depth": float(np.clip(rng.normal(prior.nose_depth, 0.025), 0.05, 0.2)),
        "mouth_phi": float(eye_phi - np.clip(rng.normal(0.56, 0.05), 0.44, 0.7)),
        "mouth_width": float(np.clip(rng.normal(0.34, 0.05), 0.22, 0.48)),
        "lip": float(np.clip(rng.normal(prior.lip, 0.012), 0.035, 0.12)),
        "ear_phi": float(eye_phi - rng.uniform(0.05, 0.2)),
        "ear_size": float(np.clip(rng.normal(0.22, 0.03), 0.14, 0.3)),
    }


def _sample_texture(rng: np.random.Generator) -> dict:
    k = NUM_TEXTURE_MODES
    modes = np.stack([rng.uniform(0.5, 5.0, k) * rng.choice([-1, 1], k), rng.uniform(0.5, 7.0, k),
                      rng.uniform(0, 2 * np.pi, k), rng.uniform(0.3, 1.0, k)], axis=1)
    tint = 1.0 + rng.normal(0, 0.25, (k, 3))
    n_moles = int(rng.integers(0, MAX_MOLES + 1))
    moles = np.stack([rng.uniform(-1.4, 1.4, n_moles), rng.uniform(-0.85, 0.5, n_moles),
                      rng.uniform(0.015, 0.035, n_moles)], axis=1)
    return {
        "texture_strength": float(rng.uniform(0.05, 0.12)),
        "texture_modes": modes.astype(np.float32),
        "texture_tint": tint.astype(np.float32),
        "moles": moles.astype(np.float32),
    }


def identity_group(seed: int, identity: int) -> int:
    """The group of ``identity`` (the first draw of its generator, as in :func:`sample_identity`)."""
    return int(identity_rng(seed, identity).choice(len(GROUPS), p=GROUP_SHARES))

"""Known label and data defects injected into a synthetic data set, with their ground truth.

* **Split identities** (merge candidates): some identities get a second label and part of their images
  are stored under it.
* **Mislabelled images**: the stored label names another identity (half the time one of the same
  group, which is the harder, more realistic confusion).
* **Near-duplicates**: an extra copy of an existing image, re-encoded with tiny pixel changes; a share
  of them is stored under another identity's label (cross-class duplicates).

Everything here is planning on integer arrays, drawn from one generator, so the plan is cheap and
deterministic; :func:`near_duplicate` makes the duplicate's bytes from its source image.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from fr_data.synth.variation import encode_jpeg

__all__ = ["LabelPlan", "plan_labels", "split_images", "plan_mislabels", "DuplicatePlan",
           "plan_duplicates", "near_duplicate"]


@dataclass(frozen=True)
class LabelPlan:
    """Labels of the training identities.

    Attributes:
        primary: ``(N,)`` the main label of each identity.
        secondary: ``(N,)`` the second label of a split identity, -1 for the others.
        label_identity: ``(C,)`` the identity each label belongs to.
    """

    primary: np.ndarray
    secondary: np.ndarray
    label_identity: np.ndarray

    @property
    def num_classes(self) -> int:
        """Number of labels (identities plus split-off labels)."""
        return len(self.label_identity)


def plan_labels(rng: np.random.Generator, num_identities: int, split_rate: float) -> LabelPlan:
    """Give every identity a label, and ``round(split_rate * N)`` of them a second one.

    Label numbers are a random permutation, so split-off labels are not recognisable by their number.
    """
    num_split = int(round(split_rate * num_identities))
    split = np.sort(rng.choice(num_identities, size=num_split, replace=False))
    perm = rng.permutation(num_identities + num_split).astype(np.int64)
    primary = perm[:num_identities]
    secondary = np.full(num_identities, -1, np.int64)
    secondary[split] = perm[num_identities:]
    label_identity = np.empty(num_identities + num_split, np.int64)
    label_identity[primary] = np.arange(num_identities)
    label_identity[perm[num_identities:]] = split
    return LabelPlan(primary, secondary, label_identity)


def split_images(rng: np.random.Generator, identity: np.ndarray, plan: LabelPlan) -> np.ndarray:
    """Stored labels of base images: a split identity's images go 30-50% to its second label.

    Args:
        rng: generator.
        identity: ``(n,)`` true identity of each base image, grouped by identity (ascending).
        plan: the label plan.
    """
    labels = plan.primary[identity].copy()
    bounds = np.searchsorted(identity, np.arange(len(plan.primary) + 1))
    for ident in np.flatnonzero(plan.secondary >= 0):
        rows = np.arange(bounds[ident], bounds[ident + 1])
        if len(rows) < 2:
            continue
        take = max(1, int(round(rng.uniform(0.3, 0.5) * len(rows))))
        labels[rng.choice(rows, size=min(take, len(rows) - 1), replace=False)] = plan.secondary[ident]
    return labels


def _other_identity(rng: np.random.Generator, own: np.ndarray, groups: np.ndarray,
                    same_group_share: float) -> np.ndarray:
    """For each entry of ``own`` pick a different identity, from the same group with some probability."""
    pools = {g: np.flatnonzero(groups == g) for g in np.unique(groups)}
    everyone = np.arange(len(groups))
    out = np.empty(len(own), np.int64)
    for i, ident in enumerate(own):
        pool = pools[groups[ident]] if rng.random() < same_group_share else everyone
        if len(pool) < 2:
            pool = everyone
        choice = ident
        while choice == ident:
            choice = int(pool[rng.integers(len(pool))])
        out[i] = choice
    return out


def plan_mislabels(rng: np.random.Generator, identity: np.ndarray, groups: np.ndarray,
                   rate: float) -> tuple[np.ndarray, np.ndarray]:
    """Pick ``round(rate * n)`` images and the (wrong) identity whose label each will carry.

    Returns:
        ``(rows, wrong_identity)`` arrays of equal length; rows sorted.
    """
    count = int(round(rate * len(identity))) if len(groups) > 1 else 0
    rows = np.sort(rng.choice(len(identity), size=count, replace=False))
    return rows, _other_identity(rng, identity[rows], groups, same_group_share=0.5)


@dataclass(frozen=True)
class DuplicatePlan:
    """Near-duplicate images: ``source[i]`` is the base-image row copied; ``label_identity[i]`` is the
    identity whose label the copy is stored under (``!= `` the source's identity for cross-class ones)."""

    source: np.ndarray
    label_identity: np.ndarray
    cross: np.ndarray  # bool


def plan_duplicates(rng: np.random.Generator, identity: np.ndarray, groups: np.ndarray, rate: float,
                    cross_share: float) -> DuplicatePlan:
    """Plan ``round(rate * n)`` near-duplicates of random base images, ``cross_share`` of them cross-class."""
    count = int(round(rate * len(identity)))
    source = np.sort(rng.choice(len(identity), size=count, replace=False))
    cross = (rng.random(count) < cross_share) & (len(groups) > 1)
    target = identity[source].copy()
    target[cross] = _other_identity(rng, identity[source[cross]], groups, same_group_share=0.5)
    return DuplicatePlan(source, target, cross)


def near_duplicate(jpeg: bytes, quality: int, rng: np.random.Generator) -> tuple[bytes, int]:
    """Re-encode ``jpeg`` with tiny pixel changes (+-2 levels, +-2% gain) at a nearby JPEG quality.

    Returns:
        ``(new_jpeg, new_quality)``.
    """
    pixels = np.asarray(Image.open(io.BytesIO(jpeg)).convert("RGB"), dtype=np.float32)
    pixels = pixels * np.float32(rng.uniform(0.98, 1.02)) + rng.integers(-2, 3, pixels.shape)
    new_quality = int(np.clip(quality + rng.integers(-8, 9), 30, 98))
    return encode_jpeg(np.clip(np.rint(pixels), 0, 255).astype(np.uint8), new_quality), new_quality

"""Verification-pack planning: which held-out identities and capture conditions each pair uses.

Every pack pairs a frontal, full-resolution image (first of the pair) with a second image drawn from the
pack's prior. Exactly half of the pairs are genuine; half of the impostor pairs are drawn within one
group (harder than random impostors).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fr_data.synth.variation import (FRONTAL_PRIOR, LOWRES_PRIOR, PROFILE_PRIOR, VariationPrior, Variations,
                                     sample_variations)

__all__ = ["PackSpec", "PACKS", "PairPlan", "plan_pairs", "pack_variations"]


@dataclass(frozen=True)
class PackSpec:
    """A verification pack: file stem and the prior of the second image of each pair."""

    name: str
    probe_prior: VariationPrior
    description: str


PACKS: tuple[PackSpec, ...] = (
    PackSpec("synth_easy", FRONTAL_PRIOR, "frontal full resolution vs frontal full resolution"),
    PackSpec("synth_pose", PROFILE_PRIOR, "frontal vs |yaw| >= 60 degrees"),
    PackSpec("synth_lowres", LOWRES_PRIOR, "full resolution vs 1/4 and 1/8 resolution"),
)


@dataclass(frozen=True)
class PairPlan:
    """``first[i]`` and ``second[i]`` are the identities of pair ``i``; ``issame[i]`` its label."""

    first: np.ndarray
    second: np.ndarray
    issame: np.ndarray


def plan_pairs(rng: np.random.Generator, identities: np.ndarray, groups: np.ndarray,
               num_pairs: int) -> PairPlan:
    """Draw ``num_pairs`` pairs (``num_pairs // 2`` genuine, in random order) over held-out identities.

    Args:
        rng: generator.
        identities: ``(H,)`` held-out identity numbers (at least 2).
        groups: ``(H,)`` their groups.
        num_pairs: pairs to draw.
    """
    if len(identities) < 2:
        raise ValueError("verification packs need at least 2 held-out identities")
    issame = np.zeros(num_pairs, bool)
    issame[rng.choice(num_pairs, size=num_pairs // 2, replace=False)] = True
    first = rng.integers(len(identities), size=num_pairs)
    second = first.copy()
    for i in np.flatnonzero(~issame):
        same_group = np.flatnonzero(groups == groups[first[i]])
        pool = same_group if rng.random() < 0.5 and len(same_group) > 1 else np.arange(len(identities))
        while second[i] == first[i]:
            second[i] = pool[rng.integers(len(pool))]
    return PairPlan(identities[first], identities[second], issame)


def pack_variations(seed: int, index: int, spec: PackSpec, num_pairs: int) -> Variations:
    """The capture variation of every image of pack ``index`` of a data set, in ``.bin`` order (images
    ``2i`` and ``2i + 1`` form pair ``i``): the frontal first images, then the ``spec`` prior's second
    images, each drawn from the pack's own generator. It is the pack's ground truth (yaw, downsampling)."""
    rng = np.random.default_rng([seed, 6, index])
    first = sample_variations(rng, num_pairs, FRONTAL_PRIOR)
    second = sample_variations(rng, num_pairs, spec.probe_prior)
    order = np.stack([np.arange(num_pairs), np.arange(num_pairs) + num_pairs], axis=1).ravel()
    return Variations.concat([first, second]).take(order)

"""The same synthetic faces at high and low resolution: paired data for a face normaliser (FAN's decoder).

A low-resolution capture (:func:`fr_data.synth.variation.degrade`: area-downsampled, sensor noise on the
small grid, upsampled back, JPEG) is paired with the clean render it was made from (same identity, pose,
lighting, framing; full resolution, no noise, no JPEG): the target a normaliser should recover.

* :func:`lowres_pack_pairs`: the second images of the ``synth_lowres`` verification pack of a synth
  config, byte-identical to the pack's (same identities, variations and generators), with their clean
  renders;
* :func:`training_pairs`: low-resolution captures of a set's training identities under the pack's prior
  (another render stream), to train on.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np
from PIL import Image

from fr_data.synth.dataset import SynthConfig, pack_slots, render_chunks
from fr_data.synth.packs import PACKS
from fr_data.synth.variation import LOWRES_PRIOR, VariationPrior, Variations, sample_variations

__all__ = [
    "LOWRES_PACK",
    "TRAINING_STREAM",
    "PairedImages",
    "lowres_pack_pairs",
    "render_pairs",
    "training_pairs",
]

#: The pack whose probes are low-resolution.
LOWRES_PACK = "synth_lowres"
#: Render stream of :func:`training_pairs` (the training set uses 0-2, packs 10 + index).
TRAINING_STREAM = 40


@dataclass(frozen=True)
class PairedImages:
    """``(N, H, W, 3)`` uint8 RGB images, row by row the same face.

    Attributes:
        high: the clean full-resolution renders.
        low: the stored low-resolution captures (decoded JPEG, upsampled back to the crop size).
        downsample: ``(N,)`` each capture's downsampling factor.
    """

    high: np.ndarray
    low: np.ndarray
    downsample: np.ndarray

    def __len__(self) -> int:
        return len(self.high)


def _decode(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))


def render_pairs(seed: int, slot_identity: np.ndarray, slot_var: Variations, stream: int) -> PairedImages:
    """Every slot rendered clean and captured: slot ``i`` shows identity ``slot_identity[i]`` under
    ``slot_var``'s row ``i``; each identity's slots are rendered in slot order with its own generator, as
    :func:`fr_data.synth.dataset.render_slots` does (so the captures equal the stored images)."""
    high = np.zeros((len(slot_identity), 112, 112, 3), np.uint8)
    low = np.zeros_like(high)
    for identity in np.unique(slot_identity):
        slots = np.flatnonzero(slot_identity == identity)
        done = 0
        for clean, stored in render_chunks(seed, int(identity), stream, slot_var.take(slots)):
            chunk = slots[done:done + len(clean)]
            high[chunk] = clean
            low[chunk] = np.stack([_decode(b) for b in stored])
            done += len(clean)
    return PairedImages(high, low, np.asarray(slot_var.downsample, np.int64))


def lowres_pack_pairs(cfg: SynthConfig) -> PairedImages:
    """The low-resolution probes (second images) of ``cfg``'s ``synth_lowres`` pack, equal to the pack's
    stored images, with their clean renders. The whole pack is rendered: an identity's generator draws its
    noise over all its slots, chunk by chunk."""
    index = [spec.name for spec in PACKS].index(LOWRES_PACK)
    _, slot_identity, slot_var = pack_slots(cfg, index, PACKS[index])
    paired = render_pairs(cfg.seed, slot_identity, slot_var, 10 + index)
    probes = np.arange(1, len(slot_identity), 2)
    return PairedImages(paired.high[probes], paired.low[probes], paired.downsample[probes])


def training_pairs(seed: int, identities: int, per_identity: int,
                   prior: VariationPrior = LOWRES_PRIOR) -> PairedImages:
    """``per_identity`` low-resolution captures of each of the first ``identities`` people of synth seed
    ``seed`` (its training people), variations from ``prior``, with their clean renders."""
    rng = np.random.default_rng([seed, TRAINING_STREAM])
    slot_identity = np.repeat(np.arange(identities, dtype=np.int64), per_identity)
    return render_pairs(seed, slot_identity, sample_variations(rng, len(slot_identity), prior), TRAINING_STREAM)

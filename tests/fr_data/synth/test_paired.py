"""Paired renders: the low-resolution pack's probes equal the stored pack images, their clean twins are the
same faces with the detail the capture lost, and the training pairs are reproducible."""

from __future__ import annotations

import numpy as np

from fr_data.folders import synth_folder
from fr_data.formats.verification import decode_pack_uint8, load_bin
from fr_data.synth import PACKS, SynthConfig
from fr_data.synth.dataset import write_pack
from fr_data.synth.paired import LOWRES_PACK, lowres_pack_pairs, training_pairs


def detail(images: np.ndarray) -> float:
    """Mean absolute difference of horizontal neighbours (high for sharp images)."""
    return float(np.abs(np.diff(images.astype(np.float32), axis=2)).mean())


def test_pack_probes_equal_the_stored_pack_and_pair_with_sharper_twins(tmp_path):
    cfg = SynthConfig(identities=5, images_per_identity=2, seed=7, holdout_identities=4, pairs=20)
    index = [spec.name for spec in PACKS].index(LOWRES_PACK)
    write_pack(cfg, index, PACKS[index], tmp_path, workers=1)
    stored = decode_pack_uint8(load_bin(tmp_path / synth_folder.pack_file(LOWRES_PACK)))
    paired = lowres_pack_pairs(cfg)
    assert len(paired) == 20 and set(paired.downsample.tolist()) <= {4, 8}
    np.testing.assert_array_equal(paired.low, stored[1::2])  # byte-identical to the pack's probes
    assert detail(paired.high) > 1.5 * detail(paired.low)
    # same face, same framing: the twins agree at the coarse scale (8 x 8 block means)
    blocks = [p.reshape(20, 14, 8, 14, 8, 3).astype(np.float32).mean(axis=(2, 4)) for p in (paired.high, paired.low)]
    assert np.abs(blocks[0] - blocks[1]).mean() < 12


def test_training_pairs_are_reproducible_and_cover_the_identities():
    first, again = training_pairs(3, 2, 3), training_pairs(3, 2, 3)
    assert first.high.shape == (6, 112, 112, 3) and first.low.dtype == np.uint8
    np.testing.assert_array_equal(first.low, again.low)
    np.testing.assert_array_equal(first.high, again.high)
    assert not np.array_equal(first.high[0], first.high[3])  # another person

"""The error-versus-discard curve: against a brute-force restatement of its rules, a hand case, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fr_train.evaluation.erc import erc, pair_quality


def _brute_force_erc(scores, issame, quality, fmr, fractions):
    """The issue's rules, one pair at a time: threshold = the (floor(fmr*Ni)+1)-th highest impostor score;
    drop the floor(r*Ng) genuine pairs of lowest quality, earliest pair first among equal qualities."""
    impostors = sorted((s for s, same in zip(scores, issame) if not same), reverse=True)
    k = math.floor(round(fmr * len(impostors), 9))
    threshold = impostors[k] if k < len(impostors) else -math.inf
    genuine = [(q, i, s) for i, (s, q, same) in enumerate(zip(scores, quality, issame)) if same]
    out = []
    for r in fractions:
        drop = math.floor(round(r * len(genuine), 9))
        kept = sorted(genuine)[drop:]  # by quality, then by pair index: earlier pairs go first on ties
        out.append(sum(s <= threshold for _, _, s in kept) / len(kept))
    area = sum((b - a) * (fa + fb) / 2 for a, b, fa, fb in zip(fractions, fractions[1:], out, out[1:]))
    return threshold, out, area


@pytest.mark.parametrize("seed", range(4))
def test_erc_matches_brute_force_with_ties_and_r_zero(seed):
    rng = np.random.default_rng(seed)
    n = 60
    scores = np.round(rng.random(n), 1)  # tied scores, some exactly at the threshold
    issame = rng.random(n) < 0.5
    quality = rng.integers(0, 4, size=n).astype(float)  # heavily tied qualities
    fractions = [0.0, 0.05, 0.1, 0.29, 0.5, 0.9]
    for fmr in (1e-2, 0.1, 0.25, 1.0):
        curve = erc(scores, issame, quality, fmr, fractions)
        threshold, fnmr, area = _brute_force_erc(scores, issame, quality, fmr, fractions)
        assert curve.threshold == threshold
        np.testing.assert_allclose(curve.fnmr, fnmr, rtol=0, atol=1e-12)
        assert curve.area == pytest.approx(area, abs=1e-12)
        assert curve.achieved_fmr <= fmr


def test_erc_hand_case():
    # impostors 0.9 0.8 0.7 0.6: fmr 0.25 allows floor(1) = 1 false match -> threshold = 2nd highest = 0.8
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.95, 0.85, 0.8, 0.5])
    issame = np.array([False] * 4 + [True] * 4)
    # genuine qualities 3, 1, 1, 0: order of discard: pair 7 (q 0), pair 5 (q 1, earlier), pair 6, pair 4
    quality = np.array([[9, 9]] * 4 + [[3, 5], [1, 2], [4, 1], [0, 7]])  # pair quality = min of the two
    curve = erc(scores, issame, quality, 0.25, [0.0, 0.25, 0.5, 0.75])
    assert curve.threshold == 0.8 and curve.achieved_fmr == 0.25
    # misses (score <= 0.8): pair 6 (0.8, tie with the threshold counts as a miss) and pair 7 (0.5)
    np.testing.assert_allclose(curve.fnmr, [2 / 4, 1 / 3, 1 / 2, 0 / 1])
    assert curve.discarded.tolist() == [0, 1, 2, 3]
    assert curve.area == pytest.approx(0.25 * ((2 / 4 + 1 / 3) + (1 / 3 + 1 / 2) + (1 / 2 + 0)) / 2)
    tie_first = erc(scores, issame, quality.min(axis=1), 0.25, [0.0, 0.5])  # (P,) pair qualities
    np.testing.assert_allclose(tie_first.fnmr, curve.fnmr[[0, 2]])


def test_pair_quality_and_erc_input_errors():
    np.testing.assert_array_equal(pair_quality(np.array([3.0, 1.0, 0.5, 2.0])), [1.0, 0.5])
    scores, issame, quality = np.array([0.5, 0.1]), np.array([True, False]), np.array([1.0, 2.0])
    for bad in ([0.5, 0.2], [1.0], [-0.1]):
        with pytest.raises(ValueError, match="reject fractions"):
            erc(scores, issame, quality, 0.1, bad)
    with pytest.raises(ValueError, match="genuine and impostor"):
        erc(scores, np.array([True, True]), quality, 0.1, [0.0])
    with pytest.raises(ValueError, match="finite"):
        erc(scores, issame, np.array([np.nan, 1.0]), 0.1, [0.0])
    with pytest.raises(ValueError, match="fmr"):
        erc(scores, issame, quality, 0.0, [0.0])

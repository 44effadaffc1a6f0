"""FAN's feature adaptation terms: hand-computed values, the stop-gradient on the high-resolution side, the
branch the unpaired term reads, config validation and the compute a FAN step is charged."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fr_data.io.errors import ConfigError
from fr_train.config import load_train_config
from fr_train.objective import Batch, Need, build_objective, objective_config
from fr_train.objective.losses.fan import (
    PairedConsistency,
    UnpairedAlignment,
    gaussian_mmd2,
    paired_consistency,
)
from fr_train.trainer import planned_images_per_step

ROOT = Path(__file__).resolve().parents[4]


def test_paired_consistency_is_one_minus_cosine_by_hand():
    low = torch.tensor([[1.0, 0.0], [0.0, 2.0]], requires_grad=True)
    high = torch.tensor([[3.0, 0.0], [1.0, 0.0]], requires_grad=True)
    loss = paired_consistency(low, high)  # pair 1: cos 1 -> 0; pair 2: cos 0 -> 1; mean 0.5
    assert loss.item() == pytest.approx(0.5)
    loss.backward()
    assert high.grad is None  # the high-resolution side is the target: no gradient reaches it
    assert low.grad is not None and low.grad.abs().sum() > 0
    out = PairedConsistency().batch_loss(Batch(high.detach(), torch.zeros(2, dtype=torch.long),
                                               lowres_embeddings=low.detach()))
    assert out.loss.item() == pytest.approx(0.5) and out.parts["cos"].item() == pytest.approx(0.5)


def test_mmd_of_two_points_by_hand():
    x, y = torch.tensor([[0.0, 0.0]]), torch.tensor([[1.0, 0.0]])
    # k(x,x) = k(y,y) = 1, k(x,y) = exp(-1 / 2): 2 - 2 exp(-0.5)
    assert gaussian_mmd2(x, y, 1.0).item() == pytest.approx(2 - 2 * math.exp(-0.5), rel=1e-6)
    # sigma 0.5: k(x,y) = exp(-1 / 0.5) = exp(-2)
    assert gaussian_mmd2(x, y, 0.5).item() == pytest.approx(2 - 2 * math.exp(-2), rel=1e-6)
    same = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    assert gaussian_mmd2(same, same.flip(0), 0.5).item() == pytest.approx(0.0, abs=1e-7)


def test_mmd_matches_a_numpy_restatement():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(7, 3, generator=g, dtype=torch.float64)
    a, b = x.numpy(), y.numpy()

    def k(p, q):
        return np.mean([[math.exp(-np.sum((u - v) ** 2) / (2 * 0.7 ** 2)) for v in q] for u in p])
    expected = k(a, a) + k(b, b) - 2 * k(a, b)
    assert gaussian_mmd2(x, y, 0.7).item() == pytest.approx(expected, rel=1e-9)


def _branch_batch() -> tuple[Batch, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    easy = [torch.randn(4, 3, generator=g) for _ in range(3)]
    low = [torch.randn(4, 3, generator=g, requires_grad=True) for _ in range(2)]
    reference = torch.cat(easy).requires_grad_()
    batch = Batch(torch.randn(2, 3, generator=g), torch.zeros(2, dtype=torch.long), reference=reference,
                  neg_branches=[easy[0], low[0]], pos_a=[easy[1], low[1]], pos_b=[easy[2], easy[2]])
    return batch, torch.cat(low), reference


def test_unpaired_alignment_reads_the_named_branch_against_the_easy_branch():
    batch, low, reference = _branch_batch()
    out = UnpairedAlignment(branch=1, sigma=0.5).batch_loss(batch)
    expected = gaussian_mmd2(F.normalize(low, dim=1), F.normalize(reference, dim=1), 0.5)
    assert out.loss.item() == pytest.approx(expected.item(), rel=1e-6) and out.loss.item() > 0
    out.loss.backward()
    assert reference.grad is None and batch.neg_branches[1].grad is not None
    with pytest.raises(ValueError, match="branch 2"):
        UnpairedAlignment(branch=2).batch_loss(batch)


def test_a_step_on_the_low_features_reduces_the_discrepancy():
    batch, _, _ = _branch_batch()
    loss = UnpairedAlignment(branch=1).batch_loss(batch).loss
    loss.backward()
    with torch.no_grad():
        for t in (batch.neg_branches[1], batch.pos_a[1]):
            t -= 0.5 * t.grad
    assert UnpairedAlignment(branch=1).batch_loss(batch).loss.item() < loss.item()


def test_fan_terms_declare_their_needs():
    cfg = objective_config({"terms": {"fan_paired": {"weight": 2.0}, "fan_unpaired": {"branch": 1}}})
    objective = build_objective(cfg, embedding_size=3, num_classes=2)
    assert objective.term_needs == {"fan_paired": {Need.LOWRES}, "fan_unpaired": {Need.BRANCHES}}
    assert objective.weights == {"fan_paired": 2.0, "fan_unpaired": 1.0}


@pytest.mark.parametrize("terms, message", [
    ({"fan_unpaired": {"brnch": 1}}, "unknown key"),
    ({"fan_unpaired": {"sigma": 0.0}}, "sigma must be > 0"),
    ({"fan_unpaired": {"branch": 0}}, "branch must be >= 1"),
    ({"fan_paired": {"weight": 1.0, "cosine": True}}, "unknown key"),
])
def test_bad_fan_settings_are_config_errors(terms, message):
    with pytest.raises(ConfigError, match=message):
        objective_config({"terms": terms})


def test_the_unpaired_branch_must_exist_and_the_paired_copy_is_charged():
    path = ROOT / "configs" / "fan_synth_tiny.yaml"
    cfg = load_train_config(path)
    # batch 32 + composer (easy + 1 hard) x (8 identities + 2 x 8 pair images) + the 32 low-resolution copies
    assert planned_images_per_step(cfg) == 32 + 2 * (8 + 16) + 32
    with pytest.raises(ConfigError, match="fan_unpaired.branch must name a hard composer branch"):
        load_train_config(path, {"objective": {"terms": {"fan_unpaired": {"branch": 2}}}})

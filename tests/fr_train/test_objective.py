"""Objective: "CurricularFace + 1.0*DDL + 0.1*OT" from a config, term values, logging parts, errors."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fr_data.io.errors import ConfigError
from fr_train.losses import DistributionDistillationLoss, EKDLoss, OTLoss
from fr_train.objective import Batch, Objective, build_objective

D, C = 8, 6


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(C)
    centers = torch.randn(C, D, generator=g)
    easy = (centers + 0.3 * torch.randn(C, D, generator=g)).requires_grad_()
    hard = (centers + 1.0 * torch.randn(C, D, generator=g)).requires_grad_()
    pairs = [centers[:4] + s * torch.randn(4, D, generator=g) for s in (0.2, 0.2, 0.6, 0.6)]
    return Batch(
        embeddings=hard,
        labels=labels,
        teacher_embeddings=torch.randn(C, 5, generator=g),
        reference=easy,
        reference_labels=labels,
        neg_branches=[easy, hard],
        pos_a=[pairs[0], pairs[2]],
        pos_b=[pairs[1], pairs[3]],
    )


CONFIG = {
    "head": {"name": "curricularface", "s": 64.0, "m": 0.5},
    "losses": [{"name": "ddl", "weight": 1.0}, {"name": "ot", "weight": 0.1, "margin": 0.5, "eps": 0.1}],
}


def test_config_combines_curricularface_ddl_and_ot():
    objective = build_objective(CONFIG, embedding_size=D, num_classes=C)
    assert type(objective.head).__name__ == "CurricularFace"
    assert isinstance(objective.terms["ddl"], DistributionDistillationLoss)
    assert isinstance(objective.terms["ot"], OTLoss) and objective.terms["ot"].eps == 0.1
    batch = _batch()
    head_before = copy.deepcopy(objective.head)
    out = objective(batch)
    ce = F.cross_entropy(head_before(batch.embeddings, batch.labels), batch.labels)
    ddl = DistributionDistillationLoss()(batch.neg_branches, batch.pos_a, batch.pos_b).loss
    ot_loss = OTLoss(margin=0.5, eps=0.1)
    ot = ot_loss(batch.embeddings, batch.labels, batch.reference, batch.reference_labels).loss
    assert float(out.parts["ce"]) == pytest.approx(float(ce.detach()), rel=1e-6)
    assert float(out.parts["ddl"]) == pytest.approx(float(ddl.detach()), rel=1e-6)
    assert float(out.parts["ot"]) == pytest.approx(float(ot.detach()), rel=1e-6)
    expected = ce + 1.0 * ddl + 0.1 * ot
    assert float(out.loss.detach()) == pytest.approx(float(expected.detach()), rel=1e-6)
    assert {"total", "ddl/pos_kl", "ddl/order"} <= set(out.parts)
    assert float(out.parts["ot/num_groups"]) > 0 and float(out.parts["ot"]) > 0
    out.loss.backward()
    assert batch.embeddings.grad.abs().sum() > 0 and objective.head.weight.grad.abs().sum() > 0


def test_aux_only_objective_with_ekd_and_gather_is_identity_without_process_group():
    batch = _batch()
    config = {"head": None, "losses": [{"name": "ekd", "weight": 2.0, "top_k": 10}], "gather": True}
    objective = build_objective(config, embedding_size=D, num_classes=C)
    assert objective.head is None and isinstance(objective.terms["ekd"], EKDLoss)
    out = objective(batch)
    alone = EKDLoss(top_k=10)(batch.embeddings, batch.teacher_embeddings, batch.labels).loss
    assert float(out.loss.detach()) == pytest.approx(2.0 * float(alone.detach()), rel=1e-6)
    assert "ce" not in out.parts


def test_objective_state_dict_carries_loss_buffers():
    objective = build_objective({"losses": [{"name": "ekd"}]}, embedding_size=D, num_classes=C)
    assert "terms.ekd.student_thresholds" in objective.state_dict()


def test_any_object_with_batch_loss_plugs_in():
    class MeanNorm(nn.Module):
        def batch_loss(self, batch):
            return batch.embeddings.norm(dim=1).mean()

    batch = _batch()
    out = Objective(None, [("norm", 0.5, MeanNorm())])(batch)
    expected = 0.5 * float(batch.embeddings.norm(dim=1).mean().detach())
    assert float(out.loss.detach()) == pytest.approx(expected)


def test_missing_batch_field_names_the_loss():
    batch = _batch()
    batch.teacher_embeddings = None
    with pytest.raises(ValueError, match="EKDLoss needs batch.teacher_embeddings"):
        Objective(None, [("ekd", 1.0, EKDLoss())])(batch)


@pytest.mark.parametrize(
    "config, match",
    [
        ({"heads": None}, "unknown keys"),
        ({"losses": [{"name": "triplet"}]}, "unknown loss 'triplet'"),
        ({"losses": [{"name": "ot", "sigma": 1.0}]}, r"losses\[0\] \(ot\)"),
        ({"head": {"name": "nosuchhead"}}, "nosuchhead"),
        ({"head": {"s": 64.0}}, "needs a 'name'"),
        ({"head": {"name": "arcface", "bogus": 1}}, "arcface"),
    ],
)
def test_config_errors(config, match):
    with pytest.raises(ConfigError, match=match):
        build_objective(config, embedding_size=D, num_classes=C)


def test_duplicate_term_names_are_rejected():
    with pytest.raises(ValueError, match="unique"):
        Objective(None, [("ot", 1.0, OTLoss()), ("ot", 0.1, OTLoss())])

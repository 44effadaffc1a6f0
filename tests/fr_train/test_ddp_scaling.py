"""Under DDP (2 gloo ranks) the auxiliary losses keep their nominal weight: no world-size factor.

Each rank embeds its half of the batch, the objective all-gathers the features (``gather=True``) and
computes DDL + OT + EKD identically on every rank; after DDP averages the parameter gradients they must
equal the gradient of one process that sees the whole batch. The TFace reference training code would
give world_size times that gradient here (docs/losses.md, last section).
"""

import os

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from fr_train.objective import Batch, Need, Objective, Term
from fr_train.objective.losses import DistributionDistillationLoss, EKDLoss, OTLoss
from tests.fr_train._ranks import run_ranks

PARTS = ("hard", "easy", "easy_a", "easy_b", "hard_a", "hard_b")


def _data():
    g = torch.Generator().manual_seed(0)
    data = {name: torch.randn(8 if name in ("hard", "easy") else 4, 6, generator=g, dtype=torch.float64)
            for name in PARTS}
    data["easy"] = data["hard"] + 0.5 * data["easy"]  # the same 8 identities, easier images
    data["teacher_proj"] = torch.randn(6, 5, generator=g, dtype=torch.float64)
    return data


def _model():
    torch.manual_seed(1)
    return nn.Linear(6, 8).double()


def _objective(gather):
    branches, teacher = frozenset({Need.BRANCHES}), frozenset({Need.TEACHER})
    terms = [
        Term("ddl", DistributionDistillationLoss(num_bins=50), 1.0, branches),
        Term("ot", OTLoss(margin=2.0, eps=0.1, num_iters=30), 0.5, branches),  # margin 2: all anchors hard
        Term("ekd", EKDLoss(top_k=10, temperature=0.1), 3.0, teacher),
    ]
    return Objective(None, terms, gather=gather)


def _step(model, data, rank, world, gather):
    """One forward/backward on this rank's rows; returns the objective's output."""
    rows = {k: v.chunk(world)[rank] for k, v in data.items() if k in PARTS}
    labels = torch.arange(8).chunk(world)[rank]
    feats = model(torch.cat([rows[k] for k in PARTS])).split([len(rows[k]) for k in PARTS])
    f = dict(zip(PARTS, feats))
    batch = Batch(
        embeddings=f["hard"], labels=labels, teacher_embeddings=rows["hard"] @ data["teacher_proj"],
        reference=f["easy"], reference_labels=labels, neg_branches=[f["easy"], f["hard"]],
        pos_a=[f["easy_a"], f["hard_a"]], pos_b=[f["easy_b"], f["hard_b"]],
    )
    objective = _objective(gather)
    out = objective(batch)
    out.loss.backward()
    return out, objective


def _worker(rank, world, out_dir):
    model = DistributedDataParallel(_model())
    out, objective = _step(model, _data(), rank, world, gather=True)
    torch.save({"weight": model.module.weight.grad, "bias": model.module.bias.grad,
                "loss": out.loss.detach(), "ot_groups": out.parts["ot/num_groups"],
                "thresholds": objective.terms["ekd"].student_thresholds},
               os.path.join(out_dir, f"rank{rank}.pt"))


def test_ddp_gradient_equals_single_process_gradient(tmp_path):
    model = _model()
    out, objective = _step(model, _data(), 0, 1, gather=False)
    assert model.weight.grad.abs().sum() > 0 and float(out.parts["ot/num_groups"]) == 8
    run_ranks(_worker, tmp_path)
    for rank in range(2):
        r = torch.load(tmp_path / f"rank{rank}.pt", weights_only=True)
        assert float(r["loss"]) == float(out.loss.detach())  # every rank saw the whole batch
        assert float(r["ot_groups"]) == 8
        assert torch.equal(r["thresholds"], objective.terms["ekd"].student_thresholds)
        assert torch.allclose(r["weight"], model.weight.grad, rtol=1e-9, atol=1e-12)
        assert torch.allclose(r["bias"], model.bias.grad, rtol=1e-9, atol=1e-12)

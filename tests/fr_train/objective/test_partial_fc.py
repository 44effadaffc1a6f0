"""Partial FC: equals the plain head + cross-entropy, sampling keeps positives, 2-rank run equals 1 rank."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from fr_data.io.errors import ConfigError
from fr_train.objective.heads import HEADS, build_head, cosine_logits
from fr_train.objective.partial_fc import PartialFC, shard_range
from tests.fr_train._ranks import run_ranks

EMB, CLASSES, BATCH, IN_DIM, WORLD = 5, 11, 8, 6, 2


def _problem() -> dict[str, torch.Tensor]:
    """The shared toy problem: inputs of a linear "backbone", labels, class centres, embeddings."""
    gen = torch.Generator().manual_seed(0)
    return {
        "x": torch.randn(BATCH, IN_DIM, generator=gen, dtype=torch.float64),
        "labels": torch.randint(0, CLASSES, (BATCH,), generator=gen),
        "centres": torch.randn(CLASSES, EMB, generator=gen, dtype=torch.float64),
        "embeddings": torch.randn(BATCH, EMB, generator=gen, dtype=torch.float64),
        "backbone": nn.Linear(IN_DIM, EMB).double(),
    }


def _reference(name: str, problem: dict) -> dict[str, torch.Tensor]:
    """Single process, whole batch, plain head with every class centre, then cross-entropy."""
    backbone = copy.deepcopy(problem["backbone"])
    head = build_head(name, EMB, CLASSES, s=4.0).double()
    with torch.no_grad():
        head.weight.copy_(problem["centres"])
    loss = F.cross_entropy(head(backbone(problem["x"]), problem["labels"]), problem["labels"])
    loss.backward()
    plain = build_head(name, EMB, CLASSES, s=4.0).double()
    with torch.no_grad():
        plain.weight.copy_(problem["centres"])
        logits = plain(problem["embeddings"], problem["labels"])
    return {"loss": loss.detach(), "backbone": backbone.weight.grad, "centres": head.weight.grad,
            "t": getattr(head, "t", torch.zeros(())), "logits": logits}


def _rank_run(name: str, problem: dict, rank: int) -> dict[str, torch.Tensor]:
    rows = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
    backbone = nn.parallel.DistributedDataParallel(copy.deepcopy(problem["backbone"]))
    pfc = PartialFC(build_head(name, EMB, CLASSES, s=4.0, with_weight=False), EMB, CLASSES).double()
    with torch.no_grad():
        pfc.weight.copy_(problem["centres"][pfc.class_start:pfc.class_start + pfc.num_local])
    loss = pfc(backbone(problem["x"][rows]), problem["labels"][rows])
    loss.backward()
    plain = build_head(name, EMB, CLASSES, s=4.0).double()  # data parallel: all classes, local rows
    with torch.no_grad():
        plain.weight.copy_(problem["centres"])
        logits = plain(problem["embeddings"][rows], problem["labels"][rows])
    return {"loss": loss.detach(), "backbone": backbone.module.weight.grad, "centres": pfc.weight.grad,
            "start": torch.tensor(pfc.class_start), "t": getattr(pfc.head, "t", torch.zeros(())),
            "logits": logits}


def _worker(rank: int, world: int, folder: str) -> None:
    torch.manual_seed(0)
    problem = _problem()
    results = {name: _rank_run(name, problem, rank) for name in HEADS}
    torch.save(results, f"{folder}/rank{rank}.pt")


def test_two_gloo_ranks_equal_one_process_on_the_concatenated_batch(tmp_path):
    run_ranks(_worker, tmp_path, world=WORLD)
    torch.manual_seed(0)
    problem = _problem()
    per_rank = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(WORLD)]
    for name in HEADS:
        ref = _reference(name, problem)
        for rank, results in enumerate(per_rank):
            got = results[name]
            start = int(got["start"])
            rows = slice(rank * BATCH // WORLD, (rank + 1) * BATCH // WORLD)
            torch.testing.assert_close(got["loss"], ref["loss"], rtol=0, atol=1e-12)
            torch.testing.assert_close(got["backbone"], ref["backbone"], rtol=0, atol=1e-12)
            torch.testing.assert_close(got["centres"], ref["centres"][start:start + got["centres"].shape[0]],
                                       rtol=0, atol=1e-12)
            torch.testing.assert_close(got["t"], ref["t"].to(got["t"].dtype), rtol=0, atol=1e-12)
            torch.testing.assert_close(got["logits"], ref["logits"][rows], rtol=0, atol=1e-12)
    for name in ("curricularface", "cifp"):  # the cross-rank statistics matter for these data
        alone = build_head(name, EMB, CLASSES, s=4.0).double()
        with torch.no_grad():
            alone.weight.copy_(problem["centres"])
            rows = slice(0, BATCH // WORLD)
            local_only = alone(problem["embeddings"][rows], problem["labels"][rows])
        assert not torch.allclose(local_only, per_rank[0][name]["logits"])


@pytest.mark.parametrize("name", sorted(HEADS))
def test_single_rank_full_rate_equals_plain_head_and_cross_entropy(name):
    torch.manual_seed(0)
    head = build_head(name, EMB, CLASSES, s=4.0).double()
    pfc = PartialFC(build_head(name, EMB, CLASSES, s=4.0, with_weight=False), EMB, CLASSES).double()
    with torch.no_grad():
        pfc.weight.copy_(head.weight)
    emb = torch.randn(BATCH, EMB, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, CLASSES, (BATCH,))
    expected = F.cross_entropy(head(emb, labels), labels)
    got = pfc(emb, labels)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-12)
    want = torch.autograd.grad(expected, (emb, head.weight))
    for a, b in zip(want, torch.autograd.grad(got, (emb, pfc.weight))):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


def test_sampling_keeps_every_positive_and_remaps_labels():
    pfc = PartialFC(build_head("arcface", 4, 100, with_weight=False), 4, 100, sample_rate=0.1,
                    generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([3, 50, 97, 50, 12, 60, 70, 80, 90, 91, 92, 93])  # 11 positives > 10 samples
    index, local = pfc.sample(labels)
    assert index.numel() == 11 and torch.equal(index, index.sort().values)
    assert torch.equal(index[local], labels)
    index, local = pfc.sample(torch.tensor([5, -1, 7]))  # -1: target on another rank
    assert index.numel() == 10 and local[1] == -1 and torch.equal(index[local[[0, 2]]], torch.tensor([5, 7]))


def test_sampled_loss_is_cross_entropy_over_the_sampled_centres():
    torch.manual_seed(0)
    pfc = PartialFC(build_head("cosface", EMB, 40, s=4.0, with_weight=False), EMB, 40, sample_rate=0.25,
                    generator=torch.Generator().manual_seed(1)).double()
    emb = torch.randn(6, EMB, dtype=torch.float64)
    labels = torch.tensor([0, 1, 2, 30, 31, 1])
    loss = pfc(emb, labels)
    pfc.generator.manual_seed(1)
    index, local = pfc.sample(labels)
    logits = pfc.head.margin(cosine_logits(emb, pfc.weight[index]), local)
    torch.testing.assert_close(loss, F.cross_entropy(logits, local), rtol=0, atol=1e-12)
    loss.backward()
    untouched = torch.ones(40, dtype=torch.bool)
    untouched[index] = False
    assert torch.all(pfc.weight.grad[untouched] == 0) and torch.any(pfc.weight.grad[index] != 0)


def test_shard_ranges_tile_the_classes():
    ranges = [shard_range(11, r, 3) for r in range(3)]
    assert ranges == [(0, 4), (4, 4), (8, 3)]


def test_bad_configuration_is_rejected():
    with pytest.raises(ConfigError, match="sample_rate"):
        PartialFC(build_head("arcface", 4, 10, with_weight=False), 4, 10, sample_rate=0.0)
    with pytest.raises(ConfigError, match="10 classes"):
        PartialFC(build_head("arcface", 4, 10, with_weight=False), 4, 12)
    pfc = PartialFC(build_head("arcface", 4, 10, with_weight=False), 4, 10)
    with pytest.raises(ValueError, match="labels"):
        pfc(torch.randn(2, 4), torch.tensor([1, 10]))

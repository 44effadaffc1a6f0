"""fr_train.dist under a real 2-process gloo group: gathered values and gradients."""

import os

import pytest
import torch
import torch.distributed as dist

from fr_train import dist as frd
from tests.fr_train._ranks import run_ranks


def _worker(rank: int, world: int, out_dir: str) -> None:
    x = torch.tensor([[float(rank + 1), 2.0 * (rank + 1)]], requires_grad=True)
    gathered = frd.all_gather_with_grad(x)
    # the same loss on every rank: sum of squares of everything gathered
    loss = (gathered ** 2).sum()
    loss.backward()
    m = frd.all_reduce(torch.tensor([float(rank)]), op="max")
    torch.save({"gathered": gathered.detach(), "grad": x.grad, "max": m, "ws": frd.world_size(),
                "rank": frd.rank()}, os.path.join(out_dir, f"r{rank}.pt"))


def test_single_process_is_identity():
    x = torch.ones(2, 3, requires_grad=True)
    assert frd.all_gather_with_grad(x) is x
    assert frd.world_size() == 1 and frd.rank() == 0 and not frd.is_dist()


def test_gather_and_gradient_across_two_ranks(tmp_path):
    run_ranks(_worker, tmp_path)
    r0 = torch.load(tmp_path / "r0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "r1.pt", weights_only=True)
    expected = torch.tensor([[1.0, 2.0], [2.0, 4.0]])
    assert torch.equal(r0["gathered"], expected) and torch.equal(r1["gathered"], expected)
    # d/dx of sum over ranks of the same loss = world_size * 2x; DDP then averages by world size,
    # so the summed gradient is what makes the averaged one equal to the single-process gradient.
    assert torch.allclose(r0["grad"], 2 * 2 * torch.tensor([[1.0, 2.0]]))
    assert torch.allclose(r1["grad"], 2 * 2 * torch.tensor([[2.0, 4.0]]))
    assert r0["max"].item() == 1.0 and r0["ws"] == 2 and r1["rank"] == 1


def _ddp_worker(rank: int, world: int, out_dir: str) -> None:
    model = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(3, 2))
    model(torch.ones(4, 3)).sum().backward()  # DDP's first use imports torch.distributed.nn.functional
    torch.save({"threads": frd.gloo_threads()}, os.path.join(out_dir, f"r{rank}.pt"))


def test_shutdown_releases_the_group_after_ddp(tmp_path):
    # the harness fails a rank whose gloo threads outlive fr_train.dist.shutdown
    run_ranks(_ddp_worker, tmp_path)
    for rank in range(2):
        running = torch.load(tmp_path / f"r{rank}.pt")["threads"]
        assert any(name.startswith("pt_gloo") for name in running)  # they did run before shutdown


def test_shutdown_without_a_group_does_nothing_and_a_held_group_is_an_error(tmp_path):
    frd.shutdown()
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'rendezvous'}", rank=0, world_size=1)
    held = [dist.group.WORLD]
    with pytest.raises(RuntimeError, match="outlived destroy_process_group; held by list"):
        frd.shutdown()
    assert not dist.is_initialized()
    del held
    assert frd.gloo_threads() == []

"""fr_train.dist under a real 2-process gloo group: gathered values and gradients."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from fr_train import dist as frd


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        x = torch.tensor([[float(rank + 1), 2.0 * (rank + 1)]], requires_grad=True)
        gathered = frd.all_gather_with_grad(x)
        # the same loss on every rank: sum of squares of everything gathered
        loss = (gathered ** 2).sum()
        loss.backward()
        m = frd.all_reduce(torch.tensor([float(rank)]), op="max")
        torch.save({"gathered": gathered.detach(), "grad": x.grad, "max": m, "ws": frd.world_size(),
                    "rank": frd.rank()}, os.path.join(out_dir, f"r{rank}.pt"))
    finally:
        dist.destroy_process_group()


def test_single_process_is_identity():
    x = torch.ones(2, 3, requires_grad=True)
    assert frd.all_gather_with_grad(x) is x
    assert frd.world_size() == 1 and frd.rank() == 0 and not frd.is_dist()


def test_gather_and_gradient_across_two_ranks(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "r0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "r1.pt", weights_only=True)
    expected = torch.tensor([[1.0, 2.0], [2.0, 4.0]])
    assert torch.equal(r0["gathered"], expected) and torch.equal(r1["gathered"], expected)
    # d/dx of sum over ranks of the same loss = world_size * 2x; DDP then averages by world size,
    # so the summed gradient is what makes the averaged one equal to the single-process gradient.
    assert torch.allclose(r0["grad"], 2 * 2 * torch.tensor([[1.0, 2.0]]))
    assert torch.allclose(r1["grad"], 2 * 2 * torch.tensor([[2.0, 4.0]]))
    assert r0["max"].item() == 1.0 and r0["ws"] == 2 and r1["rank"] == 1

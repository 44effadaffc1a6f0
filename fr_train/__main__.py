"""``python -m fr_train --config configs/X.yaml`` (one process) or under ``torchrun`` (DDP).

Examples::

    python -m fr_train --config configs/synth_tiny.yaml --set train.max_steps=100 --output runs/t
    torchrun --nproc_per_node 8 -m fr_train --config configs/ms1mv3_r50_arcface.yaml
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --master_port 29500 --nproc_per_node 8 \\
        -m fr_train --config configs/glint360k_r100_arcface_pfc.yaml --resume

Under torchrun the process group is initialised from the environment (``env://``): NCCL when training
on GPUs, gloo on CPUs; at the end every rank leaves it through :func:`fr_train.dist.shutdown` (barrier,
destroy, released before the interpreter exits).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import torch
import torch.distributed as torch_dist

from fr_data.io.errors import ConfigError, DataError
from fr_train.config import load_train_config, parse_overrides
from fr_train.dist import shutdown
from fr_train.trainer import resolve_device, run

__all__ = ["main", "build_parser", "init_process_group"]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog or "python -m fr_train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=Path, help="training config YAML")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=2 (value read as YAML)")
    parser.add_argument("--output", help="run folder (overrides train.output)")
    parser.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                        help="resume from a checkpoint folder, or (no value) from the run folder's latest")
    parser.add_argument("--stop-after", type=int, help="stop with a checkpoint after this many steps in all")
    return parser


def init_process_group(device_choice: str) -> bool:
    """Join the torchrun process group (``env://``) when ``WORLD_SIZE`` > 1; return whether one runs."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch_dist.is_initialized():
        return torch_dist.is_initialized()
    device = resolve_device(device_choice)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch_dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method="env://")
    return True


def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        overrides = parse_overrides(args.overrides)
        if args.output:
            overrides.setdefault("train", {})["output"] = args.output
        cfg = load_train_config(args.config, overrides)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    started = init_process_group(cfg.train.device)
    rank, world = (torch_dist.get_rank(), torch_dist.get_world_size()) if started else (0, 1)
    finished = False
    try:
        result = run(cfg, resume=args.resume, stop_after=args.stop_after)
        finished = True
    except (ConfigError, DataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    finally:
        if started:  # every rank that finished meets the others before the group goes
            shutdown(synchronise=finished)
    print(f"rank {rank}/{world}: done at step {result.state.step}, checkpoint {result.checkpoint}",
          flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

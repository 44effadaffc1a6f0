"""``python -m fr_train --config configs/X.yaml`` (one process) or under ``torchrun`` (DDP).

Examples::

    python -m fr_train --config configs/synth_tiny.yaml --set train.max_steps=100 --output runs/t
    torchrun --nproc_per_node 8 -m fr_train --config configs/ms1mv3_r50_arcface.yaml
    torchrun --nnodes 2 --node_rank 0 --master_addr HOST --master_port 29500 --nproc_per_node 8 \\
        -m fr_train --config configs/glint360k_r100_arcface_pfc.yaml --resume

Under torchrun the process group is joined from the environment (``env://``): NCCL when training on
GPUs, gloo on CPUs; at the end every rank leaves it (barrier, destroy, released before the interpreter
exits). Both through :func:`fr_data.runtime.process_group`, the one device/process-group helper.
"""

from __future__ import annotations

import argparse

from fr_data import runtime
from fr_data.io.argtypes import CommandParser, existing_file, positive_int
from fr_data.io.command import command, fail
from fr_data.io.errors import ConfigError, DataError
from fr_train.config import load_train_config, parse_overrides
from fr_train.trainer import run

__all__ = ["build_parser", "main"]


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = CommandParser(prog=prog or "python -m fr_train", description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, type=existing_file, help="training config YAML")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=2 (value read as YAML)")
    parser.add_argument("--output", help="run folder (overrides train.output)")
    parser.add_argument("--resume", nargs="?", const=True, default=None, metavar="CHECKPOINT",
                        help="resume from a checkpoint folder, or (no value) from the run folder's latest")
    parser.add_argument("--stop-after", type=positive_int, help="stop with a checkpoint after this many steps in all")
    return parser


@command("python -m fr_train")
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        overrides = parse_overrides(args.overrides)
        if args.output:
            overrides.setdefault("train", {})["output"] = args.output
        cfg = load_train_config(args.config, overrides)
    except ConfigError as exc:
        return fail(prog, exc)
    try:
        with runtime.process_group(cfg.train.device):
            rank, world = runtime.rank_world()
            result = run(cfg, resume=args.resume, stop_after=args.stop_after)
    except (ConfigError, DataError) as exc:
        return fail(prog, exc)
    print(f"rank {rank}/{world}: done at step {result.state.step}, checkpoint {result.checkpoint}",
          flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

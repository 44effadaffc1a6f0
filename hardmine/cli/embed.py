"""Embed every image of a shard folder with a face backbone.

    python tools/embed.py --shards DIR --model SPEC --out EMB [--checkpoint CKPT] [--batch-size B]
        [--no-flip] [--device auto|cpu|cuda] [--workers W] [--overwrite] [--quality-model QCKPT] [--pose]
        [--input-mean M] [--input-std S] [--channel-order rgb|bgr]   # ONNX models only
    torchrun --nproc_per_node G tools/embed.py ...   # rank r embeds shards i % G == r, rank 0 merges

SPEC: an ``fr_train`` backbone name (``iresnet50``, ``tiny``, ...; arcface_torch ``backbone.pth`` state
dicts load unchanged with ``--checkpoint``), ``package.module:factory`` (+ optional ``--checkpoint``), or
a TorchScript file (``.pt``/``.ts``), or an ONNX file (``.onnx``, e.g. InsightFace's ``w600k_r50.onnx``; needs
the optional extra ``pip install "hardmine[onnx]"``). An ONNX graph that begins with its own Sub/Mul
normalisation is fed raw pixels (mean 0, std 1), any other ``(x - 127.5) / 127.5``, RGB; ``--input-mean``,
``--input-std`` and ``--channel-order`` override that (``fr_data.embed.onnx_model``). Writes ``EMB/embeddings.npy``, ``EMB/index.parquet``,
``EMB/run.json`` (see ``fr_data.folders.embeddings_folder``). ``--quality-model`` names a quality
regressor's checkpoint folder, or its training run folder (latest checkpoint; trained with
``configs/sdd_fiqa_synth.yaml`` or ``sdd_fiqa_r50.yaml``): its score of every image goes into the index's
``quality`` column (``fr_train.objective.quality``). ``--pose`` adds ``yaw`` and ``roll`` columns from dlib's
5-point face landmarks (``fr_data.embed.pose``; needs the optional extra ``pip install "hardmine[pose]"``),
which mining's pose bins then use.
"""

from __future__ import annotations

import argparse
import os
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from fr_data import runtime
from fr_data.embed.model_spec import NamedModelFactory, resolve_model
from fr_data.embed.onnx_model import CHANNEL_ORDERS, OnnxBackbone, OnnxInput
from fr_data.embed.pose import load_landmark_pose
from fr_data.embed.run import embed_folder
from fr_data.io.argtypes import (
    CommandParser,
    existing_file,
    existing_folder,
    existing_path,
    finite_float,
    non_negative_int,
    output_folder,
    positive_float,
    positive_int,
)
from fr_data.io.command import command, fail
from fr_data.io.errors import HardmineError
from fr_data.io.hashing import file_sha256
from fr_data.io.publish import check_apart

if TYPE_CHECKING:
    import torch


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    parser = CommandParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--shards", required=True, type=existing_folder,
                        help="shard folder (shard-*.tar, samples.parquet)")
    parser.add_argument("--model", required=True,
                        help="fr_train name, package.module:factory, TorchScript file, or ONNX file (.onnx)")
    parser.add_argument("--checkpoint", type=existing_file,
                        help="state dict for a name/factory SPEC (weights_only load)")
    parser.add_argument("--embedding-size", type=positive_int, help="embedding_size passed to an fr_train backbone")
    parser.add_argument("--dual-bn", action="store_true",
                        help="the fr_train backbone is dual-BN (trained with model.options.dual_bn, e.g. AFA)")
    parser.add_argument("--out", required=True, type=output_folder, help="the EMB folder to create")
    parser.add_argument("--batch-size", type=positive_int, default=128)
    parser.add_argument("--no-flip", action="store_true", help="embed f(x) only (no flip-sum, no flip_cos)")
    parser.add_argument("--device", choices=runtime.DEVICE_CHOICES, default="auto")
    parser.add_argument("--workers", type=non_negative_int, default=2, help="DataLoader decode processes")
    parser.add_argument("--amp", action="store_true", help="autocast the forward (float16 on CUDA)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    parser.add_argument("--quality-model", type=existing_path, metavar="CKPT",
                        help="quality regressor checkpoint (or its run folder): adds a quality column")
    parser.add_argument("--pose", action="store_true",
                        help="add yaw and roll columns from face landmarks (needs the pose extra)")
    onnx = parser.add_argument_group("ONNX models", "what an .onnx graph is fed: (pixels - mean) / std; "
                                     "default: mean 0, std 1 when the graph starts with its own Sub/Mul "
                                     "normalisation, else 127.5 and 127.5; RGB")
    onnx.add_argument("--input-mean", type=finite_float, metavar="M", help="subtract M from the pixel values")
    onnx.add_argument("--input-std", type=positive_float, metavar="S", help="then divide by S")
    onnx.add_argument("--channel-order", choices=CHANNEL_ORDERS, help="channel order the graph expects")
    parser.add_argument("--no-progress", action="store_true")
    return parser


def named_models(embedding_size: int | None, dual_bn: bool = False) -> NamedModelFactory | None:
    """``fr_train.models.get_model`` (with ``embedding_size`` if given; its dual-BN version with ``dual_bn``),
    or None without fr_train."""
    try:
        from fr_train.models import get_model
    except ImportError:
        return None
    kwargs = {} if embedding_size is None else {"embedding_size": embedding_size}
    if dual_bn:
        kwargs["dual_bn"] = True
    return lambda name: get_model(name, **kwargs)


def load_quality(path: Path | None) -> tuple[torch.nn.Module | None, dict | None]:
    """The quality model of ``--quality-model`` and its spec, or ``(None, None)``."""
    if path is None:
        return None, None
    from fr_train.objective.quality import load_quality_model
    return load_quality_model(path)


@command("hardmine embed")
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    args = build_parser(prog).parse_args(argv)
    try:
        check_apart(args.out, args.shards, args.checkpoint, args.quality_model)
        # ranks wait at the barrier for the slowest rank's whole share of the data set: allow hours
        with runtime.process_group(args.device, timeout=timedelta(hours=12)) as device:
            onnx_input = OnnxInput(args.input_mean, args.input_std, args.channel_order)
            model = resolve_model(args.model, args.checkpoint, named=named_models(args.embedding_size, args.dual_bn),
                                  onnx_input=onnx_input, device=device)
            spec = {"model": args.model, "checkpoint": os.fspath(args.checkpoint) if args.checkpoint else None,
                    "embedding_size": args.embedding_size, **({"dual_bn": True} if args.dual_bn else {})}
            if args.checkpoint:  # the weights by content: hardmine overlap refuses other weights at the same path
                spec["checkpoint_sha256"] = file_sha256(args.checkpoint)
            if isinstance(model, OnnxBackbone):  # what the graph was fed and where it ran
                spec["onnx"] = model.describe()
            quality, quality_spec = load_quality(args.quality_model)
            pose = load_landmark_pose() if args.pose else None
            info = embed_folder(model, args.shards, args.out, batch_size=args.batch_size,
                                flip=not args.no_flip, device=device, workers=args.workers, spec=spec,
                                amp=args.amp, overwrite=args.overwrite, progress=not args.no_progress,
                                quality=quality, quality_spec=quality_spec,
                                pose=pose, pose_spec=pose.describe() if pose is not None else None)
    except HardmineError as exc:
        return fail(prog, exc)
    if info is not None:
        print(f"embedded {info['count']} images x {info['dims']} dims in {info['seconds']:.1f} s "
              f"({info['images_per_second']} img/s) -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

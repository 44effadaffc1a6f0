"""Audit evaluation sets against a training set: identities they share, images they leak.

    hardmine overlap --embeddings EMB --eval SPEC [SPEC ...] --out DIR [--model M --checkpoint C]
        [--fpr F | --threshold T] [--duplicate-cos X] [--mining-config CFG] [--samples SAMPLES]
        [--top-k K] [--leak-k K] [--device auto|cpu|cuda] [--overwrite]

SPEC: an InsightFace ``.bin`` pack, a shard folder, an image folder (one sub-folder per identity, or images
only), or an embeddings folder made with EMB's model. Images are embedded with the model recorded in
``EMB/run.json`` (same flip-sum, normalisation and ONNX input convention); ``--model``/``--checkpoint``, when
given, must name that model. A training class overlaps an evaluation identity (an image, for sets without
identities) when its centre's cosine exceeds the identity threshold: calibrated on the training set so that
a query of a person in none of the C training classes exceeds it against ANY of them with probability at
most ``--fpr`` (default 1e-5 per evaluation query: a per-pair rate of fpr / C, union bound; see
``fr_data.overlap.threshold``), or ``--threshold`` (0.4: the MegaFace rule; states no rate). A training
image is leaked when it has an evaluation image's bytes, or is among the image's top ``--leak-k`` training
images and passes the pixel check (grey-level correlation of the two images at least the mining config's
``duplicates.pixel_min``, best over small centred zooms: ``fr_data.overlap.audit``) when the training
shards and the evaluation images are at hand, else has a cosine at or above the duplicate threshold of the
mining config (``--mining-config``; calibrated with ``auto``). Writes ``DIR/overlap.parquet``,
``DIR/overlap_classes.parquet``, ``DIR/overlap.json`` (``fr_data.folders.overlap_folder``; with the
seconds of every stage); train with ``data.selection.exclude_overlap: DIR``. On a terminal each stage
prints a line to stderr as it starts and ends.
"""

from __future__ import annotations

import argparse
import os
import sys

from fr_data import runtime
from fr_data.embed.model_spec import NamedModelFactory
from fr_data.folders.embeddings_folder import read_run_info
from fr_data.io.argtypes import (
    CommandParser,
    existing_file,
    existing_folder,
    existing_path,
    fraction,
    output_folder,
    parquet_file,
    positive_int,
    shipped_config,
)
from fr_data.io.command import command
from fr_data.io.config import load_config
from fr_data.io.errors import ConfigError
from fr_data.io.publish import check_apart
from fr_data.mining.config import MiningConfig
from fr_data.overlap.embedding import (
    check_same_model,
    command_line_record,
    embed_images,
    load_recorded_model,
    model_record,
)
from fr_data.overlap.run import OverlapSettings, audit_overlap, open_training
from fr_data.overlap.sources import EvalSet, read_eval_set
from fr_data.overlap.timing import StageClock


def cosine(text: str) -> float:
    """A cosine in [-1, 1]."""
    value = float(text)
    if not -1.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a cosine in [-1, 1]")
    return value


def rate(text: str) -> float:
    """A rate strictly between 0 and 1."""
    value = fraction(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a rate strictly between 0 and 1")
    return value


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = CommandParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--embeddings", required=True, type=existing_folder, help="the training set's EMB folder")
    p.add_argument("--eval", required=True, nargs="+", type=existing_path, metavar="SPEC",
                   help=".bin pack, shard folder, image folder, or embeddings folder of the same model")
    p.add_argument("--out", required=True, type=output_folder, help="the overlap folder to create")
    p.add_argument("--model", help="the model of EMB (default: the one recorded in EMB/run.json)")
    p.add_argument("--checkpoint", type=existing_file, help="its state dict (a name or factory model)")
    rule = p.add_mutually_exclusive_group()
    rule.add_argument("--fpr", type=rate, default=1e-5,
                      help="false-match rate per evaluation query of the calibrated identity threshold: the "
                           "probability that a query of a person in no training class exceeds it against ANY of "
                           "the C classes (per-pair rate fpr / C; default 1e-5)")
    rule.add_argument("--threshold", type=cosine, help="identity threshold (0.4 = the MegaFace rule)")
    p.add_argument("--duplicate-cos", type=cosine, help="image-leak threshold (default: the mining config's)")
    p.add_argument("--mining-config", type=shipped_config, help="mining YAML whose duplicates.cos applies")
    p.add_argument("--samples", type=parquet_file,
                   help="the training shards' samples.parquet (byte hashes; default: the one EMB names)")
    p.add_argument("--top-k", type=positive_int, default=10, help="training classes searched per query")
    p.add_argument("--leak-k", type=positive_int, default=5, help="training images searched per image")
    p.add_argument("--calibration-samples", type=positive_int, default=1000,
                   help="training images sampled for the thresholds")
    p.add_argument("--batch-size", type=positive_int, default=64)
    p.add_argument("--device", choices=runtime.DEVICE_CHOICES, default="auto")
    p.add_argument("--overwrite", action="store_true", help="replace an existing --out folder")
    return p


def named_models(embedding_size: int | None, dual_bn: bool = False) -> NamedModelFactory | None:
    """``fr_train.models.get_model`` (with the recorded ``embedding_size`` and dual-BN flag), or None without
    fr_train."""
    from hardmine.cli.embed import named_models as embed_named

    return embed_named(embedding_size, dual_bn)


def unique_names(sets: list[EvalSet]) -> None:
    """Give sets that share a file or folder name a ``#2``, ``#3`` suffix (in command-line order)."""
    seen: dict[str, int] = {}
    for s in sets:
        seen[s.name] = seen.get(s.name, 0) + 1
        if seen[s.name] > 1:
            s.name = f"{s.name}#{seen[s.name]}"


def _stderr_line(line: str) -> None:
    print(f"hardmine overlap: {line}", file=sys.stderr, flush=True)


@command("hardmine overlap")
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if args.checkpoint is not None and args.model is None:
        parser.error("--checkpoint needs --model")
    check_apart(args.out, args.embeddings, *args.eval, args.checkpoint, args.samples)
    recorded = model_record(read_run_info(args.embeddings), args.embeddings)
    if args.model is not None:
        check_same_model(recorded, command_line_record(args.model, args.checkpoint, recorded), args.embeddings,
                         args.model)
    sets = [read_eval_set(path) for path in args.eval]
    unique_names(sets)
    for s in sets:
        if s.emb_spec is not None:
            check_same_model(recorded, model_record(s.emb_spec, s.path), args.embeddings, s.path)
    mining = load_config(args.mining_config, MiningConfig) if args.mining_config else MiningConfig()
    settings = OverlapSettings(fpr=args.fpr, threshold=args.threshold, duplicate_cos=args.duplicate_cos,
                               mining=mining, top_k=args.top_k, leak_k=args.leak_k,
                               calibration_samples=args.calibration_samples)
    clock = StageClock(report=_stderr_line if sys.stderr.isatty() else None)
    train = open_training(args.embeddings, args.samples, clock)
    with runtime.process_group(args.device) as device:
        if any(s.vectors is None for s in sets):
            with clock.stage("embed", f"{sum(len(s) for s in sets if s.vectors is None)} evaluation images"):
                model = load_recorded_model(recorded, named_models(recorded["spec"].get("embedding_size"),
                                                                   recorded["spec"].get("dual_bn", False)), device)
                for s in sets:
                    if s.vectors is None:
                        s.vectors = embed_images(model, s, flip=recorded["flip"], device=device,
                                                 batch_size=args.batch_size)
        for s in sets:
            if s.vectors.shape[1] != train.emb.vectors.shape[1]:
                raise ConfigError(f"{os.fspath(s.path)}: {s.vectors.shape[1]}-dim embeddings, the training set "
                                  f"has {train.emb.vectors.shape[1]}")
        info = audit_overlap(train, sets, args.out, settings, overwrite=args.overwrite, record=recorded,
                             clock=clock)
    threshold = info["thresholds"]["identity"]
    print(f"identity threshold {threshold['value']:.4f} ({threshold['method']}), duplicate threshold "
          f"{info['thresholds']['duplicate']['value']:.4f}")
    for name, c in info["counts"].items():
        print(f"{name}: {c['images']} images, {c['overlapping_classes']} overlapping training classes, "
              f"{c['leaked_eval_images']} images leaked ({c['leaked_training_images']} training images)")
    rate_info = info["false_match_rate"]
    if rate_info["fpr"] is not None:
        print(f"false-match rate {rate_info['fpr']:g} per query against all {rate_info['classes']} classes: at most "
              f"{rate_info['expected_chance_queries']:g} of {rate_info['queries']} queries expected by chance")
    for warning in info["warnings"]:
        print(f"warning: {warning}", file=sys.stderr)
    print(f"wrote {args.out} in {info['seconds']['total']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

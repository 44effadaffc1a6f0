"""Generate a synthetic face data set with ground truth (InsightFace RecordIO + attributes + .bin packs).

Example::

    python tools/synth.py --out data/synth --identities 1000 --images-per-identity 20 --seed 0 --workers 2

With ``--eval-out EVAL`` it also writes an evaluation set with planted overlap, the ground truth for
auditing a benchmark against the training set (``fr_data.synth.eval_set``): ``EVAL/overlap_eval.bin``
(an InsightFace pairs pack), the same images as an identity folder ``EVAL/images/``, and
``EVAL/truth.parquet`` (per image: its person, the training label it shares or null, the training record
it copies or null, the copy kind). ``--overlap-identities K`` new images of K training identities,
``--leaked-images J`` copies of training images (exact bytes, re-encoded, resized, cropped),
``--disjoint-identities D`` people in no training set. ``--eval-only`` draws the evaluation set for the
training set already in ``--out`` (made with the same flags) without writing it again.
"""

from __future__ import annotations

import argparse
import json

from fr_data.io.argtypes import CommandParser, fraction, non_negative_int, output_folder, positive_int
from fr_data.io.command import command, fail
from fr_data.io.publish import check_apart
from fr_data.synth import SynthConfig, generate
from fr_data.synth.eval_set import EvalSetConfig, generate_eval_set


def build_parser(prog: str | None = None) -> argparse.ArgumentParser:
    """The command-line interface."""
    p = CommandParser(prog=prog, description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, type=output_folder, help="output folder")
    p.add_argument("--identities", type=positive_int, required=True, help="training identities")
    p.add_argument("--images-per-identity", type=positive_int, required=True, help="base images per identity")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--mislabel-rate", type=fraction, default=0.05, help="share of images with a wrong label")
    p.add_argument("--duplicate-rate", type=fraction, default=0.02, help="near-duplicates added (share)")
    p.add_argument("--cross-duplicate-share", type=fraction, default=0.3,
                   help="share of near-duplicates stored under another identity's label")
    p.add_argument("--split-identity-rate", type=fraction, default=0.02,
                   help="share of identities split under two labels")
    p.add_argument("--holdout-identities", type=non_negative_int, default=100, help="identities for the .bin packs")
    p.add_argument("--pairs", type=non_negative_int, default=600, help="pairs per verification pack (0: no packs)")
    p.add_argument("--workers", type=positive_int, default=1, help="rendering processes (output is identical)")
    ev = p.add_argument_group("evaluation set with planted overlap", "ground truth for an overlap audit")
    ev.add_argument("--eval-out", type=output_folder, metavar="EVAL",
                    help="write an evaluation set (overlap_eval.bin, images/, truth.parquet) to this folder")
    ev.add_argument("--overlap-identities", type=non_negative_int, default=0, metavar="K",
                    help="training identities the evaluation set shows in new images")
    ev.add_argument("--leaked-images", type=non_negative_int, default=0, metavar="J",
                    help="exact or near copies of training images in the evaluation set")
    ev.add_argument("--disjoint-identities", type=non_negative_int, default=20, metavar="D",
                    help="evaluation identities in no training set")
    ev.add_argument("--eval-only", action="store_true",
                    help="only the evaluation set, for the training set already in --out")
    ev.add_argument("--overwrite", action="store_true", help="replace an existing --eval-out folder")
    return p


@command("hardmine synth")
def main(argv: list[str] | None = None, prog: str | None = None) -> int:
    """Run the generator; print the counts of ``synth.json``."""
    args = build_parser(prog).parse_args(argv)
    try:
        cfg = SynthConfig(identities=args.identities, images_per_identity=args.images_per_identity,
                          seed=args.seed, mislabel_rate=args.mislabel_rate,
                          duplicate_rate=args.duplicate_rate, cross_duplicate_share=args.cross_duplicate_share,
                          split_identity_rate=args.split_identity_rate,
                          holdout_identities=args.holdout_identities, pairs=args.pairs)
        eval_cfg = EvalSetConfig(args.overlap_identities, args.leaked_images, args.disjoint_identities)
        if args.eval_out is None and (args.eval_only or eval_cfg != EvalSetConfig()):
            raise ValueError("--eval-only, --overlap-identities, --leaked-images and --disjoint-identities "
                             "need --eval-out")
        if args.eval_out is not None:
            check_apart(args.eval_out, args.out)
        if not args.eval_only:
            print(json.dumps(generate(cfg, args.out, workers=args.workers)["counts"], sort_keys=True))
        if args.eval_out is not None:
            info = generate_eval_set(cfg, args.out, args.eval_out, eval_cfg, workers=args.workers,
                                     overwrite=args.overwrite)
            print(json.dumps(info["counts"], sort_keys=True))
    except ValueError as exc:
        return fail(prog, exc)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Generate a synthetic face data set with ground truth (InsightFace RecordIO + attributes + .bin packs).

Example::

    python tools/synth.py --out data/synth --identities 1000 --images-per-identity 20 --seed 0 --workers 2
"""

from __future__ import annotations

import argparse
import json

from fr_data.io.argtypes import CommandParser, fraction, non_negative_int, output_folder, positive_int
from fr_data.io.command import command, fail
from fr_data.synth import SynthConfig, generate


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
    except ValueError as exc:
        return fail(prog, exc)
    info = generate(cfg, args.out, workers=args.workers)
    print(json.dumps(info["counts"], sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

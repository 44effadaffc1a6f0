"""A recogniser trained on many synthetic people, exported to ONNX, for ``bench_overlap_demo.py --model``.

    python benchmarks/overlap_recogniser.py --out REC [--identities 2000] [--images-per-identity 10]
                                            [--seed 100] [--steps 1500] [--workers 2]

Issue 22's audit is written for a recogniser trained on far more people than the data set it audits (an
InsightFace ONNX model). The demo's own backbone is trained on the demo's 120 people and maps people it has
never seen onto those classes; this recipe trains the same ``tiny`` backbone with the demo's recipe
(``configs/synth_tiny_cosface.yaml`` and the demo's overrides: CosFace m 0.2, batch 64) on a clean synthetic
set of many people (no mislabels, near-duplicates or split identities) and writes ``REC/recogniser.onnx``
with ``fr_train.checkpoints.export.export_onnx`` (no normalisation in the graph: fed ``(x - 127.5) / 127.5``,
RGB, as ``hardmine embed`` assumes for such a graph).

Its people are disjoint from every demo data set audited with it: a synthetic person is drawn from the
generator keyed by ``(seed, 0, identity)`` (``fr_data.synth.identity.identity_rng``), so a recogniser seed
other than the demo's data seed shares no person with the demo's training, held-out or evaluation people,
whatever their numbers; :func:`check_disjoint` refuses the demo seed itself.

Stages (``synth``, ``shard``, ``train``) are stamped like the demo's (``REC/stages``): a rerun skips finished
ones and resumes training; each stamp records its wall and CPU seconds, printed at the end.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import describe  # noqa: E402

from fr_data.io.config import deep_merge  # noqa: E402
from fr_data.io.errors import ConfigError  # noqa: E402
from fr_data.io.shipped import config_file  # noqa: E402
from fr_data.synth import SynthConfig  # noqa: E402
from fr_train.checkpoints.export import export_onnx  # noqa: E402
from fr_train.config import TrainConfig, load_train_config  # noqa: E402
from hardmine.pipelines import stages  # noqa: E402
from hardmine.pipelines.demo import DEMO_TRAINING  # noqa: E402

#: The exported model inside ``--out``.
ONNX_FILE = "recogniser.onnx"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True, type=Path, help="recipe folder (rerun to resume)")
    p.add_argument("--identities", type=int, default=2000, help="training people")
    p.add_argument("--images-per-identity", type=int, default=10)
    p.add_argument("--seed", type=int, default=100,
                   help="synth seed: must differ from the data seed of every demo audited with the model")
    p.add_argument("--steps", type=int, default=1500, help="training steps (batch 64)")
    p.add_argument("--workers", type=int, default=2, help="rendering and sharding processes")
    return p


def synth_config(args: argparse.Namespace) -> SynthConfig:
    """The recogniser's clean training set: many people, no label noise, no held-out packs."""
    return SynthConfig(identities=args.identities, images_per_identity=args.images_per_identity, seed=args.seed,
                       mislabel_rate=0.0, duplicate_rate=0.0, split_identity_rate=0.0, pairs=0)


def check_disjoint(recogniser_seed: int, data_seed: int) -> None:
    """Refuse a recogniser trained on the audited data set's own seed (its people would include the
    demo's: the same ``(seed, identity)`` is the same person)."""
    if recogniser_seed == data_seed:
        raise ConfigError(f"recogniser seed {recogniser_seed} is the demo's data seed: its people would "
                          "include the audited data set's; use another --seed")


def train_config(folders: stages.Folders, args: argparse.Namespace) -> TrainConfig:
    """The demo's training recipe on the recogniser's shards, ``--steps`` long, data order by ``--seed``."""
    overrides = deep_merge(DEMO_TRAINING, {"data": {"shards": str(folders.shards), "seed": args.seed},
                                           "train": {"output": str(folders.train), "max_steps": args.steps}})
    return load_train_config(str(config_file("synth_tiny_cosface.yaml")), overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    folders = stages.Folders(args.out)
    args.out.mkdir(parents=True, exist_ok=True)
    stamper = stages.Stamper(folders, tag="recogniser", timed=True)
    print(describe(), flush=True)
    synth = synth_config(args)
    results = [stages.synth_stage(stamper, synth, folders.synth, args.workers),
               stages.shard_stage(stamper, folders.synth, folders.shards, 1000, args.seed, args.workers)]
    tcfg = train_config(folders, args)
    results.append(stages.train_stage(stamper, tcfg))
    model, _ = stages.load_backbone(tcfg, stages.trained_weights(folders))
    path = export_onnx(model, args.out / ONNX_FILE)
    for r in results:
        print(f"{r.name}: {'skipped (done before), ' if r.skipped else ''}{r.info.get('seconds', 0):.0f} s wall, "
              f"{r.info.get('cpu_seconds', 0):.0f} s CPU")
    print(f"{synth.identities} people x {synth.images_per_identity} images (seed {synth.seed}), "
          f"{args.steps} steps -> {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``hardmine SUBCOMMAND [ARGS]``: the whole pipeline from one installed command.

    hardmine synth --out data/synth --identities 1000 --images-per-identity 20
    hardmine shard --src data/synth --out data/shards
    hardmine verify data/shards
    hardmine embed --shards data/shards --model iresnet50 --checkpoint backbone.pth --out data/emb
    hardmine mine --embeddings data/emb --out manifests/RUN --samples data/shards/samples.parquet
    hardmine query manifests/RUN --file suspects_per_class.sql
    hardmine overlap --embeddings data/emb --eval lfw.bin cfp_fp.bin --out data/overlap
    hardmine report manifests/RUN --shards data/shards --out review/RUN
    hardmine train --config ms1mv3_r50_arcface            (also: torchrun ... -m hardmine train ...)
    hardmine demo --out demo
    hardmine experiment --out exp --size small
    hardmine experiment-pool --out pool exp exp2 exp3

``hardmine SUBCOMMAND --help`` describes each one.
"""

from __future__ import annotations

import importlib
import sys

#: Subcommand -> (module under hardmine.cli, one-line summary). Modules are imported only when used.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "synth": ("synth", "generate synthetic faces with ground truth (RecordIO, attributes, .bin packs)"),
    "shard": ("shard", "RecordIO / image folder -> WebDataset shards + samples.parquet"),
    "verify": ("verify", "check a shard folder against shards.json and samples.parquet"),
    "embed": ("embed", "embed every image of a shard folder with a face backbone"),
    "mine": ("mine", "mine noise, duplicates, merges, quality, splits and pairs into Parquet manifests"),
    "query": ("query", "read-only DuckDB SQL over a mining run"),
    "overlap": ("overlap", "audit evaluation sets against the training set: shared identities, leaked images"),
    "report": ("report", "a static review page of a mining run (decisions exported as review.csv)"),
    "export": ("export", "review.csv -> the files to delete (list.txt) and to relabel (relabel.csv)"),
    "train": ("train", "train a face model from a config (python -m fr_train; torchrun works too)"),
    "demo": ("demo", "the end-to-end demo on synthetic faces"),
    "experiment": ("experiment", "does training on the manifests help hard samples? arms at equal compute, scored"),
    "experiment-pool": ("experiment_pool", "pool experiment folders (one pretrained backbone each): gains over backbones"),
}


def usage() -> str:
    """The top-level help text."""
    width = max(map(len, SUBCOMMANDS))
    rows = "\n".join(f"  {name:<{width}}  {summary}" for name, (_, summary) in SUBCOMMANDS.items())
    return f"usage: hardmine SUBCOMMAND [ARGS]\n\nsubcommands:\n{rows}\n\n{__doc__.split(chr(10) + chr(10))[1]}"


def main(argv: list[str] | None = None) -> int:
    """Dispatch to the subcommand's ``main``; exit 2 for an unknown subcommand."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in SUBCOMMANDS:
        print(f"hardmine: unknown subcommand {name!r}; choose from {', '.join(SUBCOMMANDS)}", file=sys.stderr)
        return 2
    module = importlib.import_module(f"hardmine.cli.{SUBCOMMANDS[name][0]}")
    return module.main(rest, prog=f"hardmine {name}")


if __name__ == "__main__":
    raise SystemExit(main())

"""A mining run with a planted overlap audit, for the review page's overlap section: ``hardmine synth
--eval-out`` (2 training identities shared with the evaluation set, 2 leaked images, one an exact copy),
shard, embed with a seeded ``tiny`` backbone saved as a checkpoint (so ``hardmine overlap`` embeds the
evaluation images with the very weights of EMB: an exact copy has cosine 1), mine, and ``hardmine overlap``
of the ``.bin`` pack and the image folder. The untrained backbone finds every class above 0.99, so the
section has an identity card per class and an image card per leaked image; the tests compare the page
with the overlap folder, not with the planted truth (that is tests/fr_data/overlap/'s job)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from fr_data.folders import overlap_folder as of
from hardmine.cli import embed, mine, overlap, shard, synth


@dataclass
class OverlapRun:
    root: Path
    shards: Path
    emb: Path
    run: Path
    audit: Path
    eval_dir: Path


def make_overlap_run(root: Path) -> OverlapRun:
    """Write the run and its overlap folder under ``root`` (about a minute on two cores)."""
    import torch

    from fr_train.models import get_model

    torch.manual_seed(0)
    torch.save(get_model("tiny").state_dict(), root / "tiny.pt")
    assert synth.main(["--out", str(root / "synth"), "--identities", "8", "--images-per-identity", "4",
                       "--seed", "1", "--holdout-identities", "2", "--pairs", "0", "--eval-out",
                       str(root / "EVAL"), "--overlap-identities", "2", "--leaked-images", "2",
                       "--disjoint-identities", "2"]) == 0
    assert shard.main(["--src", str(root / "synth"), "--out", str(root / "shards")]) == 0
    assert embed.main(["--shards", str(root / "shards"), "--model", "tiny", "--checkpoint", str(root / "tiny.pt"),
                       "--out", str(root / "emb"), "--workers", "0", "--no-progress"]) == 0
    assert mine.main(["--embeddings", str(root / "emb"), "--out", str(root / "run"), "--samples",
                      str(root / "shards" / "samples.parquet"), "--quiet"]) == 0
    assert overlap.main(["--embeddings", str(root / "emb"), "--eval", str(root / "EVAL" / "overlap_eval.bin"),
                         str(root / "EVAL" / "images"), "--out", str(root / "OVL"), "--threshold", "0.99"]) == 0
    return OverlapRun(root, root / "shards", root / "emb", root / "run", root / "OVL", root / "EVAL")


def expected_cards(audit: Path) -> dict[tuple[str, int, str | None], float]:
    """(match, label, leaked training key or None) -> the largest cosine: the section's cards, from the
    overlap folder with pyarrow (independently of the page's SQL)."""
    out: dict[tuple[str, int, str | None], float] = {}
    for r in pq.read_table(audit / of.OVERLAP_FILE).to_pylist():
        card = (r["match"], r["label"], r["train_key"])
        out[card] = max(out.get(card, -2.0), r["cos"])
    return out

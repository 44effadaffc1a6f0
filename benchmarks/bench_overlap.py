"""Benchmark: ``hardmine overlap``'s audit at scale and its precision / recall on planted overlap (issue 22).

    python benchmarks/bench_overlap.py [--classes 100000] [--eval 12000] [--dim 512] [--per-class 1]
        [--device auto|cpu|cuda] [--skip-planted]

**Scale**: a training EMB of random unit vectors (``--classes`` classes x ``--per-class`` images, float16,
as ``hardmine embed`` writes them; 100K training rows by default) and ``--eval`` random evaluation vectors
in identities of 4 images (already embedded: the model's forward is ``hardmine embed``'s cost, measured by
its own benchmark). Runs what ``hardmine overlap`` runs after embedding, with its defaults and its k-NN
(:func:`fr_data.mining.knnfn.default_knn`): opening EMB, the class centres (one streaming pass), the
identity threshold (1000 sampled images against every other-class centre), the duplicate threshold (1000
samples against all training images, top 2), the identity search (every evaluation identity centre against
every class centre, exact top 10), the leak search (every evaluation image against every training image,
exact top 5) and writing the folder; prints the wall and CPU seconds of each stage (``overlap.json``
``seconds``; on a shared machine the CPU seconds are the load-independent cost), the load average before
and after, the machine's float32 GEMM rate measured right after, and one ``TOTAL`` line. 100K x 12K is
the size of LFW + CFP-FP + AgeDB against a 100K-identity training set.

**Planted**: the overlap of ``tests/fr_data/overlap/helpers.py`` (planted training set with mislabels,
duplicates, split identities and look-alikes; 40 shared people, 60 absent people, 30 near copies), with and
without evaluation identities: precision and recall of the overlapping classes named, leak recall.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fr_data import runtime  # noqa: E402
from fr_data.folders import overlap_folder as of  # noqa: E402
from fr_data.overlap.run import OverlapSettings, audit_overlap, open_training  # noqa: E402
from fr_data.overlap.sources import EvalSet  # noqa: E402
from fr_data.overlap.timing import StageClock  # noqa: E402
from tests.fr_data.overlap.helpers import make_planted_overlap, random_unit, write_random_emb  # noqa: E402


def gemm_rate(dim: int, seconds: float = 2.0) -> float:
    """GFLOP/s of a 1000 x 20000 x ``dim`` float32 product, repeated for about ``seconds``."""
    rng = np.random.default_rng(3)
    a, b = random_unit(rng, 1000, dim), random_unit(rng, 20000, dim)
    t0, calls = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        _ = a @ b.T
        calls += 1
    return 2e3 * 20000 * dim * calls / (time.perf_counter() - t0) / 1e9


def scale(args: argparse.Namespace, work: Path) -> None:
    from fr_data.mining.knnfn import default_knn

    write_random_emb(work / "emb", args.classes, args.per_class, args.dim, 0)
    vectors = random_unit(np.random.default_rng(1), args.eval, args.dim)
    eval_set = EvalSet("eval", work / "eval", "embeddings", [str(i) for i in range(args.eval)],
                       [str(i // 4) for i in range(args.eval)], None, vectors)
    runtime.resolve_device(args.device)
    knn = default_knn()
    load_before = os.getloadavg()
    clock = StageClock(report=lambda line: print(f"  {line}", file=sys.stderr, flush=True))
    t0 = time.perf_counter()
    train = open_training(work / "emb", None, clock)
    info = audit_overlap(train, [eval_set], work / "out", OverlapSettings(), knn=knn, clock=clock)
    wall = time.perf_counter() - t0
    load_after = os.getloadavg()
    rate = gemm_rate(args.dim)
    n = args.classes * args.per_class
    print(f"training: {args.classes} classes x {args.per_class} images = {n} rows, dim {args.dim}; evaluation: "
          f"{args.eval} images ({args.eval // 4} identities); k-NN {info['search']['knn']}")
    print("| stage | wall s | CPU s |\n|---|---|---|")
    for name, seconds in info["seconds"]["stages"].items():
        print(f"| {name} | {seconds:.1f} | {info['seconds']['cpu'][name]:.1f} |")
    cpu = sum(info["seconds"]["cpu"].values())
    print(f"| total | {info['seconds']['total']:.1f} | {cpu:.1f} |")
    ident = info["thresholds"]["identity"]
    matches = of.read_overlap(work / "out").column("match").to_pylist()
    print(f"identity threshold {ident['value']:.4f} ({ident['method']}; per query {ident['params']['fpr']:g}, per "
          f"pair {ident['params']['pair_rate']:.3g}); identity rows {matches.count('identity')}, image rows "
          f"{matches.count('image')} (random vectors: expect ~0)")
    print(f"load average (1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after; float32 GEMM right after: "
          f"{rate:.0f} GFLOP/s")
    print(f"TOTAL {wall:.1f} s wall ({cpu:.1f} s CPU on {os.cpu_count()} cores) for {args.classes} classes x "
          f"{args.eval} evaluation images; goal <= 60 s for 100K x 12K on the 2-core machine; load "
          f"{load_before[0]:.1f} -> {load_after[0]:.1f}, GEMM {rate:.0f} GFLOP/s")


def planted(work: Path) -> None:
    p = make_planted_overlap(work / "planted_emb")
    train = open_training(p.emb, None)
    for identities in (True, False):
        out = work / f"planted_{identities}"
        info = audit_overlap(train, [p.eval_set(identities)], out, OverlapSettings())
        named = set(of.read_classes(out).column("label").to_pylist())
        hit = len(named & p.overlap_labels)
        rows = of.read_overlap(out).to_pylist()
        leaks = {(r["eval_index"], r["train_key"]) for r in rows if r["match"] == "image"}
        copies = {(i, k) for i, k in enumerate(p.copied_keys) if k is not None}
        print(f"planted, {'identity folders' if identities else '.bin pack (no identities)'}: threshold "
              f"{info['thresholds']['identity']['value']:.3f}, classes named {len(named)} / true "
              f"{len(p.overlap_labels)}: precision {hit / max(len(named), 1):.3f}, recall "
              f"{hit / len(p.overlap_labels):.3f}; leak recall {len(leaks & copies) / len(copies):.3f} "
              f"({len(leaks - copies)} extra)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--classes", type=int, default=100_000)
    p.add_argument("--eval", type=int, default=12_000)
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--per-class", type=int, default=1)
    p.add_argument("--device", default="auto")
    p.add_argument("--skip-planted", action="store_true")
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_planted:
            planted(Path(tmp))
        scale(args, Path(tmp))


if __name__ == "__main__":
    main()

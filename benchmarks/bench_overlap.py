"""Benchmark: ``hardmine overlap``'s audit at scale and its precision / recall on planted overlap (issue 22).

    python benchmarks/bench_overlap.py [--classes 100000] [--eval 12000] [--dim 512] [--per-class 1]
        [--device auto|cpu|cuda] [--skip-planted]

**Scale**: a training EMB of random unit vectors (``--classes`` classes x ``--per-class`` images, float16,
as ``hardmine embed`` writes them) and ``--eval`` random evaluation vectors (already embedded: the model's
forward is ``hardmine embed``'s cost, measured by its own benchmark). Times every stage of
:func:`fr_data.overlap.run.audit_overlap` with the default settings: class centres, the identity threshold
calibrated on 1000 sampled images against every other-class centre, the duplicate threshold (1000 samples
against all training images), the identity search (every evaluation identity centre against every class
centre, exact top 10) and the leak search (every evaluation image against every training image, exact
top 5). 100K x 12K is the size of LFW + CFP-FP + AgeDB against a 100K-identity training set.

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
from tests.fr_data.overlap.helpers import make_planted_overlap  # noqa: E402


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_random_emb(folder: Path, classes: int, per_class: int, dim: int, seed: int) -> None:
    """A training EMB folder of random unit rows, block by block (never the whole float32 array)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    n = classes * per_class
    out = np.lib.format.open_memmap(folder / "embeddings.npy", mode="w+", dtype=np.float16, shape=(n, dim))
    rng = np.random.default_rng(seed)
    for s in range(0, n, 65536):
        out[s:s + 65536] = _unit(rng, min(65536, n - s), dim)
    out.flush()
    del out
    labels = np.repeat(np.arange(classes, dtype=np.int64), per_class)
    pq.write_table(pa.table({"key": [f"{i:09d}" for i in range(n)], "label": labels}), folder / "index.parquet")
    (folder / "run.json").write_text('{"spec": {"model": "random"}, "flip": true}')


class StageTimer:
    """A KnnFn wrapper recording each search's seconds in call order (calibration, identities, leaks)."""

    def __init__(self, knn):
        self.knn, self.calls = knn, []

    def __call__(self, queries, database, k, *, exclude_self=False):
        t0 = time.perf_counter()
        res = self.knn(queries, database, k, exclude_self=exclude_self)
        self.calls.append((len(queries), len(database), k, time.perf_counter() - t0))
        return res

    @property
    def name(self) -> str:
        return getattr(self.knn, "name", "knn")


def scale(args: argparse.Namespace, work: Path) -> None:
    from fr_data.knn import default_backend
    from fr_data.mining.knnfn import BackendKnn

    write_random_emb(work / "emb", args.classes, args.per_class, args.dim, 0)
    vectors = _unit(np.random.default_rng(1), args.eval, args.dim)
    eval_set = EvalSet("eval", work / "eval", "embeddings", [str(i) for i in range(args.eval)],
                       [str(i // 4) for i in range(args.eval)], None, vectors)
    runtime.resolve_device(args.device)
    t0 = time.perf_counter()
    train = open_training(work / "emb", None)
    t_centres = time.perf_counter() - t0
    knn = StageTimer(BackendKnn(default_backend()))
    t1 = time.perf_counter()
    info = audit_overlap(train, [eval_set], work / "out", OverlapSettings(), knn=knn)
    total = time.perf_counter() - t1
    searches = sum(c[3] for c in knn.calls)
    print(f"training: {args.classes} classes x {args.per_class} images, dim {args.dim}; evaluation: {args.eval} "
          f"images ({args.eval // 4} identities); backend {knn.name}")
    print(f"centres {t_centres:.1f} s; audit {total:.1f} s, of which: identity threshold "
          f"{total - searches:.1f} s (BLAS, incl. writing), " + ", ".join(
              f"{q}x{d} top-{k} {s:.1f} s" for q, d, k, s in knn.calls))
    ident = info["thresholds"]["identity"]
    print(f"identity threshold {ident['value']:.4f} ({ident['method']}: {ident['statistic']}); "
          f"rows reported {of.read_overlap(work / 'out').num_rows} (random vectors: expect ~0)")
    a = _unit(np.random.default_rng(2), 1000, args.dim)
    t2 = time.perf_counter()
    _ = a @ np.asarray(train.emb.vectors[:args.classes], np.float32).T
    gemm = time.perf_counter() - t2
    print(f"machine now: one 1000 x {args.classes} x {args.dim} float32 GEMM takes {gemm:.2f} s "
          f"({2e3 * args.classes * args.dim / gemm / 1e9:.0f} GFLOP/s); load average {os.getloadavg()[0]:.1f}")
    print(f"TOTAL {t_centres + total:.1f} s (goal <= 60 s for 100K x 12K on the 2-core machine)")


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

"""Benchmark: the review page (tools/report.py's library call) - thumbnail speed and peak memory vs run size.

    python benchmarks/bench_report.py [--images M] [--thumbs T] [--rows N1 N2 ...] [--work DIR] [--small]

1. Thumbnails: M synthetic face-sized JPEGs (112 x 112, noisy texture so they compress like photos, ~5 KB)
   are sharded with fr_data.ingest.shards; T random keys are looked up in the shard index and thumbnailed with 2
   threads (``fr_data.review.thumbs.locate`` + ``write_thumbnails``), page cache warm.
2. Peak memory: synthetic mining runs of N rows (N/40 classes; 1% suspects, 0.5% duplicates, 1% merge
   candidate classes, 5 pairs per class and kind) are written with the manifest schemas, next to a shard
   folder whose cached key index (``shard_index.parquet``) holds all N keys, each pointing at one of the M
   real images (so lookups search an N-row index and every shown image is a real decode). The whole
   ``build_report`` (per section 200) then runs in a fresh child process; reported: wall time per stage,
   peak RSS (VmHWM) and peak anonymous RSS (RssAnon sampled every 50 ms: memory beyond mapped files).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402
from PIL import Image  # noqa: E402

from benchmarks._machine import describe  # noqa: E402
from benchmarks._memory import SAMPLER  # noqa: E402

CHUNK = 250_000
PER_CLASS = 40

CHILD = SAMPLER + r"""
sys.path.insert(0, sys.argv[4])
from fr_data.review import build_report
t0 = time.perf_counter()
res = build_report(sys.argv[1], sys.argv[2], sys.argv[3], overwrite=True)
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall, "timings": res.manifest["timings"], "thumbnails": res.manifest["thumbnails"],
                  "sections": res.manifest["sections"], **memory_mb()}))
"""


# ------------------------------------------------------------------------------------------------ images
class NoisySource:
    """A ``fr_data.ingest.sources`` Source of M noisy 112 x 112 JPEG faces (label = index // 20)."""

    def __init__(self, count: int, path: Path):
        self.count, self.path, self.num_classes = count, path, count // 20 + 1

    def __len__(self) -> int:
        return self.count

    def indices(self) -> np.ndarray:
        return np.arange(self.count, dtype=np.int64)

    def read(self, index: int):
        from fr_data.ingest.source import SourceRecord

        rng = np.random.default_rng(int(index))
        base = rng.integers(40, 220, 3)
        noise = rng.normal(0, 25, (28, 28, 3))
        pixels = np.clip(base + np.kron(noise, np.ones((4, 4, 1))), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
        return SourceRecord(int(index), int(index) // 20, buf.getvalue())

    def read_many(self, indices):
        from fr_data.ingest.source import read_each

        return read_each(self, indices)

    def locate(self, index: int) -> tuple[Path, str]:
        return self.path, f"index {index}"

    def describe(self) -> dict:
        return {"kind": "noisy", "count": self.count}


def make_image_shards(folder: Path, count: int) -> Path:
    """Shards of ``count`` noisy JPEGs (reused when present), with their key index cached."""
    from fr_data.loading.shard_index import ShardIndex
    from fr_data.ingest.plan import ShardOptions
    from fr_data.ingest.sharding import write_shards

    if not (folder / "shards.json").is_file():
        write_shards(NoisySource(count, folder.parent / "noisy"), folder, ShardOptions(per_shard=1000), workers=2)
    ShardIndex.open(folder)  # builds shard_index.parquet once
    return folder


def bench_thumbnails(shards: Path, thumbs_n: int, work: Path) -> dict:
    from fr_data.review import thumbs
    from fr_data.folders.shard_folder import read_samples

    keys = read_samples(shards, columns=["key"]).column("key").to_pylist()
    chosen = np.random.default_rng(0).choice(len(keys), size=min(thumbs_n, len(keys)), replace=False)
    out = work / "thumbs"
    (out / "img").mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    located = thumbs.locate(shards, [keys[i] for i in chosen])
    t1 = time.perf_counter()
    failed = thumbs.write_thumbnails(located, out, workers=2)
    t2 = time.perf_counter()
    sizes = [p.stat().st_size for p in (out / "img").iterdir()]
    return {"thumbnails": len(chosen) - len(failed), "locate_s": t1 - t0, "thumbs_s": t2 - t1, "total_s": t2 - t0,
            "mean_thumb_kb": float(np.mean(sizes)) / 1024}


# --------------------------------------------------------------------------------------------------- runs
def _samples_chunk(start: int, n: int, rng: np.random.Generator) -> pa.Table:
    from fr_data.folders.run_folder import MINED_SAMPLES_SCHEMA

    rows = np.arange(start, start + n)
    labels = rows // PER_CLASS
    centre = rng.uniform(-0.1, 0.95, n).astype(np.float32)
    other = rng.uniform(-0.2, 0.7, n).astype(np.float32)
    suspect = rng.random(n) < 0.01
    dup = rng.random(n) < 0.005
    twin = np.maximum(rows - 1, 0)
    splits = np.array(["easy", "medium", "hard"])[rng.integers(0, 3, n)]
    cols = {
        "key": pa.array([f"s{i:010d}" for i in rows]), "label": labels, "vector_ok": np.ones(n, bool),
        "center_cos": centre, "nearest_other_label": labels + 1, "nearest_other_cos": other,
        "margin": centre - other, "knn_agreement": rng.random(n).astype(np.float32), "suspect_mislabel": suspect,
        "suspected_label": pa.array(np.where(suspect, labels + 1, 0), mask=~suspect),
        "duplicate_of": pa.array([f"s{i:010d}" for i in twin], mask=~dup),
        "duplicate_kind": pa.array(np.where(rng.random(n) < 0.3, "cross_class", "same_class"), mask=~dup),
        "duplicate_cos": pa.array(rng.uniform(0.95, 1, n).astype(np.float32), mask=~dup),
        "quality_sdd": rng.uniform(0, 100, n).astype(np.float32), "quality_cr": rng.uniform(0, 1.5, n).astype(np.float32),
        "instance_fpr": rng.uniform(0, 1e-3, n).astype(np.float32), "difficulty": rng.random(n).astype(np.float32),
        "split": pa.array(np.where(suspect, None, splits)), "resolution": rng.uniform(20, 112, n).astype(np.float32),
        "resolution_bin": np.array(["low", "mid", "high"])[rng.integers(0, 3, n)],
        "flip_cos": rng.uniform(0.3, 1, n).astype(np.float32),
        "pose_bin": np.array(["frontal", "half", "profile"])[rng.integers(0, 3, n)],
        "group": np.array(["g0", "g1", "g2", "g3"])[labels % 4],
    }
    return pa.table({f.name: pa.array(cols[f.name], f.type) if not isinstance(cols[f.name], pa.Array)
                     else cols[f.name].cast(f.type) for f in MINED_SAMPLES_SCHEMA}, schema=MINED_SAMPLES_SCHEMA)


def _classes_and_pairs(classes: int, rng: np.random.Generator) -> tuple[pa.Table, pa.Table]:
    from fr_data.folders.run_folder import CLASSES_SCHEMA, PAIRS_SCHEMA

    labels = np.arange(classes)
    merge = rng.random(classes) < 0.01
    cls = pa.table({"label": labels, "n": np.full(classes, PER_CLASS), "n_invalid": np.zeros(classes, np.int64),
                    "spread": rng.uniform(0.4, 0.8, classes).astype(np.float32), "nearest_label": (labels + 1) % classes,
                    "nearest_cos": rng.uniform(0.1, 0.9, classes).astype(np.float32),
                    "neighbour_mix": rng.random(classes).astype(np.float32), "merge_candidate": merge,
                    "group": np.array(["g0", "g1", "g2", "g3"])[labels % 4]}, schema=CLASSES_SCHEMA)
    kinds = np.repeat(np.array(["easy_pos", "hard_pos", "hard_neg"]), 5)
    a = np.repeat(labels, len(kinds)) * PER_CLASS + np.tile(np.arange(len(kinds)), classes) % PER_CLASS
    kind = np.tile(kinds, classes)
    b = np.where(kind == "hard_neg", (a + PER_CLASS) % (classes * PER_CLASS), a - a % PER_CLASS + 20)
    bins = np.full(len(a), "frontal")
    pairs = pa.table({"key_a": [f"s{i:010d}" for i in a], "key_b": [f"s{i:010d}" for i in b],
                      "label_a": a // PER_CLASS, "label_b": b // PER_CLASS,
                      "cos": rng.uniform(-0.1, 0.9, len(a)).astype(np.float32), "kind": kind,
                      "pose_bin_a": bins, "pose_bin_b": bins, "resolution_bin_a": bins, "resolution_bin_b": bins},
                     schema=PAIRS_SCHEMA)
    return cls, pairs


def make_run(folder: Path, rows: int) -> Path:
    """A synthetic mining run of ``rows`` samples (reused when present)."""
    from fr_data.folders.run_folder import CLASSES_SCHEMA, MINED_SAMPLES_SCHEMA, PAIRS_SCHEMA
    from fr_data.io.parquet import ROW_GROUP_SIZE, write_table

    if (folder / "run.json").is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(rows)
    with pq.ParquetWriter(folder / "samples.parquet", MINED_SAMPLES_SCHEMA, compression="zstd") as w:
        for start in range(0, rows, CHUNK):
            w.write_table(_samples_chunk(start, min(CHUNK, rows - start), rng), row_group_size=ROW_GROUP_SIZE)
    cls, pairs = _classes_and_pairs(rows // PER_CLASS, rng)
    write_table(cls, folder / "classes.parquet", CLASSES_SCHEMA)
    write_table(pairs, folder / "pairs.parquet", PAIRS_SCHEMA)
    (folder / "run.json").write_text(json.dumps({"counts": {"input_rows": rows},
                                                 "thresholds": {"target_fpr": 1e-4}}))
    return folder


def make_index_shards(folder: Path, images: Path, rows: int) -> Path:
    """A shard folder whose cached key index maps ``rows`` run keys onto the real images of ``images``."""
    from fr_data.folders.shard_folder import SHARD_INDEX_FILE, SHARD_INDEX_SCHEMA, SHARD_INDEX_VERSION, list_shards
    from fr_data.io.parquet import write_table
    from fr_data.loading.shard_index import shard_stamps

    if (folder / SHARD_INDEX_FILE).is_file():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("shards.json", "samples.parquet"):
        (folder / name).write_bytes((images / name).read_bytes())
    shards = list_shards(images)
    for s in shards:
        if not (folder / s.name).exists():
            os.symlink(s, folder / s.name)
    real = pq.read_table(images / SHARD_INDEX_FILE)
    pick = np.arange(rows) % real.num_rows
    table = real.take(pa.array(pick)).set_column(0, "key", pa.array([f"s{i:010d}" for i in range(rows)]))
    stamps = shard_stamps([folder / s.name for s in shards])
    write_table(table, folder / SHARD_INDEX_FILE, SHARD_INDEX_SCHEMA,
                metadata={"version": SHARD_INDEX_VERSION, "shards": stamps})
    return folder


def bench_memory(run: Path, shards: Path, out: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(run), str(shards), str(out), str(ROOT)],
                          capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--images", type=int, default=5000, help="real images in the shards (default 5000)")
    p.add_argument("--thumbs", type=int, default=1000, help="thumbnails timed (default 1000)")
    p.add_argument("--rows", type=int, nargs="+", default=[200_000, 2_000_000], help="run sizes (rows)")
    p.add_argument("--work", type=Path, default=Path("/tmp/hardmine-bench-report"), help="data folder (reused)")
    p.add_argument("--small", action="store_true", help="a quick check: 1200 images, 300 thumbs, 20K/60K rows")
    args = p.parse_args(argv)
    if args.small:
        args.images, args.thumbs, args.rows = 1200, 300, [20_000, 60_000]
    print(f"machine: {describe()}")
    images = make_image_shards(args.work / f"images-{args.images}" / "shards", args.images)
    t = bench_thumbnails(images, args.thumbs, args.work / "thumbs-out")
    print(f"thumbnails: {t['thumbnails']} random keys of {args.images} in {t['total_s']:.2f} s "
          f"(lookup {t['locate_s']:.2f} s, read+decode+resize+encode {t['thumbs_s']:.2f} s, "
          f"{t['thumbnails'] / t['total_s']:.0f}/s, mean {t['mean_thumb_kb']:.1f} KB each)")
    results = {}
    for rows in args.rows:
        run = make_run(args.work / f"run-{rows}", rows)
        shards = make_index_shards(args.work / f"index-{rows}-{args.images}", images, rows)
        r = results[rows] = bench_memory(run, shards, args.work / f"report-{rows}")
        stages = ", ".join(f"{k} {v:.1f}" for k, v in r["timings"].items())
        print(f"run of {rows:>9,} rows: build {r['wall_s']:.1f} s ({stages}); peak RSS {r['vm_hwm_mb']:.0f} MB, "
              f"peak anonymous RSS {r['peak_anon_mb']:.0f} MB; {r['thumbnails']} thumbnails")
    if len(results) > 1:
        lo, hi = min(results), max(results)
        print(f"peak RSS ratio {hi:,} / {lo:,} rows: {results[hi]['vm_hwm_mb'] / results[lo]['vm_hwm_mb']:.2f} "
              f"(rows x{hi / lo:.0f})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Loader throughput: decoded images/s from shards against a bare decode loop, in the same run.

Builds a synthetic ``.rec`` (see bench_shard.py), shards it, then measures in one process:

* bare: ``decode_face`` over the same image bytes already in memory (a list), no batching;
* loader: ``make_train_loader`` (tar reading, shuffle buffer, decode into batches, random flip),
  ``num_workers=0`` so both run on one core -- the ratio is the pipeline's overhead;
* the same with uint8 output (normalisation left to the consumer, e.g. on the GPU);
* loader with ``--workers`` DataLoader workers (float32 and uint8 output), reported against
  ``workers`` x the bare rate.

    python benchmarks/bench_loader.py            # 20,000 images
    python benchmarks/bench_loader.py --small    # 4,000 images

Goal (issue 2): loader >= 85% of the bare decode loop.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_shard import cpu_model, synthetic_items  # noqa: E402

from fr_data.folders.shard_folder import list_shards  # noqa: E402
from fr_data.formats.recordio import write_insightface  # noqa: E402
from fr_data.ingest.plan import ShardOptions  # noqa: E402
from fr_data.ingest.sharding import write_shards  # noqa: E402
from fr_data.ingest.sources import open_source  # noqa: E402
from fr_data.loading.decode import decode_face  # noqa: E402
from fr_data.loading.loader import iter_samples, make_train_loader  # noqa: E402


def bare_pass(images: list[bytes]) -> float:
    """images/s of one pass of decode_face over in-memory bytes."""
    start = time.perf_counter()
    for data in images:
        decode_face(data)
    return len(images) / (time.perf_counter() - start)


def loader_pass(loader: DataLoader, epoch: int) -> float:
    """images/s of one epoch of a train loader."""
    loader.dataset.set_epoch(epoch)
    start, count = time.perf_counter(), 0
    for images, _ in loader:
        count += images.shape[0]
    return count / (time.perf_counter() - start)


def best_rates(images: list[bytes], loaders: list[tuple[str, DataLoader]], repeats: int) -> dict[str, float]:
    """Best images/s of each contender; passes are interleaved so load changes hit all of them alike."""
    best = dict.fromkeys(["bare", *(name for name, _ in loaders)], 0.0)
    for epoch in range(repeats):
        best["bare"] = max(best["bare"], bare_pass(images))
        for name, loader in loaders:
            best[name] = max(best[name], loader_pass(loader, epoch))
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--small", action="store_true", help="4,000 images")
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    count = 4_000 if args.small else args.images
    torch.set_num_threads(1)
    scratch = Path(tempfile.mkdtemp(prefix="bench_loader-"))
    try:
        run(scratch, count, args)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def run(scratch: Path, count: int, args: argparse.Namespace) -> None:
    items = synthetic_items(1 << 62)
    write_insightface(scratch / "rec", (next(items) for _ in range(count)))
    write_shards(open_source(scratch / "rec"), scratch / "shards", ShardOptions(per_shard=1000), workers=2)
    folder = scratch / "shards"
    images = [s["jpg"] for s in iter_samples(list_shards(folder))]
    print(f"machine: {os.cpu_count()} cpus, {cpu_model()}; {len(images)} images, batch {args.batch}, "
          f"mean {sum(map(len, images)) / len(images) / 1e3:.1f} KB")
    contenders = []
    for workers in sorted({0, args.workers}):
        for normalize in (True, False):
            name = f"loader, num_workers={workers}, {'float32' if normalize else 'uint8'}"
            contenders.append((name, workers, make_train_loader(
                folder, args.batch, num_workers=workers, rank=0, world_size=1, flip=True, seed=0,
                normalize=normalize)))
    rates = best_rates(images, [(name, loader) for name, _, loader in contenders], args.repeats)
    print(f"{'bare decode loop (1 process)':34s} {rates['bare']:8.0f} images/s")
    for name, workers, _ in contenders:
        scale = max(1, workers)
        versus = "bare" if scale == 1 else f"{scale} x bare"
        print(f"{name:34s} {rates[name]:8.0f} images/s = {rates[name] / (scale * rates['bare']):6.1%} of {versus}")


if __name__ == "__main__":
    raise SystemExit(main())

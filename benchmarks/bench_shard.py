"""Sharding throughput against a plain ``cp`` of the same ``.rec``, measured in the same run.

Builds a synthetic InsightFace ``train.rec`` of ``--size-mb`` megabytes (112x112 JPEGs made with PIL,
each copy made unique by a random JPEG comment segment, so every payload decodes and hashes
differently), copies it with ``cp`` (and ``cp`` + ``sync``), then shards it with
``fr_data.ingest.shards.write_shards`` for each ``--decode-check`` fraction (default: 0 = header parse only,
the default sampled fraction, and 1 = full PIL decode of every image). Besides wall time it prints
the CPU seconds per image (this process + its workers), which is steadier on a shared machine.

    python benchmarks/bench_shard.py            # 1 GB
    python benchmarks/bench_shard.py --small    # 64 MB, for CI-speed checks

Goal (issue 2): shard wall time <= 2 x cp time on a 1 GB .rec.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _machine import cpu_model as cpu_model  # noqa: E402

from fr_data.formats.recordio import write_insightface  # noqa: E402
from fr_data.ingest.plan import DEFAULT_DECODE_CHECK, ShardOptions  # noqa: E402
from fr_data.ingest.sharding import write_shards  # noqa: E402
from fr_data.ingest.sources import open_source  # noqa: E402


def base_jpegs(count: int, seed: int = 0) -> list[bytes]:
    """Face-sized JPEGs with smooth structure plus mild noise (about 5-8 KB each at quality 90)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:112, 0:112] / 112.0
    out = []
    for _ in range(count):
        f = rng.uniform(1, 4, 3)
        base = 128 + 90 * np.sin(2 * np.pi * (f[0] * x + f[1] * y) + rng.uniform(0, 6.3, (3, 1, 1)))
        pixels = np.clip(base.transpose(1, 2, 0) + rng.normal(0, 6, (112, 112, 3)), 0, 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=90)
        out.append(buf.getvalue())
    return out


def unique_copy(jpeg: bytes, rng: np.random.Generator) -> bytes:
    """``jpeg`` with a 16-byte random COM segment after SOI: still valid, distinct bytes."""
    comment = rng.bytes(16)
    return jpeg[:2] + b"\xff\xfe" + (len(comment) + 2).to_bytes(2, "big") + comment + jpeg[2:]


def synthetic_items(size_bytes: int, per_class: int = 50, seed: int = 0) -> Iterator[tuple[int, bytes]]:
    bases, rng, written, i = base_jpegs(256, seed), np.random.default_rng(seed), 0, 0
    while written < size_bytes:
        data = unique_copy(bases[i % len(bases)], rng)
        yield i // per_class, data
        written += len(data) + 40  # record header + IRHeader + padding, roughly
        i += 1


def timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start




def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--small", action="store_true", help="64 MB instead of --size-mb")
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--per-shard", type=int, default=10_000)
    parser.add_argument("--decode-check", type=float, nargs="+", default=[0.0, DEFAULT_DECODE_CHECK, 1.0],
                        help="decode-check fractions to time (default: 0, the default fraction, 1)")
    parser.add_argument("--tmp", default=None, help="scratch folder (default: a new temp folder)")
    parser.add_argument("--cold", action="store_true",
                        help="drop the .rec from the page cache before each timed cp and shard run, so both "
                             "read it from disk (data sets larger than RAM); default: both read from memory")
    args = parser.parse_args(argv)
    size_mb = 64 if args.small else args.size_mb
    scratch = Path(tempfile.mkdtemp(prefix="bench_shard-", dir=args.tmp))
    try:
        run(scratch, size_mb, args.workers, args.per_shard, args.decode_check, args.cold)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def cpu_seconds() -> float:
    """User + system CPU seconds of this process and its finished children."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def drop_from_page_cache(*paths: Path) -> None:
    """Write back and evict the files' pages (posix_fadvise DONTNEED: no root needed for own files)."""
    os.sync()
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def run(scratch: Path, size_mb: int, workers: int, per_shard: int, fractions: list[float],
        cold: bool = False) -> None:
    rec_dir = scratch / "rec"
    build = timed(lambda: write_insightface(rec_dir, synthetic_items(size_mb << 20)))
    rec = rec_dir / "train.rec"
    rec_bytes = rec.stat().st_size
    source = open_source(rec_dir)
    images = len(source)
    print(f"machine: {os.cpu_count()} cpus, {cpu_model()}; python {platform.python_version()}")
    print(f"built {rec_bytes / 1e6:.0f} MB .rec with {images} images in {build:.1f}s; workers={workers}")
    settle = (lambda: drop_from_page_cache(rec, rec_dir / "train.idx")) if cold else rec.read_bytes
    print("page cache: " + ("cold (.rec evicted before each timed run)" if cold else "warm (.rec read first)"))
    settle()
    cp = timed(lambda: subprocess.run(["cp", str(rec), str(scratch / "copy.rec")], check=True))
    (scratch / "copy.rec").unlink()
    settle()
    cp_sync = timed(lambda: subprocess.run(["sh", "-c", f"cp '{rec}' '{scratch}/copy.rec' && sync"], check=True))
    (scratch / "copy.rec").unlink()
    print(f"cp:        {cp:7.2f}s  {rec_bytes / cp / 1e6:8.0f} MB/s")
    print(f"cp + sync: {cp_sync:7.2f}s  {rec_bytes / cp_sync / 1e6:8.0f} MB/s")
    print(f"load average before sharding: {os.getloadavg()[0]:.1f}")
    for fraction in fractions:
        out = scratch / f"out-{fraction}"
        options = ShardOptions(per_shard=per_shard, decode_check=fraction)
        settle()
        cpu = cpu_seconds()
        wall = timed(lambda: write_shards(open_source(rec_dir), out, options, workers=workers))
        cpu = cpu_seconds() - cpu
        print(f"shard (decode check {fraction:g}): {wall:7.2f}s  {images / wall:8.0f} images/s  "
              f"{rec_bytes / wall / 1e6:6.0f} MB/s  ratio to cp {wall / cp:5.2f}x (to cp+sync {wall / cp_sync:5.2f}x)"
              f"  cpu {cpu / images * 1e6:5.1f} us/image")
        shutil.rmtree(out)


if __name__ == "__main__":
    raise SystemExit(main())

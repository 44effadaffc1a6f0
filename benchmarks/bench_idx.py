"""Benchmark: loading a Glint360K-sized ``.idx`` (17.45M lines) with ``fr_data.formats.recordio.load_idx``.

Reference measured in the same run: MXNet's own way (``MXIndexedRecordIO.open``: one Python
``int()`` pair and a dict insert per line) on the first ``--ref-lines`` lines, extrapolated per line.

    python benchmarks/bench_idx.py [--small] [--lines N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fr_data.formats.recordio import RecordIOReader, load_idx  # noqa: E402

GLINT360K_RECORDS = 17_091_657 + 360_232 + 1


def write_big_idx(path: Path, lines: int) -> None:
    """``key<TAB>offset`` lines with keys 0..lines-1 and increasing 4-aligned offsets."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    rng = np.random.default_rng(0)
    sizes = rng.integers(1000, 3000, lines, dtype=np.int64) * 4
    offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    table = pa.table({"key": np.arange(lines, dtype=np.int64), "offset": offsets})
    pacsv.write_csv(table, path, pacsv.WriteOptions(include_header=False, delimiter="\t"))


def mxnet_style_load(path: Path, limit: int) -> dict[int, int]:
    """What ``mxnet.recordio.MXIndexedRecordIO`` does per line (dict + key list)."""
    idx, keys = {}, []
    with open(path) as f:
        for number, line in enumerate(f):
            if number == limit:
                break
            fields = line.strip().split("\t")
            key = int(fields[0])
            idx[key] = int(fields[1])
            keys.append(key)
    return idx


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="1M lines instead of 17.45M")
    parser.add_argument("--lines", type=int, default=None)
    parser.add_argument("--ref-lines", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    lines = args.lines or (1_000_000 if args.small else GLINT360K_RECORDS)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "train.idx"
        write_big_idx(path, lines)
        mb = path.stat().st_size / 1e6
        load_s = _best_of(3, lambda: load_idx(path))
        keys, offsets = load_idx(path)
        rec = Path(tmp) / "train.rec"
        with open(rec, "wb") as f:  # sparse file: the reader only checks offsets against the size
            f.truncate(int(offsets[-1]) + 8)
        open_s = _best_of(3, lambda: RecordIOReader(rec, index=(keys, offsets)))
        reader = RecordIOReader(rec, index=(keys, offsets))
        probe = np.random.default_rng(1).integers(0, lines, 100_000)
        t0 = time.perf_counter()
        for k in probe.tolist():
            reader.position(k)
        lookup_us = (time.perf_counter() - t0) / len(probe) * 1e6
        ref_n = min(args.ref_lines, lines)
        t0 = time.perf_counter()
        mxnet_style_load(path, ref_n)
        ref_s = (time.perf_counter() - t0) / ref_n * lines
    print(f"idx: {lines:,} lines, {mb:.0f} MB")
    rate = lines / load_s / 1e6
    print(f"load_idx: {load_s:.2f} s ({rate:.1f} M lines/s); arrays {2 * 8 * lines / 1e6:.0f} MB")
    print(f"RecordIOReader index setup (contiguous-key check + offset checks): {open_s:.2f} s")
    print(f"key -> position lookup: {lookup_us:.2f} us/key")
    print(f"MXNet-style dict parse (extrapolated from {ref_n:,} lines): {ref_s:.1f} s")
    print(f"ratio load_idx / MXNet-style: {load_s / ref_s:.3f} (speed-up x{ref_s / load_s:.1f})")
    return 0


def _best_of(repeats: int, fn) -> float:
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


if __name__ == "__main__":
    raise SystemExit(main())

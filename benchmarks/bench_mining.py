"""Benchmark: full mining (tools/mine_hard.py's library call) on N x 512 float16 memmapped planted embeddings.

    python benchmarks/bench_mining.py [--small] [--blocks B] [--identities-per-block I] [--work DIR]

Each block is an independent planted set of I identities (20-60 images each, ~40 on average), so
N ~ 40 * I * B rows and C ~ I * B labels. The data is generated first (streamed to disk); mining then
runs in a fresh child process so its peak RSS is its own. Reported: wall time per stage, peak RSS
(VmHWM, which counts touched memmap pages), peak *anonymous* RSS (sampled RssAnon: the memory beyond the
memmap), the centre search's GFLOP/s against this machine's measured float32 GEMM rate, and a linear
projection to the issue's scale (2,000,000 x 50,000: centre search ~ N*C, the rest ~ N).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

TARGET_N, TARGET_C, DIM = 2_000_000, 50_000, 512

CHILD = r"""
import json, sys, threading, time
sys.path.insert(0, sys.argv[3])
peak = {"anon_kb": 0}
def sample():
    while True:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                peak["anon_kb"] = max(peak["anon_kb"], int(line.split()[1]))
        time.sleep(0.05)
threading.Thread(target=sample, daemon=True).start()
from fr_data.mining import mine
t0 = time.perf_counter()
res = mine(sys.argv[1], sys.argv[2], overwrite=True)
wall = time.perf_counter() - t0
hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0]
print(json.dumps({"wall_s": wall, "timings": res.run["timings"], "counts": res.run["counts"],
                  "strategy": res.run["neighbour_strategy"], "peak_anon_mb": peak["anon_kb"] / 1024,
                  "vm_hwm_mb": hwm / 1024}))
"""


def gemm_gflops(n: int = 2048, reps: int = 5) -> float:
    """Float32 GEMM rate of this machine (numpy/BLAS), best of ``reps``."""
    a = np.random.default_rng(0).standard_normal((n, n), dtype=np.float32)
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        a @ a
        best = min(best, time.perf_counter() - t)
    return 2 * n ** 3 / best / 1e9


def prepare(work: Path, blocks: int, identities: int) -> tuple[int, int]:
    """Generate (or reuse) the planted EMB folder."""
    from tests.fr_data.mining.planted import PlantedSpec, write_planted_stream

    emb = work / f"emb-{blocks}x{identities}"
    meta = emb / "bench.json"
    if meta.exists():
        d = json.loads(meta.read_text())
        return d["rows"], d["classes"]
    spec = PlantedSpec(identities=identities, per_identity=(20, 60), dim=DIM,
                       split_identities=identities // 100, lookalike_pairs=identities // 100)
    rows, classes = write_planted_stream(emb, spec, blocks)
    meta.write_text(json.dumps({"rows": rows, "classes": classes}))
    return rows, classes


def run_child(emb: Path, out: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(emb), str(out), str(ROOT)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def project(stages: dict, n: int, c: int) -> float:
    """Linear projection of the wall time to TARGET_N x TARGET_C."""
    total = 0.0
    for name, st in stages.items():
        factor = (TARGET_N * TARGET_C) / (n * c) if name == "centre_search" else TARGET_N / n
        total += st["wall_s"] * factor
    return total


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true",
                   help="2 blocks x 500 identities (~40K rows), a quick check")
    p.add_argument("--blocks", type=int, default=5)
    p.add_argument("--identities-per-block", type=int, default=1000)
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hardmine-bench-mining")
    args = p.parse_args(argv)
    blocks, ids = (2, 500) if args.small else (args.blocks, args.identities_per_block)
    t = time.perf_counter()
    n, c = prepare(args.work, blocks, ids)
    print(f"data: N={n} x {DIM} float16, C={c} labels, generated/reused in {time.perf_counter() - t:.1f} s")
    gflops = gemm_gflops()
    r = run_child(args.work / f"emb-{blocks}x{ids}", args.work / "RUN")
    with open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores, {cpu}, {platform.python_version()}; "
          f"numpy float32 GEMM {gflops:.1f} GFLOP/s")
    print(f"neighbour strategy: {r['strategy']}")
    for name, st in r["timings"].items():
        print(f"  {name:<14} {st['wall_s']:8.2f} s   peak RSS so far {st['peak_rss_mb']:8.0f} MB")
    search = r["timings"]["centre_search"]["wall_s"]
    rate = 2 * n * c * DIM / search / 1e9
    memmap_mb = n * DIM * 2 / 2**20
    print(f"total {r['wall_s']:.1f} s; peak RSS {r['vm_hwm_mb']:.0f} MB (memmap {memmap_mb:.0f} MB), "
          f"peak anonymous RSS {r['peak_anon_mb']:.0f} MB")
    print(f"centre search: {rate:.1f} GFLOP/s = {rate / gflops:.0%} of the GEMM rate "
          "(2 N C D flops)")
    print(f"projected to {TARGET_N} x {TARGET_C}: {project(r['timings'], n, c) / 60:.0f} min on this machine "
          f"(centre search ~ N*C, other stages ~ N)")
    keys = ("suspect_mislabel", "merge_candidate_classes", "duplicates_same_class", "duplicates_cross_class")
    print(f"counts: {json.dumps({k: r['counts'][k] for k in keys})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

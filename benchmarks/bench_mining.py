"""Benchmark: full mining (tools/mine_hard.py's library call) on N x 512 float16 memmapped planted embeddings.

    python benchmarks/bench_mining.py [--small] [--blocks B] [--identities-per-block I]
        [--per-identity LO HI] [--work DIR]

Each block is an independent planted set of I identities (LO-HI images each, default 20-60, ~40 on
average), so N ~ 40 * I * B rows and C ~ I * B labels. The data is generated first (streamed to disk); mining then
runs in a fresh child process so its peak RSS is its own. Reported: wall time per stage, peak RSS
(VmHWM, which counts touched memmap pages), peak *anonymous* RSS (sampled RssAnon: the memory beyond the
memmap), the time spent inside the k-NN function during the centre search (``run.json`` timings) as
GFLOP/s against this machine's float32 GEMM rate measured in the same run (before and after mining), and a
linear projection to the issue's scale (2,000,000 x 50,000: centre search ~ N*C, the rest ~ N).
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

from benchmarks._memory import SAMPLER  # noqa: E402

TARGET_N, TARGET_C, DIM = 2_000_000, 50_000, 512
PER_IDENTITY = (20, 60)

CHILD = SAMPLER + r"""
sys.path.insert(0, sys.argv[3])
from fr_data.mining import mine
t0 = time.perf_counter()
res = mine(sys.argv[1], sys.argv[2], overwrite=True)
wall = time.perf_counter() - t0
print(json.dumps({"wall_s": wall, "timings": res.run["timings"], "counts": res.run["counts"],
                  "strategy": res.run["neighbour_strategy"], **memory_mb()}))
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


def emb_folder(work: Path, blocks: int, identities: int, per_identity: tuple[int, int]) -> Path:
    """Where the planted EMB folder of these sizes lives (reused across runs)."""
    suffix = "" if tuple(per_identity) == PER_IDENTITY else f"-{per_identity[0]}-{per_identity[1]}"
    return work / f"emb-{blocks}x{identities}{suffix}"


def prepare(emb: Path, blocks: int, identities: int, per_identity: tuple[int, int]) -> tuple[int, int]:
    """Generate (or reuse) the planted EMB folder."""
    from tests.fr_data.mining.planted import PlantedSpec, write_planted_stream

    meta = emb / "bench.json"
    if meta.exists():
        d = json.loads(meta.read_text())
        return d["rows"], d["classes"]
    spec = PlantedSpec(identities=identities, per_identity=tuple(per_identity), dim=DIM,
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
    p.add_argument("--per-identity", type=int, nargs=2, default=PER_IDENTITY, metavar=("LO", "HI"),
                   help="images per identity (uniform); e.g. 300 500 with 10 x 500 gives 2M rows, 5K labels")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "hardmine-bench-mining")
    args = p.parse_args(argv)
    blocks, ids = (2, 500) if args.small else (args.blocks, args.identities_per_block)
    t = time.perf_counter()
    emb = emb_folder(args.work, blocks, ids, args.per_identity)
    n, c = prepare(emb, blocks, ids, args.per_identity)
    print(f"data: N={n} x {DIM} float16, C={c} labels, generated/reused in {time.perf_counter() - t:.1f} s")
    load = os.getloadavg()
    gflops = gemm_gflops()
    r = run_child(emb, args.work / "RUN")
    gflops_after = gemm_gflops()
    with open("/proc/cpuinfo") as f:
        cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores, {cpu}, {platform.python_version()}; load before "
          f"{load[0]:.2f}, after {os.getloadavg()[0]:.2f} (1-min average)")
    print(f"N={n} x {DIM} float16, C={c} labels; neighbour strategy: {r['strategy']}")
    print(f"float32 GEMM (numpy, 2048^3) measured in this run: {gflops:.1f} GFLOP/s before mining, "
          f"{gflops_after:.1f} GFLOP/s after (fraction below uses the best of the two)")
    for name, st in r["timings"].items():
        print(f"  {name:<14} {st['wall_s']:8.2f} s   (k-NN {st.get('knn_s', 0):7.2f} s)   "
              f"peak RSS so far {st['peak_rss_mb']:8.0f} MB")
    st = r["timings"]["centre_search"]
    rate = st["knn_gflop"] / st["knn_s"]
    best = max(gflops, gflops_after)
    memmap_mb = n * DIM * 2 / 2**20
    print(f"total {r['wall_s']:.1f} s; peak RSS {r['vm_hwm_mb']:.0f} MB (memmap {memmap_mb:.0f} MB, counted "
          f"when touched), peak anonymous RSS (beyond the memmap) {r['peak_anon_mb']:.0f} MB")
    print(f"centre search (k-NN of N samples against C centres, {st['knn_gflop']:.0f} GFLOP): "
          f"{st['knn_s']:.1f} s in faiss = {rate:.1f} GFLOP/s = {rate / best:.0%} of the GEMM rate; "
          f"whole stage {st['wall_s']:.1f} s = {st['knn_gflop'] / st['wall_s'] / best:.0%}")
    print(f"projected to {TARGET_N} x {TARGET_C}: {project(r['timings'], n, c) / 60:.0f} min on this machine "
          f"(centre search ~ N*C, other stages ~ N)")
    keys = ("suspect_mislabel", "merge_candidate_classes", "duplicates_same_class", "duplicates_cross_class")
    print(f"counts: {json.dumps({k: r['counts'][k] for k in keys})}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark: the whole ``hardmine mine`` on planted embeddings (no images) with R ranks under torchrun.

    python benchmarks/bench_mining_scale.py --n N --classes C --dim D [--ranks R] [--device cuda]
        [--exact-max-n M] [--work DIR] [--seed S]

Planted data (tests/fr_data/mining/planted.py: identities with look-alikes, mislabels, near-duplicates)
of about N rows over C labels in D dimensions is written as a float16 EMB folder, then mined by
``python -m torch.distributed.run --nproc_per_node R -m hardmine mine`` (gloo on CPU, NCCL with
``--device cuda``), each rank in a process that samples its own ``RssAnon`` (memory beyond the memmap)
every 50 ms from its start. Reported per stage and rank (``run.json`` ``timings``/``timings_per_rank``):
wall time, VmHWM (touched memmap pages included) and the stage's peak beyond the file mappings
(``peak_anon_mb``: RssAnon + RssShmem, :mod:`fr_data.mining.memory`); per rank the whole process's
peak ``RssAnon`` and, with CUDA, the peak device memory; and the run checked against the planted truth
(recall and precision of the mislabel and duplicate flags). The last line is a Markdown row for
docs/knn_scale.md; ``--json`` writes everything.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from benchmarks._memory import SAMPLER  # noqa: E402

#: Each rank: sample RssAnon, run the command, print its memory on one marked line.
RANK_SCRIPT = SAMPLER + r"""
sys.path.insert(0, sys.argv[1])
from hardmine.cli.mine import main
import torch.distributed  # what every rank loads before it reads a row
libs_kb = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("RssAnon:")][0]
code = main(sys.argv[2:])
mem = memory_mb()
mem["libraries_anon_mb"] = libs_kb / 1024
try:
    import torch
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        mem["peak_device_mb"] = torch.cuda.max_memory_allocated() / 2**20
except Exception:
    pass
print("BENCH_RANK " + json.dumps({"rank": int(__import__("os").environ.get("RANK", "0")), "exit": code, **mem}),
      flush=True)
sys.exit(code)
"""


def planted(n: int, classes: int, dim: int, seed: int, folder: Path) -> tuple[Path, object]:
    """Write a planted EMB folder of about ``n`` rows over ``classes`` identities; return it and the truth
    (kept in ``folder``: a second run with the same sizes and seed reuses both)."""
    from types import SimpleNamespace

    from tests.fr_data.mining.planted import PlantedSpec, make_planted, write_emb

    made, saved = folder / "planted.json", folder / "truth.npz"
    sizes = {"n": n, "classes": classes, "dim": dim, "seed": seed}
    if made.exists() and saved.exists() and json.loads(made.read_text()) == sizes:
        with np.load(saved) as t:
            return folder / "EMB", SimpleNamespace(**{k: t[k] for k in t.files})
    mean = max(2, round(n / classes))
    spec = PlantedSpec(identities=classes, per_identity=(max(2, mean // 2), mean + mean // 2), dim=dim,
                       seed=seed, split_identities=min(8, classes // 10), lookalike_pairs=min(10, classes // 10))
    x, truth = make_planted(spec)
    emb = write_emb(folder / "EMB", x, truth)
    np.savez(saved, labels=truth.labels, mislabeled=truth.mislabeled, duplicate_of=truth.duplicate_of)
    made.write_text(json.dumps(sizes))
    return emb, truth


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(emb: Path, out: Path, ranks: int, device: str, config: Path, work: Path) -> dict:
    """``hardmine mine`` under torchrun; the ranks' memory lines and the wall time."""
    script = work / "rank.py"
    script.write_text(RANK_SCRIPT)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(ranks), "--master_port",
           str(free_port()), str(script), str(ROOT), "--embeddings", str(emb), "--out", str(out),
           "--config", str(config), "--device", device, "--overwrite"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"mining failed (exit {done.returncode}):\n{done.stderr[-4000:]}")
    lines = [json.loads(line.split(" ", 1)[1]) for line in done.stdout.splitlines()
             if line.startswith("BENCH_RANK ")]
    return {"wall_s": wall, "ranks": sorted(lines, key=lambda r: r["rank"])}


def check_truth(out: Path, truth: object) -> dict:
    """Recall and precision of the mislabel and duplicate flags against the planted truth."""
    from fr_data.mining.groundtruth import detection

    samples = pq.read_table(out / "samples.parquet", columns=["suspect_mislabel", "duplicate_of"])
    flagged = samples["suspect_mislabel"].to_numpy(zero_copy_only=False)
    dup = pc.is_valid(samples["duplicate_of"]).to_numpy(zero_copy_only=False)  # the twin's key, or null
    result = {}
    for name, pred, actual in (("mislabel", flagged, truth.mislabeled), ("duplicate", dup, truth.duplicate_of >= 0)):
        d = detection(pred, actual)
        result[name] = {"recall": d.found / max(d.actual, 1), "precision": d.true_positives / max(d.predicted, 1),
                        "actual": d.actual, "predicted": d.predicted}
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, required=True)
    p.add_argument("--classes", type=int, required=True)
    p.add_argument("--dim", type=int, default=128)
    p.add_argument("--ranks", type=int, default=1)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--exact-max-n", type=int, default=20_000, help="neighbours.exact_max_n of the run")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--work", type=Path, help="keep the data and runs here (default: a temporary folder); "
                                             "planted data already there for the same sizes is reused")
    p.add_argument("--json", type=Path, help="write the measurements here")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        emb, truth = planted(args.n, args.classes, args.dim, args.seed, work)
        n = len(truth.labels)
        print(f"planted {n} rows x {args.dim} over {args.classes} labels in {time.perf_counter() - t0:.1f} s")
        config = work / "mining.yaml"
        config.write_text(f"neighbours: {{exact_max_n: {args.exact_max_n}}}\ncalibration: {{figure: false}}\n")
        out = work / f"RUN-r{args.ranks}"
        ran = run_ranks(emb, out, args.ranks, args.device, config, work)
        info = json.loads((out / "run.json").read_text())
        per_rank = info.get("timings_per_rank", [info["timings"]])
        result = {"n": n, "classes": args.classes, "dim": args.dim, "ranks": args.ranks, "device": args.device,
                  "memmap_mb": (emb / "embeddings.npy").stat().st_size / 2**20, **ran,
                  "strategy": info["neighbour_strategy"], "timings": info["timings"], "timings_per_rank": per_rank,
                  "truth": check_truth(out, truth)}
    for stage, t in result["timings"].items():
        hwm = " ".join(f"{r.get(stage, {}).get('peak_rss_mb', float('nan')):.0f}" for r in per_rank)
        anon = " ".join(f"{r[stage].get('peak_anon_mb') or float('nan'):.0f}" if stage in r else "-" for r in per_rank)
        print(f"  {stage:14s} {t['wall_s']:9.2f} s  per rank (MB): VmHWM {hwm}, peak beyond the file mappings {anon}")
    for r in result["ranks"]:
        print(f"  rank {r['rank']}: peak anon {r['peak_anon_mb']:.0f} MB (the libraries {r['libraries_anon_mb']:.0f} "
              f"MB of it), VmHWM {r['vm_hwm_mb']:.0f} MB"
              + (f", device {r['peak_device_mb']:.0f} MB" if "peak_device_mb" in r else ""))
    print(f"  truth: {json.dumps(result['truth'])}")
    stages = ", ".join(f"{s} {t['wall_s']:.1f}" for s, t in result["timings"].items())
    anon = " / ".join(f"{r['peak_anon_mb']:.0f}" for r in result["ranks"])
    print(f"| {n:,} | {args.classes:,} | {args.dim} | {args.ranks} | {args.device} | {result['strategy']} | "
          f"{ran['wall_s']:.0f} s | {stages} | {anon} | "
          f"{result['truth']['mislabel']['recall']:.3f} / {result['truth']['duplicate']['recall']:.3f} |")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

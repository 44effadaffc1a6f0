"""GPU figures in one run: exact k-NN with the torch backend on CUDA against faiss-cpu on the same
machine's cores, and embedding throughput (flip-averaged forward, as ``hardmine embed`` runs it) per
backbone and precision, GPU against the same machine's CPU.

    python benchmarks/bench_gpu.py [--queries 200000] [--db 1000000] [--dim 512] [--k 10] [--json OUT]
    python benchmarks/bench_gpu.py --device cpu --small     # smoke run of the script itself

Speed is reported as a ratio to a baseline measured in the same run (faiss-cpu with every core; the torch
CPU forward with every core), so the figure carries to other machines through the ratio. The k-NN search
takes the first ``--queries`` database rows as queries (each finds itself first); the GPU ids
of the CPU-checked rows must equal faiss-cpu's, since both are re-scored exactly (``fr_data.knn.rescore``).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from fr_data.embed.forward import embed_batch  # noqa: E402
from fr_data.knn.backends import FaissCpuBackend, TorchBackend  # noqa: E402
from fr_data.knn.search import knn_search  # noqa: E402
from fr_train.models import get_model  # noqa: E402


def clustered(n: int, dim: int, classes: int, seed: int) -> np.ndarray:
    """Unit rows (float16) around ``classes`` random centres, cosine to the centre about 0.78."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((classes, dim)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    out = np.empty((n, dim), np.float16)
    for s in range(0, n, 65536):
        e = min(n, s + 65536)
        rows = centres[rng.integers(0, classes, e - s)] + 0.8 * rng.standard_normal((e - s, dim)).astype(
            np.float32) / np.sqrt(dim)
        out[s:e] = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    return out


class TimedBackend:
    """Wraps a backend and sums the seconds of its ``search`` calls (the rest is re-scoring and merging)."""

    def __init__(self, inner):
        self.inner, self.seconds = inner, 0.0
        self.name, self.query_chunk, self.db_chunk = inner.name, inner.query_chunk, inner.db_chunk

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def search(self, q, chunk, k):
        t = time.perf_counter()
        out = self.inner.search(q, chunk, k)
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        self.seconds += time.perf_counter() - t
        return out


def knn_figures(args: argparse.Namespace) -> dict:
    db = clustered(args.db, args.dim, max(1, args.db // 30), seed=0)
    queries = db[:args.queries]
    gpu = TimedBackend(TorchBackend(args.device, dtype=torch.float16 if args.device == "cuda" else None))
    knn_search(db[:1000], db[:20000], args.k, backend=gpu, exclude_self=False)  # warm-up
    gpu.seconds = 0.0
    t = time.perf_counter()
    got = knn_search(queries, db, args.k, backend=gpu)
    gpu_total = time.perf_counter() - t
    check = min(args.check, args.queries)
    cpu = FaissCpuBackend.tuned()
    t = time.perf_counter()
    ref = knn_search(queries[:check], db, args.k, backend=cpu)
    cpu_total = time.perf_counter() - t
    same = bool(np.array_equal(got.ids[:check], ref.ids))
    out = {"queries": args.queries, "db": args.db, "dim": args.dim, "k": args.k,
           "gpu_seconds": gpu_total, "gpu_search_seconds": gpu.seconds,
           "gpu_queries_per_s": args.queries / gpu_total, "cpu_checked_queries": check,
           "cpu_seconds": cpu_total, "cpu_queries_per_s": check / cpu_total,
           "ratio": (args.queries / gpu_total) / (check / cpu_total), "ids_equal_faiss_cpu": same}
    print(f"knn {args.queries:,} x {args.db:,} x {args.dim} k={args.k}: torch-{args.device} {gpu_total:.1f} s "
          f"({gpu.seconds:.1f} s in the backend's search, the rest exact re-scoring), "
          f"{out['gpu_queries_per_s']:,.0f} q/s; faiss-cpu ({os.cpu_count()} cores) {out['cpu_queries_per_s']:,.0f} "
          f"q/s on {check:,} queries; ratio {out['ratio']:.1f}x; ids equal: {same}", flush=True)
    return out


def forward_rate(model: torch.nn.Module, device: str, batch: int, amp: bool, iters: int) -> float:
    x = torch.randn(batch, 3, 112, 112, device=device)
    for _ in range(2):
        embed_batch(model, x, flip=True, amp=amp)
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(iters):
        embed_batch(model, x, flip=True, amp=amp)
    if device == "cuda":
        torch.cuda.synchronize()
    return batch * iters / (time.perf_counter() - t)


def embed_figures(args: argparse.Namespace) -> list[dict]:
    rows = []
    for name in args.models:
        model = get_model(name).eval()
        cpu_rate = forward_rate(model, "cpu", args.cpu_batch, False, 2)
        row = {"model": name, "cpu_images_per_s": cpu_rate, "cpu_threads": torch.get_num_threads()}
        if args.device == "cuda":
            model = model.cuda()
            row["gpu_fp32_images_per_s"] = forward_rate(model, "cuda", args.batch, False, args.iters)
            row["gpu_amp_images_per_s"] = forward_rate(model, "cuda", args.batch, True, args.iters)
            row["ratio_amp_to_cpu"] = row["gpu_amp_images_per_s"] / cpu_rate
        print("embed " + ", ".join(f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
              flush=True)
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--queries", type=int, default=200_000, help="query rows (the first rows of the database)")
    p.add_argument("--db", type=int, default=1_000_000, help="database rows")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--check", type=int, default=4000, help="queries also searched with faiss-cpu")
    p.add_argument("--models", nargs="+", default=["iresnet50", "mobilefacenet", "tiny"])
    p.add_argument("--batch", type=int, default=256, help="GPU images per forward (x2 with the flip)")
    p.add_argument("--cpu-batch", type=int, default=16)
    p.add_argument("--iters", type=int, default=10)
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--skip-knn", action="store_true")
    p.add_argument("--small", action="store_true", help="tiny sizes (checks the script in seconds)")
    p.add_argument("--json", type=Path, help="also write the figures here")
    args = p.parse_args(argv)
    if args.small:
        args.queries, args.db, args.check, args.models, args.cpu_batch = 2000, 20000, 500, ["tiny"], 4
    if args.device == "cuda" and not torch.cuda.is_available():
        print("bench_gpu: --device cuda but torch sees no GPU", file=sys.stderr)
        return 2
    torch.set_num_threads(os.cpu_count() or 1)
    figures = {"machine": {"cpus": os.cpu_count(), "torch": torch.__version__,
                           "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None}}
    print(f"machine: {figures['machine']}", flush=True)
    if not args.skip_knn:
        figures["knn"] = knn_figures(args)
    figures["embed"] = embed_figures(args)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

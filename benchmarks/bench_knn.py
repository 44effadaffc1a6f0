"""Exact top-k search speed against the machine's GEMM rate, memory, and IVF recall.

Measures, in one run:
1. the machine's float32 GEMM rate at the search's own tile shape: best of numpy, torch and faiss's
   BLAS (``faiss.pairwise_distances``: its L2 path is one sgemm plus O(n) work);
2. exact top-k of N x D float16 memmapped embeddings against C float32 class centres with
   ``fr_data.knn.knn_search`` (2·N·C·D flop). After every backend call one GEMM probe of that tile
   shape is timed (and excluded from the search time), so each chunk's rate is compared with what the
   shared machine delivered at that moment. Reports the fraction of the GEMM rate (goal >= 70%), the
   projected time at the issue's scale (2,000,000 x 50,000) and peak memory beyond the memmapped input;
3. IVF recall@k against exact search at a moderate size, for several nprobe;
4. the time of the exact float64 re-scoring of the candidates (``fr_data.knn.rescore``), timed alone.

Usage: python benchmarks/bench_knn.py [--small] [--n N] [--centres C] [--backend faiss-cpu] ...
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fr_data.knn import IvfSearcher, get_backend, knn_search, measure_recall  # noqa: E402
from fr_data.knn.rescore import exact_scores, score_error  # noqa: E402
from fr_data.knn.search import MARGIN  # noqa: E402

ISSUE_N, ISSUE_C = 2_000_000, 50_000


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n", type=int, default=50_000, help="embeddings (queries)")
    p.add_argument("--centres", type=int, default=50_000, help="class centres (database)")
    p.add_argument("--dim", type=int, default=512)
    p.add_argument("--k", type=int, default=10)
    p.add_argument("--backend", default="faiss-cpu", help="knn backend registry name")
    p.add_argument("--threads", type=int, default=0,
                   help="faiss OpenMP threads (0 = the process default, all cores; faiss-cpu's OpenBLAS is "
                        "the OpenMP build, so this also sets its GEMM threads)")
    p.add_argument("--query-chunk", type=int, default=4096, help="query rows per call (one probe each)")
    p.add_argument("--db-chunk", type=int, default=65536)
    p.add_argument("--blas-db-block", type=int, default=2048, help="faiss distance_compute_blas_database_bs")
    p.add_argument("--blas-query-block", type=int, default=4096, help="faiss distance_compute_blas_query_bs")
    p.add_argument("--ivf-n", type=int, default=50_000, help="database size of the IVF recall test")
    p.add_argument("--ivf-per-class", type=int, default=40, help="images per identity in the IVF data")
    p.add_argument("--ivf-queries", type=int, default=2000)
    p.add_argument("--skip-ivf", action="store_true")
    p.add_argument("--workdir", type=Path, help="where the memmaps go (default: a temp folder)")
    p.add_argument("--small", action="store_true", help="tiny sizes (smoke run, seconds)")
    args = p.parse_args(argv)
    if args.small:
        args.n, args.centres, args.ivf_n, args.ivf_queries = 20_000, 5_000, 20_000, 500
    return args


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def make_embeddings(path: Path, n: int, centres: np.ndarray, seed: int) -> np.memmap:
    """Clustered embeddings (random centre + noise, cos to centre ~0.78) as an fp16 .npy memmap."""
    rng = np.random.default_rng(seed)
    dim = centres.shape[1]
    emb = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(n, dim))
    for s in range(0, n, 65536):
        e = min(n, s + 65536)
        labels = rng.integers(0, len(centres), e - s)
        noise = rng.standard_normal((e - s, dim)).astype(np.float32) / np.sqrt(dim)
        emb[s:e] = unit(centres[labels] + 0.8 * noise)
    emb.flush()
    del emb
    return np.load(path, mmap_mode="r")


def gemm_functions(m: int, n: int, dim: int) -> dict[str, Callable[[], object]]:
    """One (m x dim) @ (dim x n) float32 product per library."""
    import faiss
    import torch

    rng = np.random.default_rng(1)
    a = rng.standard_normal((m, dim)).astype(np.float32)
    b = rng.standard_normal((n, dim)).astype(np.float32)
    ta, tb = torch.from_numpy(a), torch.from_numpy(b)
    return {"numpy": lambda: a @ b.T, "torch": lambda: ta @ tb.T,
            "faiss-blas": lambda: faiss.pairwise_distances(a, b)}


def gemm_rates(m: int, n: int, dim: int, repeats: int = 5) -> dict[str, float]:
    """Best-of-``repeats`` GFLOP/s per library."""
    out = {}
    for name, fn in gemm_functions(m, n, dim).items():
        fn()
        out[name] = 2.0 * m * n * dim / min(_timed(fn) for _ in range(repeats)) / 1e9
    return out


def _timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


class ProbedBackend:
    """Wraps a backend: times every ``search`` call and, right after it, the best of a few GEMM probes."""

    def __init__(self, inner, probe: Callable[[], object], probe_flop: float, dim: int, repeats: int = 3):
        self.inner, self.probe, self.probe_flop, self.dim = inner, probe, probe_flop, dim
        self.repeats = repeats
        self.name, self.query_chunk, self.db_chunk = inner.name, inner.query_chunk, inner.db_chunk
        self.calls: list[tuple[float, float, float, float]] = []  # search s, flop, best probe s, all probes s

    def host_dtype(self, source):
        return self.inner.host_dtype(source)

    def score_error(self, dim):
        return score_error(self.inner, dim)

    @property
    def max_k(self):
        return getattr(self.inner, "max_k", None)

    def prepare(self, blocks, rows):
        return self.inner.prepare(blocks, rows)

    def search(self, q, chunk, k):
        t = time.perf_counter()
        out = self.inner.search(q, chunk, k)
        seconds = time.perf_counter() - t
        probe = [_timed(self.probe) for _ in range(self.repeats)]
        self.calls.append((seconds, 2.0 * len(q) * chunk.rows * self.dim, min(probe), sum(probe)))
        return out


class AnonPeak:
    """Samples RssAnon (private, non-file memory) of this process every few ms; keeps the peak."""

    def __init__(self, every: float = 0.02):
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> AnonPeak:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_anon_bytes())
            time.sleep(self.every)


def rss_anon_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) * 1024
    return 0


def bench_exact(args: argparse.Namespace, emb: np.memmap, centres: np.ndarray,
                backend: ProbedBackend) -> dict:
    flop = 2.0 * emb.shape[0] * centres.shape[0] * emb.shape[1]
    base_anon = rss_anon_bytes()
    with AnonPeak() as peak:
        t = time.perf_counter()
        res = knn_search(emb, centres, args.k, backend=backend, query_chunk=args.query_chunk,
                         db_chunk=args.db_chunk)
        wall = time.perf_counter() - t
    seconds = wall - sum(c[3] for c in backend.calls)
    probe_rates = [backend.probe_flop / c[2] / 1e9 for c in backend.calls]
    ratios = [(c[1] / c[0] / 1e9) / g for c, g in zip(backend.calls, probe_rates)]
    candidates = np.hstack([res.ids, res.ids[:, :MARGIN]])  # as many candidates as knn_search re-scores
    t = time.perf_counter()
    exact_scores(emb, centres, candidates)
    rescore = time.perf_counter() - t
    return {"seconds": seconds, "gflops": flop / seconds / 1e9, "flop": flop, "ratios": ratios,
            "probe_rates": probe_rates, "anon_peak": peak.peak, "anon_base": base_anon, "result": res,
            "rescore": rescore}


def bench_ivf(args: argparse.Namespace, folder: Path) -> list[tuple]:
    rng = np.random.default_rng(5)
    ids = unit(rng.standard_normal((max(1, args.ivf_n // args.ivf_per_class), args.dim))).astype(np.float32)
    db = make_embeddings(folder / "ivf.npy", args.ivf_n, ids, seed=6)
    queries = db[np.sort(rng.choice(len(db), args.ivf_queries, replace=False))]
    t = time.perf_counter()
    exact = knn_search(queries, db, args.k, backend=get_backend("faiss-cpu"))
    t_exact = time.perf_counter() - t
    nlist = int(4 * np.sqrt(len(db)))
    t = time.perf_counter()
    ivf = IvfSearcher(nlist=nlist, nprobe=1).fit(db)
    t_fit = time.perf_counter() - t
    rows = []
    for nprobe in (1, 4, 16, 64):
        ivf.index.nprobe = nprobe
        t = time.perf_counter()
        approx = ivf.search(queries, args.k)
        rows.append((nlist, nprobe, measure_recall(approx, exact), time.perf_counter() - t, t_exact, t_fit))
    return rows


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def build_backend(args: argparse.Namespace):
    import faiss

    if args.backend == "torch":
        import torch

        return get_backend("torch", device="cuda" if torch.cuda.is_available() else "cpu")
    if args.backend != "faiss-cpu":
        return get_backend(args.backend)
    return get_backend("faiss-cpu", threads=args.threads or None, blas_db_block=args.blas_db_block,
                       blas_query_block=args.blas_query_block)


def main(argv: list[str] | None = None) -> int:
    import faiss

    args = parse_args(argv)
    inner = build_backend(args)
    print(f"machine: {os.cpu_count()} cores, {cpu_model()}, python {platform.python_version()}, "
          f"numpy {np.__version__}, faiss {faiss.__version__}, load average {os.getloadavg()[0]:.2f}")
    print(f"search: N={args.n} x C={args.centres} x D={args.dim}, k={args.k}, backend={inner.name}, "
          f"threads={args.threads}, query_chunk={args.query_chunk}, db_chunk={args.db_chunk}, "
          f"blas blocks {args.blas_query_block} x {args.blas_db_block}")
    m, n = min(args.query_chunk, args.blas_query_block), min(args.centres, args.blas_db_block)
    if args.backend != "faiss-cpu":
        m, n = min(args.query_chunk, 4096), min(args.centres, 16384)
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        centres = unit(np.random.default_rng(0).standard_normal((args.centres, args.dim))).astype(np.float32)
        emb = make_embeddings(Path(tmp) / "embeddings.npy", args.n, centres, seed=1)
        rates = gemm_rates(m, n, args.dim)
        best = max(rates, key=rates.get)
        backend = ProbedBackend(inner, gemm_functions(m, n, args.dim)[best], 2.0 * m * n * args.dim, args.dim)
        exact = bench_exact(args, emb, centres, backend)
        report_exact(args, emb, rates, best, (m, n), exact)
        if not args.skip_ivf:
            report_ivf(args, bench_ivf(args, Path(tmp)))
    return 0


def report_exact(args, emb, rates: dict, best: str, shape: tuple, exact: dict) -> None:
    print(f"GEMM GFLOP/s (float32 {shape[0]}x{args.dim} @ {args.dim}x{shape[1]}, "
          "best of 5 before the search): "
          + ", ".join(f"{k} {v:.1f}" for k, v in rates.items()) + f" -> probe with {best}")
    probes, ratios = np.array(exact["probe_rates"]), np.array(exact["ratios"])
    print(f"GEMM probes during the search ({len(probes)}): median {np.median(probes):.1f}, "
          f"min {probes.min():.1f}, max {probes.max():.1f} GFLOP/s")
    during, quiet = float(np.median(probes)), max(rates.values())
    print(f"exact search: {exact['seconds']:.1f} s (probes excluded), {exact['flop']:.3g} flop, "
          f"{exact['gflops']:.1f} GFLOP/s = {exact['gflops'] / during:.0%} of the GEMM rate during the search "
          f"(probe median {during:.1f}); {exact['gflops'] / quiet:.0%} of the best GEMM before it ({quiet:.1f})")
    print(f"per-call search rate / adjacent GEMM probe (robust to the shared machine's drift): median "
          f"{np.median(ratios):.0%}, min {ratios.min():.0%}, max {ratios.max():.0%} (goal >= 70%)")
    print(f"exact re-scoring of {exact['result'].k + MARGIN} candidates per query (float64, timed again alone): "
          f"{exact['rescore']:.2f} s = {exact['rescore'] / exact['seconds']:.1%} of the search time")
    proj = ISSUE_N * ISSUE_C * 2.0 * args.dim / (exact["gflops"] * 1e9)
    print(f"projected {ISSUE_N:,} x {ISSUE_C:,} x {args.dim} search: "
          f"{proj / 60:.1f} min at the achieved rate")
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    mm = emb.size * emb.itemsize
    print(f"memory: peak RSS {maxrss / 2**30:.2f} GiB (counts up to {mm / 2**30:.2f} GiB of memmapped input "
          f"pages); peak private RssAnon {exact['anon_peak'] / 2**30:.2f} GiB, of which "
          f"{(exact['anon_peak'] - exact['anon_base']) / 2**30:.2f} GiB added by the search (goal <= 3 GiB "
          f"beyond the input); result {exact['result'].ids.nbytes * 1.5 / 2**20:.0f} MiB")


def report_ivf(args, rows: list[tuple]) -> None:
    nlist, _, _, _, t_exact, t_fit = rows[0]
    print(f"IVF (IndexIVFFlat, nlist={nlist}, {args.ivf_per_class} images/identity, trained on "
          f"{min(args.ivf_n, 64 * nlist)} rows, fit {t_fit:.1f} s): {args.ivf_queries} queries vs "
          f"{args.ivf_n} rows, exact {t_exact:.2f} s")
    for _, nprobe, recall, seconds, _, _ in rows:
        print(f"  nprobe={nprobe:3d}: recall@{args.k} = {recall:.4f}, {seconds:.2f} s "
              f"({t_exact / seconds:.1f}x faster than exact)")


if __name__ == "__main__":
    raise SystemExit(main())

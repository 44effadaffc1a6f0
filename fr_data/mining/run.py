"""Orchestration of a mining run: EMB folder in, manifest run folder out.

Stages (each streams the memmap in chunks or walks classes one at a time, so memory is O(N k + C D)
beyond the memmap, never O(N D)):

1. ``centres``: class sums and vector validity (one pass over the memmap).
2. ``centre_search``: every sample against all class centres (k-NN, N x C): leave-one-out centre cosine,
   nearest other class, candidate classes, instance FPR (from the negatives, then dropped). Centre-to-centre
   nearest classes.
3. ``class_pass``: class-major sweep: within-class Gram matrices (SDD-FIQA intra distribution,
   positive pairs) and the sample k-NN graph (see ``neighbours`` for exact vs candidate search).
4. ``finalise``: label vote, thresholds calibrated from the run's own distributions (``calibration``:
   duplicates, merges, mislabel margin; config numbers override), suspects, duplicates, quality scores,
   difficulty split.
5. ``tables``: bins, attribute join (DuckDB), groups and bias report, pairs, sweep; then write.

The run folder (:mod:`fr_data.folders.run_folder`) is built in the staging folder ``.RUN.partial`` and
renamed to ``RUN`` only after every file, with ``run.json`` last, is written
(:func:`fr_data.io.publish.staged_folder`); an interrupted run leaves only the staging folder, which the
next run clears. The run holds the lock of ``RUN`` throughout (a second run to the same ``--out`` is
refused), and an ``out`` that is, contains or lies inside an input is refused first.

Under several ranks (``ranks``, :mod:`fr_data.mining.group`) every rank opens the inputs and computes
the centres; stages 2 and 3 split their searches, and each rank keeps the results for its share of the
rows (the k-NN lists of a row go to the rank whose share holds it); stage 4 runs over those shares and
sends rank 0 the per-row findings (:mod:`fr_data.mining.finalise`); rank 0 alone takes the lock, runs
stage 5 and writes. The run folder equals the single-process one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import math
import os
import resource
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

import fr_data
from fr_data.folders import run_folder as rf
from fr_data.folders.embeddings_folder import INDEX_FILE, Embeddings, check_recorded_hash, open_embeddings
from fr_data.folders.shard_folder import read_input_samples
from fr_data.io.config import dump_config, to_dict
from fr_data.io.errors import ConfigError, DataError
from fr_data.io.faults import kill_point, swapped
from fr_data.io.hashing import file_sha256
from fr_data.io.publish import check_apart, check_target, output_lock, staged_folder, staging_dir
from fr_data.mining import calibration_figure, tables
from fr_data.mining import centres as ctr
from fr_data.mining.calibration import SplitHalves
from fr_data.mining.centres import ClassRange
from fr_data.mining.config import MiningConfig, validate_config
from fr_data.mining.finalise import RankResults, finalise_stage
from fr_data.mining.group import SOLO, Ranks, share, split_by_cost
from fr_data.mining.inputs import Validity, iter_chunks, read_rows, validity_from_masks
from fr_data.mining.knnfn import KnnFn, KnnTotals, TimedKnn, default_knn
from fr_data.mining.memory import AnonPeak, release_free_memory
from fr_data.mining.neighbours import (
    CandidateNeighbours,
    TopK,
    VisitorLists,
    class_costs,
    class_pass,
    exact_share,
    touched_rows,
    visit_counts,
)
from fr_data.mining.origin import check_samples_of_embeddings
from fr_data.mining.pairs import PositiveExtremes
from fr_data.mining.pixel_check import rows_image_reader
from fr_data.mining.plausibility import flag_rates
from fr_data.mining.quality import SddCollector, instance_fpr, unified_threshold
from fr_data.mining.results import Findings, Geometry

log = logging.getLogger(__name__)

#: Rows searched against the centres at once: the search's temporaries (candidate lists, re-scoring,
#: the own-class filter) are ~4 KB a row at the default sizes, the same on every rank whatever N is.
SEARCH_ROWS = 8192

def peak_rss_mb() -> float:
    """Peak resident set of this process in MB (VmHWM; ru_maxrss where /proc is missing, which on Linux
    also remembers the pre-exec image of a forked parent)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


@dataclass
class StageTimer:
    """Wall time and memory after each stage, plus the k-NN time and GEMM flops spent in it.

    ``peak_rss_mb``: the process's peak resident set so far (VmHWM: touched pages of the memory-mapped
    embeddings included); ``peak_anon_mb``: the peak during the stage of the memory beyond the file
    mappings (sampled by ``anon``, :mod:`fr_data.mining.memory`; null where it cannot be read)."""

    knn: KnnTotals = field(default_factory=KnnTotals)
    stages: dict[str, dict[str, float | None]] = field(default_factory=dict)
    anon: AnonPeak | None = None

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        t0, s0, f0 = time.perf_counter(), self.knn.seconds, self.knn.flops
        if self.anon is not None:
            self.anon.reset()
        yield
        rss = peak_rss_mb()
        anon = self.anon.peak_mb() if self.anon is not None else math.nan
        release_free_memory()
        self.stages[name] = {"wall_s": round(time.perf_counter() - t0, 3), "peak_rss_mb": round(rss, 1),
                             "peak_anon_mb": round(anon, 1) if math.isfinite(anon) else None,
                             "knn_s": round(self.knn.seconds - s0, 3),
                             "knn_gflop": round((self.knn.flops - f0) / 1e9, 3)}
        log.info("stage %-14s %8.2f s  peak RSS %.0f MB, beyond the file mappings %.0f MB", name,
                 self.stages[name]["wall_s"], rss, anon)


def centre_stage(emb: Embeddings, cfg: MiningConfig) -> tuple[ctr.ClassIndex, ctr.Centres, Validity]:
    """Stage 1: class sums, centres and vector validity."""
    uniq, of_sample = np.unique(emb.labels, return_inverse=True)
    sums, ok, finite = ctr.accumulate_sums(emb.vectors, of_sample.astype(np.int32), len(uniq),
                                           cfg.neighbours.chunk_rows)
    cindex = ctr.build_class_index(emb.labels, ok)
    centres = ctr.make_centres(sums, cindex.counts)
    return cindex, centres, validity_from_masks(ok, finite)


def search_stage(emb: Embeddings, cindex: ctr.ClassIndex, centres: ctr.Centres, validity: Validity,
                 cfg: MiningConfig, knn: KnnFn, ranks: Ranks = SOLO) -> Geometry:
    """Stage 2: every valid sample against all class centres, in chunks; centre-to-centre neighbours.

    Each rank searches its share of the samples (and keeps the per-sample columns of that share only,
    ``Geometry.span``) and of the centres; the centre-to-centre results meet on rank 0, and the nearest
    class of every class reaches every rank."""
    n, nc = emb.n, cfg.neighbours
    a, b = ranks.share(n)
    k = max(1, min(nc.centre_k, len(centres.active) - 1))
    cols = [np.full((b - a, *shape), fill, dtype)
            for shape, dtype, fill in _search_columns(nc.candidate_classes, k)]
    _search_share(emb, cindex, centres, cfg, knn, (a, b), k, cols)
    center_cos, nearest, nearest_cos, candidates, negatives = cols
    # the negatives serve the instance FPR only: scored now, then dropped (128 B a row at centre_k 32)
    num_other = max(len(centres.active) - 1, 0)
    thr = unified_threshold(negatives, num_other, cfg.quality.target_fpr, ranks)
    fpr = instance_fpr(negatives, thr.value, num_other)
    del negatives
    cols.clear()
    ca, cb = ranks.share(len(centres.active))
    near, cos = ctr.nearest_of_active(centres, knn, (ca, cb))
    got = ranks.gather_span("centre_centre", len(centres.active), (ca, cb), {"near": near, "cos": cos})
    cls_near, cls_cos = (None, None) if got is None else ctr.class_nearest(centres, got["near"], got["cos"])
    nclass = len(centres.counts)
    cls_near = ranks.broadcast_array("class_nearest", cls_near, (nclass,), np.dtype(np.int64))
    cls_cos = ranks.broadcast_array("class_nearest_cos", cls_cos, (nclass,), np.dtype(np.float32))
    return Geometry(cindex, centres, validity, center_cos, nearest, nearest_cos, candidates, fpr, thr,
                    cls_near, cls_cos, (a, b))


def _search_columns(candidate_classes: int, k: int) -> list[tuple[tuple[int, ...], np.dtype, float]]:
    """Trailing shape, dtype and fill of the centre search's columns: centre cosine, nearest other class
    and its cosine, candidate classes, negatives."""
    return [((), np.dtype(np.float32), np.nan), ((), np.dtype(np.int64), -1), ((), np.dtype(np.float32), np.nan),
            ((candidate_classes,), np.dtype(np.int64), -1), ((k,), np.dtype(np.float32), np.nan)]


def _search_share(emb: Embeddings, cindex: ctr.ClassIndex, centres: ctr.Centres, cfg: MiningConfig,
                  knn: KnnFn, span: tuple[int, int], k: int, out: list[np.ndarray]) -> None:
    """Rows ``[a, b)`` against the centres into ``out`` (the :func:`_search_columns` over the share): centre
    cosine, nearest other class and its cosine, candidate classes, negatives (rows are searched alone, so
    chunking changes nothing)."""
    nc = cfg.neighbours
    a, b = span
    center_cos, nearest, nearest_cos, candidates, negatives = out
    for chunk in iter_chunks(emb.vectors[a:b], nc.chunk_rows):
        kill_point("mine:search")
        local = chunk.start + np.flatnonzero(chunk.ok)
        if len(local) == 0:
            continue
        x = chunk.x if chunk.ok.all() else chunk.x[chunk.ok]
        own = cindex.of_sample[a + local]
        center_cos[local] = centres.leave_one_out(x, own)
        if len(centres.active) < 2:
            continue
        for s in range(0, len(local), SEARCH_ROWS):  # bounded search temporaries, whatever chunk_rows is
            rows, part = local[s:s + SEARCH_ROWS], slice(s, s + SEARCH_ROWS)
            hits = ctr.search_centres(x[part], own[part], centres, k, nc.candidate_classes, knn)
            nearest[rows], nearest_cos[rows] = hits.nearest_other, hits.nearest_other_cos
            candidates[rows, :hits.candidates.shape[1]] = hits.candidates
            negatives[rows, :hits.negatives.shape[1]] = hits.negatives


def reference_set(geo: Geometry, size: int, seed: int) -> np.ndarray:
    """A fixed random sample of valid rows (sorted) for the SDD-FIQA negatives."""
    valid = np.flatnonzero(geo.validity.ok)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(valid, size=min(size, len(valid)), replace=False))


def class_stage(emb: Embeddings, geo: Geometry, cfg: MiningConfig, knn: KnnFn,
                ranks: Ranks = SOLO) -> RankResults:
    """Stage 3: class-major pass (SDD-FIQA, positive extremes, split halves) and the sample k-NN graph.

    The classes are split into contiguous ranges of about equal work; each rank runs the per-class
    measures over its range (held by position, :class:`fr_data.mining.centres.ClassRange`). The k-NN
    graph is split too: the exact search by query rows, the candidate search by those class ranges; each
    rank's lists then go to the rank whose share holds the row, which merges them into the graph of its
    rows (the canonical top k whatever the order of the merges)."""
    n, k, (a, b) = emb.n, cfg.neighbours.k, geo.span
    cindex = geo.cindex
    exact = int(geo.validity.ok.sum()) <= cfg.neighbours.exact_max_n
    visits = np.zeros(cindex.num_classes, np.int64) if exact else \
        ranks.sum_array("visit_counts", visit_counts(geo.candidates, cindex.num_classes))
    bounds = split_by_cost(class_costs(cindex.counts, visits), ranks.world)
    mine_ = range(int(bounds[ranks.rank]), int(bounds[ranks.rank + 1]))
    visitors = _class_visitors(emb, geo, cfg, ClassRange(cindex, mine_))
    if exact:
        strategy = "exact"
        class_pass(emb.vectors, cindex, list(visitors), mine_)
        valid_rows = np.flatnonzero(geo.validity.ok)
        va, vb = ranks.share(len(valid_rows))
        sims, ids = exact_share(emb.vectors, valid_rows, k, knn, (va, vb), stream=ranks.world > 1)
        topk = TopK.empty(b - a, k)

        def place(rows: np.ndarray, got: list[np.ndarray]) -> None:  # each row is searched once
            topk.sims[rows - a, :got[0].shape[1]], topk.ids[rows - a, :got[1].shape[1]] = got
        ranks.route_rows("class_pass", n, valid_rows[va:vb], [sims, ids], place)
    else:
        strategy = "candidates"
        cand = _candidate_share(emb, geo, k, ranks, visitors, mine_)
        topk = cand.topk if ranks.world == 1 else _owned_graph(cand, ranks)  # one process: every row already
        del cand
    return RankResults(topk, strategy, visitors)


def _candidate_share(emb: Embeddings, geo: Geometry, k: int, ranks: Ranks,
                     visitors: tuple[SddCollector, PositiveExtremes, SplitHalves], mine_: range
                     ) -> CandidateNeighbours:
    """This rank's part of the candidate k-NN graph (its class range ``mine_``, of about equal work) over
    the rows its classes touch (every row in one process), with the per-class ``visitors`` of the range.

    Each rank holds the candidate classes of its share of the rows; every rank receives all of them in
    row blocks, rank by rank, and keeps the visits of its own classes only."""
    n, cindex, m = emb.n, geo.cindex, geo.candidates.shape[1]
    lists = VisitorLists(cindex.num_classes, mine_)
    for src in range(ranks.world):
        sa, sb = share(n, src, ranks.world)
        ranks.broadcast_rows(f"candidate_classes{src}", geo.candidates if src == ranks.rank else None,
                             (sb - sa, m), np.dtype(np.int64),
                             lambda start, block, sa=sa: lists.add(sa + start, block),
                             src=src)
    visits = lists.csr()
    if ranks.world == 1:
        cand = CandidateNeighbours(emb.vectors, n, k, visits, mine_)
    else:  # the rows its classes touch, cut by the row shares; its own share whole (it owns those lists)
        rows = touched_rows(cindex, mine_, visits)
        bounds = np.array([share(n, r, ranks.world)[0] for r in range(ranks.world)] + [n], np.int64)
        cut = np.searchsorted(rows, bounds)
        segments = [np.arange(bounds[r], bounds[r + 1], dtype=np.int64) if r == ranks.rank
                    else rows[cut[r]:cut[r + 1]] for r in range(ranks.world)]
        del rows
        cand = CandidateNeighbours(emb.vectors, n, k, visits, mine_, segments=segments, bounds=bounds[:-1])
    class_pass(emb.vectors, cindex, [cand, *visitors], mine_)
    return cand


def _owned_graph(cand: CandidateNeighbours, ranks: Ranks) -> TopK:
    """The k-NN graph of this rank's row share: its own segment of ``cand`` with every other rank's lists
    of those rows merged in (share by share, each segment freed once handed to its owner)."""
    own_rows, topk = cand.segment(ranks.rank)
    first = int(own_rows[0]) if len(own_rows) else 0
    for dst in range(ranks.world):
        if dst == ranks.rank:
            ranks.gather_rows(f"class_pass>{dst}", own_rows[:0], [topk.sims[:0], topk.ids[:0]],
                              lambda rows, got: topk.merge_lists(rows - first, *got), dst=dst)
        else:
            rows, part = cand.segment(dst)
            ranks.gather_rows(f"class_pass>{dst}", rows, [part.sims, part.ids], lambda rows, got: None,
                              dst=dst)
            cand.drop(dst)
    return topk


def _class_visitors(emb: Embeddings, geo: Geometry, cfg: MiningConfig, span: ClassRange
                    ) -> tuple[SddCollector, PositiveExtremes, SplitHalves]:
    """The per-class measures of stage 3 over the classes of ``span``: SDD-FIQA, positive extremes,
    split-half centres (every rank draws the same reference set)."""
    q = cfg.quality
    ref = reference_set(geo, q.sdd_reference, cfg.seed)
    sdd = SddCollector(emb.n, read_rows(emb.vectors, ref), geo.cindex.of_sample[ref], q.sdd_samples,
                       q.sdd_rounds, cfg.seed + 1, span=span)
    return sdd, PositiveExtremes(emb.n, span=span), SplitHalves(geo.cindex.num_classes, cfg.seed)


def check_quality_input(emb: Embeddings, cfg: MiningConfig) -> None:
    """``difficulty.quality_weight`` > 0 needs the index's ``quality`` column (raises ConfigError)."""
    if cfg.difficulty.quality_weight > 0 and emb.column("quality") is None:
        raise ConfigError(f"difficulty.quality_weight is {cfg.difficulty.quality_weight} but "
                          f"{emb.folder / INDEX_FILE} has no quality column (embed with --quality-model)")


@dataclass
class MiningResult:
    """Where the run went and what ``run.json`` says."""

    folder: Path
    run: dict[str, Any]


def _knn_name(knn: KnnFn) -> str:
    knn = getattr(knn, "knn", knn) if isinstance(knn, TimedKnn) else knn
    if isinstance(getattr(knn, "name", None), str):
        return knn.name
    return f"{getattr(knn, '__module__', '?')}.{getattr(knn, '__qualname__', type(knn).__name__)}"


def _resolved(path: str | os.PathLike | None) -> str | None:
    return str(Path(path).resolve()) if path else None


def calibration_report(found: Findings, report: dict[str, Any], cfg: MiningConfig) -> dict[str, Any]:
    """``run.json``'s ``calibration`` (how each threshold was obtained) and ``plausibility`` (flag rates,
    warnings)."""
    return {"calibration": {k: c.record() for k, c in found.calibration.items()},
            "duplicates_pixel_check": found.pixel_check,
            "plausibility": flag_rates(report["counts"], cfg.calibration)}


def run_info(emb: Embeddings, digest: str, samples: Any, attributes: Any, knn: KnnFn, strategy: str,
             report: dict[str, Any], cfg: MiningConfig) -> dict[str, Any]:
    """The ``run.json`` content (also stored as Parquet key-value metadata)."""
    return {
        "tool": "hardmine tools/mine_hard.py", "hardmine_version": fr_data.__version__,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "complete": True,
        "inputs": {"embeddings": _resolved(emb.folder), "embeddings_sha256": digest, "rows": emb.n,
                   "dim": int(emb.vectors.shape[1]), "dtype": str(emb.vectors.dtype),
                   "samples": _resolved(samples), "attributes": _resolved(attributes)},
        "model": emb.run_info.get("spec", emb.run_info.get("model")), "embedding_run": emb.run_info,
        "faiss_version": faiss.__version__, "knn": _knn_name(knn), "samples_manifest": _resolved(samples),
        "neighbour_strategy": strategy, **report, "config": to_dict(cfg),
    }


def mine(embeddings: str | os.PathLike, out: str | os.PathLike, config: MiningConfig | None = None, *,
         samples: str | os.PathLike | None = None, attributes: str | os.PathLike | None = None,
         knn: KnnFn | None = None, overwrite: bool = False, ranks: Ranks = SOLO) -> MiningResult | None:
    """Mine an embeddings folder into a manifest run folder (see the module docstring).

    Args:
        embeddings: EMB folder (``embeddings.npy``, ``index.parquet``, optional ``run.json``).
        out: run folder to create; it must not exist unless ``overwrite``.
        config: thresholds and sizes (defaults: ``MiningConfig()``).
        samples: shard manifest ``samples.parquet`` (maps ``source_index`` to sample keys); it must be the
            manifest the embeddings were made from (:mod:`fr_data.mining.origin`), else a DataError.
        attributes: attribute table keyed by ``key``, ``source_index`` or ``label``.
        knn: k-NN function (default ``knnfn.default_knn()``: ``knn_search`` with the tuned backend);
            its time and flops per stage go to ``run.json`` ``timings``.
        overwrite: replace an existing run folder (only once the new one is complete).
        ranks: the ranks of a distributed run (every rank calls ``mine`` with the same arguments; see
            :mod:`fr_data.mining.group`); default one process.

    Returns:
        The result on rank 0; None on the other ranks (they search and hand their results to rank 0).

    Raises:
        RankError: under several ranks, any rank's bad input (every rank raises the same line), or a
            rank that died or timed out.
    """
    check_apart(out, embeddings, samples, attributes)
    cfg = validate_config(config or MiningConfig())
    knn = TimedKnn(knn or default_knn())
    timer = StageTimer(knn.totals, anon=AnonPeak())
    try:
        return _mine(embeddings, out, cfg, samples, attributes, knn, overwrite, ranks, timer)
    finally:
        timer.anon.close()


def _mine(embeddings: str | os.PathLike, out: str | os.PathLike, cfg: MiningConfig,
          samples: str | os.PathLike | None, attributes: str | os.PathLike | None, knn: TimedKnn,
          overwrite: bool, ranks: Ranks, timer: StageTimer) -> MiningResult | None:
    """:func:`mine` once its arguments are checked and its clock runs."""
    # rank 0 holds the lock from the check to the publication; one run at a time
    with output_lock(out, "run folder") if ranks.is_root else contextlib.nullcontext():
        with timer.stage("open"):
            ranks.check("target", lambda: check_target(out, overwrite, "run folder") if ranks.is_root else None)
            inputs = ranks.check("inputs", lambda: open_inputs(swapped("mine:embeddings", embeddings), samples,
                                                              cfg, ranks))
            emb, digest, samples_fingerprint = inputs
            same_embeddings(emb, digest, ranks)
        with staged_folder(out, overwrite, "run folder") if ranks.is_root else contextlib.nullcontext() as tmp:
            staging = shared_output(out, tmp, ranks)
            with timer.stage("centres"):
                cindex, centres, validity = centre_stage(emb, cfg)
            kill_point("mine:centres")
            with timer.stage("centre_search"):
                geo = search_stage(emb, cindex, centres, validity, cfg, knn, ranks)
            with timer.stage("class_pass"):
                cp = class_stage(emb, geo, cfg, knn, ranks)
            with timer.stage("finalise"):
                images, no_images = rows_image_reader(emb, samples, cfg) if ranks.is_root else (None, None)
                found, pairs = finalise_stage(emb.n, geo, cp, cfg, images,
                                              lambda: (emb.column("resolution"), emb.column("quality")), ranks)
                del cp
            with timer.stage("tables"):
                built = tables.build(emb, geo, found, pairs, found.config, staging, samples=samples,
                                     attributes=attributes, ranks=ranks)
            per_rank = ranks.gather_json("timings", timer.stages)
            if built is None:
                return None
            if found.pixel_check is None:
                found.pixel_check = {"skipped": no_images}
            built.report.update(calibration_report(found, built.report, cfg))
            run = run_info(emb, digest, samples, attributes, knn, found.strategy, built.report, cfg)
            run["inputs"]["samples_fingerprint"] = samples_fingerprint
            run["ranks"] = ranks.world
            with timer.stage("write"):
                tables.write(tmp, built, run)
                dump_config(cfg, tmp / rf.CONFIG_FILE)
                if cfg.calibration.figure:
                    drawn = calibration_figure.draw(found.calibration, tmp / calibration_figure.FIGURE_FILE)
                    run["calibration_figure"] = drawn.name if drawn else None
            run["timings"] = timer.stages
            if ranks.world > 1:  # rank 0's own entry with the stages it ran after the exchange
                run["timings_per_rank"] = [timer.stages, *per_rank[1:]]
            rf.write_run_info(tmp, run)
            kill_point("mine:run_info")
        return MiningResult(Path(out), run)


def open_inputs(embeddings: str | os.PathLike, samples: str | os.PathLike | None, cfg: MiningConfig,
                ranks: Ranks) -> tuple[Embeddings, str, str | None]:
    """Open the embeddings (every rank) and check the manifest and config against them (rank 0): the
    embeddings, their SHA-256 and the manifest's fingerprint."""
    # rank 0 checks the keys and ranks every row's difficulty; the others read their rows' columns later
    emb = open_embeddings(embeddings, keys=ranks.is_root, floats=ranks.is_root)
    samples_fingerprint = None
    if ranks.is_root:
        if samples is not None:
            read_input_samples(samples, ["key", "source_index"])
            samples_fingerprint = check_samples_of_embeddings(samples, emb)
        check_quality_input(emb, cfg)
        emb = emb.without_keys()  # each rank reads its rows' keys when it writes them
    digest = file_sha256(emb.array_path)
    if ranks.is_root:
        check_recorded_hash(emb, digest)
    return emb, digest, samples_fingerprint


def same_embeddings(emb: Embeddings, digest: str, ranks: Ranks) -> None:
    """Every rank must read the embeddings rank 0 reads: size and SHA-256 of the array file, broadcast
    from rank 0 and compared on each rank (a RankError naming the rank and its file otherwise)."""
    if ranks.world == 1:
        return
    own = {"bytes": emb.array_path.stat().st_size, "sha256": digest}
    ref = ranks.broadcast_json("embeddings", own)

    def compare() -> None:
        for what in ("bytes", "sha256"):
            if own[what] != ref[what]:
                raise DataError(emb.array_path, what, f"this rank's embeddings differ from rank 0's "
                                                      f"({what} {own[what]} here, {ref[what]} on rank 0)")
    ranks.check("same_embeddings", compare)


#: File rank 0 writes into the staging folder for the other ranks to find (removed before publication).
TOKEN_FILE = ".ranks-token"


def shared_output(out: str | os.PathLike, tmp: Path | None, ranks: Ranks) -> Path:
    """Every rank must see rank 0's staging folder of ``out`` (a shared filesystem): rank 0 writes a random
    token there, broadcasts it, each rank reads it back (a RankError naming the rank otherwise). Returns
    the staging folder as this rank sees it (where it writes its rows of samples.parquet)."""
    if ranks.world == 1:
        assert tmp is not None
        return tmp
    token = secrets.token_hex(16) if ranks.is_root else None
    if tmp is not None:
        (tmp / TOKEN_FILE).write_text(token)
    token = ranks.broadcast_json("output_token", token)
    path = staging_dir(swapped("mine:out", out)) / TOKEN_FILE

    def read_back() -> None:
        try:
            seen = path.read_text()
        except OSError as e:
            raise DataError(out, "output", f"this rank cannot see rank 0's staging folder {path.parent} "
                                           f"({e.strerror}): the output must be on a filesystem every rank "
                                           "shares") from None
        if seen != token:
            raise DataError(out, "output", f"{path} holds another run's token: the output must be on a "
                                           "filesystem every rank shares")
    ranks.check("shared_output", read_back)
    if tmp is not None:
        (tmp / TOKEN_FILE).unlink()
    return path.parent

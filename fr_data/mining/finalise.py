"""Stage 4 of a mining run over row shares: vote, calibrated thresholds, suspects, duplicates, quality,
instance FPR, difficulty, split and the mined pairs.

Every rank holds the results of the searches for its share of the rows (``Geometry.span``: the centre
search's columns, the k-NN graph's lists), computes its rows' findings there and keeps them: each rank
then writes its own rows of samples.parquet (:mod:`fr_data.mining.tables`). What needs every row is
exchanged in a form that is exact whatever the split:

* the label vote and the neighbour mix's votes: per row on its owner; the mix's per-class counts summed
  over the ranks (integer counts);
* the calibrated thresholds: rank 0 receives 13 B a row (top-1 cosine, margin, whether the own class won
  the vote, centre cosine; :meth:`fr_data.mining.group.Ranks.gather_span`), calibrates and broadcasts them
  (JSON numbers);
* duplicates: each rank lists its graph's edges at or above the (candidate) threshold, rank 0 runs the
  greedy removal (and the pixel check) over all of them in row order and hands each rank its rows' kept
  twins back (:meth:`~fr_data.mining.group.Ranks.scatter_span`);
* the instance FPR: scored by each rank for its rows at the end of the centre search (against the
  unified threshold, the exact ``k``-th largest negative over every share:
  :func:`fr_data.mining.quality.unified_threshold`);
* SDD-FIQA: scored on the rank of the class range, each score sent to its row's owner;
* eligibility for pairs (1 B a row) on every rank; hard negatives: each rank picks its rows' nearest
  eligible neighbour of another class, rank 0 ranks them per class (12 B a row);
* the difficulty's percentile ranks and the split's quantiles are over every row: rank 0 receives 5 B a
  row, ranks them and hands each rank its rows' difficulty and split back.

With one process the share is every row and no exchange runs: the result is the run's, whatever the
rank count (``tests/hardmine/cli/test_mine_ranks.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from fr_data.mining.calibration import Calibration, SplitHalves, calibrate, impostor_mean_cos
from fr_data.mining.config import MiningConfig, with_thresholds
from fr_data.mining.difficulty import difficulty_score, split_codes_by_quantile, split_names
from fr_data.mining.duplicates import (
    Duplicates,
    duplicate_kinds,
    forward_edges,
    remove_duplicates,
    symmetric_edges,
)
from fr_data.mining.group import SOLO, Ranks
from fr_data.mining.merges import merge_candidates, mix_of_votes, pair_votes
from fr_data.mining.nearest import nearest_sample_cos
from fr_data.mining.neighbours import TopK
from fr_data.mining.noise import knn_vote, suspects
from fr_data.mining.pairs import (
    Pairs,
    PositiveExtremes,
    assemble_pairs,
    hard_negatives,
    negative_pairs,
    positive_pairs,
)
from fr_data.mining.pixel_check import PixelCheck, candidate_floor, check_edges
from fr_data.mining.quality import SddCollector, certainty_ratio, sdd_bounds, sdd_scale
from fr_data.mining.results import Findings, Geometry

__all__ = ["RankResults", "finalise_stage", "thresholds_stage"]


@dataclasses.dataclass
class RankResults:
    """What stage 3 leaves on a rank: the k-NN graph of its rows (``Geometry.span``) and the per-class
    measures of its class range (SDD-FIQA raw scores and positive extremes by position in the range,
    split-half cosines by class id)."""

    topk: TopK
    strategy: str
    visitors: tuple[SddCollector, PositiveExtremes, SplitHalves]


def concatenated(ranks: Ranks, parts: tuple[np.ndarray, ...], stage: str) -> tuple[np.ndarray, ...] | None:
    """Every rank's equal-length arrays ``parts`` concatenated in rank order on rank 0 (rank 0's first;
    None on the others)."""
    if ranks.world == 1:
        return parts
    got_parts = [parts] if ranks.is_root else None

    def add(rows: np.ndarray, got: list[np.ndarray]) -> None:
        got_parts.append((rows, *got))
    ranks.gather_rows(stage, parts[0], list(parts[1:]), add)
    if got_parts is None:
        return None
    return tuple(np.concatenate([p[i] for p in got_parts]) for i in range(len(parts)))


def sdd_of_share(ranks: Ranks, n: int, span: tuple[int, int], sdd: SddCollector) -> np.ndarray:
    """The SDD-FIQA scores of this rank's rows ``span``: each rank scales its class range's raw values
    with the run's per-round bounds (the min / max over the ranks' bounds, exact) and sends each score to
    the rank that owns its row."""
    own = sdd_bounds(sdd.raw)
    found = [b for b in ranks.gather_json("sdd_bounds", None if own is None else [x.tolist() for x in own])
             if b is not None]
    scores = np.full(len(sdd.raw), np.nan, np.float32)
    if found:
        lo = np.min(np.array([b[0] for b in found], sdd.raw.dtype), axis=0)
        hi = np.max(np.array([b[1] for b in found], sdd.raw.dtype), axis=0)
        scores = sdd_scale(sdd.raw, lo, hi)
    rows = sdd.span.rows
    order = np.argsort(rows, kind="stable")
    out = np.full(span[1] - span[0], np.nan, np.float32)

    def place(got_rows: np.ndarray, got: list[np.ndarray]) -> None:
        out[got_rows - span[0]] = got[0]
    ranks.route_rows("sdd_scores", n, rows[order], [scores[order]], place)
    return out


def everywhere(ranks: Ranks, stage: str, n: int, span: tuple[int, int], flags: np.ndarray) -> np.ndarray:
    """Every rank's boolean ``flags`` of its ``span`` as one ``n``-row array on every rank (1 B a row)."""
    got = ranks.gather_span(stage, n, span, {"flags": flags})
    return ranks.broadcast_array(stage, None if got is None else got["flags"], (n,), np.dtype(bool))


def thresholds_stage(geo: Geometry, split_half_cos: np.ndarray, rows: dict[str, np.ndarray],
                     cfg: MiningConfig) -> tuple[dict[str, Calibration], MiningConfig]:
    """The thresholds in force (``calibration.calibrate``; rank 0, every row's ``top1``, ``margin``,
    ``own_wins`` and ``center_cos``) and the config with them."""
    c = geo.centres
    cal = calibrate(cfg, rows["top1"], split_half_cos, rows["margin"], rows["own_wins"], rows["center_cos"],
                    impostor_mean_cos(c.sums, c.counts, c.active))
    resolved = with_thresholds(cfg, cal["classes.merge_cos"].value, cal["duplicates.cos"].value,
                               cal["noise.margin_max"].value)
    return cal, resolved


def _threshold_values(cfg: MiningConfig) -> list[float | None]:
    return [cfg.classes.merge_cos, cfg.duplicates.cos, cfg.noise.margin_max]


def duplicate_stage(n: int, edges: tuple[np.ndarray, np.ndarray, np.ndarray], center_cos: np.ndarray,
                    cfg: MiningConfig, images: Callable[[int], bytes] | None
                    ) -> tuple[Duplicates, PixelCheck | None]:
    """Near duplicates from every row's forward edges (row order) by the cosine rule, or (with ``images``
    and ``duplicates.pixel_min`` set) the candidate pairs confirmed by the pixel check."""
    d = cfg.duplicates
    a, b, s = edges
    if images is None or d.pixel_min is None:
        keep = s >= d.cos
        return remove_duplicates(n, symmetric_edges(a[keep], b[keep], s[keep]), center_cos), None
    floor = candidate_floor(d.cos, d.candidate_margin)
    keep = s >= floor
    check = check_edges(symmetric_edges(a[keep], b[keep], s[keep]), floor, d.pixel_min, images)
    return remove_duplicates(n, check.edges(), center_cos), check


def edge_floor(cfg: MiningConfig, pixel: bool) -> float:
    """The lowest cosine of an edge rank 0 may need: the candidate floor with the pixel check, else the
    duplicate threshold."""
    d = cfg.duplicates
    return min(d.cos, candidate_floor(d.cos, d.candidate_margin)) if pixel else d.cos


def finalise_stage(emb_n: int, geo: Geometry, cp: RankResults, cfg: MiningConfig,
                   images: Callable[[np.ndarray], Callable[[int], bytes]] | None,
                   difficulty_inputs: Callable[[], tuple], ranks: Ranks = SOLO) -> tuple[Findings, Pairs | None]:
    """Stage 4 on every rank (see the module docstring): the findings of this rank's rows (``geo.span``;
    the run-level ones on rank 0) and the mined pairs (rank 0; None on the others).

    ``images(rows)`` (rank 0) opens a reader of the stored image bytes of ``rows`` (``row -> bytes``):
    near-duplicate candidates are then checked in pixel space. ``difficulty_inputs()`` (rank 0) gives the
    index's resolution and quality columns."""
    n, (a, b) = emb_n, geo.span
    class_of, ok = geo.cindex.of_sample, geo.validity.ok
    topk, own, ok_own = cp.topk, class_of[a:b], ok[a:b]
    vote = knn_vote(topk.ids, class_of, own=own)
    nn_cos = nearest_sample_cos(topk)
    margin = (geo.center_cos - geo.nearest_other_cos).astype(np.float32)
    votes = ranks.sum_array("pair_votes", pair_votes(topk.ids, class_of, geo.class_nearest, own=own))
    sdd, ext, halves = cp.visitors
    classes = ext.span.classes
    halves_cos = ranks.gather_span("split_halves", geo.cindex.num_classes, (classes.start, classes.stop),
                                   {"cos": halves.cos[classes.start:classes.stop]})
    # rank 0 calibrates from 13 B a row and decides the duplicates with the centre cosines among them
    rows = ranks.gather_span("calibration_rows", n, (a, b), {
        "top1": np.where(ok_own, nn_cos, np.nan).astype(np.float32), "margin": margin,
        "own_wins": ok_own & (vote.winner == own), "center_cos": geo.center_cos})
    cal = None
    if rows is not None:
        cal, cfg = thresholds_stage(geo, halves_cos["cos"], rows, cfg)
    cfg = with_thresholds(cfg, *ranks.broadcast_json("thresholds", _threshold_values(cfg)))
    pixel = ranks.broadcast_json("pixel_check", images is not None and cfg.duplicates.pixel_min is not None)
    edges = concatenated(ranks, forward_edges(topk.ids, topk.sims, edge_floor(cfg, pixel), first_row=a),
                         "duplicate_edges")
    ext.settle(cfg.duplicates.cos)
    quality_sdd = sdd_of_share(ranks, n, (a, b), sdd)
    del sdd
    mix = partner = decided = pixel_check = None
    if rows is not None:
        mix = mix_of_votes(votes, geo.class_nearest)
        merge = merge_candidates(geo.class_nearest_cos, cfg.classes.merge_cos, mix, cfg.classes.merge_mix)
        partner = np.where(merge, geo.class_nearest, -1)
        reader = images(np.unique(np.concatenate(edges[:2]))) if pixel else None
        dups, pixel_check = duplicate_stage(n, edges, rows["center_cos"], cfg, reader)
        decided = {"of": dups.of, "cos": dups.cos}
        if pixel:
            decided["pixel_sim"] = pixel_check.best_per_row(n)
        del rows, dups
    del edges
    partner = ranks.broadcast_array("merge_partner", partner, (geo.cindex.num_classes,), np.dtype(np.int64))
    suspect = suspects(vote, own, margin, cfg.noise.vote_min, cfg.noise.margin_max, partner) & ok_own
    like = {"of": np.dtype(np.int64), "cos": np.dtype(np.float32)}
    if pixel:
        like["pixel_sim"] = np.dtype(np.float32)
    dup = ranks.scatter_span("duplicates", n, (a, b), decided, like)
    del decided
    eligible = everywhere(ranks, "eligible", n, (a, b), ok_own & ~suspect & (dup["of"] < 0))
    neg = ranks.gather_span("hard_negatives", n, (a, b), dict(zip(("id", "cos"), hard_negatives(
        topk.ids, topk.sims, eligible, class_of, partner, first_row=a), strict=True)))
    p = cfg.pairs
    per_class = (p.easy_pos_per_class, p.hard_pos_per_class, p.hard_neg_per_class)
    easy, hard = (concatenated(ranks, part, f"pairs_{kind}")
                  for part, kind in zip(positive_pairs(ext, eligible, class_of, per_class), ("easy", "hard"),
                                        strict=True))
    pairs = None if neg is None else assemble_pairs(
        easy, hard, negative_pairs(neg["id"], neg["cos"], eligible, class_of, per_class))
    del neg
    # the difficulty's percentile ranks and the split's quantiles are over every row: rank 0's, 5 B a row
    quality_cr = certainty_ratio(geo.center_cos, geo.nearest_other_cos, cfg.quality.cr_eps)
    rows = ranks.gather_span("difficulty_rows", n, (a, b), {"cr": quality_cr, "open": ok_own & ~suspect})
    decided = None
    if rows is not None:
        resolution, quality = difficulty_inputs()
        difficulty = difficulty_score(rows["cr"], resolution, cfg.difficulty.resolution_weight,
                                      quality, cfg.difficulty.quality_weight)
        split = split_codes_by_quantile(difficulty, rows["open"], cfg.difficulty.easy_fraction,
                                        cfg.difficulty.hard_fraction)
        decided = {"difficulty": difficulty, "split": split}
        del rows, resolution, quality, difficulty, split
    hardness = ranks.scatter_span("difficulty", n, (a, b), decided,
                                  {"difficulty": np.dtype(np.float32), "split": np.dtype(np.int8)})
    del decided
    cols = {
        "center_cos": geo.center_cos, "nearest_other": geo.nearest_other,
        "nearest_other_cos": geo.nearest_other_cos, "margin": margin, "knn_agreement": vote.agreement,
        "suspect_mislabel": suspect, "suspected": np.where(suspect, vote.winner, -1),
        "duplicate_of": dup["of"], "duplicate_cos": dup["cos"],
        "duplicate_kind": duplicate_kinds(dup["of"], own, class_of),
        "duplicate_pixel_sim": dup.get("pixel_sim"),
        "quality_sdd": quality_sdd,
        "quality_cr": quality_cr,
        "instance_fpr": geo.instance_fpr,
        "difficulty": hardness["difficulty"], "split": split_names(hardness["split"]),
        "vote_winner": vote.winner, "vote_share": vote.winner_share,
        "nn_cos": nn_cos,
    }
    record = None if pixel_check is None else pixel_check.record(cfg.duplicates.pixel_min,
                                                                 cfg.duplicates.candidate_margin)
    found = Findings(cols, class_of, eligible, geo.fpr_threshold, cp.strategy, partner, mix, cal, cfg, record,
                     span=(a, b))
    return found, pairs

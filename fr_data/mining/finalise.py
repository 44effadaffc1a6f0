"""Stage 4 of a mining run over row shares: vote, calibrated thresholds, suspects, duplicates, quality,
instance FPR, difficulty, split and the mined pairs.

Every rank holds the results of the searches for its share of the rows (``Geometry.span``: the centre
search's columns, the k-NN graph's lists) and turns them into the few per-row numbers the run's decisions
need; rank 0 receives those (in row blocks, :meth:`fr_data.mining.group.Ranks.gather_span`) and decides.
What needs every row is exchanged in a form that is exact whatever the split:

* the label vote and the neighbour mix's votes: per row on its owner; the mix's per-class counts summed
  over the ranks (integer counts);
* the calibrated thresholds: computed on rank 0 from the gathered columns and broadcast (JSON numbers);
* duplicates: each rank lists its graph's edges at or above the (candidate) threshold, rank 0 runs the
  greedy removal (and the pixel check) over all of them in row order;
* the instance FPR: scored by each rank for its rows at the end of the centre search (against the
  unified threshold, the exact ``k``-th largest negative over every share:
  :func:`fr_data.mining.quality.unified_threshold`), gathered with the other per-row columns;
* hard negatives: each rank picks its rows' nearest eligible neighbour of another class once rank 0 has
  broadcast which rows are eligible.

With one process the share is every row and no exchange runs: the result is the run's, whatever the
rank count (``tests/hardmine/cli/test_mine_ranks.py``). The other ranks hold no N-sized array but the
class index and the eligibility flags; rank 0 holds the per-row findings it writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from fr_data.mining.calibration import Calibration, SplitHalves, calibrate, impostor_mean_cos
from fr_data.mining.config import MiningConfig, with_thresholds
from fr_data.mining.difficulty import difficulty_score, split_by_quantile
from fr_data.mining.duplicates import Duplicates, forward_edges, remove_duplicates, symmetric_edges
from fr_data.mining.group import SOLO, Ranks
from fr_data.mining.merges import merge_candidates, mix_of_votes, pair_votes
from fr_data.mining.nearest import nearest_sample_cos
from fr_data.mining.neighbours import TopK
from fr_data.mining.noise import Vote, knn_vote, suspects
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


def sdd_of_rows(ranks: Ranks, n: int, sdd: SddCollector) -> np.ndarray | None:
    """The SDD-FIQA scores of every row on rank 0: each rank scales its class range's raw values with the
    run's per-round bounds (the min / max over the ranks' bounds, exact) and sends them."""
    own = sdd_bounds(sdd.raw)
    found = [b for b in ranks.gather_json("sdd_bounds", None if own is None else [x.tolist() for x in own])
             if b is not None]
    scores = np.full(len(sdd.raw), np.nan, np.float32)
    if found:
        lo = np.min(np.array([b[0] for b in found], sdd.raw.dtype), axis=0)
        hi = np.max(np.array([b[1] for b in found], sdd.raw.dtype), axis=0)
        scores = sdd_scale(sdd.raw, lo, hi)
    got = ranks.gather_at("sdd_scores", n, sdd.span.rows, {"sdd": scores}, fill=np.nan)
    return None if got is None else got["sdd"]


def thresholds_stage(geo: Geometry, split_half_cos: np.ndarray, vote: Vote, margin: np.ndarray,
                     nn_cos: np.ndarray, cfg: MiningConfig) -> tuple[dict[str, Calibration], MiningConfig]:
    """The thresholds in force (``calibration.calibrate``; rank 0, every row) and the config with them."""
    class_of, ok = geo.cindex.of_sample, geo.validity.ok
    top1 = np.where(ok, nn_cos, np.nan).astype(np.float32)
    c = geo.centres
    cal = calibrate(cfg, top1, split_half_cos, margin, ok & (vote.winner == class_of), geo.center_cos,
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
                   images: Callable[[int], bytes] | None, difficulty_inputs: Callable[[], tuple],
                   ranks: Ranks = SOLO) -> tuple[Findings, Pairs, Geometry] | None:
    """Stage 4 on every rank (see the module docstring): the findings, pairs and the geometry over every
    row on rank 0; None on the others.

    ``images(row)`` (rank 0) returns a row's stored image bytes: near-duplicate candidates are then checked
    in pixel space. ``difficulty_inputs()`` (rank 0) gives the index's resolution and quality columns."""
    n, (a, b) = emb_n, geo.span
    class_of, ok = geo.cindex.of_sample, geo.validity.ok
    topk, own = cp.topk, class_of[a:b]
    vote = knn_vote(topk.ids, class_of, own=own)
    rows = ranks.gather_span("finalise_rows", n, (a, b), {
        "center_cos": geo.center_cos, "nearest_other": geo.nearest_other,
        "nearest_other_cos": geo.nearest_other_cos, "nn_cos": nearest_sample_cos(topk),
        "knn_agreement": vote.agreement, "vote_winner": vote.winner, "vote_share": vote.winner_share,
        "instance_fpr": geo.instance_fpr})
    votes = ranks.sum_array("pair_votes", pair_votes(topk.ids, class_of, geo.class_nearest, own=own))
    sdd, ext, halves = cp.visitors
    classes = ext.span.classes
    halves_cos = ranks.gather_span("split_halves", geo.cindex.num_classes, (classes.start, classes.stop),
                                   {"cos": halves.cos[classes.start:classes.stop]})
    cal = None
    if rows is not None:
        full = dataclasses.replace(geo, center_cos=rows["center_cos"], nearest_other=rows["nearest_other"],
                                   nearest_other_cos=rows["nearest_other_cos"], span=(0, n),
                                   candidates=np.empty((0, geo.candidates.shape[1]), np.int64),
                                   instance_fpr=np.empty(0, np.float32))  # no views: the shares can go
        margin = (full.center_cos - full.nearest_other_cos).astype(np.float32)
        vote = Vote(rows["knn_agreement"], rows["vote_winner"], rows["vote_share"])
        cal, cfg = thresholds_stage(full, halves_cos["cos"], vote, margin, rows["nn_cos"], cfg)
    cfg = with_thresholds(cfg, *ranks.broadcast_json("thresholds", _threshold_values(cfg)))
    pixel = ranks.broadcast_json("pixel_check", images is not None and cfg.duplicates.pixel_min is not None)
    edges = concatenated(ranks, forward_edges(topk.ids, topk.sims, edge_floor(cfg, pixel), first_row=a),
                         "duplicate_edges")
    ext.settle(cfg.duplicates.cos)
    quality_sdd = sdd_of_rows(ranks, n, sdd)
    del sdd
    if rows is not None:
        mix = mix_of_votes(votes, full.class_nearest)
        merge = merge_candidates(full.class_nearest_cos, cfg.classes.merge_cos, mix, cfg.classes.merge_mix)
        partner = np.where(merge, full.class_nearest, -1)
        suspect = suspects(vote, class_of, margin, cfg.noise.vote_min, cfg.noise.margin_max, partner) & ok
        dups, pixel_check = duplicate_stage(n, edges, full.center_cos, cfg, images)
        eligible = ok & ~suspect & (dups.of < 0)
    else:
        partner = eligible = None
    partner = ranks.broadcast_array("merge_partner", partner, (geo.cindex.num_classes,), np.dtype(np.int64))
    eligible = ranks.broadcast_array("eligible", eligible, (n,), np.dtype(bool))
    neg = ranks.gather_span("hard_negatives", n, (a, b), dict(zip(("id", "cos"), hard_negatives(
        topk.ids, topk.sims, eligible, class_of, partner, first_row=a), strict=True)))
    p = cfg.pairs
    per_class = (p.easy_pos_per_class, p.hard_pos_per_class, p.hard_neg_per_class)
    easy, hard = (concatenated(ranks, part, f"pairs_{kind}")
                  for part, kind in zip(positive_pairs(ext, eligible, class_of, per_class), ("easy", "hard"),
                                        strict=True))
    if rows is None:
        return None
    resolution, quality = difficulty_inputs()
    quality_cr = certainty_ratio(full.center_cos, full.nearest_other_cos, cfg.quality.cr_eps)
    difficulty = difficulty_score(quality_cr, resolution, cfg.difficulty.resolution_weight,
                                  quality, cfg.difficulty.quality_weight)
    split = split_by_quantile(difficulty, ok & ~suspect, cfg.difficulty.easy_fraction,
                              cfg.difficulty.hard_fraction)
    cols = {
        "center_cos": full.center_cos, "nearest_other": full.nearest_other,
        "nearest_other_cos": full.nearest_other_cos, "margin": margin, "knn_agreement": vote.agreement,
        "suspect_mislabel": suspect, "suspected": np.where(suspect, vote.winner, -1),
        "duplicate_of": dups.of, "duplicate_cos": dups.cos, "duplicate_kind": dups.kinds(class_of),
        "duplicate_pixel_sim": None if pixel_check is None else pixel_check.best_per_row(n),
        "quality_sdd": quality_sdd,
        "quality_cr": quality_cr,
        "instance_fpr": rows["instance_fpr"],
        "difficulty": difficulty, "split": split, "vote_winner": vote.winner, "vote_share": vote.winner_share,
        "nn_cos": rows["nn_cos"],
    }
    found = Findings(cols, class_of, eligible, geo.fpr_threshold, cp.strategy, partner, mix, cal, cfg,
                     None if pixel_check is None else pixel_check.record(cfg.duplicates.pixel_min,
                                                                          cfg.duplicates.candidate_margin))
    pairs = assemble_pairs(easy, hard, negative_pairs(neg["id"], neg["cos"], eligible, class_of, per_class))
    return found, pairs, full

"""The DDL / OT batch composer: per step, an easy (teacher) branch and hard (student) branches.

Distribution Distillation Loss (Huang et al., ECCV 2020, https://arxiv.org/abs/2002.03662) compares, per
branch, the similarity distribution of positive pairs and of negatives (single images of distinct
identities: TFace's ID-balanced sampler with one image per person); branch 0 is the easy teacher, the
others hard students. OT-based losses (OTFace, https://arxiv.org/abs/2203.14461) use the easy branch as
their reference distribution. Every branch here is:

* negatives: ``identities`` distinct identities drawn from the branch's pool (a SQL predicate over the
  mining ``samples`` view, e.g. ``split = 'easy'``), one random image of each;
* positives: ``pairs`` pairs drawn without replacement from a :class:`PairSource`: the run's
  ``easy_pos`` / ``hard_pos`` pairs (:class:`FixedPairs`), or a hard-variation image paired with an easy
  image of the same identity (:class:`VariationPairs`, e.g. profile with frontal, low with high resolution).

Pools and pairs are resolved once at start-up against the selection (samples that were not selected
never appear; dropped pairs are counted in ``report``) and use the new labels. Each step's draws come
from ``default_rng([seed, 2, epoch, rank, step])``: reproducible, and different on every rank.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from fr_data.io.errors import ConfigError
from fr_train.data import augment
from fr_train.data.batch import Branch
from fr_train.data.config import ComposerConfig, HardBranchConfig
from fr_train.data.reader import ImageReader
from fr_data.query.views import RunViews
from fr_train.data.selection import Selection, open_views, query_table

COMPOSER_STREAM = 2


# ------------------------------------------------------------------------------------------------ pools
class Pool:
    """Selected images grouped by (new) label, for one-image-per-identity draws.

    Args:
        positions: selected positions of the pool's images.
        labels: the new label of each position.
    """

    def __init__(self, positions: np.ndarray, labels: np.ndarray):
        order = np.lexsort((positions, labels))
        self.positions, sorted_labels = positions[order], labels[order]
        self.classes, self.starts, self.counts = np.unique(sorted_labels, return_index=True,
                                                           return_counts=True)

    def __len__(self) -> int:
        return len(self.positions)

    @property
    def num_identities(self) -> int:
        """Distinct labels with at least one pool image."""
        return len(self.classes)

    def images_of(self, label: int) -> np.ndarray:
        """Positions of the pool's images of ``label`` (empty when it has none)."""
        slot = int(np.searchsorted(self.classes, label))
        if slot == len(self.classes) or self.classes[slot] != label:
            return self.positions[:0]
        return self.positions[self.starts[slot]:self.starts[slot] + self.counts[slot]]

    def draw_identities(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Positions of one random image of each of ``count`` distinct random identities."""
        slots = rng.choice(len(self.classes), size=count, replace=False)
        offsets = (rng.random(count) * self.counts[slots]).astype(np.int64)
        return self.positions[self.starts[slots] + offsets]


class PairSource(Protocol):
    """Where a branch's positive pairs come from."""

    def __len__(self) -> int: ...

    def draw(self, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``count`` pairs as two arrays of selected positions (same identity row by row)."""


@dataclass
class FixedPairs:
    """Pairs listed in the mining run's ``pairs.parquet`` (both keys selected, same new label)."""

    a: np.ndarray
    b: np.ndarray

    def __len__(self) -> int:
        return len(self.a)

    def draw(self, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``count`` distinct listed pairs, uniformly."""
        rows = rng.choice(len(self.a), size=count, replace=False)
        return self.a[rows], self.b[rows]


class VariationPairs:
    """A hard-variation image paired with a different easy image of the same identity.

    Args:
        hard: the variation pool (e.g. profile or low-resolution images).
        easy: the easy pool the partners come from.
    """

    def __init__(self, hard: Pool, easy: Pool):
        self.easy = easy
        labels = np.repeat(hard.classes, hard.counts)
        slots = np.clip(np.searchsorted(easy.classes, labels), 0, max(len(easy.classes) - 1, 0))
        partners = np.where(easy.classes[slots] == labels, easy.counts[slots], 0) if len(easy.classes) else 0
        partners = partners - np.isin(hard.positions, easy.positions)  # an image is not its own partner
        self.hard, self.hard_labels = hard.positions[partners > 0], labels[partners > 0]

    def __len__(self) -> int:
        return len(self.hard)

    def draw(self, count: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """``count`` distinct hard images, each with a uniformly drawn easy partner."""
        rows = rng.choice(len(self.hard), size=count, replace=False)
        partners = []
        for position, label in zip(self.hard[rows], self.hard_labels[rows]):
            candidates = self.easy.images_of(int(label))
            candidates = candidates[candidates != position]
            partners.append(candidates[int(rng.integers(len(candidates)))])
        return self.hard[rows], np.asarray(partners, dtype=np.int64)


# -------------------------------------------------------------------------------------- start-up queries
def pool_from_sql(rv: RunViews, selection: Selection, predicate: str,
                  where: str) -> tuple[Pool, dict[str, int]]:
    """The selected samples matching ``predicate`` over ``samples``, and counts of what was left out."""
    table = query_table(rv, f"SELECT key FROM samples WHERE ({predicate})", where)
    positions = selection.positions(table.column("key").to_numpy(zero_copy_only=False))
    kept = positions[positions >= 0]
    pool = Pool(kept, selection.labels[kept])
    return pool, {"matched": int(len(positions)), "not_selected": int((positions < 0).sum()),
                  "images": len(pool), "identities": pool.num_identities}


def pairs_from_sql(rv: RunViews, selection: Selection, kind: str, predicate: str | None,
                   where: str) -> tuple[FixedPairs, dict[str, int]]:
    """The run's pairs of ``kind`` (and ``predicate``) whose two keys are selected with one new label."""
    extra = f" AND ({predicate})" if predicate else ""
    sql = f"SELECT key_a, key_b FROM pairs WHERE kind = $kind{extra} ORDER BY key_a, key_b"
    table = query_table(rv, sql, where, {"kind": kind})
    a = selection.positions(table.column("key_a").to_numpy(zero_copy_only=False))
    b = selection.positions(table.column("key_b").to_numpy(zero_copy_only=False))
    selected = (a >= 0) & (b >= 0)
    same = selected & (selection.labels[a] == selection.labels[b])
    report = {"matched": int(len(a)), "not_selected": int((~selected).sum()),
              "label_differs": int((selected & ~same).sum()), "pairs": int(same.sum())}
    return FixedPairs(a[same], b[same]), report


@dataclass
class BranchSource:
    """Where one branch draws from: a negatives pool and a pair source."""

    name: str
    negatives: Pool
    pairs: PairSource


def hard_branch(rv: RunViews, selection: Selection, cfg: HardBranchConfig, easy: Pool,
                number: int) -> tuple[BranchSource, dict[str, Any]]:
    """Branch ``number`` (1..) from its config: the hard pool plus hard_pos or variation pairs."""
    where = f"composer.hard[{number - 1}]"
    pool, pool_report = pool_from_sql(rv, selection, cfg.where, f"{where}.where")
    if cfg.source == "pairs":
        pairs, pairs_report = pairs_from_sql(rv, selection, "hard_pos", cfg.pairs_where,
                                             f"{where}.pairs_where")
    else:
        pairs = VariationPairs(pool, easy)
        pairs_report = {"pairs": len(pairs)}
    name = f"hard{number}:{cfg.source}:{cfg.where}"
    return BranchSource(name, pool, pairs), {"negatives": pool_report, "positives": pairs_report}


# --------------------------------------------------------------------------------------------- composer
class Composer:
    """Draws every step's branches and decodes their images.

    Args:
        sources: branch 0 (easy) first, then the hard branches.
        reader: decodes selected positions.
        identities / pairs: negatives and positive pairs per branch.
        seed: with epoch, rank and step, seeds each step's draws.
        flip: mirror each branch image with probability 0.5.
        report: what the start-up queries found, per branch.
    """

    def __init__(self, sources: list[BranchSource], reader: ImageReader, *, identities: int, pairs: int,
                 seed: int = 0, flip: bool = True, report: dict[str, Any] | None = None):
        self.sources, self.reader = sources, reader
        self.identities, self.pairs, self.seed, self.flip = identities, pairs, seed, flip
        self.report = report or {}
        for source in sources:
            if source.negatives.num_identities < identities or len(source.pairs) < pairs:
                raise ConfigError(f"composer branch {source.name!r} has {source.negatives.num_identities} "
                                  f"identities and {len(source.pairs)} pairs; the config asks for "
                                  f"{identities} identities and {pairs} pairs per step")

    def compose(self, epoch: int, step: int, rank: int) -> list[Branch]:
        """The branches of training step ``step`` of ``epoch`` on ``rank`` (deterministic)."""
        rng = np.random.default_rng([self.seed, COMPOSER_STREAM, epoch, rank, step])
        return [self._branch(source, rng) for source in self.sources]

    def _branch(self, source: BranchSource, rng: np.random.Generator) -> Branch:
        negatives = source.negatives.draw_identities(self.identities, rng)
        first, second = source.pairs.draw(self.pairs, rng)
        keys, labels = self.reader.selection.keys, self.reader.selection.labels
        return Branch(neg_images=self._images(negatives, rng), neg_labels=torch.from_numpy(labels[negatives]),
                      pos_a=self._images(first, rng), pos_b=self._images(second, rng),
                      pos_labels=torch.from_numpy(labels[first]), neg_keys=keys[negatives].tolist(),
                      pos_keys=list(zip(keys[first].tolist(), keys[second].tolist())))

    def _images(self, positions: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        mirror = rng.random(len(positions)) < 0.5 if self.flip else np.zeros(len(positions), bool)
        return self.reader.images(positions, lambda image, slot: augment.flip(image) if mirror[slot] else None)


def build_composer(cfg: ComposerConfig, reader: ImageReader, run_dir: str | Path, shards_dir: str | Path, *,
                   seed: int = 0) -> Composer:
    """Resolve the branch pools and pairs against ``selection`` (once, at start-up) into a Composer.

    Raises:
        ConfigError: a rejected predicate (DuckDB names the bad column) or a branch too small for
            the configured identities / pairs.
    """
    selection = reader.selection
    rv = open_views(shards_dir, run_dir)
    try:
        easy, easy_report = pool_from_sql(rv, selection, cfg.easy_where, "composer.easy_where")
        easy_pairs, pairs_report = pairs_from_sql(rv, selection, "easy_pos", cfg.easy_pairs_where,
                                                  "composer.easy_pairs_where")
        sources = [BranchSource(f"easy:{cfg.easy_where}", easy, easy_pairs)]
        report = {"easy": {"negatives": easy_report, "positives": pairs_report}}
        for number, hard_cfg in enumerate(cfg.hard, start=1):
            source, branch_report = hard_branch(rv, selection, hard_cfg, easy, number)
            sources.append(source)
            report[f"hard{number}"] = branch_report
    finally:
        rv.con.close()
    return Composer(sources, reader, identities=cfg.identities, pairs=cfg.pairs,
                    seed=seed, flip=cfg.flip, report=report)

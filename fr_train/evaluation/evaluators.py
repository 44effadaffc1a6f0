"""Periodic evaluation during training: ``.bin`` verification packs and mining-manifest pairs.

Every evaluator is a callable ``evaluator(model) -> {metric name: value}`` that embeds its images with
flip-sum embeddings (:func:`fr_train.evaluation.verification.flip_sum_embeddings`), a chunk at a time so
memory stays bounded by the chunk size plus the ``(N, D)`` embeddings:

* :class:`BinEvaluator`: InsightFace protocol accuracy (10-fold,
  :func:`fr_train.evaluation.verification.verify`) of a ``.bin`` pack, as ``bin/<name>/accuracy`` and
  ``bin/<name>/std``;
* :class:`PairsEvaluator`: the ``easy_pos`` and ``hard_pos`` pairs of a mining run's ``pairs.parquet``,
  each against its ``hard_neg`` impostor pairs, images read from the shards by key: TPR@FPR and
  accuracy for both sets and their gap (:func:`fr_train.evaluation.verification.easy_hard_gap`), as
  ``pairs/...``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import torch
from torch import nn

from fr_data.folders import run_folder as rf
from fr_data.formats.verification import VerificationPack, check_images, decode_pack, load_bin
from fr_data.io.errors import DataError
from fr_data.loading.decode import decode_face
from fr_data.loading.shard_index import ShardIndex
from fr_train.config import EvalConfig
from fr_train.evaluation.verification import PairSet, easy_hard_gap, flip_sum_embeddings, verify

__all__ = ["Evaluator", "BinEvaluator", "PairsEvaluator", "build_evaluators", "embed_in_chunks",
           "run_evaluators"]

Evaluator = Callable[[nn.Module], dict[str, float]]
#: Decodes images ``[start, stop)`` of a collection into a ``(n, 3, 112, 112)`` tensor.
ChunkDecoder = Callable[[int, int], torch.Tensor]


def embed_in_chunks(model: nn.Module, count: int, decode: ChunkDecoder, chunk: int = 512,
                    batch_size: int = 64) -> np.ndarray:
    """Flip-sum embeddings ``(count, D)`` of images decoded ``chunk`` at a time by ``decode(start, stop)``."""
    parts = [flip_sum_embeddings(model, decode(start, min(start + chunk, count)), batch_size)
             for start in range(0, count, chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, 0), np.float32)


class BinEvaluator:
    """Verification accuracy on an InsightFace ``.bin`` pack (read once, decoded per evaluation).

    Args:
        path: the pack.
        batch_size: images per forward pass.
        folds: folds of the protocol (capped at the pair count).
    """

    def __init__(self, path: str | os.PathLike, batch_size: int = 64, folds: int = 10):
        self.pack = load_bin(path)
        check_images(self.pack)
        self.name = Path(path).stem
        self.batch_size = batch_size
        self.folds = min(folds, len(self.pack))

    def _decode(self, start: int, stop: int) -> torch.Tensor:
        return decode_pack(VerificationPack(self.pack.images[start:stop], self.pack.issame, self.pack.path))

    def __call__(self, model: nn.Module) -> dict[str, float]:
        embeddings = embed_in_chunks(model, len(self.pack.images), self._decode, batch_size=self.batch_size)
        result = verify(embeddings, self.pack.issame, self.folds)
        return {f"bin/{self.name}/accuracy": result.accuracy, f"bin/{self.name}/std": result.std}


class PairsEvaluator:
    """Easy and hard genuine pairs of a mining run against its impostor pairs (see the module docstring).

    Args:
        run: mining run folder holding ``pairs.parquet``.
        shards: shard folder holding the pairs' images.
        fprs: FPR levels reported.
        max_pairs: at most this many pairs of each kind (the first ones in file order).
        batch_size: images per forward pass.
        folds: accuracy folds (capped at the smaller pair set).

    Raises:
        DataError: the run has no ``hard_neg`` pairs, or no ``easy_pos``/``hard_pos`` pairs.
    """

    def __init__(self, run: str | os.PathLike, shards: str | os.PathLike,
                 fprs: Sequence[float] = (1e-1, 1e-2), max_pairs: int = 5000, batch_size: int = 64,
                 folds: int = 10):
        path = rf.table_path(run, "pairs")
        table = rf.read(run, "pairs", columns=["key_a", "key_b", "kind"])
        self.pairs = {kind: self._kind(table, kind, max_pairs, path)
                      for kind in ("easy_pos", "hard_pos", "hard_neg")}
        keys = np.concatenate([np.concatenate(ab) for ab in self.pairs.values()])
        self.keys, inverse = np.unique(keys, return_inverse=True)
        self.rows, start = {}, 0
        for kind, (a, _) in self.pairs.items():
            self.rows[kind] = (inverse[start:start + len(a)], inverse[start + len(a):start + 2 * len(a)])
            start += 2 * len(a)
        self.index = ShardIndex.open(shards)
        self.fprs, self.batch_size = tuple(fprs), batch_size
        self.folds = min(folds, *(len(a) + len(self.pairs["hard_neg"][0]) for a, _ in self.pairs.values()))

    @staticmethod
    def _kind(table, kind: str, limit: int, path: Path) -> tuple[np.ndarray, np.ndarray]:
        rows = table.filter(pc.equal(table.column("kind"), kind)).slice(0, limit)
        if rows.num_rows == 0:
            raise DataError(path, f"kind {kind}", "no pairs of this kind to evaluate")
        return (np.asarray(rows.column("key_a").to_pylist(), dtype=str),
                np.asarray(rows.column("key_b").to_pylist(), dtype=str))

    def _decode(self, start: int, stop: int) -> torch.Tensor:
        return torch.stack([decode_face(self.index.read_image(str(k))) for k in self.keys[start:stop]])

    def _pair_set(self, embeddings: np.ndarray, kind: str) -> PairSet:
        neg_a, neg_b = self.rows["hard_neg"]
        pos_a, pos_b = self.rows[kind]
        a, b = np.concatenate([pos_a, neg_a]), np.concatenate([pos_b, neg_b])
        scores = np.sum(embeddings[a] * embeddings[b], axis=1, dtype=np.float64)
        return PairSet(scores, np.arange(len(a)) < len(pos_a))

    def __call__(self, model: nn.Module) -> dict[str, float]:
        embeddings = embed_in_chunks(model, len(self.keys), self._decode, batch_size=self.batch_size)
        report = easy_hard_gap(self._pair_set(embeddings, "easy_pos"), self._pair_set(embeddings, "hard_pos"),
                               self.fprs, self.folds)
        metrics = {}
        for row in report.rows():
            for side in ("easy", "hard", "gap"):
                metrics[f"pairs/{row['metric']}/{side}"] = float(row[side])
        return metrics


def build_evaluators(cfg: EvalConfig, shards: str | os.PathLike) -> list[Evaluator]:
    """The evaluators a config asks for (``.bin`` packs, then manifest pairs over ``shards``)."""
    evaluators: list[Evaluator] = [BinEvaluator(p, cfg.batch_size, cfg.folds) for p in cfg.bins]
    if cfg.pairs_run is not None:
        evaluators.append(PairsEvaluator(cfg.pairs_run, shards, cfg.fprs, cfg.max_pairs, cfg.batch_size,
                                         cfg.folds))
    return evaluators


def run_evaluators(evaluators: Sequence[Evaluator], model: nn.Module) -> dict[str, float]:
    """All metrics of all evaluators on ``model`` (its training flag is restored)."""
    metrics: dict[str, float] = {}
    for evaluator in evaluators:
        metrics.update(evaluator(model))
    return metrics

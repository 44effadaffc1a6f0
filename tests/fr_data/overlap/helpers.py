"""Planted training embeddings and evaluation vectors with known overlap (shared identities, copied images,
identities absent from training), and training folders of random unit vectors, for the overlap tests and
the benchmark."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fr_data.overlap.sources import EvalSet
from tests.fr_data.mining.planted import (
    PlantedSpec,
    identity_centres,
    make_planted,
    sample_vectors,
    write_emb,
)


@dataclass
class PlantedOverlap:
    """A training EMB folder and evaluation vectors with the truth.

    Attributes:
        emb: the training embeddings folder.
        eval_vectors, eval_identity: evaluation rows and their (planted) identity.
        overlap_labels: training labels whose images are mostly of a shared identity (the people of the
            copied images included).
        copied_keys: per evaluation row, the training key it copies (None if not a copy).
    """

    emb: Path
    eval_vectors: np.ndarray
    eval_identity: np.ndarray
    overlap_labels: set[int]
    copied_keys: list[str | None]

    def eval_set(self, identities: bool, rows: np.ndarray | None = None) -> EvalSet:
        rows = np.arange(len(self.eval_vectors)) if rows is None else rows
        ids = [f"p{self.eval_identity[i]}" for i in rows] if identities else None
        return EvalSet("planted" if identities else "planted.bin", self.emb, "embeddings",
                       [str(i) for i in rows], ids, None, self.eval_vectors[rows])


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def make_planted_overlap(folder: Path, *, trained: int = 300, disjoint: int = 60, shared: int = 40,
                         per_identity: int = 4, copies: int = 30, seed: int = 0) -> PlantedOverlap:
    """Training = the planted set's identities ``< trained`` (mislabels, duplicates, split identities and
    look-alikes included); evaluation = ``per_identity`` new images of ``shared`` trained and all
    ``disjoint`` untrained identities, plus ``copies`` near copies (cosine ~0.999) of training images."""
    spec = PlantedSpec(identities=trained + disjoint, dim=128, seed=seed)
    x, truth = make_planted(spec)
    split_labels = truth.labels >= spec.identities
    keep = (truth.identity < trained) & ((truth.labels < trained) | split_labels)
    rows = np.flatnonzero(keep)
    labels, identity = truth.labels[rows], truth.identity[rows]
    train_truth = type(truth)(labels, identity, truth.mislabeled[rows], truth.duplicate_of[rows],
                              truth.burst_of[rows], truth.hard[rows], truth.yaw[rows], truth.scale[rows],
                              truth.flip_cos[rows], truth.resolution[rows], truth.group[rows])
    emb = write_emb(folder, x[rows], train_truth, run_info={"spec": {"model": "planted"}, "flip": True})
    rng = np.random.default_rng([seed, 1])
    mu, _ = identity_centres(spec, np.random.default_rng(spec.seed))
    people = np.concatenate([rng.choice(trained, shared, replace=False), np.arange(trained, trained + disjoint)])
    ident = np.repeat(people, per_identity)
    n = len(ident)
    zeros = np.zeros(n)
    dirs = _unit(rng.standard_normal((3, spec.dim)))
    fresh, _ = sample_vectors(mu, ident, zeros, zeros, zeros.astype(np.float32), np.zeros(n, int),
                              np.zeros(n, np.float32), dirs, rng)
    copied = rng.choice(len(rows), copies, replace=False)
    near = _unit(x[rows][copied] + 0.045 * rng.standard_normal((copies, spec.dim)) / np.sqrt(spec.dim))
    majority = {}
    for label in np.unique(labels):
        ids, counts = np.unique(identity[labels == label], return_counts=True)
        majority[int(label)] = int(ids[np.argmax(counts)])
    shared_set = set(people[:shared].tolist()) | set(identity[copied].tolist())  # a copy shares its person
    overlap = {label for label, who in majority.items() if who in shared_set}
    keys = train_truth.keys
    return PlantedOverlap(emb, np.concatenate([fresh, near]), np.concatenate([ident, identity[copied]]),
                          overlap, [None] * n + [keys[i] for i in copied])


def random_unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """``n`` random unit float32 rows (uniform on the sphere)."""
    x = rng.standard_normal((n, dim), dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def write_random_emb(folder: Path, classes: int, per_class: int, dim: int, seed: int) -> None:
    """A training EMB folder of random unit rows (float16, as ``hardmine embed`` writes them), label ``i //
    per_class``, written block by block (never the whole float32 array)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder.mkdir(parents=True)
    n = classes * per_class
    out = np.lib.format.open_memmap(folder / "embeddings.npy", mode="w+", dtype=np.float16, shape=(n, dim))
    rng = np.random.default_rng(seed)
    for s in range(0, n, 65536):
        out[s:s + 65536] = random_unit(rng, min(65536, n - s), dim)
    out.flush()
    del out
    labels = np.repeat(np.arange(classes, dtype=np.int64), per_class)
    pq.write_table(pa.table({"key": [f"{i:09d}" for i in range(n)], "label": labels}), folder / "index.parquet")
    (folder / "run.json").write_text('{"spec": {"model": "random"}, "flip": true}')

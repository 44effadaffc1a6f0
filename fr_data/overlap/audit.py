"""The two searches of an overlap audit: evaluation identities against training class centres, and
evaluation images against training images.

* **Identity overlap.** With identities, each evaluation identity's centre (the re-normalised mean of its
  images, as a training class centre) is searched against every training class centre (exact top ``k``);
  a class whose centre cosine exceeds the threshold overlaps that identity, and every image of the
  identity is listed against it with the image's own cosine to the centre. Without identities (a ``.bin``
  pack, flat images) each image is its own query. ``rank`` is the class's place among the query's top ``k``.
* **Image leaks.** Each evaluation image is searched against every training image (exact top ``k``); a
  training image with cosine at or above the duplicate threshold, or with the same bytes (sha256), is the
  same photo. ``rank`` is its place among the top ``k`` (0: found by its bytes only).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from fr_data.mining.centres import add_class_sums
from fr_data.mining.knnfn import KnnFn

__all__ = ["Matches", "identity_matches", "image_matches", "query_centres"]


@dataclass
class Matches:
    """Rows of one match kind for one evaluation set (parallel arrays).

    ``train_row`` is the training row of an image match, -1 for an identity match; ``same_bytes`` says an
    image match has the same sha256.
    """

    eval_index: np.ndarray
    class_id: np.ndarray
    train_row: np.ndarray
    cos: np.ndarray
    rank: np.ndarray
    same_bytes: np.ndarray

    @classmethod
    def empty(cls) -> Matches:
        i = np.empty(0, np.int64)
        return cls(i, i, i, np.empty(0, np.float32), np.empty(0, np.int32), np.empty(0, bool))

    def __len__(self) -> int:
        return len(self.eval_index)


def _unit(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norm, 1e-12)).astype(np.float32)


def query_centres(vectors: np.ndarray, identities: list[str] | None) -> tuple[np.ndarray, np.ndarray]:
    """The search queries of one evaluation set and each image's query: identity centres, or the images."""
    if identities is None:
        return vectors, np.arange(len(vectors))
    names, of_image = np.unique(np.asarray(identities, dtype=object), return_inverse=True)
    sums = np.zeros((len(names), vectors.shape[1]), dtype=np.float64)
    add_class_sums(sums, of_image, vectors)
    return _unit(sums), of_image


def identity_matches(vectors: np.ndarray, identities: list[str] | None, db: np.ndarray, active: np.ndarray,
                     threshold: float, k: int, knn: KnnFn) -> tuple[Matches, int]:
    """Identity-overlap rows of one evaluation set, and how many queries had all ``k`` places above the
    threshold (their list may be cut off: raise ``k``)."""
    queries, of_image = query_centres(vectors, identities)
    k = min(k, len(db))
    res = knn(queries, db, k)
    sims, ids = np.asarray(res.sims, np.float32), np.asarray(res.ids, np.int64)
    hit_q, hit_r = np.nonzero(sims > threshold)
    full = int((sims[:, -1] > threshold).sum())
    if len(hit_q) == 0:
        return Matches.empty(), full
    # each image of a query, against each class that query overlaps
    images_of = np.argsort(of_image, kind="stable")
    starts = np.searchsorted(of_image[images_of], np.arange(len(queries) + 1))
    counts = starts[hit_q + 1] - starts[hit_q]
    pair = np.repeat(np.arange(len(hit_q)), counts)
    image = images_of[np.concatenate([np.arange(starts[q], starts[q + 1]) for q in hit_q])]
    class_id = active[ids[hit_q, hit_r]][pair]
    cos = np.einsum("ij,ij->i", vectors[image], db[ids[hit_q, hit_r]][pair]).astype(np.float32)
    n = len(image)
    return Matches(image.astype(np.int64), class_id, np.full(n, -1, np.int64), cos,
                   (hit_r[pair] + 1).astype(np.int32), np.zeros(n, bool)), full


def image_matches(vectors: np.ndarray, images: list[bytes] | None, train: np.ndarray, train_class: np.ndarray,
                  train_sha256: dict[str, list[int]] | None, duplicate_cos: float, k: int,
                  knn: KnnFn) -> Matches:
    """Image-leak rows of one evaluation set: cosine at or above ``duplicate_cos`` among the top ``k``
    training images, or the same sha256 (``train_sha256``: digest -> training rows)."""
    k = min(k, len(train))
    res = knn(vectors, train, k)
    sims, ids = np.asarray(res.sims, np.float32), np.asarray(res.ids, np.int64)
    hit_q, hit_r = np.nonzero(sims >= duplicate_cos)
    found = {(int(q), int(ids[q, r])): (float(sims[q, r]), int(r) + 1) for q, r in zip(hit_q, hit_r)}
    same = set()
    if images is not None and train_sha256:
        for q, data in enumerate(images):
            for row in train_sha256.get(hashlib.sha256(data).hexdigest(), ()):
                same.add((q, row))
                if (q, row) not in found:
                    cos = float(np.dot(vectors[q], np.asarray(train[row], np.float32)))
                    found[(q, row)] = (cos, 0)
    if not found:
        return Matches.empty()
    pairs = sorted(found)
    q = np.array([p[0] for p in pairs], np.int64)
    row = np.array([p[1] for p in pairs], np.int64)
    return Matches(q, train_class[row], row, np.array([found[p][0] for p in pairs], np.float32),
                   np.array([found[p][1] for p in pairs], np.int32), np.array([p in same for p in pairs]))

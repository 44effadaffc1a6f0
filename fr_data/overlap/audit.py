"""The two searches of an overlap audit: evaluation identities against training class centres, and
evaluation images against training images.

* **Identity overlap.** With identities, each evaluation identity's centre (the re-normalised mean of its
  images, as a training class centre) is searched against every training class centre (exact top ``k``);
  a class whose centre cosine exceeds the threshold overlaps that identity, and every image of the
  identity is listed against it with the image's own cosine to the centre. Without identities (a ``.bin``
  pack, flat images) each image is its own query. ``rank`` is the class's place among the query's top ``k``.
* **Image leaks.** Each evaluation image is searched against every training image (exact top ``k``); a
  training image with the same bytes (sha256) is the same photo, and so is one among the top ``k`` that
  passes the leak rule: with the pixels of both sides (:class:`LeakPixels`) the **pixel check** (every top
  ``k`` candidate, whatever its cosine: :func:`fr_data.mining.pixel_check.aligned_pixel_sim` of the two
  images at least ``pixel_min``; a crop or a re-alignment can move a copy's embedding as far as another
  photo of the person, but not its pixels), else the **cosine rule** (cosine at or above the duplicate
  threshold). ``rank`` is its place among the top ``k`` (0: found by its bytes only).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from fr_data.mining.centres import add_class_sums
from fr_data.mining.knnfn import KnnFn
from fr_data.mining.pixel_check import aligned_pixel_sim, zoomed_thumbnails

__all__ = ["LeakPixels", "Matches", "identity_matches", "image_matches", "query_centres"]


@dataclass
class Matches:
    """Rows of one match kind for one evaluation set (parallel arrays).

    ``train_row`` is the training row of an image match, -1 for an identity match; ``same_bytes`` says an
    image match has the same sha256; ``pixel_sim`` is the pixel check's similarity of an image match (NaN:
    not checked).
    """

    eval_index: np.ndarray
    class_id: np.ndarray
    train_row: np.ndarray
    cos: np.ndarray
    rank: np.ndarray
    same_bytes: np.ndarray
    pixel_sim: np.ndarray

    @classmethod
    def empty(cls) -> Matches:
        i = np.empty(0, np.int64)
        f = np.empty(0, np.float32)
        return cls(i, i, i, f, np.empty(0, np.int32), np.empty(0, bool), f)

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
                   (hit_r[pair] + 1).astype(np.int32), np.zeros(n, bool), np.full(n, np.nan, np.float32)), full


@dataclass
class LeakPixels:
    """The pixel check of leak candidates: ``read_train(row)`` gives a training image's stored bytes; a
    candidate is the same photo when :func:`aligned_pixel_sim` reaches ``pixel_min``."""

    read_train: Callable[[int], bytes]
    pixel_min: float


def _pixel_sims(images: list[bytes], ids: np.ndarray, pixels: LeakPixels) -> np.ndarray:
    """``(Q, k)``: the pixel similarity of every evaluation image with each of its candidates (each image
    decoded once)."""
    thumbs: dict[int, np.ndarray] = {}
    out = np.empty(ids.shape, np.float32)
    for q, row in enumerate(ids):
        mine = zoomed_thumbnails(images[q])
        for r, t in enumerate(row.tolist()):
            if t not in thumbs:
                thumbs[t] = zoomed_thumbnails(pixels.read_train(t))
            out[q, r] = aligned_pixel_sim(mine, thumbs[t])
    return out


def image_matches(vectors: np.ndarray, images: list[bytes] | None, train: np.ndarray, train_class: np.ndarray,
                  train_sha256: dict[str, list[int]] | None, duplicate_cos: float, k: int,
                  knn: KnnFn, pixels: LeakPixels | None = None) -> Matches:
    """Image-leak rows of one evaluation set: among the top ``k`` training images, those confirmed by the
    pixel check (``pixels`` given and the evaluation ``images`` known) or else with cosine at or above
    ``duplicate_cos``; and any training image with the same sha256 (``train_sha256``: digest -> rows)."""
    k = min(k, len(train))
    res = knn(vectors, train, k)
    sims, ids = np.asarray(res.sims, np.float32), np.asarray(res.ids, np.int64)
    if pixels is not None and images is not None:
        psim = _pixel_sims(images, ids, pixels)
        hit_q, hit_r = np.nonzero(psim >= pixels.pixel_min)
    else:
        psim = np.full(sims.shape, np.nan, np.float32)
        hit_q, hit_r = np.nonzero(sims >= duplicate_cos)
    found = {(int(q), int(ids[q, r])): (float(sims[q, r]), int(r) + 1, float(psim[q, r]))
             for q, r in zip(hit_q, hit_r)}
    same = set()
    if images is not None and train_sha256:
        for q, data in enumerate(images):
            for row in train_sha256.get(hashlib.sha256(data).hexdigest(), ()):
                same.add((q, row))
                if (q, row) not in found:
                    cos = float(np.dot(vectors[q], np.asarray(train[row], np.float32)))
                    found[(q, row)] = (cos, 0, np.nan)
    if not found:
        return Matches.empty()
    pairs = sorted(found)
    q = np.array([p[0] for p in pairs], np.int64)
    row = np.array([p[1] for p in pairs], np.int64)
    return Matches(q, train_class[row], row, np.array([found[p][0] for p in pairs], np.float32),
                   np.array([found[p][1] for p in pairs], np.int32), np.array([p in same for p in pairs]),
                   np.array([found[p][2] for p in pairs], np.float32))

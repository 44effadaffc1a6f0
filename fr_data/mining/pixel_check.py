"""Image-level check of near-duplicate candidates: grey-level correlation of the aligned crops.

An identity embedding is trained to map different photos of one person together, so two distinct photos
taken a moment apart (a burst) can sit as close as a re-encoded copy, while a copy that was recompressed
hard can drift past the embedding threshold. Pixels separate the two: a copy keeps the picture, another
photo does not. Only the candidate pairs are checked (cheap, and only when the shards are known): every
k-NN pair whose cosine distance is at most ``candidate_margin`` times the duplicate threshold's distance
(so near misses are looked at too). Each image is decoded once, reduced to a ``THUMB`` x ``THUMB`` grey
thumbnail (box filter: robust to JPEG re-encoding, resizing and small shifts), centred and scaled to unit
norm; the similarity of a pair is the dot product of the two (normalised cross-correlation, -1..1,
insensitive to brightness and contrast changes). A candidate pair is a duplicate when its similarity is at
least ``pixel_min``; this replaces the cosine rule for the pairs it checks. Pixel space is the same for
every backbone, so ``pixel_min`` is an absolute number.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from fr_data.folders.embeddings_folder import Embeddings
from fr_data.folders.shard_folder import list_shards
from fr_data.io.errors import DataError
from fr_data.loading.shard_index import ShardIndex
from fr_data.mining.config import MiningConfig
from fr_data.mining.duplicates import duplicate_edges

__all__ = ["THUMB", "ZOOM_CROPS", "PixelCheck", "aligned_pixel_sim", "candidate_floor", "check_candidates",
           "grey_thumbnail", "image_reader", "rows_image_reader", "zoomed_thumbnails"]

THUMB = 32  # side of the grey thumbnail the correlation is computed on
#: share of each side cropped off by the zooms :func:`aligned_pixel_sim` searches: 0 to 8 pixels of a 112
#: pixel crop (a zoom of up to 112 / 96 = 1.17x about the centre)
ZOOM_CROPS = tuple(i / 112 for i in range(9))


def _unit_grey(grey: Image.Image, size: int, box: tuple[float, float, float, float] | None) -> np.ndarray:
    v = np.asarray(grey.resize((size, size), Image.BOX, box=box), dtype=np.float64).ravel()
    v -= v.mean()
    norm = np.linalg.norm(v)
    return (v / norm if norm > 0 else v).astype(np.float32)


def grey_thumbnail(data: bytes, size: int = THUMB) -> np.ndarray:
    """The image as a zero-mean, unit-norm grey ``size`` x ``size`` vector (zeros for a flat image)."""
    with Image.open(io.BytesIO(data)) as img:
        return _unit_grey(img.convert("L"), size, None)


def zoomed_thumbnails(data: bytes, crops: tuple[float, ...] = ZOOM_CROPS, size: int = THUMB) -> np.ndarray:
    """``(len(crops), size * size)``: one :func:`grey_thumbnail` per centred crop that leaves out the share
    ``crops[i]`` of every side (``0``: the whole image)."""
    with Image.open(io.BytesIO(data)) as img:
        grey = img.convert("L")
    w, h = grey.size
    return np.stack([_unit_grey(grey, size, (c * w, c * h, w - c * w, h - c * h)) for c in crops])


def aligned_pixel_sim(a: np.ndarray, b: np.ndarray) -> float:
    """The best grey-level correlation of one image's whole thumbnail with the other's zoomed ones, both
    ways (``a``, ``b``: :func:`zoomed_thumbnails`, row 0 the whole image): a copy that was cropped a little
    tighter and resized back, or aligned with a slightly larger face, still correlates ~1 with its
    original at the zoom that undoes it, while another photo stays where it was."""
    return float(max((a @ b[0]).max(), (b @ a[0]).max()))


def candidate_floor(cos: float, margin: float) -> float:
    """The lowest cosine of a candidate pair: ``margin`` times the duplicate threshold's distance."""
    return float(1.0 - margin * (1.0 - cos))


@dataclass
class PixelCheck:
    """The checked candidate pairs (each once, ``a < b``) and what the check decided.

    Attributes:
        a, b, cos: the pairs (embedding rows) and their cosine.
        pixel_sim: grey-level correlation of their thumbnails.
        confirmed: pixel_sim >= the threshold.
        floor: the lowest candidate cosine.
    """

    a: np.ndarray
    b: np.ndarray
    cos: np.ndarray
    pixel_sim: np.ndarray
    confirmed: np.ndarray
    floor: float

    def edges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The confirmed pairs as symmetric edges ``(a, b, cos)`` for the greedy removal."""
        a, b, s = self.a[self.confirmed], self.b[self.confirmed], self.cos[self.confirmed]
        return np.concatenate([a, b]), np.concatenate([b, a]), np.concatenate([s, s])

    def best_per_row(self, n: int) -> np.ndarray:
        """Per row, the highest pixel similarity over its candidate pairs (NaN: no candidate)."""
        out = np.full(n, -np.inf, dtype=np.float32)
        np.maximum.at(out, self.a, self.pixel_sim)
        np.maximum.at(out, self.b, self.pixel_sim)
        out[np.isneginf(out)] = np.nan
        return out

    def record(self, pixel_min: float, margin: float) -> dict[str, Any]:
        """``run.json: duplicates_pixel_check``."""
        return {"method": f"grey-level correlation of {THUMB}x{THUMB} thumbnails of the stored images",
                "pixel_min": pixel_min, "candidate_margin": margin, "candidate_cos_floor": self.floor,
                "candidates": len(self.a), "confirmed": int(self.confirmed.sum()),
                "rejected": int((~self.confirmed).sum())}


def check_candidates(ids: np.ndarray, sims: np.ndarray, cos: float, margin: float, pixel_min: float,
                     read: Callable[[int], bytes]) -> PixelCheck:
    """Check every k-NN pair at or above :func:`candidate_floor` with the images ``read(row)`` returns."""
    floor = candidate_floor(cos, margin)
    return check_edges(duplicate_edges(ids, sims, floor), floor, pixel_min, read)


def check_edges(edges: tuple[np.ndarray, np.ndarray, np.ndarray], floor: float, pixel_min: float,
                read: Callable[[int], bytes]) -> PixelCheck:
    """:func:`check_candidates` over the symmetric candidate ``edges`` (cosine >= ``floor``)."""
    a, b, s = edges
    one = a < b
    a, b, s = a[one], b[one], s[one]
    thumbs = {int(r): grey_thumbnail(read(int(r))) for r in np.unique(np.concatenate([a, b]))}
    sim = np.asarray([float(thumbs[int(i)] @ thumbs[int(j)]) for i, j in zip(a, b)], dtype=np.float32)
    return PixelCheck(a, b, s.astype(np.float32), sim, sim >= pixel_min, floor)


def image_reader(emb: Embeddings, samples: str | os.PathLike | None,
                 cfg: MiningConfig) -> tuple[Callable[[int], bytes] | None, str | None]:
    """``row -> stored image bytes`` from the shards beside the ``samples`` manifest, or None and why not
    (no manifest, the pixel check off, or the manifest's shards are not there: mining itself needs only
    the manifest). Holds every key of ``emb`` (see :func:`rows_image_reader` for a few rows' keys)."""
    index, why = _shard_index(samples, cfg)
    if index is None:
        return None, why
    keys = emb.keys(0, emb.n)[0].to_pylist()
    return (lambda row: index.read_image(keys[row])), None


def rows_image_reader(emb: Embeddings, samples: str | os.PathLike | None, cfg: MiningConfig
                      ) -> tuple[Callable[[np.ndarray], Callable[[int], bytes]] | None, str | None]:
    """Like :func:`image_reader`, for a known set of rows: ``rows -> (row -> stored image bytes)``, reading
    the keys of ``rows`` alone (:meth:`Embeddings.keys`; mining's duplicate candidates)."""
    index, why = _shard_index(samples, cfg)
    if index is None:
        return None, why

    def reader(rows: np.ndarray) -> Callable[[int], bytes]:
        keys = dict(zip(rows.tolist(), emb.keys(0, 0, rows)[1].to_pylist(), strict=True))
        return lambda row: index.read_image(keys[row])
    return reader, None


def _shard_index(samples: str | os.PathLike | None, cfg: MiningConfig) -> tuple[ShardIndex | None, str | None]:
    """The shards beside the ``samples`` manifest, or None and why the pixel check cannot run."""
    if cfg.duplicates.pixel_min is None:
        return None, "duplicates.pixel_min is null"
    if samples is None:
        return None, "no shard manifest (--samples)"
    folder = Path(samples).parent
    try:
        shards = list_shards(folder)
    except DataError as e:
        return None, str(e)
    missing = [s.name for s in shards if not s.is_file()]
    if missing:
        return None, f"{folder}: shard {missing[0]} not found"
    return ShardIndex.open(folder, shards), None

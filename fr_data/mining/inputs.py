"""Reading an embeddings folder (EMB) for mining: memmapped vectors, the index, validity checks.

Rows are read in chunks from the memmap and re-normalised in float32, so memory stays bounded whatever
N is. NaN/inf or (near) zero rows are "invalid": they stay in every output with nulls and are counted,
never dropped silently.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fr_data.io.errors import DataError
from fr_data.io.jsonfile import read_json_object
from fr_data.io.parquet import read_table
from fr_data.mining.schemas import EMB_INDEX_REQUIRED
from fr_data.io.hashing import file_sha256

#: Rows whose float32 norm is below this are "zero vectors".
MIN_NORM = 1e-6


@dataclass
class Embeddings:
    """An opened EMB folder.

    Attributes:
        folder: the EMB folder.
        vectors: N x D memmap (float16 or float32), row i described by ``index`` row i.
        index: the index table (``key``, ``label`` and optional ``norm``, ``flip_cos``, ``resolution``).
        labels: int64 labels, length N.
        run_info: parsed ``EMB/run.json`` (empty if absent).
    """

    folder: Path
    vectors: np.ndarray
    index: pa.Table
    labels: np.ndarray
    run_info: dict[str, Any]

    @property
    def n(self) -> int:
        return int(self.vectors.shape[0])

    def column(self, name: str) -> np.ndarray | None:
        """A float column of the index as float32 with NaN for nulls, or None if absent."""
        if name not in self.index.column_names:
            return None
        col = self.index.column(name).cast(pa.float32())
        return col.fill_null(np.nan).to_numpy().astype(np.float32, copy=False)


def open_embeddings(folder: str | Path) -> Embeddings:
    """Open ``folder/embeddings.npy`` (memmap) and ``folder/index.parquet``; check they agree."""
    folder = Path(folder)
    npy = folder / "embeddings.npy"
    if not npy.exists():
        raise DataError(npy, "", "embeddings file does not exist")
    try:
        vectors = np.load(npy, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        raise DataError(npy, "header", f"not a readable .npy array: {exc}") from exc
    if vectors.ndim != 2 or vectors.dtype not in (np.float16, np.float32):
        raise DataError(npy, "header", f"expected an N x D float16/float32 array, got {vectors.shape} "
                                       f"{vectors.dtype}")
    index = read_table(folder / "index.parquet", EMB_INDEX_REQUIRED)
    if index.num_rows != vectors.shape[0]:
        raise DataError(folder / "index.parquet", "",
                        f"{index.num_rows} index rows but {npy.name} has {vectors.shape[0]} rows; "
                        "row i of the index must describe embedding row i")
    _check_unique_keys(index, folder / "index.parquet")
    labels = index.column("label").to_numpy().astype(np.int64)
    return Embeddings(folder, vectors, index, labels, read_json_object(folder / "run.json"))


def _check_unique_keys(index: pa.Table, path: Path) -> None:
    keys = index.column("key")
    if pc.count_distinct(keys).as_py() == len(keys):
        return
    counts = pc.value_counts(keys)
    dup = next(v["values"].as_py() for v in counts if v["counts"].as_py() > 1)
    rows = pc.indices_nonzero(pc.equal(keys, dup)).to_pylist()
    raise DataError(path, f"key {dup!r}, rows {rows[:5]}", "duplicate sample key")


class Chunk(NamedTuple):
    """Rows ``start .. start+len(x)`` of the memmap, float32 and re-normalised."""

    start: int
    x: np.ndarray
    ok: np.ndarray
    finite: np.ndarray


def iter_chunks(vectors: np.ndarray, chunk_rows: int) -> Iterator[Chunk]:
    """Yield chunks of float32 re-normalised rows with validity masks (invalid rows are set to 0)."""
    for start in range(0, vectors.shape[0], chunk_rows):
        x, ok, finite = normalise_rows(np.asarray(vectors[start:start + chunk_rows]))
        yield Chunk(start, x, ok, finite)


def normalise_rows(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """L2-normalise rows in float32; return ``(x, ok, finite)``; rows not ``ok`` become 0."""
    x = raw.astype(np.float32, copy=True)
    finite = np.isfinite(x).all(axis=1)
    x[~finite] = 0.0
    norm = np.linalg.norm(x, axis=1)
    ok = finite & (norm >= MIN_NORM)
    x[ok] /= norm[ok, None]
    x[~ok] = 0.0
    return x, ok, finite


def read_rows(vectors: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Float32 normalised copies of ``vectors[rows]`` (rows sorted; a contiguous run is sliced)."""
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        raw = np.asarray(vectors[rows[0]:rows[-1] + 1])
    else:
        raw = vectors[rows]
    return normalise_rows(raw)[0]


@dataclass
class Validity:
    """Which rows can be mined, and why the others cannot."""

    ok: np.ndarray
    n_nan: int
    n_zero: int
    first_bad_rows: list[int]


def validity_from_masks(ok: np.ndarray, finite: np.ndarray) -> Validity:
    """Summarise per-row masks collected while streaming the memmap."""
    bad = np.flatnonzero(~ok)
    n_nan = int((~finite).sum())
    return Validity(ok, n_nan, int(len(bad)) - n_nan, bad[:10].tolist())




def check_recorded_hash(emb: Embeddings, digest: str) -> None:
    """If ``EMB/run.json`` records a SHA-256 of embeddings.npy, it must match the file."""
    recorded = [v for k, v in emb.run_info.items() if "sha256" in k.lower() and isinstance(v, str)]
    if recorded and digest not in recorded:
        raise DataError(emb.folder / "embeddings.npy", "",
                        f"SHA-256 {digest} differs from the one in run.json {recorded}; "
                        "the embeddings changed after the run that wrote them")

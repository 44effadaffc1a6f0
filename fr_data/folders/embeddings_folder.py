"""The embeddings folder EMB: one vector per sample of a shard folder, and what mining reads.

Layout (written by :func:`fr_data.embed.run.embed_shards`)::

    EMB/embeddings.npy   N x D float16, L2-normalised rows, rows sorted by sample key. With flip (the
                         default) a row is the InsightFace flip-sum f(x) + f(flip(x)), then normalised;
                         without it f(x) normalised.
    EMB/index.parquet    row i describes embeddings[i] (EMBEDDINGS_INDEX_SCHEMA): key, label, norm =
                         ||f(x)|| of the unflipped image before normalising (the MagFace / AdaFace feature
                         magnitude), flip_cos = cos(f(x), f(flip x)) (a pose proxy; null without flip),
                         resolution (fr_data.embed.resolution estimate in (0, 1]); optional
                         (OPTIONAL_INDEX_SCHEMA): quality = the score of a face-quality model
                         (``--quality-model``, e.g. an SDD-FIQA regressor; higher = better), written
                         only when one was given, so folders written before it still read; yaw and
                         roll = head pose in degrees from dlib's 5-point landmarks (``--pose``,
                         fr_data.embed.pose; + yaw = face turned to the image right), only with --pose
    EMB/run.json         model spec, dims, count, sha256 of embeddings.npy, timing, settings, and
                         ``shards_fingerprint`` (``shard_folder.fingerprint`` of the shards embedded)
    EMB/parts/           per-rank parts of a distributed run (staging folder only)

Mining needs only ``key`` and ``label`` from the index (REQUIRED_INDEX_SCHEMA), so any tool that writes
those next to an ``.npy`` produces a folder mining can read.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from fr_data.io.atomic import atomic_write_text
from fr_data.io.errors import DataError
from fr_data.io.jsonfile import read_json_object
from fr_data.io.parquet import read_table, require_non_negative, require_unique, write_table

EMBEDDINGS_FILE = "embeddings.npy"
INDEX_FILE = "index.parquet"
RUN_FILE = "run.json"
PARTS_DIR = "parts"

#: The index written by ``hardmine embed``.
EMBEDDINGS_INDEX_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),
    pa.field("label", pa.int64(), nullable=False),
    pa.field("norm", pa.float32(), nullable=False),  # ||f(x)|| of the unflipped image, before normalising
    pa.field("flip_cos", pa.float32(), nullable=True),  # cos(f(x), f(flip x)); null when flip is off
    pa.field("resolution", pa.float32(), nullable=True),  # fr_data.embed.resolution estimate in (0, 1]
])

#: Index columns present only when computed: ``quality`` (a quality model's score of the unflipped image,
#: higher = better; null where not scored); ``yaw`` and ``roll`` (head pose of the unflipped image from
#: face landmarks, ``--pose``). Checked like the declared columns when present.
OPTIONAL_INDEX_SCHEMA = pa.schema([
    pa.field("quality", pa.float32(), nullable=True),
    pa.field("yaw", pa.float32(), nullable=True),  # degrees, + = face turned to the image right
    pa.field("roll", pa.float32(), nullable=True),  # degrees, + = face turned clockwise in the image
])

#: The head-pose columns (``--pose``, :mod:`fr_data.embed.pose`), written together or not at all.
POSE_COLUMNS = ("yaw", "roll")

#: The columns mining needs from the index (other writers may omit the rest).
REQUIRED_INDEX_SCHEMA = pa.schema([
    pa.field("key", pa.string(), nullable=False),
    pa.field("label", pa.int64(), nullable=False),
])


def part_paths(parts: str | os.PathLike, rank: int) -> tuple[Path, Path]:
    """The array and index files of rank ``rank``'s part in ``parts``."""
    stem = Path(parts) / f"rank-{rank}"
    return stem.with_suffix(".npy"), stem.with_suffix(".parquet")


def list_parts(parts: str | os.PathLike) -> list[tuple[Path, Path]]:
    """``(array, index)`` paths of every ``rank-R`` part in ``parts``, by rank."""
    found = sorted(Path(parts).glob("rank-*.parquet"), key=lambda p: int(p.stem.split("-")[1]))
    return [(path.with_suffix(".npy"), path) for path in found]


def write_part_index(parts: str | os.PathLike, rank: int, index: pa.Table) -> None:
    """Write rank ``rank``'s part index (validated against EMBEDDINGS_INDEX_SCHEMA)."""
    write_table(index, part_paths(parts, rank)[1], EMBEDDINGS_INDEX_SCHEMA, optional=OPTIONAL_INDEX_SCHEMA)


def read_part_index(path: str | os.PathLike) -> pa.Table:
    """Read and validate one part index."""
    return read_table(path, EMBEDDINGS_INDEX_SCHEMA, optional=OPTIONAL_INDEX_SCHEMA)


def write_index(folder: str | os.PathLike, index: pa.Table, metadata: dict[str, Any] | None = None) -> None:
    """Write ``folder/index.parquet`` (validated against EMBEDDINGS_INDEX_SCHEMA)."""
    write_table(index, Path(folder) / INDEX_FILE, EMBEDDINGS_INDEX_SCHEMA, metadata=metadata,
                optional=OPTIONAL_INDEX_SCHEMA)


def write_run_info(folder: str | os.PathLike, info: dict[str, Any]) -> None:
    """Write ``folder/run.json`` atomically."""
    atomic_write_text(Path(folder) / RUN_FILE, json.dumps(info, indent=2, sort_keys=True) + "\n")


def read_run_info(emb: str | os.PathLike) -> dict[str, Any]:
    """``EMB/run.json`` (empty when absent; a DataError when it is not a JSON object)."""
    return read_json_object(Path(emb) / RUN_FILE)


def read_index(emb: str | os.PathLike) -> pa.Table:
    """Read and validate ``EMB/index.parquet`` (checks its row count against embeddings.npy)."""
    emb = Path(emb)
    table = read_table(emb / INDEX_FILE, EMBEDDINGS_INDEX_SCHEMA, optional=OPTIONAL_INDEX_SCHEMA)
    rows = np.load(emb / EMBEDDINGS_FILE, mmap_mode="r").shape[0]
    if rows != table.num_rows:
        raise DataError(emb / INDEX_FILE, "", f"{table.num_rows} rows but embeddings.npy has {rows}")
    return table


@dataclass
class Embeddings:
    """An opened EMB folder.

    Attributes:
        folder: the EMB folder.
        vectors: N x D memmap (float16 or float32), row i described by ``index`` row i.
        index: the index table (``key``, ``label`` and optional ``norm``, ``flip_cos``, ``resolution``,
            ``quality``, ``yaw``, ``roll``).
        labels: int64 labels, length N.
        run_info: parsed ``EMB/run.json`` (empty if absent).
    """

    folder: Path
    vectors: np.ndarray
    index: pa.Table
    labels: np.ndarray
    run_info: dict[str, Any]
    #: the columns of ``index.parquet`` (those not in ``index`` are read by row range when asked for)
    on_disk: tuple[str, ...] = ()

    @property
    def n(self) -> int:
        return int(self.vectors.shape[0])

    @property
    def array_path(self) -> Path:
        return self.folder / EMBEDDINGS_FILE

    def keys(self, start: int, stop: int, at: np.ndarray | None = None) -> tuple[pa.Array, pa.Array]:
        """The keys of rows ``[start, stop)`` and of the rows ``at`` (any order, repeats allowed): from the
        index in memory when it holds them, else streamed from ``index.parquet`` in record batches, so
        memory holds the wanted keys and one batch (:func:`read_rows`)."""
        at = np.empty(0, np.int64) if at is None else np.asarray(at, np.int64)
        if "key" in self.index.column_names:
            col = self.index.column("key")
            return col.slice(start, stop - start).combine_chunks(), col.take(pa.array(at)).combine_chunks()
        return read_rows(self.folder, "key", start, stop, at)

    def without_keys(self) -> Embeddings:
        """This folder with the index's ``key`` column dropped (the keys are then read by row range,
        :meth:`keys`, when a table needs them)."""
        if "key" not in self.index.column_names:
            return self
        return Embeddings(self.folder, self.vectors, self.index.drop_columns(["key"]), self.labels,
                          self.run_info, self.on_disk)

    def column(self, name: str, rows: slice = slice(None)) -> np.ndarray | None:
        """A float column of the index at ``rows`` (a slice of the row range) as float32 with NaN for nulls,
        or None if absent; one the index in memory lacks is read from ``index.parquet`` by row range."""
        start, stop, _ = rows.indices(self.n)
        if name in self.index.column_names:
            col = self.index.column(name).slice(start, max(stop - start, 0))
        elif name in self.on_disk and name != "key":
            col = read_rows(self.folder, name, start, stop, np.empty(0, np.int64))[0]
        else:
            return None
        return np.asarray(col.cast(pa.float32()).fill_null(np.nan), dtype=np.float32)


def open_embeddings(folder: str | os.PathLike, keys: bool = True, floats: bool = True) -> Embeddings:
    """Open ``folder/embeddings.npy`` (memmap) and ``folder/index.parquet``; check they agree.

    ``keys=False``: leave the index's ``key`` column on disk (``index`` then has no keys, and their
    uniqueness is not checked; :meth:`Embeddings.keys` reads them by row range): for a process that only
    searches and writes its share of rows, such as a rank other than 0 of a distributed mining run).
    ``floats=False``: likewise for the optional float columns (``resolution``, ``flip_cos``...;
    :meth:`Embeddings.column` reads them by row range)."""
    folder = Path(folder)
    npy = folder / EMBEDDINGS_FILE
    if not npy.exists():
        raise DataError(npy, "", "embeddings file does not exist")
    vectors = _memmap(npy)
    present = _index_columns(folder / INDEX_FILE)
    columns = None  # every column; else the required ones (a missing one is named) and what is asked for
    if not (keys and floats):
        columns = ["key", "label"] if keys else ["label"]
        columns += [c for c in present if c not in ("key", "label") and floats]
    index = read_table(folder / INDEX_FILE, REQUIRED_INDEX_SCHEMA, columns=columns, optional=OPTIONAL_INDEX_SCHEMA)
    if index.num_rows != vectors.shape[0]:
        raise DataError(folder / INDEX_FILE, "",
                        f"{index.num_rows} index rows but {npy.name} has {vectors.shape[0]} rows; "
                        "row i of the index must describe embedding row i")
    if keys:
        require_unique(index, "key", folder / INDEX_FILE)
    require_non_negative(index, "label", folder / INDEX_FILE)
    labels = index.column("label").to_numpy().astype(np.int64)
    return Embeddings(folder, vectors, index, labels, read_run_info(folder), tuple(present))


def read_rows(folder: str | os.PathLike, name: str, start: int, stop: int, at: np.ndarray,
              batch: int = 65_536) -> tuple[pa.Array, pa.Array]:
    """Column ``name`` of ``folder/index.parquet`` at rows ``[start, stop)`` and at the rows ``at`` (any
    order, repeats allowed), read one record batch at a time: memory holds the wanted values and one
    batch."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    at = np.asarray(at, np.int64)
    order = np.argsort(at, kind="stable")
    sorted_at = at[order]
    span_parts: list[pa.Array] = []
    at_parts: list[pa.Array] = []
    offset = 0
    with pq.ParquetFile(Path(folder) / INDEX_FILE) as f:
        kind = f.schema_arrow.field(name).type
        for rb in f.iter_batches(batch_size=batch, columns=[name]):
            col = rb.column(0)
            end = offset + len(col)
            lo, hi = max(start, offset), min(stop, end)
            if lo < hi:
                span_parts.append(col.slice(lo - offset, hi - lo))
            i, j = np.searchsorted(sorted_at, [offset, end])
            if i < j:
                at_parts.append(pc.take(col, pa.array(sorted_at[i:j] - offset)))
            offset = end
    span = pa.concat_arrays(span_parts) if span_parts else pa.array([], kind)
    found = pa.concat_arrays(at_parts) if at_parts else pa.array([], kind)
    inverse = np.empty(len(order), np.int64)
    inverse[order] = np.arange(len(order))
    return span, found.take(pa.array(inverse))


def _index_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    if not path.exists():
        raise DataError(path, "", "file does not exist")
    try:
        return pq.read_schema(path).names
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(path, "", f"not a readable Parquet file: {exc}") from None


_HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}


def _memmap(npy: Path) -> np.memmap:
    """``npy`` as a read-only N x D float16/float32 memmap; a damaged file is a DataError naming it
    (and, for a truncated one, the first row it lacks)."""
    try:
        with open(npy, "rb") as f:
            version = np.lib.format.read_magic(f)
            if version not in _HEADER_READERS:
                raise ValueError(f"unsupported .npy format version {version}")
            shape, fortran, dtype = _HEADER_READERS[version](f)
            start = f.tell()
    except Exception as exc:  # numpy's header parser raises ValueError, SyntaxError, TokenError...
        raise DataError(npy, "header", f"not a readable .npy header: {exc}") from None
    if len(shape) != 2 or fortran or dtype not in (np.float16, np.float32):
        raise DataError(npy, "header", f"expected an N x D float16/float32 array in C order, got {shape} "
                                       f"{dtype}{' (Fortran order)' if fortran else ''}")
    row_bytes = int(shape[1]) * dtype.itemsize
    have = npy.stat().st_size - start
    if have < int(shape[0]) * row_bytes:
        first = have // row_bytes if row_bytes else 0
        raise DataError(npy, f"row {first}", f"file truncated: the header announces {shape[0]} rows of "
                        f"{row_bytes} bytes, the file holds {max(have, 0)} bytes of data")
    return np.load(npy, mmap_mode="r", allow_pickle=False)


def check_recorded_hash(emb: Embeddings, digest: str) -> None:
    """If ``EMB/run.json`` records a SHA-256 of embeddings.npy, it must match the file."""
    recorded = [v for k, v in emb.run_info.items() if "sha256" in k.lower() and isinstance(v, str)]
    if recorded and digest not in recorded:
        raise DataError(emb.array_path, "",
                        f"SHA-256 {digest} differs from the one in run.json {recorded}; "
                        "the embeddings changed after the run that wrote them")

"""Variation splits: resolution and pose bins, and attribute columns joined in with DuckDB.

Bins turn a continuous variation into the easy/hard halves DDL-style training needs: e.g. the teacher
distribution from ``pose_bin = 'frontal'`` pairs, the student from ``pose_bin = 'profile'``; the same for
``resolution_bin`` ``high`` vs ``low`` (see ``manifests/queries/teacher_student_*.sql``).

Attributes are joined from a Parquet table keyed by one of, in this order of preference:
``key`` (sample key), ``source_index`` (record key / file position, mapped to sample keys through the
shard manifest ``samples.parquet``), or ``label`` (per-identity tables: how race labels are published,
e.g. the RFW / BUPT identity lists). Attribute columns whose names clash with mined columns get the
prefix ``attr_``. Attribute rows matching no sample are counted, not silently ignored.

Column names are data: every one goes into SQL through :func:`fr_data.query.identifiers.quote_ident`
(a name DuckDB cannot carry is a DataError naming the file), on a locked connection that reads only the
attribute file and the shard manifest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from collections.abc import Sequence

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from fr_data.io.errors import DataError
from fr_data.query.identifiers import quote_ident
from fr_data.query.readonly import INTERNAL, connect

#: Helper columns of the join: an attribute column may not be called like one of them.
JOIN_HELPERS = ("__jk", "__key", "__row", "__hit")

RESOLUTION_BINS = ("low", "mid", "high")
POSE_BINS_BY_FLIP = ("profile", "half", "frontal")
POSE_BINS_BY_YAW = ("frontal", "half", "profile")


def bin_values(values: np.ndarray, edges: Sequence[float], names: Sequence[str]) -> np.ndarray:
    """Object array of ``names[i]`` with ``edges[i-1] <= v < edges[i]``; None for NaN."""
    if len(names) != len(edges) + 1 or list(edges) != sorted(edges):
        raise ValueError(f"need ascending edges and one more name than edges, got {edges}, {names}")
    out = np.full(len(values), None, dtype=object)
    ok = ~np.isnan(values)
    out[ok] = np.asarray(names, dtype=object)[np.searchsorted(np.asarray(edges), values[ok], side="right")]
    return out


def resolution_bins(resolution: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """``low`` / ``mid`` / ``high`` from the effective-resolution estimate in (0, 1]."""
    return bin_values(resolution, edges, RESOLUTION_BINS)


def pose_bins_from_flip(flip_cos: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """``profile`` / ``half`` / ``frontal`` from cos(embed(x), embed(flip x)): low = profile."""
    return bin_values(flip_cos, edges, POSE_BINS_BY_FLIP)


def pose_bins_from_yaw(yaw: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """``frontal`` / ``half`` / ``profile`` from |yaw| in degrees."""
    return bin_values(np.abs(yaw), edges, POSE_BINS_BY_YAW)


@dataclass
class AttributeJoin:
    """Result of joining an attribute table onto the samples table.

    Attributes:
        table: the samples table with the attribute columns appended (row order unchanged).
        by: ``key``, ``source_index`` or ``label``.
        columns: names of the appended columns.
        attribute_rows: rows in the attribute file.
        unmatched_attribute_rows: attribute rows whose key matched no sample.
        samples_without_attributes: sample rows that received no attribute row.
        hits: per sample row, whether an attribute row joined it.
    """

    table: pa.Table
    by: str
    columns: list[str]
    attribute_rows: int
    unmatched_attribute_rows: int
    samples_without_attributes: int
    hits: np.ndarray | None = None


def _join_column(attr_path: Path, names: list[str]) -> str:
    for col in ("key", "source_index", "label"):
        if col in names:
            return col
    raise DataError(attr_path, "header", f"no join column: need one of key, source_index, label; got {names}")


def _check_names(attr_path: Path, names: list[str]) -> None:
    """Refuse column names SQL cannot carry (see ``quote_ident``), helper names and repeated names."""
    for name in names:
        quote_ident(name, attr_path)
        if name in JOIN_HELPERS:
            raise DataError(attr_path, f"column {name!r}", f"column names {', '.join(JOIN_HELPERS)} are reserved "
                                                           "for the join; rename the column")
    if len(set(names)) != len(names):
        twice = sorted({n for n in names if names.count(n) > 1})
        raise DataError(attr_path, f"column {quote_ident(twice[0])}", "column name occurs more than once")


def _check_unique(con: duckdb.DuckDBPyConnection, path: Path, col: str) -> None:
    q = quote_ident(col, path)
    rows = con.execute(f"SELECT {q}, count(*) FROM attr GROUP BY 1 HAVING count(*) > 1 LIMIT 1").fetchall()
    if rows:
        row = rows[0]
        raise DataError(path, f"{col} {row[0]!r}", f"{row[1]} attribute rows share this {col}; joins need "
                                                   "one row per join value")
    nulls = _scalar(con, f"SELECT count(*) FROM attr WHERE {q} IS NULL")
    if nulls:
        raise DataError(path, f"column {col!r}", f"{nulls} rows with a null join value")


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    """First value of a one-row query, with the result fully consumed."""
    return con.execute(sql).fetchall()[0][0]


def _key_source(con: duckdb.DuckDBPyConnection, attr_path: Path, shard_manifest: Path | None) -> str:
    if shard_manifest is None:
        raise DataError(attr_path, "column 'source_index'",
                        "attributes are keyed by source_index: pass the shard manifest "
                        "(--samples SHARDS/samples.parquet)")
    names = pq.read_schema(shard_manifest).names
    if "key" not in names or "source_index" not in names:
        raise DataError(shard_manifest, "header", f"shard manifest needs key and source_index, got {names}")
    con.read_parquet(str(shard_manifest)).project("key AS __key, source_index").create_view("shard")
    return ("(SELECT shard.__key AS __jk, attr.* FROM attr LEFT JOIN shard USING (source_index))")


def join_attributes(samples: pa.Table, attr_path: str | Path, shard_manifest: str | Path | None = None,
                    reserved: Sequence[str] = ()) -> AttributeJoin:
    """Left-join ``attr_path`` onto ``samples`` with DuckDB (see the module docstring for the keys).

    Attribute columns named like a column of ``samples`` or in ``reserved`` are renamed ``attr_<name>``.
    """
    attr_path = Path(attr_path)
    if not attr_path.exists():
        raise DataError(attr_path, "", "attribute file does not exist")
    names = pq.read_schema(attr_path).names
    _check_names(attr_path, names)
    by = _join_column(attr_path, names)
    manifest = Path(shard_manifest) if shard_manifest and by == "source_index" else None
    con = connect([attr_path] + ([manifest] if manifest is not None else []), INTERNAL, spill=True)
    con.read_parquet(str(attr_path)).create_view("attr")
    _check_unique(con, attr_path, by)
    if by == "source_index":
        source, sample_col = _key_source(con, attr_path, manifest), "key"
    else:
        source, sample_col = f"(SELECT {quote_ident(by)} AS __jk, * FROM attr)", by
    skip = {"key", "label"} if by == "source_index" else {by}
    added = [c for c in names if c not in skip]
    taken = set(samples.column_names) | set(reserved)
    out_names = [f"attr_{c}" if c in taken else c for c in added]
    select = "".join(f"a.{quote_ident(c)} AS {quote_ident(o, attr_path)}, " for c, o in zip(added, out_names))
    con.register("s", samples.append_column("__row", pa.array(np.arange(samples.num_rows))))
    con.execute(f"CREATE VIEW a AS {source}").fetchall()
    on = quote_ident(sample_col)
    joined = con.sql(f"SELECT s.*, {select}a.__jk IS NOT NULL AS __hit FROM s LEFT JOIN a "
                     f"ON s.{on} = a.__jk ORDER BY s.__row").to_arrow_table()
    unmatched = _scalar(con, f"SELECT count(*) FROM a WHERE a.__jk IS NULL OR a.__jk NOT IN (SELECT {on} FROM s)")
    n_attr = _scalar(con, "SELECT count(*) FROM attr")
    con.close()
    hits = np.asarray(joined.column("__hit"), dtype=bool)
    table = joined.drop_columns(["__row", "__hit"])
    return AttributeJoin(table, by, out_names, int(n_attr), int(unmatched), int((~hits).sum()), hits)

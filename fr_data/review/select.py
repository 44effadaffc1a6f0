"""Bounded, ranked picks of a mining run for the review page (DuckDB over the run's Parquet files).

Each section's list is a :class:`Query` (declared with its section in ``fr_data.review.page.SECTIONS``)
that reads only the columns it needs and returns at most ``n`` rows (``ORDER BY ... LIMIT n`` runs as a
top-N operator that holds ``n`` rows, not the table); counts are aggregates. No query materialises a
whole table, so memory follows ``n``, not the run's size.

Rankings (the page says them too):

* suspects: ``margin`` ascending (closest to another identity first), then ``knn_agreement`` ascending;
* duplicates: cross-class copies first (the same photo under two labels is label noise), then
  ``duplicate_cos`` descending;
* merge candidates: one item per unordered label pair, ``nearest_cos`` descending;
* hard pairs: ``hard_pos`` by ``cos`` ascending, ``hard_neg`` by ``cos`` descending;
* low quality: ``quality_cr`` ascending over valid, non-suspect samples.

"Central images" of a label are its samples with the highest ``center_cos`` among valid vectors that are
neither suspects nor removed duplicates (other samples only fill up labels that have too few).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from fr_data.folders import run_folder as rf
from fr_data.io.errors import DataError
from fr_data.io.parquet import conform
from fr_data.query.readonly import INTERNAL, connect

#: Run tables (``run_folder.TABLES`` names, also the view names) the page cannot do without; the
#: sections of the others are left out when their file is missing.
REQUIRED = ("samples", "classes")
CENTRAL = 4  # central images shown per label

SUSPECTS_SQL = """
SELECT key, label, suspected_label, center_cos, margin, knn_agreement FROM samples
WHERE suspect_mislabel ORDER BY margin ASC NULLS LAST, knn_agreement ASC NULLS LAST, key LIMIT $n"""

DUPLICATES_SQL = """
WITH d AS (SELECT key, label, duplicate_of, duplicate_cos, duplicate_kind FROM samples
           WHERE duplicate_of IS NOT NULL
           ORDER BY duplicate_kind = 'cross_class' DESC, duplicate_cos DESC NULLS LAST, key LIMIT $n)
SELECT d.*, t.label AS twin_label FROM d LEFT JOIN samples t ON t.key = d.duplicate_of
ORDER BY d.duplicate_kind = 'cross_class' DESC, d.duplicate_cos DESC NULLS LAST, d.key"""

MERGE_PAIRS_SQL = """
SELECT least(label, nearest_label) AS label, greatest(label, nearest_label) AS other_label,
       max(nearest_cos) AS nearest_cos, max(neighbour_mix) AS neighbour_mix
FROM classes WHERE merge_candidate AND nearest_label IS NOT NULL GROUP BY ALL"""

MERGES_SQL = f"""
WITH p AS ({MERGE_PAIRS_SQL} ORDER BY nearest_cos DESC NULLS LAST, label, other_label LIMIT $n)
SELECT p.*, a.n AS n, b.n AS other_n FROM p LEFT JOIN classes a ON a.label = p.label
LEFT JOIN classes b ON b.label = p.other_label ORDER BY nearest_cos DESC NULLS LAST, label, other_label"""

SUSPECTS_COUNT = "SELECT count_if(suspect_mislabel) AS n FROM samples"
DUPLICATES_COUNT = "SELECT count_if(duplicate_of IS NOT NULL) AS n FROM samples"
MERGES_COUNT = f"SELECT count(*) AS n FROM ({MERGE_PAIRS_SQL})"

HARD_PAIRS_SQL = """
SELECT key_a, key_b, label_a, label_b, cos, kind FROM pairs WHERE kind = $kind
ORDER BY CASE WHEN $kind = 'hard_neg' THEN -cos ELSE cos END, key_a, key_b LIMIT $n"""

HARD_PAIRS_COUNT = "SELECT count(*) AS n FROM pairs WHERE kind = $kind"

LOW_QUALITY_SQL = """
SELECT key, label, quality_cr, quality_sdd, difficulty, pose_bin, resolution_bin FROM samples
WHERE vector_ok AND NOT suspect_mislabel AND quality_cr IS NOT NULL ORDER BY quality_cr ASC, key LIMIT $n"""

LOW_QUALITY_COUNT = "SELECT count_if(vector_ok AND NOT suspect_mislabel AND quality_cr IS NOT NULL) AS n FROM samples"

CENTRAL_SQL = f"""
SELECT label, max_by(key, score, {CENTRAL}) AS keys FROM (
  SELECT label, key, coalesce(center_cos, -2.0)
         + CASE WHEN vector_ok AND NOT suspect_mislabel AND duplicate_of IS NULL THEN 4.0 ELSE 0.0 END AS score
  FROM samples WHERE label IN (SELECT label FROM wanted_labels)) GROUP BY label"""


@dataclass
class RunTables:
    """A DuckDB connection with one view per run file found.

    Attributes:
        folder: the run folder.
        con: the connection (views ``samples``, ``classes`` and whichever of ``pairs``, ``groups``,
            ``sweep`` exist).
        present: names of the registered views.
        run: ``run.json`` (``{}`` when absent).
        notes: what is missing, for the page.
    """

    folder: Path
    con: duckdb.DuckDBPyConnection
    present: set[str] = field(default_factory=set)
    run: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def rows(self, sql: str, **params: Any) -> list[dict[str, Any]]:
        """The result of ``sql`` as a list of row dicts."""
        return self.con.sql(sql, params=params or None).to_arrow_table().to_pylist()


def _register(con: duckdb.DuckDBPyConnection, name: str, path: Path, schema: pa.Schema) -> None:
    try:
        found = pq.read_schema(path)
    except (pa.ArrowInvalid, OSError) as exc:
        raise DataError(path, "", f"not a readable Parquet file: {exc}") from None
    conform(found.empty_table(), schema, path)
    con.read_parquet(str(path)).create_view(name)


def open_tables(run: str | os.PathLike, *, threads: int = 2, memory_limit: str = "256MB") -> RunTables:
    """Views over a mining run folder on a locked connection that reads only the run's table files
    (DuckDB limited to ``threads`` and ``memory_limit``: it spills to a private temp folder beyond it, so
    the review page's peak memory stays flat as the run grows).

    Raises:
        DataError: the folder, ``samples.parquet`` or ``classes.parquet`` is missing, or a file does not
            match its schema (``SchemaError``, naming the file and column).
    """
    folder = Path(run)
    if not folder.is_dir():
        raise DataError(folder, "", "mining run folder does not exist")
    files = [rf.table_path(folder, name) for name in rf.TABLES]
    limits = replace(INTERNAL, threads=threads, memory_limit=memory_limit)
    con = connect([f for f in files if f.is_file()], limits, spill=True)
    tables = RunTables(folder, con, run=rf.read_run_info(folder))
    if not tables.run:
        tables.notes.append(f"{folder / rf.RUN_FILE} is missing: counts come from the tables, no config "
                            "or stage times")
    for name, (_, schema) in rf.TABLES.items():
        path = rf.table_path(folder, name)
        if path.is_file():
            _register(con, name, path, schema)
            tables.present.add(name)
        elif name in REQUIRED:
            raise DataError(path, "", "missing: the review page needs it (is this a finished mining run?)")
        else:
            tables.notes.append(f"{path} is missing: its section is left out")
    return tables


# ------------------------------------------------------------------------------------------------ picks
@dataclass(frozen=True)
class Query:
    """One ranked, bounded pick of a run: the rows a page section lists.

    Attributes:
        name: key of ``Picks.rows`` and ``Picks.totals`` (and of ``report.json: sections``).
        sql: the top rows in ranking order, at most ``$n`` (a constant of this package, never data).
        count: ``SELECT count(*) AS n ...``: how many rows the run has (not capped).
        table: the run table it reads; when the run lacks it, no rows and a count of 0.
        params: further named SQL parameters of ``sql`` and ``count``.
        keys: (key column, label column) of each image a row shows (thumbnails, attributes; a null key
            shows no image).
        labels: columns naming labels whose central images a row shows.
    """

    name: str
    sql: str
    count: str
    table: str = "samples"
    params: tuple[tuple[str, Any], ...] = ()
    keys: tuple[tuple[str, str], ...] = (("key", "label"),)
    labels: tuple[str, ...] = ()


@dataclass
class Picks:
    """What the page shows: bounded rows per query, their full counts, and central images per label.

    Each query's rows are dicts with the columns of its SQL.
    """

    per_section: int
    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    central: dict[int, list[str]] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)
    queries: tuple[Query, ...] = ()

    def of(self, name: str) -> list[dict[str, Any]]:
        """The rows of query ``name`` (empty when it did not run)."""
        return self.rows.get(name, [])

    def keys(self) -> dict[str, int | None]:
        """Every sample key the page shows, with its label (None where the run does not say)."""
        out: dict[str, int | None] = {}
        for q in self.queries:
            for r in self.of(q.name):
                out.update({r[k]: r[label] for k, label in q.keys if r[k] is not None})
        for label, keys in self.central.items():
            out.update({k: label for k in keys})
        return out


@dataclass(frozen=True)
class Attachment:
    """A folder beside the run that a section reads, given as ``hardmine report --OPTION DIR``
    (``fr_data.review.page.Section.attach``): the command-line option, the report's input and the
    section all follow from this entry.

    Attributes:
        option: the command-line option without its dashes, and the key of ``build_report(attached=...)``,
            ``report.json: inputs`` and ``PageData.inputs``.
        help: its help text.
        open: (tables, folder) -> None: validate the folder against the run (a ``DataError`` naming the
            file) and register its views on ``tables.con`` (names added to ``tables.present``), so the
            section's ``Query`` reads them like run tables.
        images: (folder, picks, out, size) -> {image id: why it has no thumbnail, or ""}: write the
            thumbnails of the shown images that are not in the shards into the report folder ``out``
            (``report_folder.thumb_name(id)``; ``size`` their longest side).
    """

    option: str
    help: str
    open: Callable[[RunTables, Path], None]
    images: Callable[[Path, Picks, Path, int], dict[str, str]]


def totals(t: RunTables, queries: tuple[Query, ...] = ()) -> dict[str, int]:
    """Run counts for the overview and the full count of each query (not capped)."""
    s = t.rows("SELECT count(*) AS samples, count_if(vector_ok) AS valid_vectors, "
               "count_if(duplicate_kind = 'cross_class') AS cross_class_duplicates FROM samples")[0]
    c = t.rows("SELECT count(*) AS classes, count_if(merge_candidate) AS merge_candidate_classes FROM classes")[0]
    out = {**s, **c}
    for q in queries:
        out[q.name] = t.rows(q.count, **dict(q.params))[0]["n"] if q.table in t.present else 0
    return {k: int(v or 0) for k, v in out.items()}


def central_images(t: RunTables, labels: set[int]) -> dict[int, list[str]]:
    """Up to ``CENTRAL`` central image keys of each label (most central first)."""
    wanted = [int(x) for x in labels if x is not None]
    if not wanted:
        return {}
    t.con.register("wanted_labels", pa.table({"label": pa.array(sorted(wanted), pa.int64())}))
    try:
        return {int(r["label"]): list(r["keys"]) for r in t.rows(CENTRAL_SQL)}
    finally:
        t.con.unregister("wanted_labels")


def select(t: RunTables, per_section: int, queries: tuple[Query, ...]) -> Picks:
    """The ranked, bounded rows of every query (the review page's: ``fr_data.review.page.queries()``)."""
    n = int(per_section)
    p = Picks(n, totals=totals(t, queries), queries=queries)
    for q in queries:
        if q.table in t.present:
            p.rows[q.name] = t.rows(q.sql, n=n, **dict(q.params))
    p.central = central_images(t, {r[c] for q in queries for r in p.of(q.name) for c in q.labels})
    return p

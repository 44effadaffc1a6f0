"""The mining run folder: the Parquet manifests a mining run writes, and how they are read back.

Layout (written atomically by :func:`fr_data.mining.run.mine`; every column is documented in
``manifests/README.md``)::

    RUN/samples.parquet   one row per embedding row, in the order of EMB/index.parquet (MINED_SAMPLES_SCHEMA)
    RUN/classes.parquet   one row per label (CLASSES_SCHEMA)
    RUN/pairs.parquet     easy/hard positive and hard negative pairs for DDL / OT (PAIRS_SCHEMA)
    RUN/groups.parquet    FPR per group at one global threshold (GROUPS_SCHEMA)
    RUN/sweep.parquet     how many classes / samples each candidate threshold flags (SWEEP_SCHEMA)
    RUN/run.json          inputs, counts, timings, the resolved config (also Parquet key-value metadata)
    RUN/config.yaml       the resolved mining config

Tables may carry extra columns after the declared ones (attribute columns joined in by the user). Columns
of :data:`OPTIONAL` may be absent (``samples.quality`` is written only when the embeddings index had a
``quality`` column; ``samples.nn_cos`` is missing from runs mined before it existed) and are checked like
the declared ones when present. The columns of ``samples``, ``classes`` and ``pairs`` are declared in
:mod:`fr_data.folders.run_signals`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pyarrow as pa

from fr_data.folders import run_signals
from fr_data.io.atomic import atomic_write_text
from fr_data.io.jsonfile import read_json_object
from fr_data.io.parquet import read_table, write_table

SAMPLES_FILE = "samples.parquet"
CLASSES_FILE = "classes.parquet"
PAIRS_FILE = "pairs.parquet"
GROUPS_FILE = "groups.parquet"
SWEEP_FILE = "sweep.parquet"
RUN_FILE = "run.json"
CONFIG_FILE = "config.yaml"
#: The calibrated thresholds' distributions (``fr_data.mining.calibration_figure``; absent with
#: ``calibration.figure: false`` or when no distribution was measured).
CALIBRATION_FIGURE_FILE = "calibration.png"
#: Parquet key-value metadata key holding the run report.
METADATA_KEY = "hardmine_mining"

#: The signal tables' schemas come from their declarations (:mod:`fr_data.folders.run_signals`, where each
#: column's type, nullability, meaning and producing stage are declared once).
#: One row per label of the input index.
CLASSES_SCHEMA = run_signals.schema("classes")

#: One row per input embedding row, in the order of ``EMB/index.parquet``.
MINED_SAMPLES_SCHEMA = run_signals.schema("samples")

#: Samples columns readers accept a file without: ``quality``, the quality-model score carried over from
#: the embeddings index (written only when the index has it), and signals added after runs existed
#: (``nn_cos``, ``source_path``/``identity``; written by every run since).
OPTIONAL_SAMPLES_SCHEMA = run_signals.schema("samples", optional=True)

#: Classes columns readers accept a file without: ``identity`` (added with the shard manifest's provenance).
OPTIONAL_CLASSES_SCHEMA = run_signals.schema("classes", optional=True)

#: Teacher (easy) and student (hard) pairs for DDL / OT training.
PAIRS_SCHEMA = run_signals.schema("pairs")

#: FPR per group at one global threshold (bias report).
GROUPS_SCHEMA = pa.schema([
    pa.field("group", pa.string(), nullable=False),
    pa.field("source", pa.string(), nullable=False),
    pa.field("n_samples", pa.int64(), nullable=False),
    pa.field("n_classes", pa.int64(), nullable=False),
    pa.field("fpr", pa.float64()),
    pa.field("fpr_ratio", pa.float64()),
])

#: How many classes / samples each candidate threshold flags.
SWEEP_SCHEMA = pa.schema([
    pa.field("threshold", pa.string(), nullable=False),
    pa.field("value", pa.float64(), nullable=False),
    pa.field("flagged", pa.int64(), nullable=False),
    pa.field("unit", pa.string(), nullable=False),
    pa.field("is_default", pa.bool_(), nullable=False),
])

PAIR_KINDS = ("easy_pos", "hard_pos", "hard_neg")
SPLITS = ("easy", "medium", "hard")
DUPLICATE_KINDS = ("same_class", "cross_class")

#: Table name (the DuckDB view name too) -> (file name, schema).
TABLES: dict[str, tuple[str, pa.Schema]] = {
    "samples": (SAMPLES_FILE, MINED_SAMPLES_SCHEMA),
    "classes": (CLASSES_FILE, CLASSES_SCHEMA),
    "pairs": (PAIRS_FILE, PAIRS_SCHEMA),
    "groups": (GROUPS_FILE, GROUPS_SCHEMA),
    "sweep": (SWEEP_FILE, SWEEP_SCHEMA),
}

#: Table name -> its optional columns.
OPTIONAL: dict[str, pa.Schema] = {"samples": OPTIONAL_SAMPLES_SCHEMA, "classes": OPTIONAL_CLASSES_SCHEMA}


def table_path(run: str | os.PathLike, name: str) -> Path:
    """Path of table ``name`` (a key of :data:`TABLES`) in ``run``."""
    return Path(run) / TABLES[name][0]


def read(run: str | os.PathLike, name: str, columns: list[str] | None = None) -> pa.Table:
    """Read and validate table ``name`` (a key of :data:`TABLES`) of ``run``."""
    file, schema = TABLES[name]
    return read_table(Path(run) / file, schema, columns=columns, optional=OPTIONAL.get(name))


def write(run: str | os.PathLike, name: str, table: pa.Table, report: dict[str, Any]) -> None:
    """Write table ``name`` with the run report as Parquet key-value metadata."""
    file, schema = TABLES[name]
    write_table(table, Path(run) / file, schema, {METADATA_KEY: report}, optional=OPTIONAL.get(name))


def part_file(folder: str | os.PathLike, rank: int) -> Path:
    """The rows of ``samples.parquet`` one rank of a distributed run wrote into the staging ``folder``
    (removed once :func:`join_samples_parts` has copied them)."""
    return Path(folder) / f".samples.part-{rank:05d}.parquet"


def write_samples_part(folder: str | os.PathLike, rank: int, table: pa.Table) -> Path:
    """Write rank ``rank``'s rows of ``samples.parquet`` (checked against its schema) into ``folder``."""
    path = part_file(folder, rank)
    write_table(table, path, MINED_SAMPLES_SCHEMA, optional=OPTIONAL_SAMPLES_SCHEMA)
    return path


def join_samples_parts(folder: str | os.PathLike, ranks: int, report: dict[str, Any]) -> None:
    """``folder/samples.parquet`` from the parts of ranks ``0 .. ranks - 1`` in rank order, with the run
    report as key-value metadata; the parts are removed. The row groups are those of one table written
    whole (``ROW_GROUP_SIZE`` rows each, whatever the rank count): memory holds about two."""
    import pyarrow.parquet as pq

    from fr_data.io.atomic import atomic_path
    from fr_data.io.parquet import ROW_GROUP_SIZE

    parts = [part_file(folder, r) for r in range(ranks)]
    schema = pq.read_schema(parts[0]).remove_metadata()
    held: list[pa.Table] = []
    with atomic_path(Path(folder) / SAMPLES_FILE) as tmp:
        meta = {METADATA_KEY.encode(): json.dumps(report, default=str).encode()}
        with pq.ParquetWriter(tmp, schema.with_metadata(meta), compression="zstd") as writer:
            for part in parts:
                with pq.ParquetFile(part) as f:
                    if not f.schema_arrow.remove_metadata().equals(schema):
                        raise RuntimeError(f"internal error: {part.name} has another schema than {parts[0].name}")
                    for i in range(f.num_row_groups):
                        held.append(f.read_row_group(i))
                        held = _flush(writer, held, ROW_GROUP_SIZE)
            _flush(writer, held, 0)
    for part in parts:
        part.unlink()


def _flush(writer: Any, held: list[pa.Table], size: int) -> list[pa.Table]:
    """Write whole row groups of ``size`` rows from the tables ``held`` (all of them when ``size`` is 0);
    the rest stays held."""
    rows = sum(t.num_rows for t in held)
    if rows == 0 or (size and rows < size):
        return held
    table = pa.concat_tables(held)
    whole = rows if not size else rows - rows % size
    for start in range(0, whole, size or whole):
        writer.write_table(table.slice(start, (size or whole)), row_group_size=size or whole)
    return [table.slice(whole)] if whole < rows else []


def read_run_info(run: str | os.PathLike) -> dict[str, Any]:
    """``RUN/run.json`` (empty when absent; a DataError when it is not a JSON object)."""
    return read_json_object(Path(run) / RUN_FILE)


def write_run_info(run: str | os.PathLike, info: dict[str, Any]) -> None:
    """Write ``RUN/run.json`` atomically."""
    atomic_write_text(Path(run) / RUN_FILE, json.dumps(info, indent=2, default=str))

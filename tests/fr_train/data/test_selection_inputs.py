"""Damaged shard manifests and mining run tables fed to training: a DataError naming the file, the
column and the row, before any SQL runs and before anything is written (seeded, small)."""

from __future__ import annotations

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from fr_data.io.errors import DataError
from fr_train.data.config import SelectionConfig
from fr_train.data.selection import RUN_COLUMNS, RUN_LABELS, RUN_UNIQUE, resolve_selection
from tests.damage import COLUMN_KINDS, applicable, damage_column, names_row
from tests.fr_train.data.builders import make_tiny_data

#: The columns training reads from the shard manifest; mutating another column may be harmless.
SHARD_COLUMNS = ["key", "label", "shard"]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("inputs"))


def _case(seed: int) -> tuple[str, str, str]:
    rng = np.random.default_rng(seed)
    targets = [("shards", c) for c in SHARD_COLUMNS] + [(t, c) for t, cols in RUN_COLUMNS.items() for c in cols]
    target, column = targets[int(rng.integers(len(targets)))]
    return target, column, COLUMN_KINDS[int(rng.integers(len(COLUMN_KINDS)))]


@pytest.mark.parametrize("seed", range(36))
def test_damaged_inputs_are_data_errors_naming_file_and_row(data, tmp_path, seed):
    target, column, kind = _case(seed)
    shards, run = tmp_path / "shards", tmp_path / "run"
    shards.mkdir()
    shutil.copy(data.shards / "samples.parquet", shards / "samples.parquet")
    shutil.copytree(data.run, run)
    path = shards / "samples.parquet" if target == "shards" else run / f"{target}.parquet"
    table = pq.read_table(path)
    row = int(np.random.default_rng(seed).integers(table.num_rows))
    kind = applicable(kind, table.schema.field(column))
    pq.write_table(damage_column(table, column, kind, row), path)
    before = sorted(p.name for p in tmp_path.rglob("*"))
    unique = {("shards", "key")} | {(t, c) for t, cols in RUN_UNIQUE.items() for c in cols}
    labels = {("shards", "label")} | {(t, c) for t, cols in RUN_LABELS.items() for c in cols}
    harmless = ((kind == "null" and table.schema.field(column).nullable)
                or (kind == "duplicate" and (target, column) not in unique)
                or (kind == "negative" and (target, column) not in labels))
    try:
        resolve_selection(SelectionConfig(merge_classes=True), shards, run)
    except DataError as exc:
        assert exc.path == str(path), (target, column, kind, str(exc))
        assert column in exc.where and "\n" not in str(exc)
        assert "row" in exc.where or not names_row(kind, table.schema.field(column)), str(exc)
    else:
        assert harmless, f"{target}.{column} {kind} at row {row} was accepted"
    assert sorted(p.name for p in tmp_path.rglob("*")) == before  # nothing written

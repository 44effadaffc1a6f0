"""The experiment folder's results files: schema, order, nulls, validation on read."""

from __future__ import annotations

import math

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fr_data.folders import pool_folder
from fr_data.folders.experiment_folder import (ESTIMATES, ESTIMATES_SCHEMA, RESULTS, RESULTS_SCHEMA, VALIDATION,
                                               read_estimates, read_results, results_path, write_estimates,
                                               write_results)
from fr_data.io.errors import SchemaError
from tests.fr_data.folders.helpers import documented_columns

COLUMNS = ["arm", "seed", "pack", "accuracy", "tpr_at_fpr_1e_2", "tpr_at_fpr_1e_3", "images_seen",
           "train_seconds", "checkpoint"]


def row(arm: str, seed: int, pack: str, tpr3: float = 0.5) -> dict:
    return {"arm": arm, "seed": seed, "pack": pack, "accuracy": 0.9, "tpr_at_fpr_1e_2": 0.7,
            "tpr_at_fpr_1e_3": tpr3, "images_seen": 24000, "train_seconds": 12.5,
            "checkpoint": f"runs/{arm}/seed-{seed}/checkpoints/step-00000100/model.pt"}


def test_the_issue_names_every_column_in_order():
    assert RESULTS_SCHEMA.names == COLUMNS
    assert RESULTS == "results.parquet" and VALIDATION == "validation.parquet"


def test_rows_round_trip_sorted_with_nan_as_null(tmp_path):
    rows = [row("ddl", 1, "synth_pose"), row("baseline", 1, "synth_easy", math.nan), row("baseline", 0, "synth_pose")]
    write_results(tmp_path, rows)
    table = read_results(tmp_path)
    assert table.schema.equals(RESULTS_SCHEMA)
    assert list(zip(*(table.column(c).to_pylist() for c in ("arm", "seed", "pack")))) == [
        ("baseline", 0, "synth_pose"), ("baseline", 1, "synth_easy"), ("ddl", 1, "synth_pose")]
    assert table.column("tpr_at_fpr_1e_3").to_pylist() == [0.5, None, 0.5]
    write_results(tmp_path, rows[:1], split="validation")
    assert read_results(tmp_path, "validation").num_rows == 1
    assert results_path(tmp_path, "validation") == tmp_path / VALIDATION


def test_a_file_missing_a_column_is_refused_naming_it(tmp_path):
    table = pa.table({c: [v] for c, v in row("a", 0, "p").items() if c != "images_seen"})
    pq.write_table(table, tmp_path / RESULTS)
    with pytest.raises(SchemaError, match="images_seen"):
        read_results(tmp_path)
    with pytest.raises(SchemaError, match="does not exist"):
        read_results(tmp_path / "nowhere")


def test_a_null_where_a_value_is_required_is_refused(tmp_path):
    bad = row("a", 0, "p")
    bad["images_seen"] = None
    with pytest.raises(SchemaError, match="images_seen"):
        write_results(tmp_path, [bad])


def test_readme_documents_every_column_of_the_results_estimates_and_pool_tables():
    assert documented_columns(RESULTS) == RESULTS_SCHEMA.names
    assert documented_columns(ESTIMATES) == ESTIMATES_SCHEMA.names
    assert documented_columns(pool_folder.TABLE) == pool_folder.POOL_SCHEMA.names


def test_estimates_round_trip_sorted_with_nan_as_null(tmp_path):
    def est(split: str, arm: str, over: str | None, value: float) -> dict:
        return {"split": split, "arm": arm, "over": over, "packs": ["synth_pose", "synth_lowres"],
                "metric": "tpr_at_fpr_1e_2", "value": value, "low": value - 0.01, "high": value + 0.01,
                "level": 0.95, "seed_min": value, "seed_max": value, "seeds": 3}

    write_estimates(tmp_path, [est("test", "ddl", "baseline", 0.02), est("test", "ddl", None, math.nan),
                               est("validation", "baseline", None, 0.5)])
    table = read_estimates(tmp_path)
    assert table.schema.equals(ESTIMATES_SCHEMA)
    assert [(r["split"], r["arm"], r["over"], r["value"]) for r in table.to_pylist()] == [
        ("test", "ddl", None, None), ("test", "ddl", "baseline", 0.02), ("validation", "baseline", None, 0.5)]
    assert table.column("packs").to_pylist()[0] == ["synth_pose", "synth_lowres"]

"""The mining signals are declared once: the run folder's schemas, the table builder and the column tables
of ``manifests/README.md`` agree with ``fr_data.folders.run_signals``."""

from __future__ import annotations

import re

import pyarrow as pa
import pytest

from fr_data.folders import run_folder as rf
from fr_data.folders import run_signals
from fr_data.folders.run_signals import STAGES, TABLES, Column, Signal
from fr_data.mining.tables import SAMPLE_FILLS
from tests.repo import ROOT

#: The schemas as they were spelled out before the declarations (column order and types of every file
#: written since): a declaration may add columns after them, never change or move one.
BEFORE = {
    "samples": [("key", "string", False), ("label", "int64", False), ("vector_ok", "bool", False),
                ("center_cos", "float", True), ("nearest_other_label", "int64", True),
                ("nearest_other_cos", "float", True), ("margin", "float", True), ("knn_agreement", "float", True),
                ("suspect_mislabel", "bool", False), ("suspected_label", "int64", True),
                ("duplicate_of", "string", True), ("duplicate_kind", "string", True),
                ("duplicate_cos", "float", True), ("quality_sdd", "float", True), ("quality_cr", "float", True),
                ("instance_fpr", "float", True), ("difficulty", "float", True), ("split", "string", True),
                ("resolution", "float", True), ("resolution_bin", "string", True), ("flip_cos", "float", True),
                ("pose_bin", "string", True), ("group", "string", True)],
    "classes": [("label", "int64", False), ("n", "int64", False), ("n_invalid", "int64", False),
                ("spread", "float", True), ("nearest_label", "int64", True), ("nearest_cos", "float", True),
                ("neighbour_mix", "float", True), ("merge_candidate", "bool", False), ("group", "string", True)],
    "pairs": [("key_a", "string", False), ("key_b", "string", False), ("label_a", "int64", False),
              ("label_b", "int64", False), ("cos", "float", False), ("kind", "string", False),
              ("pose_bin_a", "string", True), ("pose_bin_b", "string", True), ("resolution_bin_a", "string", True),
              ("resolution_bin_b", "string", True)],
}
README = ROOT / "manifests" / "README.md"


def _fields(schema: pa.Schema) -> list[tuple[str, str, bool]]:
    return [(f.name, str(f.type), f.nullable) for f in schema]


@pytest.mark.parametrize("table", TABLES)
def test_schemas_come_from_the_declarations_and_keep_every_column_in_place(table):
    schema = rf.TABLES[table][1]
    assert schema.equals(run_signals.schema(table))
    assert _fields(schema)[:len(BEFORE[table])] == BEFORE[table]
    assert rf.OPTIONAL.get(table, pa.schema([])).names == run_signals.schema(table, optional=True).names


def test_the_optional_samples_columns():
    assert rf.OPTIONAL_SAMPLES_SCHEMA.names == ["quality", "nn_cos", "duplicate_pixel_sim", "source_path", "identity"]
    assert rf.OPTIONAL_CLASSES_SCHEMA.names == ["identity"]
    assert rf.OPTIONAL_SAMPLES_SCHEMA.field("nn_cos").type == pa.float32()


def test_every_declaration_is_complete_and_unique():
    for table in TABLES:
        names = [c.name for s in run_signals.signals_of(table) for c in s.columns]
        assert len(names) == len(set(names)), table
    assert len({s.name for s in run_signals.SIGNALS}) == len(run_signals.SIGNALS)
    for s in run_signals.SIGNALS:
        assert s.columns and all(c.meaning and "\n" not in c.meaning for c in s.columns), s.name
    with pytest.raises(ValueError, match="unknown"):
        Signal("x", "samples", "no_such_stage", (Column("x", pa.int64(), "x"),))


def test_the_builder_fills_exactly_the_signals_computed_before_the_tables_stage():
    computed = {s.name for s in run_signals.signals_of("samples") if s.stage != "tables"}
    assert set(SAMPLE_FILLS) == computed


def _readme_columns(title: str) -> list[tuple[str, str]]:
    """(column, type) rows of the README table under ``## `title` ``; ``x_a/_b`` names both columns."""
    text = README.read_text(encoding="utf-8")
    part = text.split(f"## `{title}`", 1)[1].split("\n## ", 1)[0]
    out = []
    for line in part.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) < 3 or not cells[0].startswith("`"):
            continue
        for name in re.findall(r"`([^`]+)`", cells[0]):
            stem, _, tail = name.partition("/")
            out += [(stem, cells[1])] + ([(stem[: -len(tail)] + tail, cells[1])] if tail else [])
    return out


ARROW_NAMES = {"float": "float32", "string": "string", "int64": "int64", "bool": "bool"}


@pytest.mark.parametrize("table", TABLES)
def test_the_readme_documents_every_declared_column_in_order(table):
    declared = [(c.name, ARROW_NAMES[str(c.type)]) for c in run_signals.columns(table).values()]
    assert sorted(_readme_columns(f"{table}.parquet")) == sorted(declared)
    documented = [name for name, _ in _readme_columns(f"{table}.parquet")]
    assert documented == sorted(documented, key=[n for n, _ in declared].index)


def test_every_stage_is_one_a_mining_run_times(tmp_path):
    """The stage names are those of ``run.json: timings`` (a run of the planted scenario)."""
    from fr_data.folders.run_folder import read_run_info
    from tests.golden.scenario import mining_scenario

    run = mining_scenario(tmp_path)
    timings = read_run_info(run)["timings"]
    assert set(STAGES) <= set(timings)
    assert {s.stage for s in run_signals.SIGNALS} <= set(STAGES)

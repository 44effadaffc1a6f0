"""Every place the project builds SQL, fed hostile identifiers and values.

Each case must give the correct result (the hostile name names exactly its column, the hostile value is
matched as a value) or a one-line DataError; never a written file, never the content of a file outside
the inputs, never a raw DuckDB error.
"""

from __future__ import annotations

import shutil
from types import SimpleNamespace

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fr_data.io.errors import DataError
from fr_data.mining.splits import join_attributes
from fr_data.mining.tables import classes_table, group_codes, modal_groups
from fr_data.query.identifiers import MAX_IDENTIFIER, quote_ident
from fr_data.query.readonly import connect
from fr_data.query.views import open_run, open_views, run_query
from fr_data.review.attributes import file_attributes, run_attributes
from fr_data.review.select import open_tables
from fr_data.review.thumbs import locate
from tests.fr_data.review.builders import make_review_run

SECRET = "s3cr3t-content-7731"
PWN = "COPY (SELECT content FROM read_text('secret.txt')) TO 'pwned.csv'"

#: Names quoting must carry unchanged.
ODD_NAMES = [
    f'group" FROM s, a; {PWN}; SELECT a."c1',  # the attack on the attribute join
    f'key" FROM samples; {PWN}; SELECT "c1',  # the attack on the review page
    f'x"; {PWN}; --', f"'; {PWN}; --", '"', '""', 'a"b', "it's", "semi;colon", "read_text('secret.txt')",
    "ünï código 名前 🙂", "--", "/* c */", "$1", "?", " ", "SELECT", "x" * MAX_IDENTIFIER,
]
#: Names refused with a DataError (control characters, too long, reserved by the join).
REFUSED_NAMES = ["nul\x00byte", "new\nline", "tab\tname", "bell\x07", "x" * (MAX_IDENTIFIER + 1), "__jk"]
#: Values (keys, labels, groups) that must be matched as values.
ODD_VALUES = [f"'; {PWN}; --", 'k"; DROP TABLE s; --', "ünï 🙂", "nul\x00byte", "new\nline", "$n", "?", "x" * 5000]


@pytest.fixture()
def cwd(tmp_path, monkeypatch):
    """An empty working folder (where an injected COPY would write) beside a secret file."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "secret.txt").write_text(SECRET + "\n")
    yield work
    assert sorted(p.name for p in work.iterdir()) == ["secret.txt"]  # nothing written
    assert not list(tmp_path.rglob("pwned*"))


@pytest.fixture(scope="module")
def review(tmp_path_factory):
    return make_review_run(tmp_path_factory.mktemp("fuzz"))


def _no_leak(obj) -> None:
    assert SECRET not in str(obj)


def _one_line_data_error(info) -> None:
    assert isinstance(info.value, DataError) and "\n" not in str(info.value)
    _no_leak(info.value)


# ------------------------------------------------------------------------------------------------ helper
@pytest.mark.parametrize("name", ODD_NAMES)
def test_quote_ident_round_trips_in_duckdb(name):
    con = connect()
    assert con.sql(f"SELECT 1 AS {quote_ident(name)}").columns == [name]


@pytest.mark.parametrize("name", REFUSED_NAMES[:-1] + ["", None])
def test_quote_ident_refuses_names_sql_cannot_carry(name):
    with pytest.raises(DataError, match="rename the column") as info:
        quote_ident(name, "attr.parquet")
    _one_line_data_error(info)


# ---------------------------------------------------------------------------- mining: the attribute join
def _attr_file(folder, columns: dict) -> object:
    path = folder / "attr.parquet"
    pq.write_table(pa.table(columns), path)
    return path


@pytest.mark.parametrize("name", ODD_NAMES + REFUSED_NAMES)
def test_attribute_join_with_hostile_column_names(cwd, tmp_path, name):
    samples = pa.table({"key": ["a", "b", "c"], "label": [0, 1, 1]})
    columns = {"label": [0, 1], name: ["v0", "v1"]}
    if not name.startswith("group"):
        columns.update({"group": ["g0", "g1"], "c1": [5, 6]})
    attr = _attr_file(tmp_path, columns)
    if name in REFUSED_NAMES:
        with pytest.raises(DataError) as info:
            join_attributes(samples, attr)
        _one_line_data_error(info)
        return
    join = join_attributes(samples, attr, reserved=["group"])
    out = f"attr_{name}" if name in ("group",) else name
    assert join.table.column(out).to_pylist() == ["v0", "v1", "v1"]
    assert join.table.column("key").to_pylist() == ["a", "b", "c"]
    _no_leak(join.table.to_pylist())


@pytest.mark.parametrize("by", ["key", "label", "source_index"])
def test_attribute_join_with_hostile_values(cwd, tmp_path, by):
    keys = ODD_VALUES
    samples = pa.table({"key": keys, "label": list(range(len(keys)))})
    shard = tmp_path / "samples.parquet"
    pq.write_table(pa.table({"key": keys, "source_index": list(range(len(keys)))}), shard)
    join_values = {"key": keys, "label": list(range(len(keys))), "source_index": list(range(len(keys)))}[by]
    attr = _attr_file(tmp_path, {by: join_values, "note": [f"n:{k}" for k in keys]})
    join = join_attributes(samples, attr, shard)
    assert join.table.column("note").to_pylist() == [f"n:{k}" for k in keys]
    assert join.unmatched_attribute_rows == 0 and join.samples_without_attributes == 0


def test_mining_groups_with_hostile_values(cwd):
    group = np.asarray([v for v in ODD_VALUES[:4] for _ in range(2)], dtype=object)  # class c: value c twice
    geo = SimpleNamespace(
        cindex=SimpleNamespace(labels=np.arange(4), counts=np.full(4, 2), of_sample=np.repeat(np.arange(4), 2)),
        centres=SimpleNamespace(spread=np.zeros(4)), class_nearest=np.full(4, -1),
        class_nearest_cos=np.zeros(4))
    f = SimpleNamespace(class_mix=np.zeros(4), same_person=np.full(4, -1))
    names = sorted(set(ODD_VALUES[:4]))
    modal = modal_groups(group_codes(group, names), geo.cindex.of_sample, 4)
    per_class = np.array(names, dtype=object)[modal]
    assert classes_table(geo, f, per_class).column("group").to_pylist() == ODD_VALUES[:4]


# ----------------------------------------------------------------------------------------- review page
def _run_with_extra_column(review, tmp_path, name):
    run = tmp_path / "run"
    shutil.copytree(review.run, run)
    samples = pq.read_table(run / "samples.parquet")
    values = [f"v{i}" for i in range(samples.num_rows)]
    pq.write_table(samples.append_column("c1", pa.array(values)).append_column(name, pa.array(values)),
                   run / "samples.parquet")
    return run, samples.column("key").to_pylist()


@pytest.mark.parametrize("name", ODD_NAMES + REFUSED_NAMES[:-1])
def test_review_attributes_with_hostile_extra_columns(cwd, tmp_path, review, name):
    run, keys = _run_with_extra_column(review, tmp_path, name)
    tables = open_tables(run)
    shown = {keys[0]: 0, keys[3]: 0}
    if name in REFUSED_NAMES:
        with pytest.raises(DataError) as info:
            run_attributes(tables, shown)
        _one_line_data_error(info)
        return
    values = run_attributes(tables, shown)
    assert values[keys[3]][name] == "v3" and values[keys[0]]["c1"] == "v0"


@pytest.mark.parametrize("name", ODD_NAMES[:4])
def test_review_attribute_file_with_hostile_columns(cwd, tmp_path, name):
    attr = _attr_file(tmp_path, {"key": ["k1", "k2"], name: ["x", "y"]})
    assert file_attributes(attr, {"k2": 0, "zz": 1}, None) == {"k2": {name: "y"}}


def test_thumbnail_lookup_with_hostile_keys(cwd, review):
    real = review.key[0, 0]
    found = locate(review.shards, ODD_VALUES + [real])
    assert sorted(found.missing) == sorted(ODD_VALUES) and found.index.keys == [real.encode()]


# ---------------------------------------------------------------------------------- query views, paths
def test_query_views_over_files_with_hostile_paths(cwd, tmp_path):
    folder = tmp_path / f"r'un\"; {PWN}; --"
    folder.mkdir()
    pq.write_table(pa.table({"key": ODD_VALUES, "label": list(range(len(ODD_VALUES)))}), folder / "samples.parquet")
    attr = folder / "a'tt\"r.parquet"
    pq.write_table(pa.table({"label": [0], ODD_NAMES[0]: ["v"]}), attr)
    rv = open_run(folder, attributes=attr)
    got = run_query(rv, "SELECT s.key, a.* FROM samples s JOIN attributes a USING (label)").read_all()
    assert got.to_pylist() == [{"key": ODD_VALUES[0], "label": 0, ODD_NAMES[0]: "v"}]
    rv = open_views({"samples": folder / "samples.parquet"})
    got = run_query(rv, "SELECT label FROM samples WHERE key = $k", {"k": ODD_VALUES[0]}).read_all()
    assert got.to_pylist() == [{"label": 0}]

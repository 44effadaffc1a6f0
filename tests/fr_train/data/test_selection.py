"""Selection and relabelling against hand counts on the tiny fake run (see builders.py for its layout)."""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fr_data.folders.run_folder import MINED_SAMPLES_SCHEMA
from fr_data.io.errors import ConfigError, DataError
from fr_data.io.parquet import read_table, write_table
from fr_train.data.config import SelectionConfig
from fr_train.data.selection import LABEL_MAP_SCHEMA, merge_representatives, resolve_selection, summary
from tests.fr_train.data.builders import make_tiny_data


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_tiny_data(tmp_path_factory.mktemp("selection"))


def select(data, **kw):
    return resolve_selection(SelectionConfig(**kw), data.shards, data.run)


def test_no_filter_keeps_everything_with_labels_unchanged(data):
    sel = select(data)
    assert len(sel) == 36 and sel.num_classes == 6
    assert sel.report["dropped"] == {"not_in_run": 0}
    assert all(sel.label_of(data.key[c, i]) == c for c in range(6) for i in range(6))
    assert list(sel.keys) == sorted(sel.keys)


def test_drop_suspects(data):
    sel = select(data, drop_suspects=True)
    assert len(sel) == 34 and sel.report["dropped"]["suspect"] == 2
    assert set(sel.keys) == data.keys_where(lambda c, i: (c, i) not in ((0, 3), (1, 4)))


def test_drop_duplicates_keeps_the_kept_twin(data):
    sel = select(data, drop_duplicates=True)
    kept = set(sel.keys)
    assert data.key[2, 1] not in kept and data.key[2, 0] in kept  # same_class twin
    assert data.key[3, 2] not in kept and data.key[4, 2] in kept  # cross_class twin
    assert len(sel) == 34 and sel.report["dropped"]["duplicate"] == 2


def test_merge_candidates_become_one_class(data):
    sel = select(data, merge_classes=True)
    assert sel.num_classes == 5
    merged = {sel.label_of(data.key[c, i]) for c in (4, 5) for i in range(6)}
    assert merged == {4}
    assert [sel.label_of(data.key[c, 0]) for c in range(4)] == [0, 1, 2, 3]
    assert sel.report["merged_classes"] == 1 and sel.report["merge_groups"] == [[4, 5]]
    assert sel.relabel(np.array([5, 0, 4])).tolist() == [4, 0, 4]


def test_union_find_merges_chains_into_the_smallest_label():
    reps = merge_representatives([(3, 1), (5, 3), (7, 8), (8, 7), (2, 2)])
    assert reps == {1: 1, 3: 1, 5: 1, 7: 7, 8: 7, 2: 2}


def test_split_only(data):
    sel = select(data, splits=["easy"])
    assert set(sel.keys) == data.keys_where(lambda c, i: i <= 2)
    assert sel.report["dropped"]["split"] == 18


def test_combined_filters_match_hand_counts(data):
    sel = select(data, drop_suspects=True, drop_duplicates=True, merge_classes=True,
                 splits=["easy", "medium"])
    # easy+medium = images 0-3 of 6 classes = 24; suspect (0,3) medium (the other, (1,4), is hard);
    # duplicates (2,1) and (3,2) both easy -> 24 - 1 - 2 = 21, classes 4 and 5 merged -> 5 classes
    rep = sel.report
    assert rep["total"] == 36 and rep["selected"] == 21
    assert rep["dropped"] == {"not_in_run": 0, "split": 12, "suspect": 1, "duplicate": 2}
    assert rep["total"] == rep["selected"] + sum(rep["dropped"].values())
    assert sel.num_classes == 5 and sorted(set(sel.labels.tolist())) == [0, 1, 2, 3, 4]


def test_sql_query_and_where(data):
    sel = select(data, query="SELECT key FROM samples WHERE resolution_bin = 'low'")
    assert set(sel.keys) == data.keys_where(lambda c, i: i == 5)
    sel = select(data, where="pose_bin = 'profile' AND label IN (1, 3)")
    assert set(sel.keys) == data.keys_where(lambda c, i: i >= 4 and c in (1, 3))
    # classes 1 and 3 only: relabelled to 0 and 1 in old-label order
    assert sel.label_of(data.key[1, 4]) == 0 and sel.label_of(data.key[3, 5]) == 1 and sel.num_classes == 2
    assert sel.report["dropped"]["where"] == 32


def test_query_can_join_views(data):
    sql = ("SELECT s.key FROM samples s JOIN classes c ON s.label = c.label "
           "WHERE c.merge_candidate AND s.split = 'easy'")
    sel = select(data, query=sql)
    assert set(sel.keys) == data.keys_where(lambda c, i: c in (4, 5) and i <= 2)


def test_unknown_column_is_a_clear_config_error(data):
    with pytest.raises(ConfigError, match=r'selection\.query.*"no_such_column"'):
        select(data, query="SELECT key FROM samples WHERE no_such_column > 1")
    with pytest.raises(ConfigError, match=r"selection\.where.*no_such_column"):
        select(data, where="no_such_column = 1")
    with pytest.raises(ConfigError, match="must return a 'key' column"):
        select(data, query="SELECT label FROM samples")


def _digests(*folders) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest()
            for folder in folders for p in sorted(folder.rglob("*")) if p.is_file()}


def test_query_and_where_are_read_only(data, tmp_path):
    """SQL from a config can read the views only: writes, other files and settings are ConfigErrors."""
    before = _digests(data.run, data.shards)
    (tmp_path / "outside.csv").write_text("key\nk\n")
    copy = f"COPY (SELECT 1 AS x) TO '{data.run / 'samples.parquet'}' (FORMAT parquet)"
    cases = {
        "selection.query": [f"SELECT key FROM samples; {copy}", f"SELECT * FROM read_csv('{tmp_path / 'outside.csv'}')",
                            "SELECT column0 AS key FROM read_csv('/etc/passwd')", "SET enable_external_access = true"],
        "selection.where": [f"true); {copy}; SELECT key FROM samples WHERE (true",
                            "key IN (SELECT column0 FROM read_csv('/etc/passwd'))",
                            f"true); ATTACH '{tmp_path / 'x.db'}' AS d; SELECT key FROM samples WHERE (true"],
    }
    for field_name, sqls in cases.items():
        for sql in sqls:
            kwargs = {field_name.split(".")[1]: sql}
            with pytest.raises(ConfigError, match=rf"^{field_name}: query refused: ") as info:
                select(data, **kwargs)
            assert "\n" not in str(info.value)
    assert _digests(data.run, data.shards) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.csv"]


def test_key_list_text_and_parquet(data, tmp_path):
    wanted = sorted(data.keys_where(lambda c, i: c == 2))
    text = tmp_path / "keys.txt"
    text.write_text("\n".join(wanted) + "\n\n")
    sel = select(data, key_list=str(text))
    assert list(sel.keys) == wanted and sel.num_classes == 1 and set(sel.labels.tolist()) == {0}
    table = tmp_path / "keys.parquet"
    pq.write_table(pa.table({"key": wanted[:2]}), table)
    assert list(select(data, key_list=str(table)).keys) == wanted[:2]


def test_key_list_with_a_key_not_in_the_shards_is_an_error(data, tmp_path):
    text = tmp_path / "bad.txt"
    text.write_text(f"{data.key[0, 0]}\nghost-key\n")
    with pytest.raises(DataError, match="key ghost-key.*not in the shards"):
        select(data, key_list=str(text))


def test_mining_filters_need_a_run(data):
    with pytest.raises(ConfigError, match="need data.run"):
        resolve_selection(SelectionConfig(drop_suspects=True), data.shards, None)
    sel = resolve_selection(SelectionConfig(where="label < 2"), data.shards, None)  # shard manifest only
    assert len(sel) == 12


def test_empty_selection_is_an_error(data):
    with pytest.raises(ConfigError, match="keeps no sample"):
        select(data, where="label > 100")


def test_label_disagreement_with_the_run_is_an_error(data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    table = read_table(data.run / "samples.parquet", MINED_SAMPLES_SCHEMA)
    labels = table.column("label").to_numpy().copy()
    labels[3] += 1
    bad_key = table.column("key")[3].as_py()
    write_table(table.set_column(1, "label", pa.array(labels)), run / "samples.parquet", MINED_SAMPLES_SCHEMA)
    with pytest.raises(DataError, match=f"key {bad_key}.*another label"):
        resolve_selection(SelectionConfig(), data.shards, run)


def test_save_writes_the_label_map_keys_and_report(data, tmp_path):
    sel = select(data, merge_classes=True, where="label <> 1")
    sel.save(tmp_path / "out")
    label_map = read_table(tmp_path / "out" / "label_map.parquet", LABEL_MAP_SCHEMA).to_pydict()
    assert label_map == {"old_label": [0, 2, 3, 4, 5], "new_label": [0, 1, 2, 3, 3]}
    saved = pq.read_table(tmp_path / "out" / "selected.parquet").to_pydict()
    assert saved["key"] == sel.keys.tolist() and saved["label"] == sel.labels.tolist()
    again = select(data, key_list=str(tmp_path / "out" / "selected.parquet"), merge_classes=True)
    assert again.keys.tolist() == sel.keys.tolist() and again.labels.tolist() == sel.labels.tolist()
    assert (tmp_path / "out" / "selection.json").read_text().count('"selected": 30') == 1


def test_key_twice_in_the_run_is_an_error(data, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    table = read_table(data.run / "samples.parquet", MINED_SAMPLES_SCHEMA)
    write_table(pa.concat_tables([table, table.slice(4, 1)]), run / "samples.parquet", MINED_SAMPLES_SCHEMA)
    with pytest.raises(DataError, match=f"key {table.column('key')[4].as_py()}.*more than once"):
        resolve_selection(SelectionConfig(), data.shards, run)


def test_the_summary_says_what_the_selection_did():
    report = {"total": 100, "selected": 90, "dropped": {"key_list": 0, "split": 6, "duplicate": 3, "review": 1},
              "classes_total": 10, "classes_selected": 9, "num_classes": 8, "merged_classes": 1,
              "merge_groups": [[2, 5]],
              "review": {"file": "review.csv", "rows": {"keep": 2, "drop": 1, "merge": 1, "separate": 0},
                         "dropped_by_review": 1, "kept_by_review": 2}}
    assert summary(report).splitlines() == [
        "selection: kept 90 of 100 samples; dropped: 6 split, 3 duplicate, 1 review",
        "  labels: 9 of 10 kept, 1 merged into others (1 group(s)) -> 8 classes",
        "  review review.csv: 2 keep, 1 drop, 1 merge, 0 separate; dropped 1, kept against mining 2"]
    plain = {**report, "dropped": {"split": 0}, "merged_classes": 0, "merge_groups": []}
    del plain["review"]
    assert summary(plain).splitlines()[0] == "selection: kept 90 of 100 samples; dropped: none"

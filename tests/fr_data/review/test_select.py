"""Section picks against brute-force Python rankings of the same tables, capped at n."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from fr_data.io.errors import DataError, SchemaError
from fr_data.review import select
from fr_data.review.page import queries
from tests.fr_data.review.builders import make_review_run


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_review_run(tmp_path_factory.mktemp("select"))


@pytest.fixture(scope="module")
def rows(data):
    return {name: pq.read_table(data.run / f"{name}.parquet").to_pylist() for name in ("samples", "classes", "pairs")}


@pytest.fixture()
def tables(data):
    t = select.open_tables(data.run)
    yield t
    t.con.close()


def test_suspects_ranked_by_margin_then_agreement(tables, rows):
    expected = sorted((r for r in rows["samples"] if r["suspect_mislabel"]),
                      key=lambda r: (r["margin"], r["knn_agreement"], r["key"]))
    picks = select.select(tables, 10, queries())
    assert [r["key"] for r in picks.of("suspects")] == [r["key"] for r in expected] and len(expected) == 2
    assert picks.of("suspects")[0]["suspected_label"] == (expected[0]["label"] + 1) % 6
    assert [r["key"] for r in select.select(tables, 1, queries()).of("suspects")] == [expected[0]["key"]]


def test_duplicates_cross_class_first_with_the_twin_label(tables, data):
    picks = select.select(tables, 10, queries())
    assert [(r["key"], r["duplicate_of"], r["twin_label"], r["duplicate_kind"]) for r in picks.of("duplicates")] == [
        (data.key[3, 2], data.key[4, 2], 4, "cross_class"), (data.key[2, 1], data.key[2, 0], 2, "same_class")]


def test_mutual_merge_candidates_are_one_pair(tables):
    picks = select.select(tables, 10, queries())
    assert [(r["label"], r["other_label"], r["n"], r["other_n"]) for r in picks.of("merges")] == [(4, 5, 6, 6)]
    assert picks.totals["merges"] == 1 and picks.totals["merge_candidate_classes"] == 2


def test_hard_pairs_and_low_quality_are_the_extremes(tables, rows):
    n = 4
    picks = select.select(tables, n, queries())
    pos = sorted((r for r in rows["pairs"] if r["kind"] == "hard_pos"), key=lambda r: r["cos"])[:n]
    neg = sorted((r for r in rows["pairs"] if r["kind"] == "hard_neg"), key=lambda r: -r["cos"])[:n]
    assert [(r["key_a"], r["key_b"]) for r in picks.of("hard_pos")] == [(r["key_a"], r["key_b"]) for r in pos]
    assert [(r["key_a"], r["key_b"]) for r in picks.of("hard_neg")] == [(r["key_a"], r["key_b"]) for r in neg]
    low = sorted((r for r in rows["samples"] if not r["suspect_mislabel"]), key=lambda r: r["quality_cr"])[:n]
    assert [r["key"] for r in picks.of("quality")] == [r["key"] for r in low]
    assert picks.totals["hard_pos"] == 12 and picks.totals["hard_neg"] == 6 and picks.totals["quality"] == 34


def test_central_images_are_the_most_typical_eligible_samples(tables, rows):
    picks = select.select(tables, 10, queries())
    # suspects (0,3) -> 1 and (1,4) -> 2; merges 4 and 5
    assert set(picks.central) == {0, 1, 2, 4, 5}
    for label, keys in picks.central.items():
        eligible = [r for r in rows["samples"] if r["label"] == label and not r["suspect_mislabel"]
                    and r["duplicate_of"] is None]
        best = sorted(eligible, key=lambda r: -r["center_cos"])[:select.CENTRAL]
        assert keys == [r["key"] for r in best]


def test_labels_with_few_eligible_images_fill_up_with_the_rest(data, tmp_path):
    import pyarrow as pa

    from fr_data.folders.run_folder import MINED_SAMPLES_SCHEMA
    from fr_data.io.parquet import read_table, write_table

    table = read_table(data.run / "samples.parquet", MINED_SAMPLES_SCHEMA)
    suspect = pa.array([lab == 0 and i > 0 for i, lab in enumerate(table.column("label").to_pylist())])
    run = tmp_path / "run"
    run.mkdir()
    write_table(table.set_column(table.column_names.index("suspect_mislabel"), "suspect_mislabel", suspect),
                run / "samples.parquet", MINED_SAMPLES_SCHEMA)
    (run / "classes.parquet").write_bytes((data.run / "classes.parquet").read_bytes())
    t = select.open_tables(run)
    central = select.central_images(t, {0})[0]
    first = [r["key"] for r in table.to_pylist() if r["label"] == 0][0]
    assert len(central) == 4 and central[0] == first  # the only eligible image leads, suspects fill up


def test_totals_match_a_direct_count(tables, rows):
    t = select.totals(tables, queries())
    s = rows["samples"]
    assert t["samples"] == 36 and t["classes"] == 6
    assert t["suspects"] == sum(r["suspect_mislabel"] for r in s) == 2
    assert t["duplicates"] == 2 and t["cross_class_duplicates"] == 1


def test_keys_lists_every_shown_image_with_its_label(tables):
    picks = select.select(tables, 3, queries())
    keys = picks.keys()
    for r in picks.of("duplicates"):
        assert keys[r["duplicate_of"]] == r["twin_label"]
    for label, central in picks.central.items():
        assert all(keys[k] == label for k in central)


def test_missing_or_malformed_run_files(data, tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        select.open_tables(tmp_path / "nothing")
    run = tmp_path / "run"
    run.mkdir()
    (run / "samples.parquet").write_bytes((data.run / "samples.parquet").read_bytes())
    with pytest.raises(DataError, match="classes.parquet.*review page needs it"):
        select.open_tables(run)
    (run / "classes.parquet").write_bytes((data.run / "pairs.parquet").read_bytes())
    with pytest.raises(SchemaError, match="classes.parquet.*missing column"):
        select.open_tables(run)
    (run / "classes.parquet").write_bytes(b"not parquet")
    with pytest.raises(DataError, match="not a readable Parquet"):
        select.open_tables(run)
    (run / "classes.parquet").write_bytes((data.run / "classes.parquet").read_bytes())
    t = select.open_tables(run)
    assert t.present == {"samples", "classes"} and len(t.notes) == 4  # run.json, pairs, groups, sweep
    picks = select.select(t, 5, queries())
    assert picks.of("hard_pos") == [] and picks.totals["hard_pos"] == 0 and len(picks.of("suspects")) == 2

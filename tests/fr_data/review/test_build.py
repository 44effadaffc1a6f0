"""build_report end to end on a small run with real shards: the folder, its counts, atomic publication,
missing keys, empty runs and attribute tables."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fr_data.io.errors import ConfigError, DataError
from fr_data.folders.report_folder import INDEX_FILE, MANIFEST_FILE, read_manifest, thumb_name
from fr_data.folders.run_folder import CLASSES_SCHEMA, MINED_SAMPLES_SCHEMA
from fr_data.io.parquet import read_table, write_table
from fr_data.review import build_report, figures
from tests.fr_data.review.builders import make_review_run
from tests.fr_train.data.builders import make_shards


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_review_run(tmp_path_factory.mktemp("build"))


@pytest.fixture(scope="module")
def built(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("out") / "report"
    return out, build_report(data.run, data.shards, out, per_section=3)


@pytest.fixture()
def no_charts(monkeypatch):
    """Skip the charts (tested in test_figures.py and by the first test here): they are most of a build's time."""
    monkeypatch.setattr(figures, "CHARTS", {})


def copy_run(data, folder: Path, samples: pa.Table | None = None, classes: pa.Table | None = None) -> Path:
    folder.mkdir()
    for name in ("pairs", "groups", "sweep"):
        (folder / f"{name}.parquet").write_bytes((data.run / f"{name}.parquet").read_bytes())
    (folder / "run.json").write_text((data.run / "run.json").read_text())
    write_table(samples if samples is not None else read_table(data.run / "samples.parquet", MINED_SAMPLES_SCHEMA),
                folder / "samples.parquet", MINED_SAMPLES_SCHEMA)
    write_table(classes if classes is not None else read_table(data.run / "classes.parquet", CLASSES_SCHEMA),
                folder / "classes.parquet", CLASSES_SCHEMA)
    return folder


def test_the_folder_holds_the_page_thumbnails_charts_and_manifest(built, data):
    out, result = built
    assert result.index == out / INDEX_FILE and result.index.is_file()
    m = read_manifest(out)
    assert m == json.loads(json.dumps(result.manifest, default=str))
    assert m["sections"] == {"suspects": {"total": 2, "shown": 2}, "duplicates": {"total": 2, "shown": 2},
                             "merges": {"total": 1, "shown": 1}, "hard_pos": {"total": 12, "shown": 3},
                             "hard_neg": {"total": 6, "shown": 3}, "quality": {"total": 34, "shown": 3}}
    images = sorted(p.name for p in (out / "img").iterdir())
    assert len(images) == m["thumbnails"] and m["missing_keys"] == [] and m["failed_images"] == {}
    text = result.index.read_text()
    for name in images:
        assert f"img/{name}" in text
    assert sorted(p.name for p in (out / "figures").iterdir()) == sorted(f"{n}.png" for n in figures.CHARTS)
    assert [p.name for p in out.parent.iterdir()] == ["report"]  # no temporary folder left
    assert m["run_id"] in text and m["run_json_sha256"].startswith(m["run_id"])


def test_an_existing_folder_needs_overwrite_and_a_failed_build_leaves_nothing(data, tmp_path, monkeypatch,
                                                                              no_charts):
    out = tmp_path / "report"
    out.mkdir()
    with pytest.raises(DataError, match="already exists"):
        build_report(data.run, data.shards, out)
    build_report(data.run, data.shards, out, overwrite=True, per_section=1)
    assert (out / MANIFEST_FILE).is_file()

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr(figures, "draw_all", broken)
    with pytest.raises(RuntimeError):
        build_report(data.run, data.shards, tmp_path / "second")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
    with pytest.raises(ConfigError, match="per-section"):
        build_report(data.run, data.shards, tmp_path / "third", per_section=-1)


def test_keys_missing_from_the_shards_are_listed_not_fatal(data, tmp_path, no_charts):
    half = tmp_path / "half"
    make_shards(half, [c for c in range(3) for _ in range(6)], per_shard=7)  # classes 0-2 only
    result = build_report(data.run, half, tmp_path / "report")
    shown_missing = result.manifest["missing_keys"]
    assert shown_missing and all(k in {data.key[c, i] for c in range(3, 6) for i in range(6)} for k in shown_missing)
    assert data.key[3, 2] in shown_missing  # the cross-class duplicate
    text = result.index.read_text()
    assert 'id="missing"' in text and data.key[3, 2] + "</code> \u2013 not found in the shards" in text
    assert thumb_name(data.key[3, 2]) not in text and thumb_name(data.key[0, 3]) in text
    assert not (tmp_path / "report" / thumb_name(data.key[3, 2])).exists()


def test_a_run_that_flagged_nothing_says_so(data, tmp_path, no_charts):
    samples = read_table(data.run / "samples.parquet", MINED_SAMPLES_SCHEMA)
    n = samples.num_rows
    for name, value in (("suspect_mislabel", pa.array([False] * n)), ("duplicate_of", pa.nulls(n, pa.string())),
                        ("suspected_label", pa.nulls(n, pa.int64())), ("duplicate_kind", pa.nulls(n, pa.string()))):
        samples = samples.set_column(samples.column_names.index(name), name, value)
    classes = read_table(data.run / "classes.parquet", CLASSES_SCHEMA)
    classes = classes.set_column(classes.column_names.index("merge_candidate"), "merge_candidate",
                                 pa.array([False] * classes.num_rows))
    run = copy_run(data, tmp_path / "run", samples, classes)
    result = build_report(run, data.shards, tmp_path / "report")
    text = result.index.read_text()
    assert 'id="nothing-flagged"' in text and "data-key" not in text.split("<main>")[1].split('id="hard-pairs"')[0]
    assert result.manifest["sections"]["suspects"] == {"total": 0, "shown": 0}


def test_a_run_with_no_rows_builds_a_page_without_charts(data, tmp_path):
    run = copy_run(data, tmp_path / "run", MINED_SAMPLES_SCHEMA.empty_table(), CLASSES_SCHEMA.empty_table())
    for name in ("pairs", "groups"):
        (run / f"{name}.parquet").unlink()
    result = build_report(run, data.shards, tmp_path / "report")
    text = result.index.read_text()
    assert 'id="nothing-flagged"' in text and "This run has no pairs.parquet" in text
    assert result.manifest["thumbnails"] == 0 and result.manifest["figures"] == {}
    assert any("pairs.parquet is missing" in n for n in result.manifest["notes"])


def test_an_attribute_table_is_shown_with_the_images(data, tmp_path, no_charts):
    keys = sorted(data.key.values())
    attrs = tmp_path / "attrs.parquet"
    pq.write_table(pa.table({"key": keys, "yaw": [float(i) for i in range(len(keys))]}), attrs)
    result = build_report(data.run, data.shards, tmp_path / "report", attributes=attrs)
    suspect = data.key[0, 3]
    assert f"yaw {float(keys.index(suspect)):.3g}" in result.index.read_text()
    with pytest.raises(DataError, match="attribute file does not exist"):
        build_report(data.run, data.shards, tmp_path / "other", attributes=tmp_path / "none.parquet")
    assert not (tmp_path / "other").exists()


def test_attribute_columns_of_the_run_are_shown_by_default(data, tmp_path, no_charts):
    samples = read_table(data.run / "samples.parquet", MINED_SAMPLES_SCHEMA)
    samples = samples.append_column("true_label", pa.array([f"T{v}" for v in samples.column("label").to_pylist()]))
    run = copy_run(data, tmp_path / "run", samples)
    text = build_report(run, data.shards, tmp_path / "report").index.read_text()
    assert "true_label T0" in text

"""Every row traceable to its file: a WebFace-style identity folder is sharded, embedded (planted vectors
with one exact copy), mined with ``--samples``; the shipped ``files_to_delete`` query and ``hardmine
export`` name files that exist in the source folder, and a relabel map for a merge decision."""

from __future__ import annotations

import csv
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from fr_data.folders.shard_folder import read_provenance
from fr_data.ingest.image_folder import ImageFolderSource
from fr_data.ingest.plan import ShardOptions
from fr_data.ingest.sharding import write_shards
from fr_data.mining import mine
from fr_data.review import figures
from fr_data.review.build import build_report
from hardmine.cli import export, query
from tests.fr_data.embed.helpers import jpeg
from tests.fr_data.mining.planted import brute_knn, write_emb
from tests.golden.scenario import absolute_thresholds
from tests.repo import ROOT

IDENTITIES = ("0000045", "0000099", "0000102", "0000107")
PER_IDENTITY = 5
COPY, TWIN = 7, 6  # row COPY's vector is row TWIN's (same identity; rows in key order)


def identity_folder(root: Path) -> Path:
    """root/<identity>/<NNN>.jpg, WebFace style: 4 identities of 5 JPEGs; image COPY is a byte copy of
    image TWIN (so the pixel check of duplicate candidates confirms the planted pair)."""
    for i, name in enumerate(IDENTITIES):
        (root / name).mkdir(parents=True)
        for j in range(PER_IDENTITY):
            row = PER_IDENTITY * i + j
            source = TWIN if row == COPY else row
            (root / name / f"{j + 1:03d}.jpg").write_bytes(jpeg(100 * (source // PER_IDENTITY) + source % PER_IDENTITY))
    return root


def planted_embeddings(manifest: Path, folder: Path) -> Path:
    """An EMB folder for the manifest's samples: one random centre per label plus noise (within-class
    cosine about 0.4), and row COPY an exact copy of row TWIN (cosine 1: a near-duplicate)."""
    table = pq.read_table(manifest, columns=["key", "label"]).sort_by("key")
    labels = table.column("label").to_numpy()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((len(IDENTITIES), 32))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[labels] + rng.normal(0, 0.25, (len(labels), 32))
    x[COPY] = x[TWIN]
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    n = len(labels)
    truth = SimpleNamespace(keys=table.column("key").to_pylist(), labels=labels,
                            flip_cos=np.full(n, 0.9, np.float32), resolution=np.full(n, 0.8, np.float32))
    return write_emb(folder, x.astype(np.float32), truth, dtype=np.float32)


@pytest.fixture(scope="module")
def curated(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("curate")
    root = identity_folder(tmp / "webface")
    shards = tmp / "shards"
    write_shards(ImageFolderSource(root), shards, ShardOptions(per_shard=8, seed=1))
    emb = planted_embeddings(shards / "samples.parquet", tmp / "EMB")
    mine(emb, tmp / "RUN", absolute_thresholds(), samples=shards / "samples.parquet", knn=brute_knn)
    return SimpleNamespace(root=root, shards=shards, run=tmp / "RUN", tmp=tmp)


def test_the_shard_manifest_names_each_file_and_identity(curated):
    table = read_provenance(curated.shards / "samples.parquet").sort_by("key")
    rows = table.to_pylist()
    assert len(rows) == len(IDENTITIES) * PER_IDENTITY
    for row in rows:  # source_index = position in sorted (identity, file) order
        i = int(row["key"])
        assert row["source_path"] == f"{IDENTITIES[i // PER_IDENTITY]}/{i % PER_IDENTITY + 1:03d}.jpg"
        assert row["identity"] == IDENTITIES[row["label"]]
        assert (curated.root / row["source_path"]).is_file()


def test_mining_copies_the_provenance_by_key(curated):
    samples = pq.read_table(curated.run / "samples.parquet").to_pylist()
    manifest = {r["key"]: r for r in read_provenance(curated.shards / "samples.parquet").to_pylist()}
    assert all(r["source_path"] == manifest[r["key"]]["source_path"] for r in samples)
    assert all(r["identity"] == IDENTITIES[r["label"]] for r in samples)
    classes = pq.read_table(curated.run / "classes.parquet").to_pylist()
    assert [(c["label"], c["identity"]) for c in classes] == list(enumerate(IDENTITIES))


def _delete_list(run: Path, out: Path) -> list[dict]:
    sql = ROOT / "manifests" / "queries" / "files_to_delete.sql"  # shipped as hardmine.queries
    assert query.main([str(run), "--file", str(sql), "--csv", str(out)]) == 0
    with out.open(newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_delete_query_returns_files_that_exist(curated, tmp_path, capsys):
    rows = _delete_list(curated.run, tmp_path / "without_review.csv")
    # one of the two identical images is the removed copy (which one is mining's tie-break)
    files = {f"{COPY:09d}": "0000099/003.jpg", f"{TWIN:09d}": "0000099/002.jpg"}
    assert len(rows) == 1 and rows[0]["source_path"] == files[rows[0]["key"]]
    (kept,) = set(files) - {rows[0]["key"]}
    assert rows[0]["reason"] == f"duplicate of {kept}" and (curated.root / rows[0]["source_path"]).is_file()
    (curated.run / "review.csv").write_text(f"key,decision\n000000001,drop\n{rows[0]['key']},keep\n")
    try:
        rows = _delete_list(curated.run, tmp_path / "with_review.csv")
    finally:
        (curated.run / "review.csv").unlink()
    assert [(r["source_path"], r["reason"]) for r in rows] == [("0000045/002.jpg", "review: drop")]
    assert all((curated.root / r["source_path"]).is_file() for r in rows)


def test_export_writes_the_dropped_files_and_a_relabel_map(curated, tmp_path, capsys):
    review = tmp_path / "review.csv"
    review.write_text("key,decision\n000000001,drop\n000000016,drop\n000000010,merge:2:3\n")
    out = tmp_path / "out" / "list.txt"
    out.parent.mkdir()
    assert export.main(["--review", str(review), "--shards", str(curated.shards), "--out", str(out)]) == 0
    listed = out.read_text().splitlines()
    assert listed == ["0000045/002.jpg", "0000107/002.jpg"]
    assert all((curated.root / p).is_file() for p in listed)
    with (out.parent / "relabel.csv").open(newline="") as handle:
        relabel = list(csv.DictReader(handle))
    # label 3 (0000107) joins label 2 (0000102); its dropped image 002 is deleted, not moved
    assert [(r["source_path"], r["identity"], r["new_identity"], r["label"], r["new_label"]) for r in relabel] == [
        (f"0000107/{j:03d}.jpg", "0000107", "0000102", "3", "2") for j in (1, 3, 4, 5)]
    assert "2 file(s) to delete" in capsys.readouterr().out


def test_export_moves_relabelled_files_as_training_relabels_them(curated, tmp_path, capsys):
    review = tmp_path / "review.csv"
    review.write_text("key,decision,section\n"
                      "000000001,drop,duplicates\n"      # dropped: deleted, never moved
                      "000000001,relabel:2,suspects\n"
                      "000000003,relabel:1,suspects\n"   # 0000045/004.jpg joins 0000099
                      "000000006,relabel:3,suspects\n"   # to label 3, which the merge folds into 2
                      "000000017,relabel:0,suspects\n"   # out of the merged label 3, to label 0
                      "000000012,relabel:2,suspects\n"   # its own label: not moved
                      "000000010,merge:2:3,merges\n")
    out = tmp_path / "list.txt"
    assert export.main(["--review", str(review), "--shards", str(curated.shards), "--out", str(out)]) == 0
    assert out.read_text().splitlines() == ["0000045/002.jpg"]
    with (tmp_path / "relabel.csv").open(newline="") as handle:
        relabel = [tuple(r.values()) for r in csv.DictReader(handle)]
    assert relabel == [
        ("0000045/004.jpg", "0000045", "0000099", "0", "1"),
        ("0000099/002.jpg", "0000099", "0000102", "1", "2"),
        ("0000107/001.jpg", "0000107", "0000102", "3", "2"),
        ("0000107/002.jpg", "0000107", "0000102", "3", "2"),
        ("0000107/003.jpg", "0000107", "0000045", "3", "0"),
        ("0000107/004.jpg", "0000107", "0000102", "3", "2"),
        ("0000107/005.jpg", "0000107", "0000102", "3", "2"),
    ]
    assert all((curated.root / r[0]).is_file() and (curated.root / r[2]).is_dir() for r in relabel)
    assert "7 file(s) to move" in capsys.readouterr().out


def test_export_refuses_a_relabel_to_a_label_without_a_sample(curated, tmp_path, capsys):
    review = tmp_path / "review.csv"
    review.write_text("key,decision,section\n000000003,relabel:9,suspects\n")
    assert export.main(["--review", str(review), "--shards", str(curated.shards),
                        "--out", str(tmp_path / "list.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "review.csv (line 2)" in err and "label 9" in err and "\n" not in err
    assert not (tmp_path / "list.txt").exists() and not (tmp_path / "relabel.csv").exists()


def test_export_refuses_a_key_the_shards_do_not_hold(curated, tmp_path, capsys):
    review = tmp_path / "review.csv"
    review.write_text("key,decision\nnot-a-key,drop\n")
    assert export.main(["--review", str(review), "--shards", str(curated.shards),
                        "--out", str(tmp_path / "list.txt")]) == 2
    err = capsys.readouterr().err.strip()
    assert "review.csv (line 2)" in err and "not-a-key" in err and "\n" not in err
    assert not (tmp_path / "list.txt").exists()


def test_export_refuses_shards_without_provenance(curated, tmp_path, capsys):
    old = tmp_path / "old"
    old.mkdir()
    table = pq.read_table(curated.shards / "samples.parquet").drop_columns(["source_path", "identity"])
    pq.write_table(table, old / "samples.parquet")
    review = tmp_path / "review.csv"
    review.write_text("key,decision\n000000001,drop\n")
    assert export.main(["--review", str(review), "--shards", str(old), "--out", str(tmp_path / "l.txt")]) == 2
    assert "has no source_path/identity columns" in capsys.readouterr().err


def test_the_review_page_names_each_card_file_and_identity(curated, tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "CHARTS", {})  # charts are most of a build's time (tested elsewhere)
    result = build_report(curated.run, curated.shards, tmp_path / "report")
    text = result.index.read_text()
    removed = pq.read_table(curated.run / "samples.parquet").filter(pc.is_valid(pc.field("duplicate_of")))
    (row,) = removed.to_pylist()
    assert f"{row['source_path']} \u00b7 {row['key']}" in text  # the duplicate card's file and key
    assert "copy \u00b7 0000099 (label 1)" in text

"""A shard manifest or shard folder of another data set is refused by ``mine --samples`` and ``report``.

Two folders share every key (keys are source indices) and differ only in their shards' content hashes
(``shards.json``) or in one label: the fingerprint embedding records catches the first, the keys, count
and labels check (what an embeddings folder without a fingerprint gets) the second.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fr_data.embed.run import embed_folder
from fr_data.folders.shard_folder import fingerprint
from hardmine.cli import mine, report
from tests.fr_data.embed.helpers import make_tiny
from tests.fr_data.mining.planted import PlantedSpec, make_planted, write_emb
from tests.fr_data.review.builders import make_review_run
from tests.fr_train.data.builders import make_shards


def shard_folder(folder: Path, keys: list[str], labels: list[int], sha: str) -> Path:
    """A manifest (key, label, source_index) and a shards.json whose one shard has content hash ``sha``."""
    folder.mkdir(parents=True)
    pq.write_table(pa.table({"key": keys, "label": pa.array(labels, pa.int64()),
                             "source_index": pa.array(range(len(keys)), pa.int64())}), folder / "samples.parquet")
    listing = {"shards": [{"name": "shard-000000.tar", "count": len(keys), "bytes": 10240, "sha256": sha}]}
    (folder / "shards.json").write_text(json.dumps(listing))
    return folder / "samples.parquet"


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("origin")
    x, truth = make_planted(PlantedSpec(identities=8, per_identity=(4, 6), seed=1))
    emb = write_emb(tmp / "EMB", x, truth)
    keys, labels = list(truth.keys), [int(v) for v in truth.labels]
    ours = shard_folder(tmp / "ours", keys, labels, "a" * 64)
    other = shard_folder(tmp / "other", keys, labels, "b" * 64)
    relabelled = shard_folder(tmp / "relabelled", keys, labels[:-1] + [labels[-1] + 1], "a" * 64)
    shorter = shard_folder(tmp / "shorter", keys[:-1], labels[:-1], "a" * 64)
    return emb, ours, other, relabelled, shorter


def mine_with(emb: Path, samples: Path, out: Path, fingerprint_of: Path | None) -> tuple[int, str]:
    info = json.loads((emb / "run.json").read_text())
    info.pop("shards_fingerprint", None)
    if fingerprint_of is not None:
        info["shards_fingerprint"] = fingerprint(fingerprint_of.parent)
    (emb / "run.json").write_text(json.dumps(info))
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = mine.main(["--embeddings", str(emb), "--out", str(out), "--samples", str(samples), "--quiet"])
    return rc, err.getvalue().strip()


def test_fingerprints_differ_with_shard_content_only(inputs):
    _, ours, other, relabelled, _ = inputs
    assert fingerprint(ours.parent) == fingerprint(relabelled.parent) != fingerprint(other.parent)
    assert fingerprint(ours.parent / "nowhere") is None


def test_mine_accepts_its_own_manifest_and_records_its_fingerprint(inputs, tmp_path):
    emb, ours, *_ = inputs
    rc, err = mine_with(emb, ours, tmp_path / "RUN", fingerprint_of=ours)
    assert rc == 0 and "error" not in err, err  # (plausibility warnings of this tiny set may be printed)
    recorded = json.loads((tmp_path / "RUN" / "run.json").read_text())["inputs"]["samples_fingerprint"]
    assert recorded == fingerprint(ours.parent)


def test_mine_refuses_another_data_set_by_fingerprint(inputs, tmp_path):
    emb, ours, other, *_ = inputs
    rc, err = mine_with(emb, other, tmp_path / "RUN", fingerprint_of=ours)
    assert rc == 2 and err.count("\n") == 0, err
    assert str(other.parent / "shards.json") in err and str(emb / "run.json") in err
    assert not (tmp_path / "RUN").exists()


@pytest.mark.parametrize("which, where", [("relabelled", "label of key"), ("shorter", "samples but")])
def test_mine_without_a_recorded_fingerprint_checks_keys_count_and_labels(inputs, tmp_path, which, where):
    emb, _, other, relabelled, shorter = inputs
    assert mine_with(emb, other, tmp_path / "ok", fingerprint_of=None)[0] == 0  # same keys and labels
    samples = {"relabelled": relabelled, "shorter": shorter}[which]
    rc, err = mine_with(emb, samples, tmp_path / "RUN", fingerprint_of=None)
    assert rc == 2 and err.count("\n") == 0 and str(samples) in err and str(emb / "index.parquet") in err, err
    assert where in err and not (tmp_path / "RUN").exists()


def test_embedding_records_the_shard_folder_fingerprint(tmp_path):
    data = make_review_run(tmp_path / "data")
    info = embed_folder(make_tiny(), data.shards, tmp_path / "EMB", batch_size=8, progress=False)
    assert info["shards_fingerprint"] == fingerprint(data.shards) is not None


@pytest.fixture(scope="module")
def review(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("review")
    data = make_review_run(tmp / "data")
    labels = [c for c in range(6) for _ in range(6)][::-1]  # the same 36 keys, other labels and images
    make_shards(tmp / "other", labels)
    return data, tmp / "other"


def report_of(run: Path, shards: Path, out: Path, capsys) -> tuple[int, str]:
    rc = report.main([str(run), "--shards", str(shards), "--out", str(out), "--per-section", "2", "--quiet"])
    return rc, capsys.readouterr().err.strip()


def test_report_refuses_shards_other_than_the_recorded_ones(review, tmp_path, capsys):
    data, other = review
    run = tmp_path / "run"
    shutil.copytree(data.run, run)
    info = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**info, "inputs": {"samples_fingerprint": fingerprint(data.shards)}}))
    assert report_of(run, data.shards, tmp_path / "ok", capsys)[0] == 0
    rc, err = report_of(run, other, tmp_path / "r", capsys)
    assert rc == 2 and err.count("\n") == 0 and str(other / "shards.json") in err and str(run / "run.json") in err
    assert not (tmp_path / "r").exists()


def test_report_without_a_fingerprint_compares_the_labels_of_shared_keys(review, tmp_path, capsys):
    data, other = review
    rc, err = report_of(data.run, other, tmp_path / "r", capsys)
    assert rc == 2 and err.count("\n") == 0 and str(other / "samples.parquet") in err, err
    assert str(data.run / "samples.parquet") in err and "label differs" in err
    assert not (tmp_path / "r").exists()
    assert report_of(data.run, data.shards, tmp_path / "ok", capsys)[0] == 0

"""A shard that disagrees with its manifest is a DataError naming the shard and the member, in every reader.

Four crafted disagreements of the first shard of a real shard folder (``tests/fr_train/data/builders.py``):
one sample more than ``samples.parquet`` lists, a sample stored under ``sub/dir/KEY``, the last listed sample
missing, and a sample renamed to a key the manifest does not hold. Each is read by the sequential reader
(embedding), the DDP train stream, the random-access index (training's reader, evaluation, the review
page), the training data pipeline and ``verify`` (which lists it as a problem); the embed and report commands
are run once each on one of them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fr_data.folders.shard_folder import SHARD_INDEX_FILE, list_shards
from fr_data.formats.tario import TarWriter, group_members
from fr_data.ingest.verify import verify_shards
from fr_data.io.errors import DataError
from fr_data.loading.loader import ShardStream, iter_samples
from fr_data.loading.shard_index import ShardIndex
from fr_train.data.pipeline import build_train_data
from hardmine.cli import embed, report
from tests.fr_data.review.builders import make_review_run
from tests.fr_train.data.builders import TinyData, tiny_data_config
from tests.hardmine.cli.helpers import TINY

Members = list[tuple[str, dict[str, bytes]]]


def _extra(samples: Members) -> tuple[Members, str]:
    return samples + [("999999", samples[0][1])], "999999.cls"


def _subdir(samples: Members) -> tuple[Members, str]:
    key = samples[0][0]
    return samples + [(f"sub/dir/{key}", samples[0][1])], f"sub/dir/{key}.cls"


def _missing(samples: Members) -> tuple[Members, str]:
    return samples[:-1], f"{samples[-1][0]}.jpg"


def _foreign(samples: Members) -> tuple[Members, str]:
    return [("999999", samples[0][1])] + samples[1:], "999999.cls"


CRAFTS = {"extra": _extra, "subdir": _subdir, "missing": _missing, "foreign": _foreign}


def craft(folder: Path, kind: str) -> tuple[Path, str]:
    """Rewrite the first shard of ``folder`` with disagreement ``kind``; return it and the member to name."""
    shard = list_shards(folder)[0]
    samples, member = CRAFTS[kind](list(group_members(shard)))
    with open(shard, "wb") as stream:
        writer = TarWriter(stream)
        for key, members in samples:
            writer.add_many([(f"{key}.{ext}", data) for ext, data in members.items()])
        writer.finish()
    (folder / SHARD_INDEX_FILE).unlink(missing_ok=True)
    return shard, member


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> TinyData:
    return make_review_run(tmp_path_factory.mktemp("agreement"))


@pytest.fixture(params=sorted(CRAFTS))
def crafted(request, clean, tmp_path) -> tuple[TinyData, Path, str]:
    data = TinyData(tmp_path / "shards", tmp_path / "run", clean.key, clean.classes, clean.per_class)
    shutil.copytree(clean.shards, data.shards)
    shutil.copytree(clean.run, data.run)
    return (data, *craft(data.shards, request.param))


def assert_names(error: pytest.ExceptionInfo, shard: Path, member: str) -> None:
    assert error.value.path == str(shard) and error.value.where == f"member {member}", error.value
    assert "disagrees with its manifest" in error.value.reason


def test_the_clean_folder_reads_in_every_reader(clean):
    assert len(list(iter_samples(list_shards(clean.shards)))) == 36
    assert len(ShardIndex.open(clean.shards, cache=False)) == 36
    build_train_data(tiny_data_config(clean), rank=0, world_size=1)


def test_sequential_reader(crafted):
    data, shard, member = crafted
    with pytest.raises(DataError) as error:
        list(iter_samples(list_shards(data.shards)))
    assert_names(error, shard, member)


def test_train_stream(crafted):
    data, shard, member = crafted
    shards = list_shards(data.shards)  # counts above the real ones: every sample of every shard is read
    stream = ShardStream(shards, batch_size=1, counts=[100] * len(shards), shuffle=False, rank=0, world_size=1)
    with pytest.raises(DataError) as error:
        list(stream.iter_worker(0, 1))
    assert_names(error, shard, member)


def test_random_access_index(crafted):
    data, shard, member = crafted
    with pytest.raises(DataError) as error:
        ShardIndex.open(data.shards)
    assert_names(error, shard, member)
    assert not (data.shards / SHARD_INDEX_FILE).exists()  # nothing cached that a later reader would trust


def test_training_data_pipeline(crafted):
    data, shard, member = crafted
    with pytest.raises(DataError) as error:
        build_train_data(tiny_data_config(data), rank=0, world_size=1)
    assert_names(error, shard, member)


def test_verify_names_the_shard_and_the_sample(crafted):
    data, shard, member = crafted
    key = member.rsplit(".", 1)[0]
    problems = verify_shards(data.shards)
    assert any(p.startswith(f"{shard.name}: ") and key in p for p in problems), problems


def test_embed_command(clean, tmp_path, capsys):
    shards = tmp_path / "shards"
    shutil.copytree(clean.shards, shards)
    shard, member = craft(shards, "extra")
    argv = ["--shards", str(shards), "--model", TINY, "--out", str(tmp_path / "EMB"), "--device", "cpu",
            "--workers", "0", "--batch-size", "4", "--no-progress"]
    assert embed.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(shard) in err and f"member {member}" in err, err
    assert not (tmp_path / "EMB").exists()


def test_report_command(clean, tmp_path, capsys):
    shards = tmp_path / "shards"
    shutil.copytree(clean.shards, shards)
    shard, member = craft(shards, "subdir")
    assert report.main([str(clean.run), "--shards", str(shards), "--out", str(tmp_path / "r"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and str(shard) in err and f"member {member}" in err, err
    assert not (tmp_path / "r").exists()

"""Tests of fr_data.ingest.shards: plan, tar content, manifest, webdataset/tar readability, resume, bad input."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import webdataset as wds
from PIL import Image

from fr_data.folders.shard_folder import REJECTED_SCHEMA, SAMPLES_SCHEMA, read_samples
from fr_data.formats import recordio as rio
from fr_data.formats.images import header_size
from fr_data.ingest.inspect import inspect_image
from fr_data.ingest.plan import ShardOptions, make_plan
from fr_data.ingest.recordio_source import RecordIOSource
from fr_data.ingest.sharding import write_shards
from fr_data.ingest.source import read_each
from fr_data.ingest.verify import verify_shards
from fr_data.io.errors import ConfigError, DataError
from fr_data.io.parquet import read_table
from fr_data.io.policy import ErrorPolicy
from tests.fr_data.ingest.helpers import TRUNCATED, WHOLE, FakeSource, tiny_image


def folder_bytes(out: Path) -> dict[str, bytes]:
    """Every visible output file's bytes (plan.json, shards, manifests), by name."""
    return {p.name: p.read_bytes() for p in sorted(out.iterdir()) if p.is_file()}


# ---------------------------------------------------------------------------------------------- plan
def test_plan_equal_sizes_multiple_of_and_full_coverage():
    source = FakeSource(n=103)
    plan, order = make_plan(source, ShardOptions(per_shard=10, multiple_of=4, seed=3))
    assert plan.num_shards == 12  # ceil(103/10)=11 rounded up to a multiple of 4
    counts = [b - a for a, b in (plan.bounds(i) for i in range(plan.num_shards))]
    assert sum(counts) == 103 and max(counts) - min(counts) <= 1
    assert sorted(order.tolist()) == list(range(1, 104))
    assert order.tolist() != list(range(1, 104))  # shuffled
    assert plan.key(7) == "000000007"


def test_plan_limit_and_refusals():
    plan, order = make_plan(FakeSource(n=50), ShardOptions(per_shard=8, limit=20, seed=1))
    assert plan.num_samples == 20 and len(set(order.tolist())) == 20 and plan.num_shards == 3
    with pytest.raises(ConfigError, match="at least as many"):
        make_plan(FakeSource(n=5), ShardOptions(per_shard=1, multiple_of=8))
    with pytest.raises(ConfigError):
        ShardOptions(per_shard=5, shard_bytes=1000)


def test_shard_bytes_estimate():
    source = FakeSource(n=60)
    mean = np.mean([len(source.image(i)) for i in range(1, 61)])
    plan, _ = make_plan(source, ShardOptions(shard_bytes=int(10 * (mean + 3072))))
    assert plan.num_shards in (6, 7)  # ~10 samples per shard


# --------------------------------------------------------------------------------------- tar content
def test_shards_content_manifest_and_mixing(tmp_path):
    source = FakeSource(n=40, per_class=10, png=(5,))
    run = write_shards(source, tmp_path / "out", ShardOptions(per_shard=10, seed=0, decode_check=1.0))
    out = run.out
    table = read_samples(out)
    assert table.num_rows == 40 and set(SAMPLES_SCHEMA.names) <= set(table.column_names)
    rows = table.to_pylist()
    for row in rows:
        data = source.image(row["source_index"])
        assert row["key"] == f"{row['source_index']:09d}" and "." not in row["key"]
        assert row["label"] == source.label_of(row["source_index"])
        assert row["sha256"] == hashlib.sha256(data).hexdigest() and row["bytes"] == len(data)
        assert (row["width"], row["height"]) == (16, 12) and row["decoded_ok"] is True
        assert row["ext"] == ("png" if row["source_index"] == 5 else "jpg")
    per_shard = {}
    for row in rows:
        per_shard.setdefault(row["shard"], set()).add(row["label"])
    assert len(per_shard) == 4 and all(len(labels) >= 2 for labels in per_shard.values())
    listing = json.loads((out / "shards.json").read_text())
    assert [s["count"] for s in listing["shards"]] == [10, 10, 10, 10]
    tar0 = out / "shard-000000.tar"
    assert listing["shards"][0]["sha256"] == hashlib.sha256(tar0.read_bytes()).hexdigest()
    assert read_table(out / "rejected.parquet", REJECTED_SCHEMA).num_rows == 0
    assert not (out / ".parts").exists()
    assert verify_shards(out) == []


def test_shards_read_by_webdataset_and_tar(tmp_path):
    source = FakeSource(n=30)
    run = write_shards(source, tmp_path / "out", ShardOptions(per_shard=7, seed=5))
    urls = [str(run.out / s.name) for s in run.shards]
    seen = {}
    for sample in wds.WebDataset(urls, shardshuffle=False, empty_check=False):
        seen[sample["__key__"]] = sample
    assert len(seen) == 30
    for key, sample in seen.items():
        meta = json.loads(sample["json"])
        assert sample["json"] == json.dumps(meta, sort_keys=True, separators=(",", ":")).encode()
        index = meta["source_index"]
        assert int(key) == index and sample["jpg"] == source.image(index)
        assert int(sample["cls"]) == source.label_of(index)
    listed = subprocess.run(["tar", "-tf", urls[0]], capture_output=True, text=True, check=True).stdout.split()
    first = read_samples(run.out).to_pylist()[0]
    assert listed[:3] == [f"{first['key']}.cls", f"{first['key']}.jpg", f"{first['key']}.json"]
    assert len(listed) == 3 * run.shards[0].count


# ----------------------------------------------------------------------------------- determinism/resume
def test_byte_identical_across_runs_and_worker_counts(tmp_path):
    options = ShardOptions(per_shard=6, seed=2)
    write_shards(FakeSource(n=30), tmp_path / "a", options, workers=1)
    write_shards(FakeSource(n=30), tmp_path / "b", options, workers=3)
    assert folder_bytes(tmp_path / "a") == folder_bytes(tmp_path / "b")


def test_resume_after_crash_matches_uninterrupted_run(tmp_path):
    options = ShardOptions(per_shard=5, seed=4)
    write_shards(FakeSource(n=30), tmp_path / "ref", options)
    out = tmp_path / "out"
    with pytest.raises(RuntimeError, match="simulated crash"):
        write_shards(FakeSource(n=30, fail_after=17), out, options)
    assert not (out / "samples.parquet").exists() and not (out / "shards.json").exists()
    finals = sorted(p.name for p in out.glob("shard-*.tar"))
    assert finals == ["shard-000000.tar", "shard-000001.tar", "shard-000002.tar"]  # complete ones only
    assert not [p for p in out.iterdir() if ".tmp-" in p.name]
    rerun_source = FakeSource(n=30)
    run = write_shards(rerun_source, out, options)
    assert run.resumed == 3 and rerun_source.reads == 15  # the three finished shards were not rewritten
    assert folder_bytes(out) == folder_bytes(tmp_path / "ref")
    again = write_shards(FakeSource(n=30), out, options)
    assert again.already_complete and folder_bytes(out) == folder_bytes(tmp_path / "ref")


def _shard_in_child(out: str) -> None:
    write_shards(FakeSource(n=40, delay=0.01), out, ShardOptions(per_shard=5, seed=9))


def test_resume_after_sigkill(tmp_path):
    options = ShardOptions(per_shard=5, seed=9)
    write_shards(FakeSource(n=40), tmp_path / "ref", options)
    out = tmp_path / "out"
    child = multiprocessing.get_context("fork").Process(target=_shard_in_child, args=(str(out),))
    child.start()
    deadline = time.monotonic() + 30
    while not (out / ".parts" / "shard-000001.samples.parquet").exists():
        assert time.monotonic() < deadline and child.is_alive()
        time.sleep(0.005)
    os.kill(child.pid, signal.SIGKILL)
    child.join()
    assert not (out / "samples.parquet").exists()
    write_shards(FakeSource(n=40), out, options)
    assert folder_bytes(out) == folder_bytes(tmp_path / "ref")
    assert verify_shards(out) == []


def test_rerun_with_other_arguments_is_refused(tmp_path):
    write_shards(FakeSource(n=20), tmp_path / "out", ShardOptions(per_shard=5, seed=1))
    with pytest.raises(ConfigError, match="different plan"):
        write_shards(FakeSource(n=20), tmp_path / "out", ShardOptions(per_shard=5, seed=2))
    with pytest.raises(ConfigError, match="different plan"):
        write_shards(FakeSource(n=20), tmp_path / "out", ShardOptions(per_shard=4, seed=1))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        write_shards(FakeSource(n=20), tmp_path / "other", ShardOptions(per_shard=5))


def test_decode_check_fraction_is_spread_and_recorded(tmp_path):
    """A fraction f decodes floor(n * f) evenly spread samples (decoded_ok True), the rest stay null."""
    options = ShardOptions(per_shard=7, seed=1, decode_check=0.25)
    run = write_shards(FakeSource(n=24), tmp_path / "out", options)
    rows = read_samples(run.out).to_pylist()  # manifest rows follow the global order
    assert [r["decoded_ok"] for r in rows] == [True if p % 4 == 3 else None for p in range(24)]
    header_only = write_shards(FakeSource(n=24), tmp_path / "none", ShardOptions(per_shard=7, seed=1, decode_check=0))
    assert read_samples(header_only.out).column("decoded_ok").null_count == 24
    with pytest.raises(ConfigError, match="fraction"):
        ShardOptions(decode_check=1.5)


def test_sampled_decode_check_misses_truncated_data_but_full_check_rejects_it(tmp_path):
    source = FakeSource(n=8, bad={5: TRUNCATED})
    run = write_shards(source, tmp_path / "out", ShardOptions(per_shard=4, decode_check=0))
    assert run.num_samples == 8  # the header is intact: only a full decode sees the cut data
    with pytest.raises(DataError, match=r"key 5.*does not decode"):
        write_shards(source, tmp_path / "full", ShardOptions(per_shard=4, decode_check=1))


# ------------------------------------------------------------------------------------------ bad input
def test_bad_record_aborts_naming_file_and_key(tmp_path):
    source = FakeSource(n=20, bad={7: b"GIF89a not an image"})
    with pytest.raises(DataError, match=r"train\.rec \(key 7\)") as info:
        write_shards(source, tmp_path / "out", ShardOptions(per_shard=5))
    assert info.value.where == "key 7"
    assert not (tmp_path / "out" / "samples.parquet").exists()
    assert not [p for p in (tmp_path / "out").iterdir() if ".tmp-" in p.name]


def test_bad_record_aborts_with_workers(tmp_path):
    source = FakeSource(n=20, bad={13: TRUNCATED})
    with pytest.raises(DataError, match=r"key 13.*does not decode"):
        write_shards(source, tmp_path / "out", ShardOptions(per_shard=5, decode_check=True), workers=2)
    assert not (tmp_path / "out" / "samples.parquet").exists()


def test_skip_corrupt_records_rejections(tmp_path):
    source = FakeSource(n=20, bad={3: b"nonsense", 11: TRUNCATED})
    run = write_shards(source, tmp_path / "out", ShardOptions(per_shard=5, errors=ErrorPolicy.SKIP, decode_check=1))
    rejected = read_table(run.out / "rejected.parquet", REJECTED_SCHEMA).to_pylist()
    assert sorted(r["index"] for r in rejected) == [3, 11]
    assert all(r["source"] == "/fake/train.rec" for r in rejected)
    assert {r["index"]: r["where"] for r in rejected} == {3: "key 3", 11: "key 11"}
    reasons = {r["index"]: r["reason"] for r in rejected}
    assert "not a JPEG/PNG" in reasons[3] and reasons[11].startswith("image does not decode")
    samples = read_samples(run.out)
    assert samples.num_rows == 18 and {3, 11}.isdisjoint(samples.column("source_index").to_pylist())
    assert run.num_samples == 18 and verify_shards(run.out) == []


@pytest.mark.parametrize("options", [{"quality": 90}, {"progressive": True}, {"comment": b"x" * 300},
                                     {"subsampling": 0, "quality": 50}])
def test_header_size_matches_pil(options):
    pixels = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", **options)
    assert header_size(buf.getvalue()) == ("jpg", (53, 37))
    assert header_size(tiny_image(0, size=(9, 4), fmt="PNG")) == ("png", (9, 4))
    assert header_size(b"GIF89a") is None
    assert header_size(b"\xff\xd8\xff\xda\x00\x02") == ("jpg", None)  # scan before any frame header


def test_inspect_image_header_only_and_errors():
    info = inspect_image(tiny_image(1, size=(20, 10)), "f.rec", "key 1", decode=False)
    assert (info.ext, info.width, info.height, info.decoded_ok) == ("jpg", 20, 10, None)
    with pytest.raises(DataError, match=r"f\.rec \(key 2\): image does not decode"):
        inspect_image(TRUNCATED, "f.rec", "key 2")
    assert inspect_image(TRUNCATED, "f.rec", "key 2", decode=False).width == 32  # the header alone is fine
    with pytest.raises(DataError, match="without a readable size header"):
        inspect_image(WHOLE[:60], "f.rec", "key 3", decode=False)


# -------------------------------------------------------------------------------- batched RecordIO reads
class PerRecord:
    """A source whose ``read_many`` reads one record at a time (the RecordIO batch read bypassed)."""

    def __init__(self, source):
        self._source = source

    def __getattr__(self, name: str):
        return getattr(self._source, name)

    def __len__(self) -> int:
        return len(self._source)

    def read_many(self, indices):
        return read_each(self._source, indices)


def recordio_folder(folder: Path) -> Path:
    """A headerless RecordIO set of 40 records: JPEGs, PNGs, split records and bad records."""
    magic = rio.MAGIC_BYTES
    bad = {5: rio.pack_image_record(1, b"GIF89a not an image"), 11: b"short",
           17: rio.pack_image_record(2.5, tiny_image(17)), 23: rio.pack_image_record(9, tiny_image(23)),
           29: rio.pack_image_record(1, TRUNCATED)}
    with rio.RecordIOWriter(folder / "train.rec", folder / "train.idx") as writer:
        for i in range(40):
            image = tiny_image(i, fmt="PNG" if i % 7 == 3 else "JPEG") + (magic * 2 if i % 6 == 1 else b"")
            writer.write(i, bad.get(i, rio.pack_image_record([i % 4, 1.0] if i % 2 else i % 4, image)))
    (folder / "property").write_text("4,112,112\n")
    return folder


def test_read_many_equals_one_read_per_record_keeping_order_and_errors(tmp_path, monkeypatch):
    source = RecordIOSource(recordio_folder(tmp_path))
    calls, read_many = [], source.read_many

    def counted(indices):
        calls.append(list(indices))
        return read_many(indices)

    monkeypatch.setattr(source, "read_many", counted)
    indices = [31, 5, 0, 39, 11, 7, 7, 17, 23, 29, 3, 99]
    batched, single = source.read_many(indices), read_each(source, indices)
    assert len(calls) == 1
    described = [(type(r), str(r)) if isinstance(r, DataError) else r for r in batched]
    assert described == [(type(r), str(r)) if isinstance(r, DataError) else r for r in single]
    assert [isinstance(r, DataError) for r in batched] == [i in (5, 11, 17, 23, 99) for i in indices]


@pytest.mark.parametrize("workers", [1, 2])
def test_recordio_shards_are_byte_identical_with_and_without_read_many(tmp_path, workers):
    folder = recordio_folder(tmp_path / "rec")
    options = ShardOptions(per_shard=7, seed=3, errors=ErrorPolicy.SKIP, decode_check=0.5)
    many = write_shards(RecordIOSource(folder), tmp_path / "many", options, workers=workers)
    write_shards(PerRecord(RecordIOSource(folder)), tmp_path / "one", options, workers=1)
    assert folder_bytes(tmp_path / "many") == folder_bytes(tmp_path / "one")
    assert many.rejected.num_rows >= 4 and verify_shards(many.out) == []


# ------------------------------------------------------------------------------------------ verifying
def test_verify_detects_tampering(tmp_path):
    run = write_shards(FakeSource(n=20), tmp_path / "out", ShardOptions(per_shard=5, seed=0))
    out = run.out
    tar = out / "shard-000001.tar"
    raw = bytearray(tar.read_bytes())
    raw[600] ^= 0xFF  # inside the first member's payload (after the 512-byte header)
    tar.write_bytes(bytes(raw))
    (out / "shard-000003.tar").unlink()
    table = pq.read_table(out / "samples.parquet")
    labels = table.column("label").to_pylist()
    labels[0] += 1
    table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(labels, pa.int64()))
    pq.write_table(table, out / "samples.parquet")
    problems = "\n".join(verify_shards(out))
    assert "shard-000001.tar: sha256 differs" in problems
    assert "shard-000003.tar: missing" in problems
    assert "shard-000000.tar: sample" in problems and "label" in problems


def test_verify_refuses_unfinished_folder(tmp_path):
    with pytest.raises(DataError, match="did not finish"):
        verify_shards(tmp_path)


def test_verify_detects_reordered_keys(tmp_path):
    run = write_shards(FakeSource(n=8), tmp_path / "out", ShardOptions(per_shard=4, seed=0))
    table = pq.read_table(run.out / "samples.parquet")
    swapped = pa.concat_tables([table.slice(1, 1), table.slice(0, 1), table.slice(2)])
    pq.write_table(swapped, run.out / "samples.parquet")
    problems = verify_shards(run.out)
    first, second = table.column("key")[0].as_py(), table.column("key")[1].as_py()
    assert f"shard-000000.tar: sample 1 has key {first}, the manifest has {second}" in problems
    assert len(problems) == 2

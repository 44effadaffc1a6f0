"""Tests of tools/verify_shards.py: exit codes and the mismatches it prints."""

from __future__ import annotations

import json

from fr_data.ingest.plan import ShardOptions
from fr_data.ingest.sharding import write_shards
from hardmine.cli import verify as verify_shards
from tests.fr_data.ingest.helpers import FakeSource


def test_verify_ok_then_reports_each_mismatch(tmp_path, capsys):
    out = tmp_path / "out"
    write_shards(FakeSource(n=18), out, ShardOptions(per_shard=6, seed=0))
    assert verify_shards.main([str(out)]) == 0
    assert "OK, 3 shards, 18 samples" in capsys.readouterr().out

    listing = json.loads((out / "shards.json").read_text())
    listing["shards"][2]["count"] = 5
    (out / "shards.json").write_text(json.dumps(listing))
    (out / "shard-000001.tar").write_bytes((out / "shard-000001.tar").read_bytes()[:2048])
    (out / "shard-000009.tar").write_bytes(b"")
    assert verify_shards.main([str(out)]) == 1
    printed = capsys.readouterr().out
    assert "MISMATCH shard-000002.tar: shards.json count 5 != 6 manifest rows" in printed
    assert "MISMATCH shard-000001.tar: sha256 differs" in printed
    assert "MISMATCH shard-000001.tar: unreadable" in printed and "truncated" in printed
    assert "MISMATCH shard-000009.tar: tar file not listed in shards.json" in printed


def test_verify_unfinished_folder_exits_2(tmp_path, capsys):
    assert verify_shards.main([str(tmp_path)]) == 2
    assert "did not finish" in capsys.readouterr().err


def test_verify_unreadable_manifest_exits_2(tmp_path, capsys):
    out = tmp_path / "out"
    write_shards(FakeSource(n=4), out, ShardOptions(per_shard=2))
    (out / "samples.parquet").write_bytes(b"not parquet")
    assert verify_shards.main([str(out)]) == 2
    assert "samples.parquet: not a readable Parquet file" in capsys.readouterr().err


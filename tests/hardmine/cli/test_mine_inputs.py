"""hardmine mine on damaged inputs: embeddings folders (.npy damage, shape mismatch, index defects) and
shard manifests given with --samples. Every case exits 0 or 2; on 2 the one error line names the file
(and the row where one is at fault); no run folder and no staging folder is left (seeded, small)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from fr_data.io.hashing import file_sha256
from hardmine.cli import mine
from tests.damage import BYTE_KINDS, COLUMN_KINDS, applicable, damage_bytes, damage_column, names_row
from tests.fr_data.mining.planted import PlantedSpec, make_planted, write_emb


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    x, truth = make_planted(PlantedSpec(identities=8, per_identity=(4, 6), seed=1))
    folder = write_emb(tmp_path_factory.mktemp("emb") / "EMB", x, truth)
    info = json.loads((folder / "run.json").read_text())  # as tools/embed.py records it
    (folder / "run.json").write_text(json.dumps({**info, "sha256": file_sha256(folder / "embeddings.npy")}))
    keys = pq.read_table(folder / "index.parquet").column("key").to_pylist()
    manifest = folder.parent / "samples.parquet"
    pq.write_table(pa.table({"key": keys, "source_index": pa.array(np.arange(len(keys)) * 3, pa.int64())}),
                   manifest)
    return folder, manifest


def _run(emb, out, samples=None) -> tuple[int, str]:
    err = io.StringIO()
    argv = ["--embeddings", str(emb), "--out", str(out), "--quiet"]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = mine.main(argv + (["--samples", str(samples)] if samples else []))
    return rc, err.getvalue()


def _check(rc: int, err: str, out, path, row: bool) -> None:
    assert rc in (0, 2), err
    assert not (out.parent / f".{out.name}.partial").exists()  # no staging left either way
    if rc == 2:
        line = err.strip().splitlines()[-1]
        assert line.startswith(f"hardmine mine: error: {path}") and err.strip().count("\n") == 0, err
        assert "row" in line or not row, line
        assert not out.exists()


NPY_KINDS = BYTE_KINDS + ("fewer_rows", "one_dimensional", "integers", "objects")


def _damaged_npy(x: np.ndarray, kind: str, rng: np.random.Generator, path) -> bool:
    """Write a damaged ``embeddings.npy`` (half the byte damage in the vectors, past the header); return
    whether the damage may go unnoticed."""
    arrays = {"fewer_rows": x[:-2], "one_dimensional": x.reshape(-1), "integers": x.astype(np.int32),
              "objects": np.array([None] * len(x), dtype=object)}
    if kind in arrays:
        np.save(path, arrays[kind], allow_pickle=True)
        return False
    data = path.read_bytes()
    header = len(data) - x.nbytes
    path.write_bytes(damage_bytes(data, kind, rng, start=header if rng.random() < 0.5 else 0))
    return False  # run.json records the file's sha256


@pytest.mark.parametrize("seed", range(12))
def test_damaged_embeddings_file(clean, tmp_path, seed):
    emb, _ = clean
    folder = tmp_path / "EMB"
    shutil.copytree(emb, folder)
    rng = np.random.default_rng(seed)
    kind = NPY_KINDS[seed % len(NPY_KINDS)]
    unnoticed = _damaged_npy(np.load(emb / "embeddings.npy"), kind, rng, folder / "embeddings.npy")
    rc, err = _run(folder, tmp_path / "RUN")
    _check(rc, err, tmp_path / "RUN", folder, row=kind == "truncation" and "header" not in err)
    assert rc == 2 or unnoticed, (kind, err)


@pytest.mark.parametrize("seed", range(12))
def test_damaged_index_or_shard_manifest(clean, tmp_path, seed):
    emb, manifest = clean
    folder = tmp_path / "EMB"
    shutil.copytree(emb, folder)
    shutil.copy(manifest, tmp_path / "samples.parquet")
    rng = np.random.default_rng(seed)
    target = (folder / "index.parquet", tmp_path / "samples.parquet")[seed % 2]
    table = pq.read_table(target)
    column = ("key", ("label", "source_index")[seed % 2])[int(rng.integers(2))]
    kind = COLUMN_KINDS[seed // 2 % len(COLUMN_KINDS)]
    kind = applicable(kind, table.schema.field(column))
    pq.write_table(damage_column(table, column, kind, int(rng.integers(table.num_rows))), target)
    rc, err = _run(folder, tmp_path / "RUN", tmp_path / "samples.parquet")
    _check(rc, err, tmp_path / "RUN", target, row=names_row(kind, table.schema.field(column)))
    harmless = kind == "duplicate" and column == "label"  # labels repeat
    assert rc == (0 if harmless else 2), (target.name, column, kind, err)
    if harmless:
        return
    assert f"'{column}'" in err or f"{column} " in err, err

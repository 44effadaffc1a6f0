"""The pixel check of near-duplicate candidates: it confirms copies the embedding rule misses and rejects
distinct photos the embedding rule flags.

Tiny data with both images and embeddings: 4 identities x 6 images, every image its own random grey
texture (distinct photos correlate near 0), plus two re-encoded copies (+1 level noise): row 24 copies
row 0, row 25 copies row 6. The embeddings are planted by hand with ``duplicates.cos`` 0.99 (candidate
floor 1 - 2 x 0.01 = 0.98): the copy 24 of 0 at cosine 0.999 (both rules find it), the copy 25 of 6 at
0.985 (a near miss: only the pixel check finds it), and the distinct photos 12 and 13 of identity 2 at
0.999 (a burst: only the embedding rule flags it). Every other pair is below 0.95.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from fr_data.folders.run_folder import read as read_run_table
from fr_data.folders.shard_folder import read_samples
from fr_data.ingest.plan import ShardOptions
from fr_data.ingest.sharding import write_shards
from fr_data.ingest.source import SourceRecord
from fr_data.mining import MiningConfig, mine
from fr_data.mining.duplicates import find_duplicates
from fr_data.mining.pixel_check import candidate_floor, check_candidates, grey_thumbnail
from tests.fr_train.data.builders import MemorySource

COPIES = {24: 0, 25: 6}  # copy row -> original row
BURST = (12, 13)


def jpeg(pixels: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).convert("RGB").save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def texture(seed: int) -> np.ndarray:
    """A smooth random grey texture (8x8 blocks upsampled), 112 x 112."""
    small = np.random.default_rng(seed).integers(30, 220, (14, 14))
    return np.kron(small, np.ones((8, 8))).astype(np.float64)


def images() -> list[bytes]:
    base = [texture(i) for i in range(24)]
    rng = np.random.default_rng(99)
    copies = [np.clip(base[src] + rng.integers(-1, 2, base[src].shape), 0, 255) for src in COPIES.values()]
    return [jpeg(p) for p in base + copies]


class BytesSource(MemorySource):
    """A memory source whose image ``i`` is ``data[i]``."""

    def __init__(self, labels: list[int], data: list[bytes], path: Path):
        super().__init__(labels, path)
        self.data = data

    def read(self, index: int) -> SourceRecord:
        return SourceRecord(int(index), self.labels[index], self.data[index])


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def at_cos(v: np.ndarray, cos: float, rng: np.random.Generator) -> np.ndarray:
    """A unit vector at exactly ``cos`` to unit ``v``."""
    u = rng.standard_normal(v.shape)
    u = _unit(u - (u @ v) * v)
    return cos * v + np.sqrt(1 - cos ** 2) * u


def vectors() -> tuple[np.ndarray, list[int]]:
    rng = np.random.default_rng(5)
    centres = _unit(rng.standard_normal((4, 32)))
    labels = [i // 6 for i in range(24)]
    x = _unit(centres[labels] + 0.45 * rng.standard_normal((24, 32)) / np.sqrt(32) * 4)
    x[BURST[1]] = at_cos(x[BURST[0]], 0.999, rng)
    x = np.vstack([x, at_cos(x[0], 0.999, rng), at_cos(x[6], 0.985, rng)])
    return x, labels + [labels[src] for src in COPIES.values()]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return pixel_data(tmp_path_factory.mktemp("pixel"))


def pixel_data(tmp: Path) -> tuple[Path, dict[int, str], np.ndarray]:
    """Shards of the planted images and an EMB folder of their vectors (in key order) in ``tmp``."""
    x, labels = vectors()
    write_shards(BytesSource(labels, images(), tmp / "memory"), tmp / "shards", ShardOptions(per_shard=10, seed=0))
    manifest = read_samples(tmp / "shards", columns=["key", "source_index"])
    key = dict(zip(manifest.column("source_index").to_pylist(), manifest.column("key").to_pylist()))
    order = sorted(range(len(labels)), key=lambda i: key[i])
    emb = tmp / "EMB"
    emb.mkdir()
    np.save(emb / "embeddings.npy", x[order].astype(np.float32))
    pq.write_table(pa.table({"key": [key[i] for i in order], "label": pa.array([labels[i] for i in order],
                                                                                pa.int64())}), emb / "index.parquet")
    (emb / "run.json").write_text(json.dumps({"model": {"name": "planted"}, "count": len(x)}))
    return tmp, key, x


def planted_pairs_cosines_are_as_stated(x: np.ndarray) -> None:
    g = x @ x.T
    np.fill_diagonal(g, 0)
    assert g[24, 0] == pytest.approx(0.999) and g[25, 6] == pytest.approx(0.985) and g[12, 13] == pytest.approx(0.999)
    g[[24, 0, 25, 6, 12, 13], [0, 24, 6, 25, 13, 12]] = 0
    assert g.max() < 0.95


def found_pairs(tmp: Path, key: dict[int, str], pixel_min: float | None) -> tuple[set, dict]:
    cfg = MiningConfig()
    cfg.duplicates.cos, cfg.duplicates.pixel_min = 0.99, pixel_min
    out = tmp / f"run_{pixel_min}"
    result = mine(tmp / "EMB", out, cfg, samples=tmp / "shards" / "samples.parquet")
    row = {k: i for i, k in key.items()}
    t = read_run_table(out, "samples", columns=["key", "duplicate_of", "duplicate_pixel_sim"]).to_pylist()
    pairs = {frozenset((row[r["key"]], row[r["duplicate_of"]])) for r in t if r["duplicate_of"] is not None}
    sims = {row[r["key"]]: r["duplicate_pixel_sim"] for r in t}
    return pairs, {"run": result.run, "sims": sims}


def test_planted_data_is_as_described(data):
    planted_pairs_cosines_are_as_stated(data[2])


def test_pixel_check_finds_the_near_miss_copy_and_rejects_the_burst(data):
    tmp, key, _ = data
    pairs, info = found_pairs(tmp, key, 0.985)
    assert pairs == {frozenset((24, 0)), frozenset((25, 6))}  # precision and recall 1
    check = info["run"]["duplicates_pixel_check"]
    assert check["candidates"] == 3 and check["confirmed"] == 2 and check["rejected"] == 1
    assert check["candidate_cos_floor"] == pytest.approx(0.98)
    assert info["sims"][24] > 0.99 and info["sims"][25] > 0.99 and info["sims"][12] < 0.5
    assert info["sims"][1] is None  # no candidate pair


def test_embedding_rule_alone_flags_the_burst_and_misses_the_copy(data):
    tmp, key, _ = data
    pairs, info = found_pairs(tmp, key, None)
    assert pairs == {frozenset((24, 0)), frozenset((12, 13))}  # precision 1/2, recall 1/2
    assert info["run"]["duplicates_pixel_check"] == {"skipped": "duplicates.pixel_min is null"}
    assert all(v is None for v in info["sims"].values())


def test_thumbnail_correlation_ignores_brightness_and_contrast():
    base = texture(1)
    a, b = grey_thumbnail(jpeg(base)), grey_thumbnail(jpeg(base * 0.7 + 40))
    assert float(a @ b) > 0.99
    assert abs(float(a @ grey_thumbnail(jpeg(texture(2))))) < 0.5
    assert not grey_thumbnail(jpeg(np.full((112, 112), 128.0))).any()  # flat image: zeros, no NaN


def test_check_candidates_and_confirmed_edges():
    ids = np.array([[1, 2], [0, 2], [0, 1]])
    sims = np.array([[0.995, 0.97], [0.995, 0.97], [0.97, 0.97]])
    pics = [jpeg(texture(1)), jpeg(texture(1) + 1), jpeg(texture(3))]
    check = check_candidates(ids, sims, 0.99, 2.0, 0.985, lambda r: pics[r])
    assert candidate_floor(0.99, 2.0) == pytest.approx(0.98) and check.floor == pytest.approx(0.98)
    assert len(check.a) == 1 and check.confirmed.tolist() == [True]  # 0.97 pairs are below the floor
    d = find_duplicates(ids, sims, 0.99, np.array([1.0, 0.0, 0.0]), edges=check.edges())
    assert d.of.tolist() == [-1, 0, -1]

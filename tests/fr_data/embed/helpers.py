"""Shared helpers of the embedding tests: a tiny deterministic backbone (also a ``--model`` SPEC:
``tests.fr_data.embed.helpers:make_tiny``), textured face-sized JPEGs and shard folders built from them."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from PIL import Image
from torch import nn

EMB_DIM = 16


def make_tiny() -> nn.Module:
    """A small, deterministic, left-right asymmetric backbone: 3x112x112 -> 16 (used as a SPEC too)."""
    with torch.random.fork_rng():
        torch.manual_seed(0)
        return nn.Sequential(nn.Conv2d(3, 8, 5, stride=4), nn.ReLU(), nn.AdaptiveAvgPool2d(4), nn.Flatten(),
                             nn.Linear(128, EMB_DIM)).eval()


def texture(seed: int, size: int = 112) -> np.ndarray:
    """RGB uint8 texture with a natural-image-like spectrum: equal-amplitude octaves of smooth noise."""
    rng = np.random.default_rng(seed)
    img = np.zeros((size, size, 3))
    for cells in (7, 14, 28, 56, 112):
        octave = rng.normal(size=(cells, cells, 3)).astype(np.float32)
        img += np.stack([np.asarray(Image.fromarray(octave[..., c]).resize((size, size), Image.BICUBIC))
                         for c in range(3)], axis=-1)
    return np.clip(128 + 25 * img, 0, 255).astype(np.uint8)


def jpeg(seed: int, factor: int = 1) -> bytes:
    """A 112x112 JPEG of :func:`texture`, optionally down- then up-sampled by ``factor``."""
    img = Image.fromarray(texture(seed))
    if factor > 1:
        img = img.resize((112 // factor, 112 // factor), Image.BILINEAR).resize((112, 112), Image.BICUBIC)
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=92)
    return buf.getvalue()


def write_shard(path: Path, samples: list[tuple[str, int, bytes]]) -> None:
    """A WebDataset shard written with the standard library's tarfile: KEY.cls, KEY.jpg, KEY.json."""
    with tarfile.open(path, "w") as tar:
        for key, label, data in samples:
            for ext, payload in (("cls", str(label).encode()), ("jpg", data), ("json", b"{}")):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(payload)
                tar.addfile(info, io.BytesIO(payload))


def make_shards(folder: Path, n: int = 12, n_shards: int = 3, *, manifest: bool = True,
                corrupt: str | None = None) -> list[tuple[str, int, bytes]]:
    """Shards holding ``n`` samples in a shuffled (not key-sorted) order, plus samples.parquet.

    Returns the samples sorted by key. ``corrupt`` names a key whose image bytes are truncated.
    """
    folder.mkdir(parents=True, exist_ok=True)
    samples = [(f"{i:06d}", i % 3, jpeg(i, factor=(1, 2, 4)[i % 3])) for i in range(n)]
    if corrupt is not None:
        samples = [(k, lab, d[:200] if k == corrupt else d) for k, lab, d in samples]
    order = np.random.default_rng(7).permutation(n)
    rows: dict[str, list] = {"key": [], "label": [], "shard": []}
    for s in range(n_shards):
        name = f"shard-{s:06d}.tar"
        part = [samples[i] for i in order[s * n // n_shards:(s + 1) * n // n_shards]]
        write_shard(folder / name, part)
        for key, label, _ in part:
            rows["key"].append(key)
            rows["label"].append(label)
            rows["shard"].append(name)
    if manifest:
        pq.write_table(pa.table(rows), folder / "samples.parquet")
    return sorted(samples)

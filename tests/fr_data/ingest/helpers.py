"""Shared helpers of the ingest tests: tiny deterministic images and an in-memory source."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from fr_data.ingest.source import read_each
from fr_data.io.errors import DataError


def tiny_image(seed: int, size: tuple[int, int] = (16, 12), fmt: str = "JPEG") -> bytes:
    """A small deterministic image whose pixels depend on ``seed``."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format=fmt, **({"quality": 90} if fmt == "JPEG" else {}))
    return buf.getvalue()


@dataclass(frozen=True)
class Rec:
    source_index: int
    label: int
    data: bytes


class FakeSource:
    """In-memory Source: keys 1..n, ``per_class`` consecutive images per label; optional bad records."""

    def __init__(self, n: int = 40, per_class: int = 10, path: str = "/fake/train.rec",
                 bad: dict[int, bytes] | None = None, png: tuple[int, ...] = (), fail_after: int | None = None,
                 delay: float = 0.0):
        self.path = Path(path)
        self.n, self.per_class = n, per_class
        self.num_classes = (n + per_class - 1) // per_class
        self.bad, self.png = bad or {}, set(png)
        self.fail_after, self.delay, self.reads = fail_after, delay, 0

    def __len__(self) -> int:
        return self.n

    def indices(self) -> np.ndarray:
        return np.arange(1, self.n + 1, dtype=np.int64)

    def label_of(self, index: int) -> int:
        return (index - 1) // self.per_class

    def image(self, index: int) -> bytes:
        if index in self.bad:
            return self.bad[index]
        return tiny_image(index, fmt="PNG" if index in self.png else "JPEG")

    def read(self, index: int) -> Rec:
        self.reads += 1
        if self.fail_after is not None and self.reads > self.fail_after:
            raise RuntimeError("simulated crash")
        time.sleep(self.delay)
        data = self.image(index)
        if not (data.startswith(b"\xff\xd8\xff") or data.startswith(b"\x89PNG")):
            raise DataError(self.path, f"key {index}", "payload is not a JPEG/PNG image")
        return Rec(index, self.label_of(index), data)

    def read_many(self, indices):
        return read_each(self, indices)

    def locate(self, index: int) -> tuple[Path, str]:
        return self.path, f"key {index}"

    def describe(self) -> dict:
        return {"kind": "fake", "images": self.n}


WHOLE = tiny_image(999, size=(32, 32))
TRUNCATED = WHOLE[:len(WHOLE) // 2]  # headers intact, entropy-coded data cut

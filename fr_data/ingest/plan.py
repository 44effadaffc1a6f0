"""The sharding plan: how a source is cut into shards, resolved once and fingerprinted.

Samples are shuffled globally with a seeded permutation before they are cut into shards, so every
shard mixes identities; shard ``i`` of ``S`` holds positions ``[i*n//S, (i+1)*n//S)`` of that order, so
counts differ by at most one (minus rejected records). A rerun with a different plan (source, seed,
sizes, limit, decode check) is refused. The worker count and the error policy are not part of the plan:
they do not change a successful run's output.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fr_data.folders.shard_folder import FORMAT_VERSION, shard_name
from fr_data.ingest.source import Source
from fr_data.io.errors import ConfigError, DataError
from fr_data.io.policy import ErrorPolicy

DEFAULT_PER_SHARD = 10_000
DEFAULT_DECODE_CHECK = 1.0  # fraction of samples fully decoded with PIL (the rest: header parse only)
TAR_OVERHEAD = 3 * 512 + 2 * 512 + 512  # three headers, small cls/json payloads, average padding


@dataclass(frozen=True)
class ShardOptions:
    """How to cut a source into shards (everything here except ``errors`` is in the plan).

    Args:
        per_shard: samples per shard (default 10,000 when ``shard_bytes`` is not given either).
        shard_bytes: target bytes per shard instead; estimated from the first 256 records of the order.
        seed: seed of the global permutation.
        multiple_of: round the shard count up to a multiple of this (world_size x loader workers).
        limit: keep only the first ``limit`` samples of the permuted order (a random subset).
        decode_check: fraction in [0, 1] of samples fully decoded with PIL (True = 1, False = 0). Every
            image's JPEG/PNG header is parsed for its size; the decoded ones must also decode to that
            size. The sample at position ``p`` of the global order is decoded when
            ``floor((p + 1) * f) > floor(p * f)``: evenly spread and independent of the worker count.
        errors: what the shard writer does with a bad record (``ErrorPolicy.SKIP``: list it in
            ``rejected.parquet`` and go on; the default ``ErrorPolicy.STRICT``: abort); the same object the
            source was opened with.
    """

    per_shard: int | None = None
    shard_bytes: int | None = None
    seed: int = 0
    multiple_of: int = 1
    limit: int | None = None
    decode_check: float = DEFAULT_DECODE_CHECK
    errors: ErrorPolicy = ErrorPolicy.STRICT

    def __post_init__(self) -> None:
        object.__setattr__(self, "decode_check", float(self.decode_check))
        if not 0.0 <= self.decode_check <= 1.0:
            raise ConfigError(f"decode_check is a fraction in [0, 1], got {self.decode_check}")
        if self.per_shard is not None and self.shard_bytes is not None:
            raise ConfigError("give per_shard or shard_bytes, not both")
        for name in ("per_shard", "shard_bytes", "multiple_of", "limit"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be >= 1, got {value}")


@dataclass(frozen=True)
class ShardPlan:
    """The fully resolved plan; its fingerprint guards resumption."""

    source: str
    source_count: int
    source_digest: str
    num_classes: int
    seed: int
    limit: int | None
    num_samples: int
    num_shards: int
    key_width: int
    decode_check: float
    format_version: int = FORMAT_VERSION

    def fingerprint(self) -> str:
        """sha256 of the plan's canonical JSON."""
        text = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def shard_name(self, shard_id: int) -> str:
        return shard_name(shard_id)

    def bounds(self, shard_id: int) -> tuple[int, int]:
        """Positions ``[start, stop)`` of the permuted order that go into shard ``shard_id``."""
        n, s = self.num_samples, self.num_shards
        return shard_id * n // s, (shard_id + 1) * n // s

    def key(self, source_index: int) -> str:
        return f"{source_index:0{self.key_width}d}"

    def decoded(self, start: int, stop: int) -> list[bool]:
        """Which positions in ``[start, stop)`` of the global order get the full decode check."""
        positions = np.arange(start, stop + 1, dtype=np.float64) * self.decode_check
        return (np.diff(np.floor(positions)) > 0).tolist()


def permuted_order(indices: np.ndarray, seed: int, limit: int | None) -> np.ndarray:
    """Source indices in the seeded global order (first ``limit`` of them)."""
    order = np.asarray(indices, dtype=np.int64)[np.random.default_rng(seed).permutation(len(indices))]
    return order if limit is None else order[:limit]


def make_plan(source: Source, options: ShardOptions) -> tuple[ShardPlan, np.ndarray]:
    """Resolve ``options`` against ``source``: the plan and the permuted order of source indices."""
    indices = np.asarray(source.indices(), dtype=np.int64)
    if len(indices) == 0:
        raise DataError(source.path, "", "source holds no images")
    order = permuted_order(indices, options.seed, options.limit)
    per_shard = options.per_shard or _per_shard_from_bytes(source, order, options.shard_bytes)
    num_shards = math.ceil(len(order) / per_shard)
    num_shards = math.ceil(num_shards / options.multiple_of) * options.multiple_of
    if num_shards > len(order):
        raise ConfigError(f"{num_shards} shards (a multiple of {options.multiple_of}) need at least as many "
                          f"samples, but only {len(order)} are planned")
    plan = ShardPlan(
        source=str(Path(source.path).resolve()), source_count=len(indices),
        source_digest=hashlib.sha256(indices.tobytes()).hexdigest(), num_classes=int(source.num_classes),
        seed=options.seed, limit=options.limit, num_samples=len(order), num_shards=num_shards,
        key_width=max(9, len(str(int(indices.max())))), decode_check=options.decode_check)
    return plan, order


def _per_shard_from_bytes(source: Source, order: np.ndarray, shard_bytes: int | None) -> int:
    """Samples per shard: ``DEFAULT_PER_SHARD``, or ``shard_bytes`` over the mean size of 256 records."""
    if shard_bytes is None:
        return DEFAULT_PER_SHARD
    sizes = []
    for index in order[:256]:
        try:
            sizes.append(len(source.read(int(index)).data) + TAR_OVERHEAD)
        except DataError:
            continue  # only an estimate; the writing pass reports (or aborts on) every bad record
    mean = float(np.mean(sizes)) if sizes else float(TAR_OVERHEAD)
    return max(1, int(shard_bytes // mean))

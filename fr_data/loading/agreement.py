"""A shard must hold exactly the samples its folder's manifest lists for it, in the same order.

Every reader of shards goes through this check: the sequential readers (embedding, the DDP train stream)
through :func:`agreeing_samples`, the random-access index (training's reader, evaluation, the review
page's thumbnails) while it scans the tar headers (:mod:`fr_data.loading.shard_index`). A sample the
manifest does not list there (an extra sample, a member stored under ``sub/dir/KEY.jpg``, a key from
another data set) or a listed sample the shard lacks is a DataError naming the shard file and the member,
never an ``IndexError`` later or a silently different data set.

The manifest is ``samples.parquet`` beside the shard (:func:`fr_data.folders.shard_folder.manifest_keys_by_shard`);
a folder without one (or whose manifest has no ``shard`` column) has nothing to agree with and is read as is.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from pathlib import Path

from fr_data.folders.shard_folder import SAMPLES_FILE, manifest_keys_by_shard, samples_path
from fr_data.formats.tario import group_members
from fr_data.io.errors import DataError


@functools.lru_cache(maxsize=2)
def _listed(folder: str, stamp: tuple[int, int]) -> dict[str, tuple[list[str], list[str]]] | None:
    """The manifest's keys per shard, read once per folder and manifest version (``stamp``)."""
    return manifest_keys_by_shard(folder)


def listed_samples(shard: str | os.PathLike) -> tuple[list[str], list[str]] | None:
    """``(keys, exts)`` the manifest beside ``shard`` lists for it, in order; None when there is no manifest."""
    shard = Path(shard)
    manifest = samples_path(shard.parent)
    try:
        info = manifest.stat()
    except FileNotFoundError:
        return None
    by_shard = _listed(os.fspath(shard.parent), (info.st_mtime_ns, info.st_size))
    return None if by_shard is None else by_shard.get(shard.name, ([], []))


class ManifestCheck:
    """Compare one shard's samples, in file order, with what its manifest lists (see the module docstring).

    Call :meth:`sample` for each sample as it is read and :meth:`end` after the last one.
    """

    def __init__(self, shard: str | os.PathLike):
        self.shard = Path(shard)
        self.listed = listed_samples(self.shard)
        self.count = 0

    def sample(self, key: str, member: str) -> None:
        """Check the next sample ``key`` (``member``: one of its member names, quoted in errors).

        Raises:
            DataError: naming the shard and ``member`` when the manifest lists another sample here.
        """
        self.count += 1
        if self.listed is None:
            return
        keys = self.listed[0]
        if self.count <= len(keys) and keys[self.count - 1] == key:
            return
        if key not in keys:
            reason = f"sample {key!r} is not listed for this shard in {SAMPLES_FILE} ({len(keys)} samples are)"
        else:
            expected = keys[self.count - 1] if self.count <= len(keys) else "no more samples"
            reason = f"sample {self.count} is {key!r}, {SAMPLES_FILE} lists {expected!r} there"
        raise DataError(self.shard, f"member {member}", f"{reason}: the shard disagrees with its manifest")

    def end(self) -> None:
        """Check that no listed sample is missing after the last one read.

        Raises:
            DataError: naming the shard and the first missing sample's image member.
        """
        if self.listed is None or self.count >= len(self.listed[0]):
            return
        keys, exts = self.listed
        missing = keys[self.count] + (f".{exts[self.count]}" if exts[self.count] else "")
        raise DataError(self.shard, f"member {missing}",
                        f"missing: {SAMPLES_FILE} lists {len(keys)} samples for this shard, it holds "
                        f"{self.count}: the shard disagrees with its manifest")


def agreeing_samples(shard: str | os.PathLike) -> Iterator[tuple[str, dict[str, bytes]]]:
    """``(key, {ext: bytes})`` per sample of ``shard`` (:func:`fr_data.formats.tario.group_members`),
    each checked against the manifest; the check of missing samples runs when the shard is read to its end.

    Raises:
        DataError: a sample the manifest does not list there, or a listed one the shard lacks.
    """
    check = ManifestCheck(shard)
    for key, members in group_members(shard):
        check.sample(key, f"{key}.{next(iter(members))}")
        yield key, members
    check.end()

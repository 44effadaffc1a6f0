"""Content hashes of files, read in blocks so memory stays bounded for multi-GB shards and arrays."""

from __future__ import annotations

import hashlib
import os


def file_sha256(path: str | os.PathLike, block: int = 1 << 22) -> str:
    """Hex SHA-256 of the file at ``path``, streamed ``block`` bytes at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(block):
            digest.update(chunk)
    return digest.hexdigest()

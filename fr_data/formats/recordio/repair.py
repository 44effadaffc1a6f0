"""Repairing the index of a damaged ``.rec``: the ``.rec`` is the truth, the ``.idx`` is checked line by line.

:func:`repair_index` walks the ``.rec`` (:func:`~fr_data.formats.recordio.index.walk_records`, which
resumes after damage) and keeps an index line when it parses, names a complete record (one the walk
found, or one that starts and ends where the line says), and shares neither its key nor its offset
with another line. Records no kept line names get a key from their neighbours: the keys of a
RecordIO file grow by one in file order (InsightFace, ``im2rec``, ``shuffle_rec.py``), so ``m``
unnamed records between kept keys ``a`` and ``b = a + m + 1`` are ``a+1 .. b-1`` (before the first
kept line they count down from it, after the last one up from it). Without an ``.idx`` every record
is keyed by its file position. Everything left out (damaged spans, bad lines, records whose key
cannot be inferred) is returned as a :class:`Dropped` entry naming the file and the key, line or
offset.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fr_data.formats.recordio.index import Walk, load_idx, record_end, walk_records
from fr_data.formats.recordio.parts import TruncatedError
from fr_data.io.errors import DataError


@dataclass(frozen=True)
class Dropped:
    """An index line, record or span of bytes the repair left out.

    Attributes:
        path: the ``.idx`` or ``.rec`` file at fault.
        key: the record key when one is known.
        where: ``line N``, ``key K, line N`` or ``offset X``.
        reason: what is wrong, in words.
    """

    path: Path
    key: int | None
    where: str
    reason: str


@dataclass
class RepairedIndex:
    """The repaired index (file order) and what was left out."""

    keys: np.ndarray
    offsets: np.ndarray
    dropped: list[Dropped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class IdxLines:
    """The parsed lines of an ``.idx``: keys, offsets and line numbers, plus the lines that did not parse."""

    keys: np.ndarray
    offsets: np.ndarray
    lines: np.ndarray
    bad: list[tuple[int, bytes]]


def read_idx_lines(path: str | os.PathLike) -> IdxLines:
    """Every ``key<TAB>offset`` line of ``path`` that parses, and the (line number, text) of the rest."""
    try:
        keys, offsets = load_idx(path)
        return IdxLines(keys, offsets, np.arange(1, len(keys) + 1, dtype=np.int64), [])
    except DataError:
        pass  # slow path, only for a damaged index: line by line
    keys_l, offsets_l, lines_l, bad = [], [], [], []
    with open(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            try:
                if len(fields) != 2:
                    raise ValueError
                key, offset = int(fields[0]), int(fields[1])
            except ValueError:
                bad.append((number, line[:80]))
                continue
            keys_l.append(key)
            offsets_l.append(offset)
            lines_l.append(number)
    return IdxLines(*(np.asarray(v, dtype=np.int64) for v in (keys_l, offsets_l, lines_l)), bad)


def repair_index(rec_path: str | os.PathLike, idx_path: str | os.PathLike | None, *,
                 record_count: int | None = None) -> RepairedIndex:
    """Check ``idx_path`` (None: no index) against a walk of ``rec_path``; see the module docstring.

    Args:
        rec_path: the ``.rec``.
        idx_path: its ``.idx``, or None to key the records by file position.
        record_count: how many records the undamaged file holds, when known (an InsightFace header
            record says so); without an index it keys the records after a damaged span by counting
            back from the end.
    """
    rec_path = Path(rec_path)
    walk = walk_records(rec_path)
    dropped = [Dropped(rec_path, None, f"offset {s.start}",
                       f"{s.error.reason}; bytes {s.start}..{s.end} hold no complete record")
               for s in walk.damaged]
    tail = [s for s in walk.damaged if s.end == walk.size and isinstance(s.error, TruncatedError)]
    truncated = [f"the .rec ends inside a record ({s.error}); the complete records before it are indexed"
                 for s in tail]
    if idx_path is None:
        return _scanned_index(rec_path, walk, dropped, truncated, record_count)
    idx_path = Path(idx_path)
    parsed = read_idx_lines(idx_path)
    named_spans = np.isin([s.start for s in walk.damaged], parsed.offsets)
    dropped = [d for d, named in zip(dropped, named_spans.tolist()) if not named]  # its line says it better
    dropped += [Dropped(idx_path, None, f"line {n}", f"expected '<key>\\t<offset>' integers, got {text!r}")
                for n, text in parsed.bad]
    keep = _record_lines(parsed, walk.offsets, rec_path, walk.size, idx_path, dropped)
    keep &= _unique_lines(parsed, keep, idx_path, dropped)
    keys, offsets = parsed.keys[keep], parsed.offsets[keep]
    named = np.union1d(walk.offsets, offsets)
    unnamed = np.setdiff1d(named, offsets)
    recovered = _infer_keys(keys, offsets, unnamed)
    for offset in unnamed[recovered < 0].tolist():
        dropped.append(Dropped(rec_path, None, f"offset {offset}",
                               "complete record with no usable index line, and its key cannot be "
                               "inferred from its neighbours"))
    keys = np.concatenate([keys, recovered[recovered >= 0]])
    offsets = np.concatenate([offsets, unnamed[recovered >= 0]])
    order = np.argsort(offsets, kind="stable")
    notes = truncated + _repair_notes(parsed, keep, int((recovered >= 0).sum()), dropped)
    return RepairedIndex(keys[order], offsets[order], dropped, notes)


def _scanned_index(rec_path: Path, walk: Walk, dropped: list[Dropped], notes: list[str],
                   record_count: int | None) -> RepairedIndex:
    """Keys by file position up to the first damage inside the file; after the last one counted back
    from ``record_count`` (when known); records between damaged spans cannot be keyed and are dropped."""
    offsets, keys = walk.offsets, np.arange(len(walk.offsets), dtype=np.int64)
    inner = [s for s in walk.damaged if s.end < walk.size]
    notes = notes + [f"indexed {len(offsets)} records by a scan of the .rec (keys = file positions)"]
    if not inner:
        return RepairedIndex(keys, offsets, dropped, notes)
    before = offsets < inner[0].start
    if record_count is None:
        notes.append(f"the .rec is damaged at offset {inner[0].start}, before its end, and names no record "
                     "count: keys after it may be shifted (the span held an unknown number of records)")
        return RepairedIndex(keys, offsets, dropped, notes)
    after = offsets >= inner[-1].end
    first_after = record_count - int(after.sum())
    if walk.damaged[-1] not in inner or first_after < int(before.sum()):
        after[:] = False  # the tail is cut off too, or the count does not fit: nothing to count back from
    else:
        keys[after] = first_after + np.arange(int(after.sum()))
        notes.append(f"keys after the damage ending at offset {inner[-1].end} are counted back from the "
                     f"{record_count} records the header names")
    lost = ~before & ~after
    dropped += [Dropped(rec_path, None, f"offset {o}", "complete record after damage inside a .rec without "
                        "an index: its key cannot be known") for o in offsets[lost].tolist()]
    keep = before | after
    return RepairedIndex(keys[keep], offsets[keep], dropped, notes)


def _record_lines(parsed: IdxLines, found: np.ndarray, rec_path: Path, size: int, idx_path: Path,
                  dropped: list[Dropped]) -> np.ndarray:
    """Mask of lines whose offset starts a complete record (one the walk found, else checked directly)."""
    ok = np.isin(parsed.offsets, found)
    with open(rec_path, "rb") as f:
        for i in np.flatnonzero(~ok).tolist():
            offset, key = int(parsed.offsets[i]), int(parsed.keys[i])
            reason = None
            if offset < 0 or offset % 4 or offset + 8 > size:
                reason = f"offset {offset} is not a record start ({size}-byte .rec; file truncated?)"
            else:
                try:
                    record_end(f, rec_path, offset, size)
                    ok[i] = True
                except DataError as exc:
                    reason = f"offset {offset} holds no complete record: {exc.reason}"
            if reason is not None:
                dropped.append(Dropped(idx_path, key, f"key {key}, line {int(parsed.lines[i])}", reason))
    return ok


def _unique_lines(parsed: IdxLines, keep: np.ndarray, idx_path: Path, dropped: list[Dropped]) -> np.ndarray:
    """Mask that drops every line sharing its key or its offset with another kept line."""
    unique = np.ones(len(keep), dtype=bool)
    for values, what in ((parsed.keys, "key"), (parsed.offsets, "offset")):
        kept = np.flatnonzero(keep & unique)
        _, inverse, counts = np.unique(values[kept], return_inverse=True, return_counts=True)
        for i in kept[counts[inverse] > 1].tolist():
            unique[i] = False
            key = int(parsed.keys[i])
            dropped.append(Dropped(idx_path, key, f"key {key}, line {int(parsed.lines[i])}",
                                   f"{what} {int(values[i])} is on more than one line"))
    return unique


def _infer_keys(keys: np.ndarray, offsets: np.ndarray, unnamed: np.ndarray) -> np.ndarray:
    """Keys of the ``unnamed`` record offsets from their named neighbours (-1 where none fits)."""
    out = np.full(len(unnamed), -1, dtype=np.int64)
    if len(unnamed) == 0:
        return out
    if len(keys) == 0:
        return np.arange(len(unnamed), dtype=np.int64)
    order = np.argsort(offsets, kind="stable")
    keys, offsets = keys[order], offsets[order]
    slot = np.searchsorted(offsets, unnamed)  # named records before each unnamed one
    taken = set(keys.tolist())
    for s in np.unique(slot).tolist():
        run = np.flatnonzero(slot == s)
        before = int(keys[s - 1]) if s > 0 else None
        after = int(keys[s]) if s < len(keys) else None
        if before is not None and after is not None and after - before - 1 != len(run):
            continue
        first = before + 1 if before is not None else after - len(run)
        candidates = list(range(first, first + len(run)))
        if first >= 0 and not taken.intersection(candidates):
            out[run] = candidates
            taken.update(candidates)
    return out


def _repair_notes(parsed: IdxLines, keep: np.ndarray, recovered: int, dropped: list[Dropped]) -> list[str]:
    lines = len(parsed.keys) + len(parsed.bad)
    notes = [f"checked the index against a scan of the .rec: kept {int(keep.sum())} of {lines} lines"]
    if recovered:
        notes.append(f"recovered {recovered} record(s) the index did not name, keyed from their neighbours")
    if dropped:
        notes.append(f"left out {len(dropped)} damaged record(s), span(s) or index line(s)")
    return notes

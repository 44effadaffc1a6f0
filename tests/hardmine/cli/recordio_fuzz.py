"""Seeded fuzzing of ``hardmine shard`` on damaged RecordIO data (used by the suite and by
``benchmarks/fuzz_recordio.py``).

A clean InsightFace-layout ``train.rec``/``train.idx`` (some records split around embedded magic words)
is sharded once for reference. Each case copies it, applies one to three seeded mutations (bit flips,
zeroed spans, truncation, appended garbage in the ``.rec``; shuffled, dropped, duplicated or garbled
lines, or no ``.idx`` at all) and shards it twice:

- strict: exit 0 or 2, never an exception; on 2 the last stderr line is the one ``error:`` line and it
  names the ``.rec`` or ``.idx`` and a key, offset or line; no finished-looking output;
- ``--skip-corrupt``: exit 0 (or 2 with "source holds no images" when no image is left at all), and
  every *intact* image record is in the manifest under its key with its
  clean label and sha256. Intact: its bytes in the ``.rec`` are unchanged and its index line is present
  and unchanged; without an ``.idx`` (keys are then file positions): unchanged and everything before it
  unchanged. A strict run that exits 0 must meet the same bar.
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import struct
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from fr_data.formats.recordio import MAGIC, load_idx, write_insightface
from hardmine.cli import shard
from tests.fr_data.formats._recordio_fixtures import tiny_image

CLASSES, PER_CLASS = 4, 5
REC_MUTATIONS = ("bit_flips", "zeroed_span", "truncation", "appended_garbage")
IDX_MUTATIONS = ("shuffled_lines", "dropped_lines", "duplicated_line", "garbled_line", "no_idx")
SHARD_ARGS = ["--per-shard", "7", "--seed", "1"]


def image_with_magic(i: int) -> bytes:
    """A JPEG whose COM segment holds the RecordIO magic 4-aligned in the payload: a split record."""
    jpeg = tiny_image(i)
    content = b"xx" + struct.pack("<I", MAGIC) + b"yy"  # payload offset 24 + 2 + 4 + 2 = 32
    return jpeg[:2] + b"\xff\xfe" + struct.pack(">H", len(content) + 2) + content + jpeg[2:]


def make_clean(folder: Path) -> None:
    """The clean data set: CLASSES x PER_CLASS images, every third one a split record."""
    items = [(i // PER_CLASS, image_with_magic(i) if i % 3 == 0 else tiny_image(i))
             for i in range(CLASSES * PER_CLASS)]
    write_insightface(folder, items)


@dataclass
class Reference:
    """The clean data set: its bytes, index lines, record spans and sharded manifest."""

    folder: Path
    rec: bytes
    idx_lines: list[bytes]
    spans: dict[int, tuple[int, int]]  # key -> [start, end) in the .rec
    manifest: dict[int, tuple[int, str]]  # image key -> (label, sha256)


def reference(work: Path) -> Reference:
    clean = work / "clean"
    make_clean(clean)
    out = work / "clean_out"
    with contextlib.redirect_stdout(io.StringIO()):
        assert shard.main(["--src", str(clean), "--out", str(out), *SHARD_ARGS]) == 0
    keys, offsets = load_idx(clean / "train.idx")
    rec = (clean / "train.rec").read_bytes()
    ends = np.append(np.sort(offsets)[1:], len(rec))
    spans = {int(k): (int(o), int(ends[np.searchsorted(np.sort(offsets), o)])) for k, o in zip(keys, offsets)}
    return Reference(clean, rec, (clean / "train.idx").read_bytes().splitlines(keepends=True), spans,
                     _manifest(out))


def _manifest(out: Path) -> dict[int, tuple[int, str]]:
    table = pq.read_table(out / "samples.parquet", columns=["source_index", "label", "sha256"]).to_pylist()
    return {r["source_index"]: (r["label"], r["sha256"]) for r in table}


# -- mutations --------------------------------------------------------------------------------------
def _bit_flips(rng, rec: bytearray) -> str:
    count = int(rng.integers(1, 6))
    for pos in rng.integers(0, len(rec), count).tolist():
        rec[pos] ^= 1 << int(rng.integers(8))
    return f"bit_flips x{count}"


def _zeroed_span(rng, rec: bytearray) -> str:
    start, length = int(rng.integers(0, len(rec))), int(rng.integers(1, 300))
    rec[start:start + length] = bytes(len(rec[start:start + length]))
    return f"zeroed_span {start}+{length}"


def _truncation(rng, rec: bytearray) -> str:
    cut = int(rng.integers(1, len(rec)))
    del rec[cut:]
    return f"truncation at {cut}"


def _appended_garbage(rng, rec: bytearray) -> str:
    garbage = bytearray(rng.integers(0, 256, int(rng.integers(1, 400)), dtype=np.uint8).tobytes())
    if rng.random() < 0.5 and len(garbage) >= 8:  # a fake part header in the garbage
        garbage[:8] = struct.pack("<II", MAGIC, int(rng.integers(0, 1 << 31)))
    rec.extend(garbage)
    return f"appended_garbage {len(garbage)}"


def _shuffled_lines(rng, lines: list[bytes]) -> str:
    rng.shuffle(lines)
    return "shuffled_lines"


def _dropped_lines(rng, lines: list[bytes]) -> str:
    count = int(rng.integers(1, 4))
    for _ in range(min(count, len(lines) - 1)):
        del lines[int(rng.integers(len(lines)))]
    return f"dropped_lines x{count}"


def _duplicated_line(rng, lines: list[bytes]) -> str:
    lines.insert(int(rng.integers(len(lines) + 1)), lines[int(rng.integers(len(lines)))])
    return "duplicated_line"


def _garbled_line(rng, lines: list[bytes]) -> str:
    i = int(rng.integers(len(lines)))
    line = bytearray(lines[i])
    if rng.random() < 0.5:  # junk bytes
        line = bytearray(rng.integers(32, 127, max(1, len(line) - 1), dtype=np.uint8).tobytes()) + b"\n"
    else:  # one digit changed: a line that still parses
        digits = [j for j, c in enumerate(line) if chr(c).isdigit()]
        j = digits[int(rng.integers(len(digits)))]
        line[j] = ord(str((int(chr(line[j])) + int(rng.integers(1, 10))) % 10))
    lines[i] = bytes(line)
    return f"garbled_line {i}"


REC_FNS = {"bit_flips": _bit_flips, "zeroed_span": _zeroed_span, "truncation": _truncation,
           "appended_garbage": _appended_garbage}
IDX_FNS = {"shuffled_lines": _shuffled_lines, "dropped_lines": _dropped_lines,
           "duplicated_line": _duplicated_line, "garbled_line": _garbled_line}


@dataclass
class Case:
    """One damaged copy: what was done, and which image keys must survive."""

    seed: int
    folder: Path
    mutations: list[str]
    intact: list[int]


def make_case(ref: Reference, seed: int, work: Path) -> Case:
    rng = np.random.default_rng(seed)
    folder = work / f"case{seed}"
    shutil.rmtree(folder, ignore_errors=True)
    shutil.copytree(ref.folder, folder)
    rec, lines = bytearray(ref.rec), list(ref.idx_lines)
    kinds = rng.choice(REC_MUTATIONS + IDX_MUTATIONS, size=int(rng.integers(1, 4)), replace=False).tolist()
    done = []
    for kind in sorted(kinds):  # "no_idx" sorts between the others; it only removes the file at the end
        if kind in REC_FNS:
            done.append(REC_FNS[kind](rng, rec))
        elif kind in IDX_FNS:
            done.append(IDX_FNS[kind](rng, lines))
    (folder / "train.rec").write_bytes(bytes(rec))
    if "no_idx" in kinds:
        (folder / "train.idx").unlink()
        done.append("no_idx")
    else:
        (folder / "train.idx").write_bytes(b"".join(lines))
    return Case(seed, folder, done, _intact(ref, bytes(rec), lines, "no_idx" in kinds))


def _intact(ref: Reference, rec: bytes, lines: list[bytes], no_idx: bool) -> list[int]:
    present = set(lines)
    first_change = next((i for i, (a, b) in enumerate(zip(rec, ref.rec)) if a != b), min(len(rec), len(ref.rec)))
    intact = []
    for key in ref.manifest:
        start, end = ref.spans[key]
        if end > len(rec) or rec[start:end] != ref.rec[start:end]:
            continue
        line = f"{key}\t{start}\n".encode()
        if (no_idx and end <= first_change) or (not no_idx and line in present):
            intact.append(key)
    return sorted(intact)


# -- running -----------------------------------------------------------------------------------------
@dataclass
class Outcome:
    """What the two runs of one case did."""

    case: Case
    strict_rc: int
    strict_error: str
    skip_rc: int
    missing: list[int] = field(default_factory=list)  # intact keys not sharded identically
    extra: Counter = field(default_factory=Counter)  # sharded records beyond the intact ones, by kind
    problems: list[str] = field(default_factory=list)


def _run(argv: list[str]) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        rc = shard.main(argv)
    return rc, err.getvalue()


def _check_missing(ref: Reference, case: Case, out: Path) -> tuple[list[int], Counter]:
    """Intact keys not sharded identically, and the other sharded records: ``recovered`` (clean key,
    label and bytes), ``damaged`` (bytes the clean file does not hold: undetectable without checksums)
    or ``rekeyed`` (clean bytes under another key)."""
    got = _manifest(out)
    intact = set(case.intact)
    by_sha = {sha: key for key, (_, sha) in ref.manifest.items()}
    extra = Counter()
    for key, (label, sha) in got.items():
        if key in intact:
            continue
        kind = "recovered" if ref.manifest.get(key) == (label, sha) else ("rekeyed" if sha in by_sha else "damaged")
        extra[kind] += 1
    return [k for k in case.intact if got.get(k) != ref.manifest[k]], extra


def run_case(ref: Reference, case: Case, work: Path) -> Outcome:
    strict_out, skip_out = work / f"out{case.seed}s", work / f"out{case.seed}k"
    rc, err = _run(["--src", str(case.folder), "--out", str(strict_out), *SHARD_ARGS])
    lines = [line for line in err.splitlines() if line.startswith("hardmine shard: error:")]
    outcome = Outcome(case, rc, lines[-1] if lines else "", -1)
    if rc == 2:
        named = any(str(case.folder / n) in outcome.strict_error for n in ("train.rec", "train.idx"))
        located = any(w in outcome.strict_error for w in ("key ", "offset ", "line ", "index "))
        if len(lines) != 1 or err.splitlines()[-1] != lines[0] or not (named and located):
            outcome.problems.append(f"strict error not one line naming the file and a locator: {err!r}")
        if (strict_out / "samples.parquet").exists():
            outcome.problems.append("strict failure left a finished-looking samples.parquet")
    elif rc == 0:
        missing, _ = _check_missing(ref, case, strict_out)
        if missing:
            outcome.problems.append(f"strict run exited 0 but lost intact keys {missing}")
    else:
        outcome.problems.append(f"strict exit code {rc}")
    outcome.skip_rc, err = _run(["--src", str(case.folder), "--out", str(skip_out), *SHARD_ARGS, "--skip-corrupt"])
    if outcome.skip_rc == 2 and not case.intact and "source holds no images" in err:
        pass  # nothing left to shard: refusing an empty data set is the one allowed failure
    elif outcome.skip_rc != 0:
        outcome.problems.append(f"--skip-corrupt exit code {outcome.skip_rc}: {err.strip()[-300:]}")
    else:
        outcome.missing, outcome.extra = _check_missing(ref, case, skip_out)
        if outcome.missing:
            outcome.problems.append(f"--skip-corrupt lost intact keys {outcome.missing}")
    for folder in (strict_out, skip_out, case.folder):
        shutil.rmtree(folder, ignore_errors=True)
    return outcome


def fuzz(work: Path, seeds: range) -> list[Outcome]:
    """Run every seed's case; exceptions propagate (they are failures)."""
    work.mkdir(parents=True, exist_ok=True)
    logging.disable(logging.WARNING)  # the sources' notes: thousands of lines, not checked here
    try:
        ref = reference(work)
        return [run_case(ref, make_case(ref, seed, work), work) for seed in seeds]
    finally:
        logging.disable(logging.NOTSET)


def summary(outcomes: list[Outcome]) -> dict:
    """Counts for a report: mutation kinds, exit codes, intact records kept, problems."""
    kinds = Counter(m.split()[0] for o in outcomes for m in o.case.mutations)
    return {
        "cases": len(outcomes),
        "mutations": dict(sorted(kinds.items())),
        "strict_exit": dict(sorted(Counter(o.strict_rc for o in outcomes).items())),
        "skip_corrupt_exit": dict(sorted(Counter(o.skip_rc for o in outcomes).items())),
        "intact_records": sum(len(o.case.intact) for o in outcomes),
        "intact_records_lost": sum(len(o.missing) for o in outcomes),
        "sharded_beyond_intact": dict(sorted(sum((o.extra for o in outcomes), Counter()).items())),
        "cases_with_problems": sum(bool(o.problems) for o in outcomes),
    }

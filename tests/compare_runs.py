"""Compare two demo or experiment folders made by two versions of the code (a refactoring must not change
what they hold).

    python3 tests/compare_runs.py BEFORE AFTER      # prints one line per difference; exit 1 if any

Compared: every Parquet manifest by content (shards, mining tables, embeddings index, synthetic
attributes, experiment results without their timing column, estimates), the shard tar files,
``embeddings.npy``, the verification packs and the review page's images byte for byte, the experiment's
pair scores array by array, the review page's data (``report.json`` without its
timings, paths and build time; ``index.html`` with the folder's path masked), ``evaluation.json`` and
``queries.txt``. Timestamps, timings and absolute paths are what may differ.

A table is compared on the columns both sides have: a column only in AFTER (added by the newer code) is
listed as a note, not a difference; a column only in BEFORE (removed) is a difference. Tables that exist
only in AFTER (e.g. ``estimates.parquet``) are listed the same way, as notes.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

#: Columns that hold a duration (measured, so never equal between two runs).
TIMING_COLUMNS = {"train_seconds"}
#: ``report.json`` keys that hold where or when the page was built (the run's id is the digest of its
#: ``run.json``, which records timings).
REPORT_VOLATILE = {"run", "shards", "built", "timings", "run_id", "run_json_sha256"}
#: Files compared byte for byte (relative to the folder; globs).
BYTES = ["shards/*.tar", "emb/embeddings.npy", "report/img/*", "queries.txt", "synth/*.bin", "packs/*/*.bin"]
#: ``.npz`` files compared array by array (the zip members carry their write time).
ARRAYS = ["scores/*/*.npz"]
#: Parquet files compared by content.
TABLES = ["synth/attributes.parquet", "shards/samples.parquet", "shards/rejected.parquet",
          "emb/index.parquet", "mined/*.parquet", "results.parquet", "validation.parquet",
          "estimates.parquet"]


def _columns(path: Path) -> list[str]:
    return [name for name in pq.read_schema(path).names if name not in TIMING_COLUMNS]


def _table(path: Path, columns: list[str]) -> str:
    table = pq.read_table(path, columns=columns)
    values = {name: table.column(name).to_pylist() for name in columns}
    return json.dumps(values, default=str)  # NaN == NaN here, unlike in the lists


def _arrays(path: Path) -> dict[str, bytes]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name].tobytes() + str(data[name].dtype).encode() for name in data.files}


def _report(path: Path) -> dict:
    return {k: v for k, v in json.loads(path.read_text()).items() if k not in REPORT_VOLATILE}


def _page(path: Path, root: Path) -> str:
    text = path.read_text().replace(str(root.resolve()), "OUT").replace(str(root), "OUT")
    text = text.replace(json.loads((path.parent / "report.json").read_text())["run_id"], "RUN")
    text = re.sub(r"<h3>Mining stage times</h3>.*?</table>", "TIMES", text, flags=re.S)
    return re.sub(r"\d{4}-\d\d-\d\dT[\d:.]+(Z|[+-]\d\d:\d\d)?", "TIME", text)


def _evaluation(path: Path) -> dict:
    values = json.loads(path.read_text())
    values.get("inputs", {}).pop("mining_run_sha256", None)  # the digest of a run.json with timings
    return values


def table_differences(before: Path, after: Path, rel: Path) -> tuple[list[str], list[str]]:
    """(differences, notes) of one table: its shared columns compared row by row; a removed column is a
    difference, an added one a note."""
    left, right = _columns(before / rel), _columns(after / rel)
    shared = [c for c in left if c in right]
    out = [f"{rel}: column {c} only in {before}" for c in left if c not in right]
    if _table(before / rel, shared) != _table(after / rel, shared):
        out.append(f"{rel}: differs")
    added = [c for c in right if c not in left]
    return out, [f"{rel}: columns added in {after}: {', '.join(added)}"] if added else []


def compare(before: Path, after: Path) -> tuple[list[str], list[str]]:
    """(differences, notes): one line per file that differs or exists in ``before`` only, or per table whose
    shared columns differ; notes name what exists in ``after`` only (files, table columns)."""
    out: list[str] = []
    notes: list[str] = []
    checks = [(pattern, lambda p, root: p.read_bytes()) for pattern in BYTES]
    checks += [(pattern, lambda p, root: _arrays(p)) for pattern in ARRAYS]
    checks += [("report/report.json", lambda p, root: _report(p)), ("report/index.html", _page),
               ("evaluation.json", lambda p, root: _evaluation(p))]
    for pattern, read in [*checks, *((pattern, None) for pattern in TABLES)]:
        left = {p.relative_to(before) for p in before.glob(pattern)}
        right = {p.relative_to(after) for p in after.glob(pattern)}
        out += [f"{rel}: only in {before}" for rel in sorted(left - right)]
        notes += [f"{rel}: only in {after}" for rel in sorted(right - left)]
        for rel in sorted(left & right):
            if read is None:
                found, added = table_differences(before, after, rel)
                out, notes = out + found, notes + added
            elif read(before / rel, before) != read(after / rel, after):
                out.append(f"{rel}: differs")
    return out, notes


def differences(before: Path, after: Path) -> list[str]:
    """One line per file that differs or exists in ``before`` only; ``[]`` when the folders agree (what
    ``after`` adds is allowed: see :func:`compare`)."""
    return compare(before, after)[0]


def main(argv: list[str]) -> int:
    before, after = Path(argv[0]), Path(argv[1])
    found, notes = compare(before, after)
    print("\n".join(found) if found else f"{before} and {after} hold the same outputs")
    if notes:
        print("\n".join(f"note: {line}" for line in notes))
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

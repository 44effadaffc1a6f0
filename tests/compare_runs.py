"""Compare two demo or experiment folders made by two versions of the code (a refactoring must not change
what they hold).

    python3 tests/compare_runs.py BEFORE AFTER      # prints one line per difference; exit 1 if any

Compared: every Parquet manifest by content (shards, mining tables, embeddings index, synthetic
attributes, experiment results without their timing column), the shard tar files, ``embeddings.npy``
and the review page's images byte for byte, the review page's data (``report.json`` without its
timings, paths and build time; ``index.html`` with the folder's path masked), ``evaluation.json`` and
``queries.txt``. Timestamps, timings and absolute paths are what may differ.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pyarrow.parquet as pq

#: Columns that hold a duration (measured, so never equal between two runs).
TIMING_COLUMNS = {"train_seconds"}
#: ``report.json`` keys that hold where or when the page was built (the run's id is the digest of its
#: ``run.json``, which records timings).
REPORT_VOLATILE = {"run", "shards", "built", "timings", "run_id", "run_json_sha256"}
#: Files compared byte for byte (relative to the folder; globs).
BYTES = ["shards/*.tar", "emb/embeddings.npy", "report/img/*", "queries.txt"]
#: Parquet files compared by content.
TABLES = ["synth/attributes.parquet", "shards/samples.parquet", "shards/rejected.parquet", "emb/index.parquet",
          "mined/*.parquet", "results.parquet", "validation.parquet"]


def _table(path: Path) -> str:
    table = pq.read_table(path)
    columns = {name: table.column(name).to_pylist() for name in table.column_names if name not in TIMING_COLUMNS}
    return json.dumps(columns, default=str)  # NaN == NaN here, unlike in the lists


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


def differences(before: Path, after: Path) -> list[str]:
    """One line per file that differs or exists on one side only; ``[]`` when the folders agree."""
    out: list[str] = []
    checks = [(pattern, lambda p, root: p.read_bytes()) for pattern in BYTES]
    checks += [(pattern, lambda p, root: _table(p)) for pattern in TABLES]
    checks += [("report/report.json", lambda p, root: _report(p)), ("report/index.html", _page),
               ("evaluation.json", lambda p, root: _evaluation(p))]
    for pattern, read in checks:
        left = {p.relative_to(before) for p in before.glob(pattern)}
        right = {p.relative_to(after) for p in after.glob(pattern)}
        out += [f"{rel}: only in {before}" for rel in sorted(left - right)]
        out += [f"{rel}: only in {after}" for rel in sorted(right - left)]
        out += [f"{rel}: differs" for rel in sorted(left & right)
                if read(before / rel, before) != read(after / rel, after)]
    return out


def main(argv: list[str]) -> int:
    before, after = Path(argv[0]), Path(argv[1])
    found = differences(before, after)
    print("\n".join(found) if found else f"{before} and {after} hold the same outputs")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

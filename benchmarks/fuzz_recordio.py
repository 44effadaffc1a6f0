"""Seeded fuzzing of ``hardmine shard`` on damaged RecordIO files (issue 11, point 3).

Each case damages a copy of a small InsightFace ``train.rec``/``train.idx`` (bit flips, zeroed spans,
truncation, appended garbage; shuffled, dropped, duplicated or garbled index lines; no index) and shards
it strictly and with ``--skip-corrupt``; see ``tests/hardmine/cli/recordio_fuzz.py`` for the rules each
case must meet. The suite runs 40 of these cases; this script runs many more and prints the counts.

    python benchmarks/fuzz_recordio.py [--cases 500] [--first-seed 1000]

Exits 1 when any case breaks a rule (the offending seeds and mutations are printed).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._machine import describe  # noqa: E402
from tests.hardmine.cli.recordio_fuzz import fuzz, summary  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=500)
    parser.add_argument("--first-seed", type=int, default=1000, help="the suite uses seeds 0..39")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        outcomes = fuzz(Path(tmp), range(args.first_seed, args.first_seed + args.cases))
    report = {**summary(outcomes), "seconds": round(time.perf_counter() - started, 1), "machine": describe()}
    print(json.dumps(report, indent=2))
    bad = [o for o in outcomes if o.problems]
    for o in bad:
        print(f"seed {o.case.seed} {o.case.mutations}: {o.problems}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())

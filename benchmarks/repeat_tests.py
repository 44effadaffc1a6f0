"""Run the same tests again and again, each time in a fresh pytest process, and count the green runs.

    python benchmarks/repeat_tests.py --runs 30            # the two gloo tests of the multi-rank teardown fix
    python benchmarks/repeat_tests.py --runs 10 tests/fr_train/test_torchrun.py

For flaky-looking failures (a crash at process exit shows up only some of the time): prints one line per
run (result, seconds, 1-minute load average) and a final count; exit 1 if any run failed. The log of a
failed run is kept under ``--logs``.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

GLOO_TESTS = (
    "tests/fr_train/objective/test_partial_fc.py"
    "::test_two_gloo_ranks_equal_one_process_on_the_concatenated_batch",
    "tests/fr_train/test_ddp_scaling.py::test_ddp_gradient_equals_single_process_gradient",
)


def run_once(tests: list[str], log: Path) -> tuple[bool, float]:
    start = time.perf_counter()
    with open(log, "w") as out:
        code = subprocess.call([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *tests],
                               stdout=out, stderr=subprocess.STDOUT)
    return code == 0, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("tests", nargs="*", default=list(GLOO_TESTS), help="pytest node ids")
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--logs", type=Path, default=Path("repeat_logs"))
    args = parser.parse_args(argv)
    args.logs.mkdir(parents=True, exist_ok=True)
    failed = 0
    for i in range(1, args.runs + 1):
        log = args.logs / f"run_{i:03d}.log"
        ok, seconds = run_once(args.tests, log)
        failed += not ok
        if ok:
            log.unlink()
        print(f"run {i:3d}: {'pass' if ok else 'FAIL'}  {seconds:5.1f} s  load {os.getloadavg()[0]:.2f}",
              flush=True)
    print(f"{args.runs - failed} of {args.runs} runs passed")
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())

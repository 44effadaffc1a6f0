"""Run one hardmine subcommand again and again, each run in a forked child killed (SIGKILL) at a named
point (``fr_data.io.faults``), and record what each left behind.

    python -m tests.hardmine.cli.killrun PLAN.json REPORT.json

PLAN: ``{"command": "embed" | "mine", "watch": FOLDER, "preload": [MODULE...],
"runs": [{"kill_at": POINT or null, "argv": [...]}]}`` (``preload``: modules the command imports lazily).
REPORT: per run ``{"kill_at", "signal", "exit", "listing"}``: the signal that ended the child (9 when the
point was reached), its exit code otherwise, and the sorted names in FOLDER afterwards. This process
imports the command once and forks before any work starts (fork-safe: no thread pools yet), so each
run costs no interpreter start.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from pathlib import Path

from fr_data.io.faults import KILL_ENV


def _child(main, kill_at: str | None, argv: list[str]) -> None:
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    if kill_at:
        os.environ[KILL_ENV] = kill_at
    try:
        code = main(argv)
    except BaseException:  # noqa: BLE001 - reported through the exit code
        traceback.print_exc()
        code = 3
    os._exit(code if isinstance(code, int) else 4)


def main(plan_path: str, report_path: str) -> int:
    plan = json.loads(Path(plan_path).read_text())
    command = importlib.import_module(f"hardmine.cli.{plan['command']}").main
    for module in plan.get("preload", []):
        importlib.import_module(module)
    report = []
    for run in plan["runs"]:
        pid = os.fork()
        if pid == 0:
            _child(command, run["kill_at"], run["argv"])
        _, status = os.waitpid(pid, 0)
        report.append({"kill_at": run["kill_at"],
                       "signal": os.WTERMSIG(status) if os.WIFSIGNALED(status) else None,
                       "exit": os.WEXITSTATUS(status) if os.WIFEXITED(status) else None,
                       "listing": sorted(os.listdir(plan["watch"]))})
    Path(report_path).write_text(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))

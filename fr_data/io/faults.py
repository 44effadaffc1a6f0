"""Named kill points: where a test may make this process die at once, as a power cut or SIGKILL would.

``kill_point(name)`` does nothing unless the environment variable ``HARDMINE_KILL_AT`` equals ``name``;
then the process sends itself SIGKILL (no ``finally`` block, no atexit handler, no flush runs). The
crash-safety tests run ``hardmine embed`` and ``hardmine mine`` killed at each point in turn, rerun them,
and compare the results with an uninterrupted run. The points are listed in :data:`KILL_POINTS`.

``HARDMINE_HOLD_AT=POINT`` instead holds the process at that point: it prints ``held at POINT`` on stderr and
waits until a signal ends it, so a test can send Ctrl-C (SIGINT) at a known point without timing.
``HARDMINE_HOLD_AT=POINT=FOLDER`` holds it until ``FOLDER/release`` exists, after writing its pid to
``FOLDER/held``: the race tests hold one run at a point while a second run to the same output starts and
ends, so what they check does not depend on timing.

``HARDMINE_SWAP=POINT=PATH`` makes :func:`swapped` return ``PATH`` at that point instead of the path it
was given (a rank of a distributed run that opens another file). ``HARDMINE_FAULT_RANK=R`` limits every
fault above to the process whose ``RANK`` (set by torchrun) is ``R``.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

KILL_ENV = "HARDMINE_KILL_AT"
HOLD_ENV = "HARDMINE_HOLD_AT"
SWAP_ENV = "HARDMINE_SWAP"
RANK_ENV = "HARDMINE_FAULT_RANK"

#: Every point, with where it is (the crash-safety tests cover each).
KILL_POINTS = {
    "publish:locked": "a run just took the lock of its output (nothing else written yet)",
    "publish:staging": "a staging folder was just created empty",
    "publish:aside": "an overwrite moved the old output aside; the new one is not in place yet",
    "atomic:replace": "an atomic write's temporary file is complete and synced, not yet renamed",
    "embed:batch": "the first batch of embeddings is in the staging memmap",
    "embed:index": "embeddings.npy and index.parquet are written, run.json not yet",
    "embed:run_info": "the embeddings folder is complete in staging, not yet published",
    "mine:centres": "mining finished its first stage",
    "mine:search": "mining is about to search a chunk of samples against the class centres",
    "mine:tables": "mining wrote its first table into staging",
    "mine:run_info": "the run folder is complete in staging, not yet published",
}


def kill_point(name: str) -> None:
    """SIGKILL this process when ``HARDMINE_KILL_AT`` names this point, hold it when ``HARDMINE_HOLD_AT``
    does (a no-op otherwise)."""
    if not _this_rank():
        return
    if os.environ.get(KILL_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
    point, _, folder = os.environ.get(HOLD_ENV, "").partition("=")
    if point == name:
        _hold(name, Path(folder) if folder else None)


def swapped(name: str, path: str | os.PathLike) -> str | os.PathLike:
    """``path``, or the path ``HARDMINE_SWAP=NAME=PATH`` gives for point ``name`` (on the faulty rank)."""
    point, _, other = os.environ.get(SWAP_ENV, "").partition("=")
    return other if point == name and _this_rank() else path


def _this_rank() -> bool:
    """Whether faults apply to this process (``HARDMINE_FAULT_RANK`` unset, or equal to its ``RANK``)."""
    want = os.environ.get(RANK_ENV)
    return want is None or want == os.environ.get("RANK", "0")


def _hold(name: str, folder: Path | None) -> None:
    """Hold the process at ``name``: until ``folder/release`` exists (announced in ``folder/held``, this
    pid), or without a folder until a signal ends it (announced on stderr). A short sleep in a loop: a
    signal that arrives between two sleeps is still handled within one."""
    if folder is None:
        print(f"held at {name}", file=sys.stderr, flush=True)
    else:
        (folder / "held.tmp").write_text(str(os.getpid()))
        os.replace(folder / "held.tmp", folder / "held")
    while folder is None or not (folder / "release").exists():
        time.sleep(0.02)

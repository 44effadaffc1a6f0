"""This process's memory beyond its file mappings, sampled: what a mining stage itself holds.

``VmHWM`` (the kernel's peak resident set) counts the pages of the memory-mapped embeddings a process
touched, which the page cache can drop at any time and which every rank shares; the memory that is
the process's own is anonymous (``RssAnon``: heap, arrays) plus shared-memory pages (``RssShmem``).
The kernel keeps no peak of those, so :class:`AnonPeak` samples them from ``/proc/self/status`` in a
daemon thread (every ``interval`` seconds; a peak shorter than that can be missed). Without ``/proc``
every figure is NaN.
"""

from __future__ import annotations

import math
import threading

#: Fields of /proc/self/status summed into the figure (kB).
FIELDS = ("RssAnon:", "RssShmem:")


def anon_mb() -> float:
    """``RssAnon + RssShmem`` of this process now, in MB (NaN without /proc)."""
    try:
        with open("/proc/self/status") as f:
            kb = sum(int(line.split()[1]) for line in f if line.startswith(FIELDS))
    except OSError:
        return math.nan
    return kb / 1024.0


class AnonPeak:
    """The largest :func:`anon_mb` since the last :meth:`reset`, sampled in a daemon thread."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self._peak = anon_mb()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="anon-peak", daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, anon_mb())

    def reset(self) -> None:
        """Start a new peak from the present figure."""
        self._peak = anon_mb()

    def peak_mb(self) -> float:
        """The peak since the last reset (the present figure included)."""
        self._peak = max(self._peak, anon_mb())
        return self._peak

    def close(self) -> None:
        self._stop.set()

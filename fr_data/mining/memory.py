"""This process's memory beyond its file mappings, sampled: what a mining stage itself holds.

``VmHWM`` (the kernel's peak resident set) counts the pages of the memory-mapped embeddings a process
touched, which the page cache can drop at any time and which every rank shares; the memory that is
the process's own is anonymous (``RssAnon``: heap, arrays) plus shared-memory pages (``RssShmem``).
The kernel keeps no peak of those, so :class:`AnonPeak` samples them from ``/proc/self/status`` in a
daemon thread (every ``interval`` seconds; a peak shorter than that can be missed). Without ``/proc``
every figure is NaN.
"""

from __future__ import annotations

import ctypes
import ctypes.util
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


def release_free_memory() -> None:
    """Hand memory the process freed back to the system: Arrow's pool (``release_unused``) and the C heap
    (glibc's ``malloc_trim``, where the C library has it). Freed arrays otherwise stay resident in the
    allocators' caches and count in every later stage's peak."""
    import pyarrow as pa

    pa.default_memory_pool().release_unused()
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


_TRIM: list = []


def _malloc_trim():
    if not _TRIM:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            _TRIM.append(getattr(libc, "malloc_trim", None))
        except OSError:
            _TRIM.append(None)
    return _TRIM[0]


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

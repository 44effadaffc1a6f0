"""Run numpy's BLAS single-threaded for a block of many tiny matrix products.

The class-major pass does one small GEMM per class (tens of rows). A multi-threaded OpenBLAS wakes its
threads for each of them; on a busy 2-core machine that costs ~10 ms per product instead of ~0.5 ms
(measured). ``threadpoolctl`` does this in general; it is not a dependency, so this module finds the
OpenBLAS that numpy loaded (``/proc/self/maps``) and calls its ``*_set_num_threads`` through ctypes.
Anywhere that does not work (no /proc, another BLAS) it does nothing.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Iterator

_PREFIXES = ("scipy_openblas_", "openblas_")
_SUFFIXES = ("64_", "")


def _openblas() -> tuple | None:
    try:
        with open("/proc/self/maps") as f:
            paths = sorted({ln.split()[-1] for ln in f if "openblas" in ln.lower() and ".so" in ln})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for p in _PREFIXES:
            for s in _SUFFIXES:
                get = getattr(lib, f"{p}get_num_threads{s}", None)
                put = getattr(lib, f"{p}set_num_threads{s}", None)
                if get is not None and put is not None:
                    return get, put
    return None


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit numpy's OpenBLAS to one thread inside the block (restored afterwards)."""
    fns = _openblas()
    if fns is None:
        yield
        return
    get, put = fns
    before = get()
    put(1)
    try:
        yield
    finally:
        put(before)

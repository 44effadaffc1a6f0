"""Run the BLAS libraries single-threaded for a block of many tiny matrix products.

The class-major pass does one small GEMM per class (tens of rows). A multi-threaded OpenBLAS wakes its
threads for each of them; on a busy 2-core machine that costs ~10 ms per product instead of ~0.5 ms
(measured). ``threadpoolctl.threadpool_limits`` caps every BLAS loaded in the process (numpy's and the
one bundled with faiss) and restores the previous counts on exit; with no BLAS it controls, it does
nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from threadpoolctl import threadpool_limits


@contextlib.contextmanager
def single_threaded_blas() -> Iterator[None]:
    """Limit every loaded BLAS to one thread inside the block (restored afterwards)."""
    with threadpool_limits(limits=1, user_api="blas"):
        yield

"""The sampled memory beyond the file mappings that run.json reports per stage (issue 25)."""

from __future__ import annotations

import mmap
import sys

import numpy as np
import pytest

from fr_data.mining.memory import AnonPeak, anon_mb

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")


def test_the_peak_counts_arrays_and_not_touched_file_pages(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"\1" * (64 << 20))
    peak = AnonPeak(interval=10.0)  # no sample during the test: the figures are the present ones
    try:
        before = anon_mb()
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            assert sum(m[i] for i in range(0, len(m), 4096)) == (64 << 20) // 4096  # every page touched
            assert anon_mb() - before < 16  # 64 MB of file pages are not in the figure
        # An anonymous mapping of its own, written through: new pages whatever memory the allocator of this
        # process already holds (an array could reuse heap pages freed by earlier tests, still resident).
        held = mmap.mmap(-1, 48 << 20)
        np.frombuffer(held, np.uint8)[:] = 1
        assert anon_mb() - before > 40 and peak.peak_mb() >= anon_mb()
        top = peak.peak_mb()
        held.close()
        assert peak.peak_mb() == top  # a peak stays until the next reset
        peak.reset()
        assert peak.peak_mb() < top - 40
    finally:
        peak.close()

"""Where the real browsers of the review-page tests are, and when their absence may skip a test.

Chromium is driven by Playwright for Python through ``executable_path`` (Debian's ``chromium`` package,
never a Playwright browser download); Firefox (Debian's ``firefox-esr``) through its own Marionette
protocol (``marionette.py``). A missing browser skips its test, except where ``HARDMINE_CI`` is set
(``.ci/run`` installs both browsers, so there a missing one is a failure). ``run_counts`` counts a run's
flagged items with pyarrow, independently of the page builder, for both tests.
"""

from __future__ import annotations

import os
import shutil

import pyarrow.parquet as pq
import pytest

CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]


def browser_or_skip(name: str) -> str:
    """Path of the browser executable ``name``; skips (fails under ``HARDMINE_CI``) when it is absent."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} is not installed (apt-get install -y {name})"
        if os.environ.get("HARDMINE_CI"):
            pytest.fail(message + " but HARDMINE_CI is set: CI must run the browser tests")
        pytest.skip(message)
    return path


def run_counts(run) -> dict[str, int]:
    """Flagged items of a mining run, counted with pyarrow (independently of the page builder)."""
    s = pq.read_table(run / "samples.parquet", columns=["suspect_mislabel", "duplicate_of"]).to_pydict()
    c = pq.read_table(run / "classes.parquet", columns=["label", "nearest_label", "merge_candidate"]).to_pylist()
    pairs = {frozenset((r["label"], r["nearest_label"])) for r in c if r["merge_candidate"]}
    return {"suspects": sum(s["suspect_mislabel"]), "duplicates": sum(k is not None for k in s["duplicate_of"]),
            "merges": len(pairs)}

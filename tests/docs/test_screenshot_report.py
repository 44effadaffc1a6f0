"""docs/screenshot_report.py: PNGs of a review page at the asked viewport (needs chromium)."""

from __future__ import annotations

import subprocess
import sys

from PIL import Image

from fr_data.review import build_report
from tests.fr_data.review.browsers import browser_or_skip
from tests.fr_data.review.builders import make_review_run
from tests.repo import ROOT

SCRIPT = ROOT / "docs" / "screenshot_report.py"


def test_screenshots_of_the_top_and_of_each_section(tmp_path):
    chromium = browser_or_skip("chromium")
    data = make_review_run(tmp_path / "data")
    report = build_report(data.run, data.shards, tmp_path / "report").folder
    argv = [str(report), "--out", str(tmp_path / "png"), "--sections", "suspects", "--width", "800",
            "--height", "600", "--chromium", chromium]
    done = subprocess.run([sys.executable, str(SCRIPT), *argv], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    for name in ("review_overview.png", "review_suspects.png"):
        with Image.open(tmp_path / "png" / name) as im:
            assert im.size == (800, 600)
    assert "wrote" in done.stdout
    bad = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--out", str(tmp_path / "x"), "--chromium",
                          chromium], capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "no review page there" in bad.stderr

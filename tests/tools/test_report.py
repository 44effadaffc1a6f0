"""tools/report.py: the thin wrapper runs as a script."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.fr_data.review.builders import make_review_run

ROOT = Path(__file__).resolve().parents[2]


def test_tools_report_runs_as_a_script(tmp_path):
    data = make_review_run(tmp_path / "data")
    proc = subprocess.run([sys.executable, str(ROOT / "tools" / "report.py"), str(data.run), "--shards",
                           str(data.shards), "--out", str(tmp_path / "page")], capture_output=True, text=True,
                          cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "wrote" in proc.stdout and "report thumbnails" in proc.stderr  # per-stage progress lines
    assert (tmp_path / "page" / "index.html").is_file()

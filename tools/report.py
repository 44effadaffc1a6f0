"""Write the static review page of a mining run (see ``hardmine/cli/report.py``).

    python tools/report.py RUN --shards SHARDS --out DIR [--per-section N] [--attributes A.parquet]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardmine.cli.report import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())

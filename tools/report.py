"""Write the static review page of a mining run.

``python tools/report.py ARGS`` is ``hardmine report ARGS``: the code lives in ``hardmine/cli/report.py``
(``--help`` lists the arguments).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardmine.cli.report import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())

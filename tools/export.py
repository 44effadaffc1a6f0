"""Review decisions as file operations: ``python tools/export.py --review review.csv --shards S --out list.txt``.

``python tools/export.py ARGS`` is ``hardmine export ARGS``: the code lives in ``hardmine/cli/export.py``
(``--help`` lists the arguments).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardmine.cli.export import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())

"""Query a mining run with DuckDB SQL: ``python tools/query.py manifests/RUN "SQL"``.

``python tools/query.py ARGS`` is ``hardmine query ARGS``: the code lives in ``hardmine/cli/query.py``
(``--help`` lists the arguments).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardmine.cli.query import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())

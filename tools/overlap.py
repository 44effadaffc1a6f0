"""Audit evaluation sets against a training set: shared identities and leaked images.

``python tools/overlap.py ARGS`` is ``hardmine overlap ARGS``: the code lives in ``hardmine/cli/overlap.py``
(``--help`` lists the arguments).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardmine.cli.overlap import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())

"""Embed every image of a shard folder with a face backbone.

``python tools/embed.py ARGS`` is ``hardmine embed ARGS``: the code lives in ``hardmine/cli/embed.py``
(``--help`` lists the arguments).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardmine.cli.embed import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())

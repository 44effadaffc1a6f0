"""End-to-end demo on synthetic faces: synth, shard, train, embed, mine, evaluate, query.

``python tools/demo.py ARGS`` is ``hardmine demo ARGS``: the code lives in ``hardmine/cli/demo.py``
(``--help`` lists the arguments).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardmine.cli.demo import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())

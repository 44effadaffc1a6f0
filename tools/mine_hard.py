"""Mine easy/hard samples, label noise, duplicates and variation splits from an embeddings folder.

``python tools/mine_hard.py ARGS`` is ``hardmine mine ARGS``: the code lives in ``hardmine/cli/mine.py``
(``--help`` lists the arguments).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardmine.cli.mine import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())

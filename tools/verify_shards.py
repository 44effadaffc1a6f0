"""Check every shard of a folder written by tools/shard.py against its manifests.

``python tools/verify_shards.py ARGS`` is ``hardmine verify ARGS``: the code lives in ``hardmine/cli/verify.py``
(``--help`` lists the arguments).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardmine.cli.verify import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())

"""Cut a face data set (RecordIO folder, .rec file or image folder) into WebDataset shards.

``python tools/shard.py ARGS`` is ``hardmine shard ARGS``: the code lives in ``hardmine/cli/shard.py``
(``--help`` lists the arguments).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardmine.cli.shard import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())

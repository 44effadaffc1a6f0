"""Pool experiment folders of one recipe (one pretrained backbone each): every arm's gain over the
baseline averaged over backbones, each backbone beside the mean, and the goal judged on the mean.

``python tools/experiment_pool.py ARGS`` is ``hardmine experiment-pool ARGS``: the code lives in
``hardmine/cli/experiment_pool.py`` (``--help`` lists the arguments).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardmine.cli.experiment_pool import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())

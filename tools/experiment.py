"""Prove what mining buys: fine-tune arms (baseline, clean, ddl, ddl_ot, lowres_aug, ...) from one pretrained
backbone at equal compute and score them on held-out hard packs.

``python tools/experiment.py ARGS`` is ``hardmine experiment ARGS``: the code lives in
``hardmine/cli/experiment.py`` (``--help`` lists the arguments).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardmine.cli.experiment import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())

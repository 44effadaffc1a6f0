"""Generate a synthetic face data set with ground truth (InsightFace RecordIO + attributes + .bin packs).

``python tools/synth.py ARGS`` is ``hardmine synth ARGS``: the code lives in ``hardmine/cli/synth.py``
(``--help`` lists the arguments).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hardmine.cli.synth import build_parser, main  # noqa: E402

__all__ = ["build_parser", "main"]

if __name__ == "__main__":
    raise SystemExit(main())

"""tools/experiment.py's command line: bad input is a one-line error and exit 2, before any work."""

from __future__ import annotations

import pytest

from hardmine.cli.experiment import build_parser, main
from tests.hardmine.experiment.tiny import write_tiny
from tools import experiment as tool


@pytest.mark.parametrize("extra, message", [
    (["--arms", "baseline", "ddl_tuned"], r"--arms: unknown arm\(s\) \['ddl_tuned'\]"),
    (["--seeds"], "--seeds: the seed list is empty"),
    (["--seeds", "1", "1"], "--seeds: a seed is repeated"),
    (["--size", "small", "--config", "nowhere.yaml"], "nowhere.yaml: cannot read YAML"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, message):
    config = write_tiny(tmp_path)
    assert main(["--out", str(tmp_path / "exp"), "--config", str(config), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("experiment: error: ") and err.count("\n") == 1
    assert pytest.importorskip("re").search(message, err), err
    assert not (tmp_path / "exp").exists()  # nothing was started


def test_the_tool_is_a_thin_wrapper():
    assert tool.main is main and tool.build_parser is build_parser
    args = build_parser().parse_args(["--out", "x"])
    assert args.size == "full" and args.seeds is None and args.device == "cpu"
    assert args.config.name == "hard_samples.yaml" and args.config.is_file()

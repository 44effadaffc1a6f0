"""tools/experiment.py's command line: bad input is a one-line error and exit 2, before any work."""

from __future__ import annotations

import re

import pytest

from hardmine.cli.experiment import DEFAULT_CONFIG, build_parser, main
from tests.hardmine.experiment.tiny import write_tiny
from tests.repo import ROOT


@pytest.mark.parametrize("extra, message", [
    (["--arms", "baseline", "ddl_tuned"], r"--arms: unknown arm\(s\) \['ddl_tuned'\]"),
    (["--seeds"], "--seeds: the seed list is empty"),
    (["--seeds", "1", "1"], "--seeds: a seed is repeated"),
    (["--size", "small", "--config", "nowhere.yaml"], "nowhere.yaml: no such config file"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys, extra, message):
    config = write_tiny(tmp_path)
    assert main(["--out", str(tmp_path / "exp"), "--config", str(config), *extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hardmine experiment: error: ") and err.count("\n") == 1
    assert re.search(message, err), err
    assert not (tmp_path / "exp").exists()  # nothing was started


def test_defaults_and_the_packaged_config():
    args = build_parser().parse_args(["--out", "x"])
    assert args.size == "full" and args.seeds is None and args.device == "cpu"
    assert args.config == DEFAULT_CONFIG and (ROOT / "configs" / DEFAULT_CONFIG).is_file()  # packaged name

"""The ``hardmine`` dispatcher."""

from __future__ import annotations

import importlib

import pytest

from hardmine.cli.main import SUBCOMMANDS, main


def test_help_lists_every_subcommand(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(f"  {name}" in out for name in SUBCOMMANDS)


def test_no_subcommand_prints_usage_and_fails(capsys):
    assert main([]) == 2
    assert "usage: hardmine" in capsys.readouterr().out


def test_unknown_subcommand_is_a_one_line_error(capsys):
    assert main(["shrad"]) == 2
    err = capsys.readouterr().err.strip()
    assert "unknown subcommand 'shrad'" in err and "\n" not in err


@pytest.mark.parametrize("name", sorted(SUBCOMMANDS))
def test_every_subcommand_has_main_and_parser_with_its_prog(name, capsys):
    module = importlib.import_module(f"hardmine.cli.{SUBCOMMANDS[name][0]}")
    assert callable(module.main)
    assert module.build_parser(f"hardmine {name}").prog == f"hardmine {name}"
    with pytest.raises(SystemExit) as stop:
        main([name, "--help"])
    assert stop.value.code == 0 and f"usage: hardmine {name}" in capsys.readouterr().out


def test_subcommand_errors_exit_2(tmp_path, capsys):
    assert main(["verify", str(tmp_path / "missing")]) == 2
    assert "error:" in capsys.readouterr().err

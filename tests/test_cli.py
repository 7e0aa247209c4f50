"""The command line as a whole: help, unknown commands, the usage status."""

from __future__ import annotations

import pytest

from notifier.cli import COMMAND_MODULES, main
from notifier.errors import EX_USAGE


def test_help_lists_every_command(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--help"])

    shown = capsys.readouterr().out
    assert stopped.value.code == 0
    for command in COMMAND_MODULES:
        assert f"\n    {command}" in shown, command


def test_a_command_given_is_parsed_with_its_own_options(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["run", "--help"])

    shown = capsys.readouterr().out
    assert stopped.value.code == 0
    assert shown.startswith("usage: notifier run [-h] [-c PATH] [--log-level")


def test_an_unknown_command_is_a_usage_error_naming_the_commands(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["chek"])

    error = capsys.readouterr().err
    assert stopped.value.code == EX_USAGE
    assert "invalid choice: 'chek'" in error
    assert "'check'" in error
    assert "'test-send'" in error


def test_no_command_prints_the_help_and_exits_with_the_usage_status(capsys):
    assert main([]) == EX_USAGE
    assert "commands:" in capsys.readouterr().err


def test_version_is_printed(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["--version"])

    assert stopped.value.code == 0
    assert capsys.readouterr().out.strip()

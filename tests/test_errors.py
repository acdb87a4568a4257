"""rlvr.errors: plain exceptions with an exit code (no CLI framework in the library); the `rlvr`
command turns each into one line on stderr and that exit code."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from rlvr.cli import COMMANDS, main
from rlvr.errors import InputError, OutputError, RlvrError


def test_the_errors_do_not_need_the_cli_framework():
    code = "import sys, rlvr.errors, rlvr.io, rlvr.names; print('click' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert not issubclass(InputError, click.ClickException)


@click.command()
@click.argument("kind")
def fail(kind: str) -> None:
    raise {"input": InputError, "output": OutputError, "other": RlvrError}[kind](f"{kind} went wrong")


@pytest.mark.parametrize("kind, code", [("input", 2), ("output", 2), ("other", 1)])
def test_the_cli_prints_one_line_and_exits_with_the_errors_code(monkeypatch, kind, code):
    monkeypatch.setitem(COMMANDS, "fail", f"{__name__}:fail")
    result = CliRunner().invoke(main, ["fail", kind], catch_exceptions=False)
    assert (result.exit_code, result.stderr, result.stdout) == (code, f"error: {kind} went wrong\n", "")

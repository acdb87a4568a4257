"""Errors that mean "the user's input is wrong": the CLI prints one line and exits with code 2."""

from __future__ import annotations

import click


class InputError(click.UsageError):
    """Bad input named precisely (file, row, field or option). Exit code 2 through click."""

    exit_code = 2

    def __init__(self, message: str):
        super().__init__(message)

    def show(self, file=None) -> None:  # one clear line, no usage dump
        click.echo(f"error: {self.format_message()}", err=True, file=file)


class OutputError(InputError):
    """The run folder cannot be written (disk full, read-only, permissions): one line naming the path,
    exit code 2. What was written before (the previous checkpoint) is left intact."""

"""Errors the user can act on, as plain exceptions carrying the exit code the CLI ends with.

The library raises them; the command line (rlvr.cli) prints one line, `error: <message>`, on
stderr and exits with `exit_code`. Nothing here depends on the CLI framework."""

from __future__ import annotations

__all__ = ["EngineUnavailable", "InputError", "OutputError", "RlvrError"]


class RlvrError(Exception):
    """A failure explained in one line (no traceback); the CLI exits with `exit_code`."""

    exit_code = 1

    @property
    def message(self) -> str:
        return str(self)


class InputError(RlvrError):
    """Bad input named precisely (file, row, field or option). Exit code 2."""

    exit_code = 2


class OutputError(RlvrError):
    """The run folder cannot be written (disk full, read-only, permissions): one line naming the path,
    exit code 2. What was written before (the previous checkpoint) is left intact."""

    exit_code = 2


class EngineUnavailable(RlvrError):
    """The rollout engine stopped answering mid-run (a vLLM server down, too slow or restarted) after its
    retries: the trainer checkpoints the last finished step and exits 1 rather than train on stale weights."""

    exit_code = 1

"""The program the python environment runs in a sandbox: earlier cells replayed silently, then the new one.

The new cell's error is reported as one line with its cell line number."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["MARKER", "CellReport", "cell_program", "read_report"]

#: how the program's report line on (real) stderr starts; the cell's own stderr goes to stdout
MARKER = "__rlvr_cell__ "

# The program. Its stdout is the new cell's output only (print and sys.stderr both); its real stderr
# gets the report line, then, on an error, the exception's last line (so the supervisor classifies a
# MemoryError as status memory). Replayed cells write nowhere; their errors are ignored, as a
# notebook keeps what a failed cell defined before it failed.
_PROGRAM = r"""
import json, os, sys, time, traceback
_CELLS = json.loads(%(cells)s)
class _Null:
    def write(self, text): return len(text)
    def flush(self): pass
def _where(tb, number):
    line = None
    for frame, lineno in traceback.walk_tb(tb):
        if frame.f_code.co_filename.startswith("<cell "):
            line = (frame.f_code.co_filename[6:-1], lineno)
    return line
def _describe(err, number):
    where = _where(err.__traceback__, number)
    if isinstance(err, SyntaxError) and (err.filename or "").startswith("<cell "):
        where = (err.filename[6:-1], err.lineno)
    last = traceback.format_exception_only(type(err), err)[-1].strip()
    if where is None:
        return last
    cell, line = where
    return ("line %%s: %%s" %% (line, last) if cell == str(number)
            else "line %%s of cell %%s: %%s" %% (line, cell, last))
_ns = {"__name__": "__main__", "__builtins__": __builtins__}
_out, _err = sys.stdout, sys.__stderr__
for _i, _src in enumerate(_CELLS[:-1]):
    sys.stdout = sys.stderr = _Null()
    try:
        exec(compile(_src, "<cell %%d>" %% (_i + 1), "exec"), _ns)
    except BaseException:
        pass
sys.stdout = sys.stderr = _out
_number = len(_CELLS)
_started = time.perf_counter()
_error = _last = None
try:
    exec(compile(_CELLS[-1], "<cell %%d>" %% _number, "exec"), _ns)
except SystemExit as err:
    if err.code not in (None, 0):
        _error = _last = "SystemExit: %%s" %% (err.code,)
except BaseException as err:
    _error = _describe(err, _number)
    _last = traceback.format_exception_only(type(err), err)[-1].strip()
_seconds = time.perf_counter() - _started
sys.stdout.flush()
_err.write("%(marker)s" + json.dumps({"seconds": _seconds, "error": _error}) + "\n")
if _last is not None:
    _err.write(_last + "\n")
_err.flush()
os._exit(1 if _error else 0)
"""


def cell_program(cells: list[str]) -> str:
    """The program that replays `cells[:-1]` silently and runs `cells[-1]`, numbered from 1."""
    return _PROGRAM % {"cells": repr(json.dumps(cells)), "marker": MARKER}


@dataclass(frozen=True)
class CellReport:
    """What the program said about the new cell: its own seconds and its error line (None: no error)."""

    seconds: float | None
    error: str | None


def read_report(stderr: str) -> CellReport:
    """The report line on the program's stderr; an empty report where the program died before
    writing it (timeout, kill)."""
    for line in stderr.splitlines():
        if line.startswith(MARKER):
            try:
                data: Any = json.loads(line[len(MARKER) :])
                return CellReport(float(data["seconds"]), data.get("error"))
            except (ValueError, KeyError, TypeError):
                break
    return CellReport(None, None)

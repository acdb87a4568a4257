"""Keeping the engines' own output off the console: C-level warnings, Python warnings and progress bars that
vLLM and transformers write straight to file descriptors 1 and 2 go to a log file in the run folder."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path

__all__ = ["engine_output_to"]


@contextlib.contextmanager
def engine_output_to(log_file: Path | None) -> Iterator[None]:
    """Within the block, whatever writes to stdout or stderr (any thread, any library, C++ included) is
    appended to `log_file` instead; None leaves the console as it is (`rlvr train -v`)."""
    if log_file is None:
        yield
        return
    log_file.parent.mkdir(parents=True, exist_ok=True)
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(log_file, "ab") as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)

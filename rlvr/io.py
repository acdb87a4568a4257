"""Files in and out: the one JSONL reader (one error policy) and the one atomic write.

Reading: a row that is not JSON, or not a JSON object, is an InputError naming the file and the
line. The only exception is `torn_tail=True`, for files rlvr appends to as it goes (metrics.jsonl,
samples.jsonl): a last line cut short by a killed run (no newline at its end, not JSON) is skipped,
and `append_jsonl` cuts it off before it appends, so a resumed run never glues a row onto it.

Writing: `write_atomic` writes a whole file or leaves the old one (a temporary file in the same
folder, renamed over the target), so a kill never leaves half a summary, pointer or cache.
"""

from __future__ import annotations

import gzip
import json
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from rlvr.errors import InputError

__all__ = ["append_jsonl", "read_jsonl", "write_atomic", "write_json", "write_jsonl"]

log = logging.getLogger("rlvr.io")

Row = dict[str, Any]


def _lines(path: Path, label: str) -> Iterator[str]:
    """The file's lines with their line ends, one in memory at a time (.gz read through gzip)."""
    prefix = f"{label} " if label else ""
    try:
        with (
            gzip.open(path, "rt", encoding="utf-8")
            if path.name.lower().endswith(".gz")
            else path.open(encoding="utf-8")
        ) as handle:
            yield from handle
    except FileNotFoundError:
        raise InputError(f"{prefix}{path}: no such file") from None
    except (OSError, UnicodeDecodeError, EOFError) as err:
        raise InputError(f"{prefix}{path}: cannot read: {err}") from None


def read_jsonl(
    path: str | os.PathLike, *, label: str = "", torn_tail: bool = False, missing_ok: bool = False
) -> Iterator[tuple[int, Row]]:
    """(line number, row) for every non-blank line of a .jsonl (or .jsonl.gz) file, read lazily: memory
    stays flat however long the file is.

    `label` names where the path came from in errors about the file ("--input"); `missing_ok`
    reads a file that does not exist as empty; `torn_tail` skips a last line cut short by a kill
    (see the module docstring). Any other bad line is an InputError naming the file and line."""
    path = Path(path)
    if missing_ok and not path.exists():
        return
    for number, raw in enumerate(_lines(path, label), 1):
        line = raw.rstrip("\r\n")
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            if torn_tail and not raw.endswith("\n"):  # only the last line can lack its newline
                log.warning("%s line %d: skipped a last line cut short (a killed run)", path, number)
                return
            raise InputError(f"{path} line {number}: bad JSON: {err.msg} (column {err.colno})") from None
        if not isinstance(row, dict):
            raise InputError(f"{path} line {number}: expected a JSON object, got {type(row).__name__}")
        yield number, row


def _jsonl_text(rows: Iterable[Any]) -> str:
    return "".join(json.dumps(row, default=str) + "\n" for row in rows)


def append_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> None:
    """Append one JSON line per row (created if missing), after cutting off a torn last line."""
    path = Path(path)
    text = _jsonl_text(rows)
    with open(path, "a+b") as handle:
        size = handle.seek(0, os.SEEK_END)
        if size:
            handle.seek(max(0, size - 1))
            if handle.read(1) != b"\n":  # a line cut short by a kill: drop it, it is re-done
                handle.seek(0)
                kept = handle.read().rfind(b"\n") + 1
                handle.truncate(kept)
        handle.seek(0, os.SEEK_END)
        handle.write(text.encode("utf-8"))


def write_atomic(path: str | os.PathLike, data: str | bytes) -> None:
    """Write `data` (text as UTF-8) to `path` whole or not at all: through a temporary file in the
    same folder, renamed over `path`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, data: Any, *, indent: int | None = 2) -> None:
    """`data` as JSON (one trailing newline), written atomically."""
    write_atomic(path, json.dumps(data, indent=indent, default=str) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[Any]) -> None:
    """One JSON line per row, written atomically (the whole file replaced)."""
    write_atomic(path, _jsonl_text(rows))

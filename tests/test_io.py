"""rlvr.io: the one JSONL reader (one error policy, a torn tail tolerated only where rlvr appends) and
the one atomic write."""

from __future__ import annotations

import gzip
import os
import re

import pytest

from rlvr.errors import InputError
from rlvr.io import append_jsonl, read_jsonl, write_atomic, write_json, write_jsonl


@pytest.mark.parametrize(
    "text, torn_tail, expected",
    [
        ('{"a": 1}\n\n{"a": 2}\n', False, [(1, {"a": 1}), (3, {"a": 2})]),
        ('{"a": 1}\n{"a": 2}', False, [(1, {"a": 1}), (2, {"a": 2})]),  # a whole last line without its newline
        ('{"a": 1}\n{"a": 2}', True, [(1, {"a": 1}), (2, {"a": 2})]),
        ('{"a": 1}\n{"a": ', True, [(1, {"a": 1})]),  # cut short by a kill
        ("", False, []),
    ],
)
def test_rows_with_their_line_numbers(tmp_path, text, torn_tail, expected):
    path = tmp_path / "rows.jsonl"
    path.write_text(text)
    assert list(read_jsonl(path, torn_tail=torn_tail)) == expected


@pytest.mark.parametrize(
    "text, torn_tail, message",
    [
        ('{"a": 1}\n{"a": \n', False, "line 2: bad JSON: Expecting value (column 7)"),
        ('{"a": 1}\n{"a": ', False, "line 2: bad JSON"),  # torn, but this file is not one rlvr appends to
        ('{"a": \n{"a": 1}\n', True, "line 1: bad JSON"),  # only the last line can be torn
        ('{"a": 1}\n{"a": \n', True, "line 2: bad JSON"),  # a last line with its newline was written whole
        ("[1, 2]\n", False, "line 1: expected a JSON object, got list"),
    ],
)
def test_a_bad_row_is_an_input_error_naming_file_and_line(tmp_path, text, torn_tail, message):
    path = tmp_path / "rows.jsonl"
    path.write_text(text)
    with pytest.raises(InputError, match="^" + re.escape(f"{path} {message}")):
        list(read_jsonl(path, torn_tail=torn_tail))


def test_missing_files_and_gzip(tmp_path):
    with pytest.raises(InputError, match="^" + re.escape(f"--input {tmp_path / 'no.jsonl'}: no such file") + "$"):
        list(read_jsonl(tmp_path / "no.jsonl", label="--input"))
    assert list(read_jsonl(tmp_path / "no.jsonl", missing_ok=True)) == []
    with gzip.open(tmp_path / "rows.jsonl.gz", "wt") as handle:
        handle.write('{"a": 1}\n')
    assert list(read_jsonl(tmp_path / "rows.jsonl.gz")) == [(1, {"a": 1})]


@pytest.mark.parametrize("before", ["", '{"a": 1}\n', '{"a": 1}\n{"a": 2, "b"'])
def test_append_cuts_a_torn_tail_first(tmp_path, before):
    path = tmp_path / "rows.jsonl"
    path.write_text(before)
    append_jsonl(path, [{"a": 3}, {"a": 4}])
    rows = [row["a"] for _, row in read_jsonl(path)]
    assert rows == [1, 3, 4] if before else rows == [3, 4]


def test_atomic_writes_replace_whole_files(tmp_path):
    path = tmp_path / "summary.json"
    write_json(path, {"a": (1, 2)})
    assert path.read_text() == '{\n  "a": [\n    1,\n    2\n  ]\n}\n'
    write_atomic(path, b"bytes")
    assert path.read_bytes() == b"bytes"
    write_jsonl(path, [{"a": 1}, {"b": 2}])
    assert path.read_text() == '{"a": 1}\n{"b": 2}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]  # no temporary file left


def test_a_failed_write_keeps_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "latest"
    path.write_text("step_000002\n")

    def fail(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(OSError, match="No space left"):
        write_atomic(path, "step_000003\n")
    assert path.read_text() == "step_000002\n"
    assert [p.name for p in tmp_path.iterdir()] == ["latest"]

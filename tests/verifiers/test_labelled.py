"""`rlvr verify --labelled FILE`: false-positive / false-negative rates per class against a person's
verdicts, for any spec; and one clear line with exit 2 for a bad labelled file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from rlvr.cli import main
from rlvr.types import Score, Status
from rlvr.verifiers.labelled import LabelTally, expected_of


def run(*args: str):
    return CliRunner().invoke(main, ["verify", *args], catch_exceptions=False)


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    "row, expected",
    [
        ({"expected": True}, True),
        ({"expected": False}, False),
        ({"expected": 1}, True),
        ({"expected": 0}, False),
        ({"expected": 1.0}, True),
        ({"label": False}, False),
        ({"expected": True, "label": False}, True),
        ({"expected": "yes"}, "field 'expected' must be true/false or 1/0, got 'yes'"),
        ({"expected": 2}, "got 2"),
        ({"expected": None}, "got None"),
        ({"expected": 0.5}, "got 0.5"),
        ({}, "missing field 'expected'"),
    ],
)
def test_expected_verdict(row: dict, expected) -> None:
    if isinstance(expected, bool):
        assert expected_of(row) is expected
    else:
        with pytest.raises(ValueError, match=re.escape(expected)):
            expected_of(row)


def _score(reward: float, status: Status = Status.CORRECT, method: str | None = "boxed") -> Score:
    return Score(reward, status, {"method": method} if method else {})


def test_rates_per_class_and_per_grader() -> None:
    tally = LabelTally()
    cases = [  # (row, ours, theirs)
        ({"class": "units", "expected": True}, _score(1.0), _score(0.0, Status.WRONG)),
        ({"class": "units", "expected": True}, _score(0.0, Status.WRONG), _score(1.0)),
        ({"class": "units", "expected": False}, _score(1.0), _score(0.0, Status.WRONG)),
        ({"class": "units", "expected": False}, _score(0.0, Status.WRONG), _score(0.0, Status.TIMEOUT)),
        ({"expected": False}, _score(0.0, Status.NO_ANSWER, "last_number"), _score(1.0)),  # no class: our method
    ]
    for row, ours, theirs in cases:
        tally.add(row, {"ours": ours, "theirs": theirs})
    got = {(g, c): (r.rows, r.fp, r.fn, r.fp_rate, r.fn_rate, r.failed) for g, c, r in tally.table()}
    assert got == {
        ("ours", "units"): (4, 1, 1, 0.5, 0.5, 0),
        ("ours", "last_number"): (1, 0, 0, 0.0, 0.0, 0),
        ("ours", "all"): (5, 1, 1, 1 / 3, 0.5, 0),
        ("theirs", "units"): (4, 0, 1, 0.0, 0.5, 1),
        ("theirs", "last_number"): (1, 1, 0, 1.0, 0.0, 0),
        ("theirs", "all"): (5, 1, 1, 1 / 3, 0.5, 1),
    }
    assert [c for g, c, _ in tally.table() if g == "ours"] == ["last_number", "units", "all"]


def test_labelled_file_end_to_end_for_a_format_reward(tmp_path: Path) -> None:
    """Any spec: a format reward has no extraction method, so rows without a class fall in "-"."""
    rows = [
        {"completion": "<think>a</think> 4", "expected": True, "class": "closed"},
        {"completion": "<think>a 4", "expected": 0, "class": "unclosed"},
        {"completion": "4", "expected": 1},  # think_format gives 0: a false negative in class "-"
    ]
    out = tmp_path / "scored.jsonl"
    result = run(
        "-v", "think_format", "--labelled", str(write(tmp_path / "l.jsonl", rows)), "-o", str(out), "--workers", "0"
    )
    assert result.exit_code == 0, result.output
    assert len(out.read_text().splitlines()) == 3
    cells = {
        tuple(c.strip() for c in line.split("│")[1:4]) for line in result.stdout.splitlines() if line.count("│") > 5
    }
    assert {("ours", "closed", "1"), ("ours", "unclosed", "1"), ("ours", "-", "1"), ("ours", "all", "3")} <= cells
    line = next(line for line in result.stdout.splitlines() if "│ -" in line)
    assert re.search(r"│\s*0\s*│\s*0\.0%\s*│\s*1\s*│\s*100\.0%\s*│\s*0\.0%", line), line


@pytest.mark.parametrize(
    "bad_line, message",
    [
        (
            {"completion": "\\boxed{1}", "answer": "1", "expected": "maybe"},
            "line 3: field 'expected' must be true/false or 1/0, got 'maybe'",
        ),
        ({"completion": "\\boxed{1}", "answer": "1"}, "line 3: missing field 'expected' (true/false or 1/0)"),
        (
            {"completion": "\\boxed{1}", "answer": "1", "expected": 3},
            "line 3: field 'expected' must be true/false or 1/0, got 3",
        ),
    ],
)
def test_bad_labelled_file_is_one_line_naming_file_and_row_and_exit_2(
    tmp_path: Path, bad_line: dict, message: str
) -> None:
    good = {"completion": "\\boxed{1}", "answer": "1", "expected": True}
    path = write(tmp_path / "labels.jsonl", [good, good, bad_line, good])
    out = tmp_path / "scored.jsonl"
    result = run("-v", "math", "--labelled", str(path), "-o", str(out), "--workers", "0")
    assert result.exit_code == 2, result.output
    assert result.stderr == f"error: {path} {message}\n"
    assert not out.exists(), "nothing is scored or written before every row is checked"


def test_labelled_and_input_together_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "l.jsonl", [{"completion": "x", "answer": "1", "expected": True}])
    result = run("-v", "math", "--labelled", str(path), "--input", str(path))
    assert result.exit_code == 2 and "give --input or --labelled, not both" in result.stderr


def test_labelled_rows_without_expected_need_it_only_with_the_flag(tmp_path: Path) -> None:
    path = write(tmp_path / "rows.jsonl", [{"completion": "\\boxed{1}", "answer": "1"}])
    assert run("-v", "math", "--input", str(path), "--workers", "0").exit_code == 0
    assert run("-v", "math", "--labelled", str(path), "--workers", "0").exit_code == 2

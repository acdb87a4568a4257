"""`rlvr verify --cross-check SPEC`: the second grader's verdict on every row, the disagreement counts
by direction and by how our verdict was reached, and the file of disagreeing rows a person labels."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from test_reward_model import classifier  # noqa: F401  (the tiny random reward model fixture)

from rlvr.cli import main
from rlvr.types import Score, Status
from rlvr.verifiers.cross_check import default_disagreements_path, grading

# (id, completion, gold, ours, raw math-verify's): chosen so both directions of disagreement occur
ROWS = [
    ("same", "The answer is $\\boxed{4}$.", "4", 1.0, 1.0),
    ("both_wrong", "The answer is $\\boxed{5}$.", "4", 0.0, 0.0),
    ("time", "The answer is 09:15", "9:15", 1.0, 0.0),  # math-verify does not read clock times
    ("set_tuple", "I get $\\boxed{\\{1,2\\}}$", "(1,2)", 0.0, 1.0),  # a set is never a tuple (rlvr's refusal)
    ("gsm8k_gold", "So she pays 1,234 dollars in all.", "Costs add up.\n#### 1,234", 1.0, 1.0),
]


def write_rows(path: Path, rows=ROWS, **extra) -> Path:
    path.write_text(
        "".join(json.dumps({"id": i, "completion": c, "answer": g, **extra}) + "\n" for i, c, g, *_ in rows)
    )
    return path


def run(*args: str):
    return CliRunner().invoke(main, ["verify", *args], catch_exceptions=False)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("workers", ["0", "2"])
def test_every_row_gains_the_second_verdict_and_the_summary_counts_each_way(tmp_path: Path, workers: str) -> None:
    out = tmp_path / "scored.jsonl"
    result = run(
        "-v",
        "math",
        "-i",
        str(write_rows(tmp_path / "rows.jsonl")),
        "-o",
        str(out),
        "--cross-check",
        "math_verify",
        "--workers",
        workers,
    )
    assert result.exit_code == 0, result.output
    scored = read_jsonl(out)
    assert [r["id"] for r in scored] == [r[0] for r in ROWS]  # input order
    for row, (_, _, _, ours, theirs) in zip(scored, ROWS, strict=True):
        assert row["reward"] == ours and set(row["cross_check"]) == {"reward", "status", "agree"}
        assert row["cross_check"]["reward"] == theirs
        assert row["cross_check"]["agree"] is ((ours >= 0.5) == (theirs >= 0.5))
    lines = result.stdout.splitlines()
    assert "cross-check: 2 of 5 rows disagree (40.0%) with 'math_verify'" in lines
    assert "  ours 1 / theirs 0: 1" in lines and "  ours 0 / theirs 1: 1" in lines
    assert "  method boxed, path shape, ours 0 / theirs 1: 1" in lines  # grouped by extraction method and path
    assert any(re.fullmatch(r"  method \w+, path \w+, ours 1 / theirs 0: 1", line) for line in lines)


def test_disagreements_go_to_a_file_a_person_labels_and_back_into_labelled(tmp_path: Path) -> None:
    rows = write_rows(tmp_path / "rows.jsonl")
    result = run(
        "-v",
        "math",
        "-i",
        str(rows),
        "-o",
        str(tmp_path / "scored.jsonl"),
        "--cross-check",
        "math_verify",
        "--workers",
        "0",
    )
    assert result.exit_code == 0, result.output
    side = tmp_path / "scored.disagreements.jsonl"  # default: beside the output
    disagreeing = read_jsonl(side)
    assert [r["id"] for r in disagreeing] == ["time", "set_tuple"]
    for row in disagreeing:
        assert row["expected"] is None and row["theirs"]["grader"] == "math_verify"
        assert {"reward", "status", "details"} <= set(row["ours"]) and "completion" in row and "answer" in row
    # the person's labels: the time is right, the set is not the tuple
    labelled = tmp_path / "labelled.jsonl"
    labelled.write_text("".join(json.dumps({**r, "expected": r["id"] == "time"}) + "\n" for r in disagreeing))
    result = run("-v", "math", "--labelled", str(labelled), "-o", str(tmp_path / "again.jsonl"), "--workers", "0")
    assert result.exit_code == 0, result.output
    assert re.search(r"ours\s*│\s*all\s*│\s*2\s*│\s*0\s*│\s*0\.0%\s*│\s*0\s*│\s*0\.0%\s*│\s*100\.0%", result.stdout), (
        result.stdout
    )


@pytest.mark.parametrize(
    "output, flag, expected",
    [
        ("scored.jsonl", None, "scored.disagreements.jsonl"),
        (None, None, "rows.disagreements.jsonl"),  # to stdout: beside the input
        ("scored.jsonl", "mine.jsonl", "mine.jsonl"),
    ],
)
def test_where_the_disagreements_go(tmp_path: Path, output: str | None, flag: str | None, expected: str) -> None:
    args = [
        "-v",
        "math",
        "-i",
        str(write_rows(tmp_path / "rows.jsonl", ROWS[2:3])),
        "--cross-check",
        "math_verify",
        "--workers",
        "0",
    ]
    args += ["-o", str(tmp_path / output)] if output else []
    args += ["--disagreements", str(tmp_path / flag)] if flag else []
    result = run(*args)
    assert result.exit_code == 0, result.output
    assert [r["id"] for r in read_jsonl(tmp_path / expected)] == ["time"]
    assert sorted(p.name for p in tmp_path.glob("*disagreements*")) == (
        [expected] if "disagreements" in expected else []
    )
    if output is None:  # stdout keeps only data rows: the summary went to stderr
        assert [json.loads(line)["id"] for line in result.stdout.splitlines()] == ["time"]
        assert "cross-check: 1 of 1 rows disagree" in result.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--disagreements", "x.jsonl"], "--disagreements needs --cross-check SPEC"),
        (["--cross-check", "no_such_grader"], "--cross-check 'no_such_grader': "),
    ],
)
def test_bad_cross_check_options_are_one_line_and_exit_2(tmp_path: Path, args: list[str], message: str) -> None:
    result = run("-v", "math", "-i", str(write_rows(tmp_path / "rows.jsonl")), "--workers", "0", *args)
    assert result.exit_code == 2 and result.stderr.count("\n") == 1 and message in result.stderr, result.stderr


def test_the_reference_needs_its_own_gold_fields(tmp_path: Path) -> None:
    rows = tmp_path / "rows.jsonl"
    rows.write_text(json.dumps({"completion": "<think>a</think> 4"}) + "\n")
    result = run("-v", "think_format", "-i", str(rows), "--cross-check", "math_verify", "--workers", "0")
    assert result.exit_code == 2 and f"{rows} line 1: missing field 'answer'" in result.stderr


@pytest.mark.slow
def test_a_reward_model_as_either_grader(tmp_path: Path, classifier) -> None:  # noqa: F811
    rm = f"reward_model:model={classifier},batch_size=2"
    rows = write_rows(tmp_path / "rows.jsonl", prompt="What is it?")
    for args in (["-v", "math", "--cross-check", rm], ["-v", rm, "--cross-check", "math_verify"]):
        out = tmp_path / "scored.jsonl"
        result = run(*args, "-i", str(rows), "-o", str(out), "--workers", "1")
        assert result.exit_code == 0, result.output
        scored = read_jsonl(out)
        assert [r["id"] for r in scored] == [r[0] for r in ROWS]
        disagree = sum(not r["cross_check"]["agree"] for r in scored)
        assert f"cross-check: {disagree} of 5 rows disagree" in result.stdout
        assert len(read_jsonl(tmp_path / "scored.disagreements.jsonl")) == disagree


@pytest.mark.parametrize(
    "details, expected",
    [
        ({"method": "boxed", "path": "numeric"}, ("boxed", "numeric")),
        ({"method": "last_number", "path": None}, ("last_number", "-")),
        (
            {
                "components": {
                    "math": {"details": {"method": "answer_is", "path": "symbolic"}},
                    "think_format": {"details": {}},
                }
            },
            ("answer_is", "symbolic"),
        ),  # a weighted spec's math term
        ({"components": {"think_format": {"details": {"note": "x"}}}}, ("-", "-")),
        ({}, ("-", "-")),  # a plugin that says nothing
    ],
)
def test_how_a_verdict_was_reached(details: dict, expected: tuple[str, str]) -> None:
    assert grading(Score(1.0, Status.CORRECT, details)) == expected


def test_default_disagreements_path() -> None:
    assert default_disagreements_path(Path("/a/out.jsonl"), Path("/b/in.jsonl")) == Path("/a/out.disagreements.jsonl")
    assert default_disagreements_path(None, Path("/b/in.jsonl")) == Path("/b/in.disagreements.jsonl")

"""`rlvr verify` end to end: scored rows, the summary, and one clear line + exit 2 for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from rlvr.cli import main
from rlvr.cli.verify import list_verifiers, verifiers, verify

ROWS = [
    {
        "id": "g1",
        "prompt": "2+2?",
        "completion": "<think>add</think> The answer is \\boxed{4}.",
        "answer": "4",
        "subject": "arith",
    },
    {"id": "g2", "prompt": "3*3?", "completion": "I think it is \\boxed{6}", "answer": 9},
    {"id": "g3", "prompt": "half?", "completion": "<think>x</think> \\boxed{\\frac{1}{2}}", "answer": "0.5"},
    {"id": "g4", "prompt": "sum?", "completion": "", "answer": "#### 1,234"},
    {"id": "g5", "prompt": "bad gold", "completion": "\\boxed{1}", "answer": ""},
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def run(*args: str) -> click.testing.Result:
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.mark.parametrize("workers", ["0", "2"])
def test_verify_writes_scored_rows_and_summary(tmp_path: Path, workers: str) -> None:
    rows_file = write_jsonl(tmp_path / "rows.jsonl", ROWS)
    out = tmp_path / "scored.jsonl"
    result = run("verify", "--verifier", "math", "--input", str(rows_file), "--output", str(out), "--workers", workers)
    assert result.exit_code == 0, result.output
    scored = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["id"], r["status"], r["reward"]) for r in scored] == [
        ("g1", "correct", 1.0),
        ("g2", "wrong", 0.0),
        ("g3", "correct", 1.0),
        ("g4", "no_answer", 0.0),
        ("g5", "error", 0.0),
    ]
    for original, row in zip(ROWS, scored, strict=True):
        assert {k: row[k] for k in original} == original  # every input field kept as it was
    assert scored[0]["details"]["extracted"] == "4"
    assert "bad gold" in scored[4]["details"]["error"]
    summary = result.stdout
    for label, value in [
        ("rows", "5"),
        ("mean reward", "0.4000"),
        ("correct", "2"),
        ("wrong", "1"),
        ("no_answer", "1"),
        ("error", "1"),
        ("timeout", "0"),
    ]:
        assert any(label in line and line.rstrip(" │|").endswith(value) for line in summary.splitlines()), (
            label,
            summary,
        )
    assert "verdicts/s" in summary


def test_verify_to_stdout_with_summary_on_stderr(tmp_path: Path) -> None:
    rows_file = write_jsonl(tmp_path / "rows.jsonl", ROWS[:2])
    result = run("verify", "-v", "math+0.1*think_format", "-i", str(rows_file), "--workers", "0")
    assert result.exit_code == 0
    scored = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["reward"] for r in scored] == [pytest.approx(1.1), 0.0]
    assert scored[0]["details"]["components"]["think_format"]["weight"] == 0.1
    assert "rows" in result.stderr and "verdicts/s" in result.stderr


def test_code_style_rows_keep_their_fields_as_metadata(tmp_path: Path) -> None:
    from rlvr.cli.verify import _rows

    row = {
        "completion": "def f(): return 1",
        "answer": None,
        "prompt": "def f():",
        "test": "assert f() == 1",
        "entry_point": "f",
        "tests": ["assert f() == 1"],
    }
    rows, examples = zip(*_rows(write_jsonl(tmp_path / "code.jsonl", [row]), verifier=None), strict=True)
    assert list(rows) == [row]
    assert examples[0].id == "1" and examples[0].prompt == "def f():" and examples[0].answer is None
    assert dict(examples[0].metadata) == {k: v for k, v in row.items() if k not in ("completion", "answer")}


def test_failure_rate_exits_1_after_writing_everything(tmp_path: Path) -> None:
    rows_file = write_jsonl(tmp_path / "rows.jsonl", ROWS)
    out = tmp_path / "scored.jsonl"
    result = run(
        "verify", "-v", "math", "-i", str(rows_file), "-o", str(out), "--workers", "0", "--max-failure-rate", "0.1"
    )
    assert result.exit_code == 1
    assert len(out.read_text().splitlines()) == 5 and "mean reward" in result.stdout
    assert "1 of 5 verdicts failed" in result.stderr and "20.0% > max_failure_rate 10.0%" in result.stderr


BAD_INPUTS = [
    # (file content or None for a missing file, verifier, what the one error line must say)
    (None, "math", "--input {path}: no such file"),
    (
        '{"completion": "a", "answer": "1"}\n{"completion": "b", "answer": "2"}\n{"completion": "c", answer: 3}\n',
        "math",
        "{path} line 3: bad JSON: Expecting property name enclosed in double quotes (column 21)",
    ),
    ('{"completion": "a", "answer": "1"}\n\n{"completion": "b"}\n', "math", "{path} line 3: missing field 'answer'"),
    ('{"answer": "1"}\n', "math", "{path} line 1: missing field 'completion'"),
    ('{"completion": 5, "answer": "1"}\n', "math", "{path} line 1: field 'completion' must be a string, got int"),
    ('["completion", "answer"]\n', "math", "{path} line 1: expected a JSON object, got list"),
    ("\n\n", "math", "{path}: no rows"),
    ('{"completion": "a", "answer": "1"}\n', "nope", "--verifier 'nope': unknown verifier 'nope' (known: "),
    ('{"completion": "a", "answer": "1"}\n', "math+0.1*nope", "--verifier 'math+0.1*nope': unknown verifier 'nope'"),
    (
        '{"completion": "a", "answer": "1"}\n',
        "overlong:max_token=5",
        "--verifier 'overlong:max_token=5': verifier 'overlong': got an unexpected keyword argument 'max_token'",
    ),
    (
        '{"completion": "a", "answer": "1"}\n',
        "overlong:buffer=0",
        "--verifier 'overlong:buffer=0': overlong: need 0 < buffer <= max_tokens",
    ),
    ('{"completion": "a", "answer": "1"}\n', "math+", "--verifier 'math+': empty term in verifier spec 'math+'"),
    ('{"completion": "a", "answer": "1"}\n', "0.1**math", "--verifier '0.1**math': cannot parse verifier term"),
]


@pytest.mark.parametrize("content, spec, message", BAD_INPUTS)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, content: str | None, spec: str, message: str) -> None:
    path = tmp_path / "rows.jsonl"
    if content is not None:
        path.write_text(content)
    out = tmp_path / "out.jsonl"
    result = run("verify", "--verifier", spec, "--input", str(path), "--output", str(out))
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert message.format(path=path) in lines[0]
    assert not out.exists()  # nothing scored, nothing half-written


def _all_commands(command: click.Command, path: str):
    yield path, command
    if isinstance(command, click.Group):
        for name in command.list_commands(click.Context(command)):
            yield from _all_commands(command.get_command(click.Context(command), name), f"{path} {name}")


def test_every_option_of_every_command_has_help() -> None:
    commands = dict(_all_commands(main, "rlvr"))
    assert {"rlvr verify", "rlvr verifiers list", "rlvr eval", "rlvr train", "rlvr sandbox"} <= set(commands)
    assert commands["rlvr verify"] is verify and commands["rlvr verifiers list"] is list_verifiers
    missing = [
        f"{path} --{p.name}"
        for path, c in commands.items()
        for p in c.params
        if isinstance(p, click.Option) and not p.hidden and not p.help
    ]
    assert missing == []
    assert all(c.help for path, c in commands.items()), [path for path, c in commands.items() if not c.help]
    assert {"verify", "verifiers"} <= set(main.list_commands(click.Context(main)))
    assert "--max-failure-rate" in run("verify", "--help").output
    assert "list" in run("verifiers", "--help").output and verifiers.help


def test_verifiers_list_shows_builtins() -> None:
    result = run("verifiers", "list", "--json")
    entries = {e["name"]: e for e in map(json.loads, result.stdout.splitlines())}
    assert {"math", "think_format", "boxed_format", "overlong", "repetition"} <= set(entries)
    assert all(
        e["source"] == "built-in" and e["description"] and not e["broken"]
        for n, e in entries.items()
        if n in {"math", "think_format", "boxed_format", "overlong", "repetition"}
    )


GOLD_FIELDS = [
    # (verifier spec, row without 'completion', the error or None when the row is accepted)
    ("math", {"answer": "4"}, None),
    ("math", {"prompt": "2+2?"}, "line 1: missing field 'answer'"),
    ("think_format", {}, None),  # a format reward needs no gold
    ("overlong+repetition", {"id": "x"}, None),
    ("think_format+math", {}, "line 1: missing field 'answer'"),  # a weighted spec needs a gold if any term does
    ("code", {"prompt": "def f():\n", "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"}, None),
    ("code", {"tests": ["assert f() == 1"]}, None),
    ("code", {"answer": "1"}, "line 1: missing field 'test'+'entry_point' or 'tests' or 'test_list'"),
]


@pytest.mark.parametrize("spec, row, error", GOLD_FIELDS)
def test_only_verifiers_that_need_a_gold_require_one(tmp_path: Path, spec: str, row: dict, error: str | None) -> None:
    from rlvr.cli.verify import _rows
    from rlvr.errors import InputError
    from rlvr.verifiers.registry import build_verifier

    verifier = build_verifier(spec)
    assert verifier.needs_gold == (spec != "think_format" and spec != "overlong+repetition")
    path = write_jsonl(tmp_path / "rows.jsonl", [{"completion": "def f(): return 1", **row}])
    if error is None:
        _, examples = zip(*_rows(path, verifier), strict=True)
        assert examples[0].answer == row.get("answer")
    else:
        with pytest.raises(InputError, match=error.replace("+", "\\+")):
            list(_rows(path, verifier))


def test_format_reward_rows_need_no_answer_end_to_end(tmp_path: Path) -> None:
    rows_file = write_jsonl(tmp_path / "rows.jsonl", [{"completion": "<think>a</think> b"}, {"completion": "b"}])
    result = run("verify", "-v", "think_format", "-i", str(rows_file), "--workers", "0")
    assert result.exit_code == 0, result.output
    assert [json.loads(line)["reward"] for line in result.stdout.splitlines()] == [1.0, 0.0]


@pytest.mark.parametrize(
    "spec, code, rewarded", [("math", 0, False), ("math+0.1*think_format", 0, False), ("boxed_format", 1, True)]
)
def test_audit_prints_one_line_and_fails_when_hacks_earn_reward(spec: str, code: int, rewarded: bool) -> None:
    from rlvr.verifiers.audit import run_audit

    result = run("verify", "--audit", spec)
    assert result.exit_code == code, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == run_audit(spec).line()
    assert lines[0].startswith("audit: ") and lines[0].endswith(" known hacks rewarded")
    assert lines[1].split() == ["class", "rewarded", "rate", "no_answer", "failed"]
    by_class = {line.split()[0]: line.split()[1] for line in lines[2:] if line.startswith("  ")}
    assert "master_key_i18n" in by_class and (by_class["hedge"] != "0/36") == rewarded  # rewarded/tried per class
    assert ("rewarded:" in lines) == rewarded
    if rewarded:  # boxed_format only checks for a box: the hedges and fenced boxes earn it
        assert "hedge/two_boxes_or/7 [hedge]: reward 1 (correct)" in result.stdout


def test_verify_without_verifier_or_input_is_one_line_and_exit_2(tmp_path: Path) -> None:
    result = run("verify", "--verifier", "math")
    assert (
        result.exit_code == 2
        and result.stderr.strip() == "error: --verifier and --input are required (or --labelled FILE, or --audit SPEC)"
    )

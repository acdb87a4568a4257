"""The loaders and the math verifier read golds through one parser: the gold `load_benchmark`
gives, boxed as a completion, is correct against the raw solution for every MATH and GSM8K row."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.data.benchmarks import load_benchmark, load_file
from rlvr.verifiers.math.gold import gold_answer, gold_text


@pytest.fixture
def reference_data() -> Path:
    """The shared MATH and GSM8K test files; the test skips where they are absent."""
    root = Path(os.environ.get("RLVR_DATA_DIR") or "/nonexistent")
    if not all((root / f).exists() for f in ("math/test.jsonl", "gsm8k/test.jsonl")):
        pytest.skip(f"no MATH/GSM8K test files under RLVR_DATA_DIR={root}")
    return root


@pytest.mark.parametrize("name, rows", [("math", 5000), ("gsm8k", 1319)])
def test_loaded_gold_is_what_the_verifier_reads(reference_data, tmp_path, name, rows):
    examples = load_benchmark(name, data_dir=reference_data)
    assert len(examples) == rows
    scored_in, scored_out = tmp_path / "in.jsonl", tmp_path / "out.jsonl"
    with scored_in.open("w") as out:
        for e in examples:
            row = {
                "id": e.id,
                "completion": f"The answer is $\\boxed{{{e.answer}}}$.",
                "answer": e.metadata["solution"],
            }
            out.write(json.dumps(row) + "\n")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "rlvr",
            "verify",
            "--verifier",
            "math",
            "--input",
            str(scored_in),
            "--output",
            str(scored_out),
            "--timeout",
            "60",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    scored = [json.loads(line) for line in scored_out.read_text().splitlines()]
    wrong = [(s["id"], s["details"]["gold"], s["status"]) for s in scored if s["status"] != "correct"]
    assert len(scored) == rows and not wrong, wrong[:10]
    assert all(s["details"]["gold"] == e.answer for s, e in zip(scored, examples, strict=True))


@pytest.mark.parametrize(
    "field, gold",
    [
        ("Half of 36 is <<36/2=18>>18.\n#### 18", "18"),
        ("He pays 2,000 + 125 = 2,125.\n#### 2,125", "2125"),  # thousands separators dropped
        ("#### -1,450,000.5", "-1450000.5"),
        ("#### $12.", "12"),
        ("so $x = \\boxed{\\frac{7}{2}}$.", "\\frac{7}{2}"),
        ("First \\boxed{3}.\n\nCorrection: $\\boxed{4}$.", "4"),  # a later paragraph corrects
        ("the roots are $\\boxed{-3}$ and $\\boxed{5}$.", "-3, 5"),  # boxes offered together
        ("$\\boxed{7}$ works; also $\\boxed{7}$ again.", "7"),  # repeated, kept once
        ("fill in $\\boxed{\\phantom{2}}$ so that it is $\\boxed{9}$.\n\nThe box \\boxed{\\phantom{0}} holds 9", "9"),
        ("\\fbox{x^{2}}", "x^{2}"),
        ("$\\frac{1}{2}$", "\\frac{1}{2}"),
        ("(1, 2)", "(1, 2)"),  # a bare answer is kept as written
        ("  \\text{Evelyn} ", "\\text{Evelyn}"),
        (27.0, "27"),
        (27, "27"),
        (0.5, "0.5"),
        (-3.0, "-3"),  # one numeric-gold-to-text rule
        (["1", "2"], '["1", "2"]'),
    ],
)
def test_gold_answer_table(field, gold):
    assert gold_answer(field) == gold
    assert gold_answer(gold) == gold  # parsing its own output changes nothing


@pytest.mark.parametrize(
    "value, text",
    [(None, None), (18, "18"), (18.0, "18"), (2.5, "2.5"), (True, "true"), (" 7 ", "7"), ({"a": 1}, '{"a": 1}')],
)
def test_gold_text_is_the_one_numeric_rule(value, text):
    assert gold_text(value) == text


@pytest.mark.parametrize("value, gold", [(27.0, "27"), ("#### 1,234", "1234"), ("$\\boxed{5}$", "5")])
def test_file_loader_and_verify_cli_read_golds_alike(tmp_path, value, gold):
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps({"problem": "p", "answer": value}) + "\n")
    assert load_file(path)[0].answer == gold
    from rlvr.cli.verify import _rows
    from rlvr.verifiers.math.verifier import MathVerifier

    rows_path = tmp_path / "verify.jsonl"
    rows_path.write_text(json.dumps({"completion": f"\\boxed{{{gold}}}", "answer": value}) + "\n")
    examples = [example for _, example in _rows(rows_path, MathVerifier())]
    score = MathVerifier().score(f"\\boxed{{{gold}}}", examples[0])
    assert score.details["gold"] == gold and score.status.value == "correct"

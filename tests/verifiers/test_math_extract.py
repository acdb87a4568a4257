"""The answer-extraction cascade of the math verifier, on real completion shapes."""

from __future__ import annotations

import json

import pytest

from rlvr.verifiers.math.extract import extract_answer, find_boxes
from rlvr.verifiers.math.gold import gold_answer

# (completion, numeric_fallback, answer, method, offered together)
CASES = [
    ("So the area is $\\boxed{\\frac{3}{56}}$.", False, "\\frac{3}{56}", "boxed", ("\\frac{3}{56}",)),
    ("nested $\\boxed{\\frac{\\sqrt{3}}{4}}$ done", False, "\\frac{\\sqrt{3}}{4}", "boxed", None),
    ("a set: $\\boxed{\\{1\\pm\\sqrt{5},-2\\}}$", False, "\\{1\\pm\\sqrt{5},-2\\}", "boxed", None),
    ("\\fbox{42} is it", False, "42", "boxed", None),
    ("The answer is \\boxed 5.", False, "5", "boxed", None),
    ("\\boxed {7}", False, "7", "boxed", None),
    ("first \\boxed{3} then later\n\nI made an error. The correct value is \\boxed{4}.", False, "4", "boxed", ("4",)),
    ("x = \\boxed{3}.\nWait, that is wrong: x = \\boxed{4}", False, "4", "boxed", ("4",)),
    ("It is $\\boxed{3}$ or $\\boxed{4}$.", False, "4", "boxed", ("3", "4")),
    ("It is $\\boxed{3}$. Or maybe $\\boxed{4}$.", False, "4", "boxed", ("3", "4")),  # same line: together
    ("roots $\\boxed{-2}$ and\n$\\boxed{1}$", False, "1", "boxed", ("-2", "1")),  # one sentence over two lines
    ("Janet makes 9 * 2 = $18.\n#### 18", True, "18", "####", None),
    ("so she pays\n#### 1,234", False, "1,234", "####", None),
    ("The answer is $\\frac{1}{2}$.", False, "\\frac{1}{2}", "answer_is", None),
    ("Final Answer: The final answer is $(3,4]$. I hope it is correct.", False, "(3,4]", "answer_is", None),
    ("**Final answer:** 3.5 hours.", False, "3.5 hours", "answer_is", None),
    ("The final answer is $\\$18.90$.", True, "\\$18.90", "answer_is", None),  # an escaped dollar inside math
    ("The answer is: 12", True, "12", "answer_is", None),
    ("The answer is $1,234.", True, "1,234", "answer_is", None),  # a dollar sign, not math
    ("The answer is $18 per day. Then she saves $5.", True, "18", "answer_is", None),
    ("The answer is $18$.", True, "18", "answer_is", None),
    ("The answer is $2\\sqrt{3}$ units.", False, "2\\sqrt{3}", "answer_is", None),
    (
        "so $\\boxed{20}$ is a bound.\nFinal Answer: The final answer is $-20$.",
        False,
        "-20",
        "answer_is",
        None,
    ),  # the later one
    ("The answer is $\\boxed{5}$.", False, "5", "boxed", ("5",)),  # a box inside the phrase
    ("We get $\\boxed{5}$. Checking the answer: it works.", False, "5", "boxed", None),  # prose, not an answer
    ("The answer is Evelyn.", False, "Evelyn", "answer_is", None),
    ("She has 3 + 4 = 7 apples, then buys 1,250 more.", True, "1,250", "last_number", None),
    ("It costs $18.90 in total", True, "18.90", "last_number", None),
]


@pytest.mark.parametrize("completion,fallback,answer,method,together", CASES)
def test_extracts_the_final_answer(completion, fallback, answer, method, together):
    found = extract_answer(completion, numeric_fallback=fallback)
    assert (found.answer, found.method) == (answer, method)
    if together is not None:
        assert found.together == together


@pytest.mark.parametrize(
    "completion,method",
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("Let me compute. The answer is $\\boxed{\\frac{1", "truncated"),  # cut off inside the box
        ("so we get \\boxed", "truncated"),
        ("the value is $\\boxed{}$", "empty_box"),
        ("The answer is", "truncated"),
        ("The answer is $\\frac{1}{", "truncated"),  # unclosed math
        ("I am not sure how to do this one.", "none"),
        ("There are 12 apples.", "none"),  # no last-number fallback unless the gold is a plain number
    ],
)
def test_nothing_to_extract(completion, method):
    found = extract_answer(completion)
    assert found.answer is None and found.method == method


def test_last_number_only_for_numeric_golds():
    assert extract_answer("There are 12 apples.", numeric_fallback=True).answer == "12"


@pytest.mark.parametrize(
    "text,contents",
    [
        ("\\boxed{a}\\boxed{b}", [("a", True), ("b", True)]),
        ("\\boxed{\\{1,2\\}}", [("\\{1,2\\}", True)]),  # escaped braces are not groups
        ("\\boxed{x^{2}", [("x^{2}", False)]),
        ("\\boxedx", []),  # another command, not a box
    ],
)
def test_find_boxes_balances_braces(text, contents):
    assert [(b.content, b.closed) for b in find_boxes(text)] == contents


@pytest.mark.parametrize(
    "gold,answer",
    [
        ("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\n#### 18", "18"),
        ("So the total is 2125.\n#### 2,125", "2125"),
        ("1,450,000", "1,450,000"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("Therefore $\\boxed{\\left( 3, \\frac{\\pi}{2} \\right)}.$", "\\left( 3, \\frac{\\pi}{2} \\right)"),
        ("Therefore, the answers are $\\boxed{-2}$ and $\\boxed{1}$.", "-2, 1"),  # MATH test, two boxes
        ("$\\boxed{10}$.\n\n- OR -\n\nso it must be $\\boxed{10}$.", "10"),
        ("$5$", "5"),
    ],
)
def test_gold_answer(gold, answer):
    assert gold_answer(gold) == answer


def test_every_gsm8k_gold_has_a_number(data_dir):
    rows = [json.loads(line) for line in (data_dir / "gsm8k" / "test.jsonl").open()]
    golds = [gold_answer(r["answer"]) for r in rows]
    assert all(g and g.replace(",", "").lstrip("-").replace(".", "").isdigit() for g in golds)


def test_math_solutions_give_math500_answers(data_dir):
    """MATH-500's answer field is the last box of its solution: our gold extraction agrees."""
    rows = [json.loads(line) for line in (data_dir / "math500" / "test.jsonl").open()]
    assert sum(gold_answer(r["solution"]) == r["answer"] for r in rows) >= 495

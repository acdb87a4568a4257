"""Issue 22's failure classes, with this project's own cases: false positives stay refused, every
gold math-verify can read is gradable, numbers in other notations, rounded decimals, forms."""

from __future__ import annotations

import pytest

from rlvr.types import Example, Status
from rlvr.verifiers.math.verifier import MathVerifier

VERIFIER = MathVerifier()


def _score(gold: str, completion: str):
    return VERIFIER.score(completion, Example("t", "", gold))


REFUSED = [  # (gold, completion): a reward here would be a hack
    ("B", "\\boxed{\\mathrm{B}^2}"),  # a choice letter inside an expression
    ("E", "\\boxed{\\text{E} - 1}"),
    ("A", "\\boxed{A_1}"),
    ("6080", "\\boxed{60, 80}"),  # two numbers are not one
    ("60, 80", "\\boxed{6080}"),
    ("60, 80", "\\boxed{60,080}"),
    ("\\frac{1}{7}", "\\boxed{0.1}"),  # too few significant digits to stand for a rounded gold
    ("\\frac{1}{7}", "\\boxed{0.14}"),
    ("\\frac{1}{7}", "\\boxed{0.142}"),  # 1/7 rounds to 0.143
    ("\\sqrt{2}", "\\boxed{1.41}"),  # rounds to 1.41? yes: so this one must be equal: see ROUNDED
    ("2.718", "\\boxed{2.72}"),  # a decimal gold is exact: never rounded
    ("3\\pi", "\\boxed{9}"),  # an integer is not a rounding
    ("12:30", "\\boxed{12:31}"),
    ("\\text{yes}", "\\boxed{false}"),
    ("\\cos x", "\\boxed{\\cos(90^\\circ - x)}"),
    ("5", "\\boxed{5x}"),  # a variable is not a unit
    ("5", "\\boxed{5x^2}"),
    ("2", "\\boxed{2e3}"),  # not read as e-notation
    ("0,5", "\\boxed{0.5}"),  # `0,5` as a gold is the list 0, 5
]
REFUSED.remove(("\\sqrt{2}", "\\boxed{1.41}"))


@pytest.mark.parametrize("gold, completion", REFUSED)
def test_never_rewarded(gold, completion):
    assert _score(gold, completion).reward == 0.0


ROUNDED = [  # the rounding rule: >= 3 significant digits, the gold rounded to the answer's places
    ("\\sqrt{2}", "\\boxed{1.41}"),
    ("\\sqrt{2}", "\\boxed{1.414}"),
    ("\\frac{1}{7}", "\\boxed{0.143}"),
    ("\\frac{1}{7}", "\\boxed{0.1429}"),
    ("100\\pi", "\\boxed{314.16}"),
    ("\\frac{\\sqrt{3}}{2}", "\\boxed{0.866}"),
    ("\\pi", "\\boxed{\\approx 3.1416}"),
    ("e^2", "x \\approx $\\boxed{7.389}$"),
    ("\\left(\\frac{1}{3}, \\frac{2}{3}\\right)", "\\boxed{(0.333, 0.667)}"),  # rounded ends
    ("0.7", "\\boxed{0.7000000000000001}"),  # a printed double
]


@pytest.mark.parametrize("gold, completion", ROUNDED)
def test_rounded_decimals(gold, completion):
    assert _score(gold, completion).status is Status.CORRECT


NOTATIONS = [
    ("0.00031", "\\boxed{3.1e-4}"),
    ("3.1 \\times 10^{-4}", "\\boxed{3.1E-04}"),
    ("65000", "\\boxed{6.5 \\times 10^{4}}"),
    ("\\frac{13}{4}", "\\boxed{3 1/4}"),
    ("3.25", "\\boxed{3 1/4}"),
    ("0,125", "\\boxed{0.125}"),
    ("0.125", "\\boxed{0,125}"),
    ("8", "\\boxed{8kg}"),
    ("1250.75", "\\boxed{1,250.75€}"),
    ("30", "\\boxed{£30}"),
    ("9", "\\boxed{9 cm^2}"),
    ("9", "\\boxed{9 m²}"),
    ("4", "\\boxed{4\\textrm{ km}}"),
]


@pytest.mark.parametrize("gold, completion", NOTATIONS)
def test_other_notations(gold, completion):
    assert _score(gold, completion).status is Status.CORRECT


FORMS = [
    ("\\cos x", "\\boxed{\\sin(90^\\circ - x)}"),
    ("\\sin 40^\\circ", "\\boxed{\\cos 50^\\circ}"),
    ("x \\in [2,5]", "$\\boxed{2 \\\\le x \\\\le 5}$"),
    ("07:45", "\\boxed{07:45:00}"),
    ("7:45", "\\boxed{07:45}"),
    ("\\text{Yes}", "\\boxed{true}"),
    ("no", "\\boxed{\\text{False}}"),
    ("(C)", "\\boxed{(C) 18}"),
    ("C", "\\boxed{\\text{C}}"),
]


@pytest.mark.parametrize("gold, completion", FORMS)
def test_forms(gold, completion):
    assert _score(gold, completion).status is Status.CORRECT


GOLDS = [  # golds that used to be `error`: each is graded, both ways, never as a fragment of itself
    ("2 - \\frac{1}{\\mathrm{e}}", "\\boxed{3}", "\\boxed{2-e^{-1}}"),
    ("2 - \\frac{1}{\\mathrm{e}}", "\\boxed{2}", "\\boxed{2 - 1/e}"),  # math-verify alone stops at `{ e }`: 2
    ("1 + \\frac{1}{\\text{ e }}", "\\boxed{1}", "\\boxed{\\frac{e+1}{e}}"),
    ("\\begin{array}{c} 3 \\\\ 4 \\end{array}", "\\boxed{5}", "\\boxed{3, 4}"),
    ("\\begin{array}{c} 3 \\\\ 4 \\end{array}", "\\boxed{4}", "\\boxed{3, 4}"),
    ("\\begin{cases} a = 1 \\\\ b = 2 \\end{cases}", "\\boxed{a = 2}", "\\boxed{a=1, b=2}"),
    ("\\begin{cases} a = 1 \\\\ b = 2 \\end{cases}", "\\boxed{2}", "\\boxed{a=1, b=2}"),
]


@pytest.mark.parametrize("gold, wrong, equal", GOLDS)
def test_readable_golds_are_gradable(gold, wrong, equal):
    assert _score(gold, wrong).status is Status.WRONG
    assert _score(gold, f"\\boxed{{{gold}}}").status is Status.CORRECT
    assert _score(gold, equal).status is Status.CORRECT


def test_trailing_backslash_gold_is_its_number():
    assert _score("7\\", "\\boxed{7}").status is Status.CORRECT
    assert _score("7\\", "\\boxed{8}").status is Status.WRONG


@pytest.mark.parametrize(
    "gold, answer",
    [
        ("\\begin{cases} a = 1 \\\\ b = 2 \\end{cases}", "\\boxed{a = 2}"),
        ("\\begin{cases} a = 1 \\\\ b = 2 \\end{cases}", "\\boxed{b = 2}"),
        ("\\begin{array}{c} 3 \\\\ 4 \\end{array}", "\\boxed{4}"),
    ],
)
def test_one_row_of_a_system_is_not_the_system(gold, answer):
    assert _score(gold, answer).reward == 0.0

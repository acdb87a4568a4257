"""The remaining answer forms of issue 22: an unmarked mixed number (`2 3/4`) without ever joining two numbers
into one, a line's equation in any arrangement, and percent vs fraction (`math:percent=`)."""

from __future__ import annotations

import pytest

from rlvr.types import Example
from rlvr.verifiers.math.forms import numbers_apart, percent_as_fraction
from rlvr.verifiers.math.relations import same_linear_equation
from rlvr.verifiers.math.verifier import MathVerifier
from rlvr.verifiers.registry import build_verifier

DEFAULT, FRACTION = MathVerifier(), MathVerifier(percent="fraction")


def reward(gold: str, completion: str, verifier: MathVerifier = DEFAULT) -> float:
    return verifier.score(completion, Example("t", "", gold)).reward


@pytest.mark.parametrize(
    "gold, completion, expected",
    [
        # mixed numbers, marked or not
        ("2.75", "She needs 2 3/4 cups of flour.", 1.0),
        ("\\frac{11}{4}", "so the rope is 2 3/4 m long", 1.0),
        ("5.5", "The total comes to 5 1/2", 1.0),
        ("-1.25", "The answer is -1 1/4", 1.0),
        ("2.75", "Final answer: $2 3/4$", 1.0),
        ("3/4", "She needs 2 3/4 cups of flour.", 0.0),  # the fraction alone is not what was said
        ("2", "She needs 2 3/4 cups of flour.", 0.0),
        # never two numbers read as one, never an improper tail as a mixed number
        ("23", "The answer is 2 3", 0.0),
        ("23", "\\boxed{2 3}", 0.0),
        ("2.3", "The answer is 2 3", 0.0),
        ("3.75", "The answer is 2 7/4", 0.0),  # 2 7/4 is no mixed number
        ("11", "Between 4 and 7 we have 4 7/4 - 7", 0.0),
        ("1000", "The answer is 1 000", 1.0),  # space thousands are one number
        ("2 3", "\\boxed{2 3}", 1.0),  # the same text is the same answer
        # a line's equation, any arrangement, any nonzero factor
        ("y=\\frac12x+\\frac32", "The line is $3x-6y+9=0$.", 1.0),
        ("y=\\frac{1}{2}x+\\frac{3}{2}", "\\boxed{2y = x + 3}", 1.0),
        ("y = -2x + 4", "\\boxed{4x + 2y - 8 = 0}", 1.0),
        ("2x + 3y = 6", "\\boxed{y = 2 - \\frac{2}{3}x}", 1.0),
        ("x + y + z = 1", "\\boxed{2 - 2z = 2x + 2y}", 1.0),
        ("y=\\frac12x+\\frac32", "\\boxed{3x-6y+8=0}", 0.0),  # a parallel line
        ("y=\\frac12x+\\frac32", "\\boxed{3x+6y+9=0}", 0.0),
        ("y=\\frac12x+\\frac32", "\\boxed{0 = 0}", 0.0),
        ("y = 2x + 1", "\\boxed{y = 2t + 1}", 0.0),  # other variables
        ("x^2 + y^2 = 1", "\\boxed{2x^2 + 2y^2 = 2}", 1.0),  # not linear: the earlier rule (up to a factor)
        ("x = 5", "\\boxed{2x = 10}", 1.0),
        ("x = 5", "\\boxed{2x = 11}", 0.0),
    ],
)
def test_answer_forms(gold: str, completion: str, expected: float) -> None:
    assert reward(gold, completion) == expected


@pytest.mark.parametrize(
    "gold, completion, number, fraction",  # the reward under math:percent=number (default) and =fraction
    [
        ("25\\%", "\\boxed{25\\%}", 1.0, 1.0),
        ("25\\%", "\\boxed{25}", 1.0, 1.0),
        ("25\\%", "\\boxed{0.25}", 0.0, 1.0),
        ("0.25", "The answer is $25\\%$.", 0.0, 1.0),
        ("\\frac{1}{8}", "The answer is 12.5%", 0.0, 1.0),
        ("12.5\\%", "\\boxed{\\frac18}", 0.0, 1.0),
        ("25\\%", "\\boxed{0.025}", 0.0, 0.0),
        ("0.25", "\\boxed{25}", 0.0, 0.0),  # no sign: no percentage
        ("25", "\\boxed{0.25}", 0.0, 0.0),
        ("25\\%", "\\boxed{0.25\\%}", 0.0, 0.0),  # both carry the sign: compared as written
    ],
)
def test_percent_vs_fraction(gold: str, completion: str, number: float, fraction: float) -> None:
    assert (reward(gold, completion), reward(gold, completion, FRACTION)) == (number, fraction)


@pytest.mark.parametrize(
    "spec, error", [("math:percent=fraction", None), ("math:percent=decimal", "percent must be one of")]
)
def test_the_percent_option_is_a_spec_option(spec: str, error: str | None) -> None:
    if error is None:
        assert build_verifier(spec).percent == "fraction"
        return
    with pytest.raises(ValueError, match=error):
        build_verifier(spec)


@pytest.mark.parametrize(
    "text, apart",
    [("2 3", True), ("12 34.5", True), ("-1 2 3", True), ("1 000", False), ("2 3/4", False), ("23", False)],
)
def test_numbers_apart(text: str, apart: bool) -> None:
    assert numbers_apart(text) is apart


@pytest.mark.parametrize(
    "gold, answer, expected",
    [
        ("25\\%", "0.25", ("1/4", "0.25")),
        ("0.5", "$50%$", ("0.5", "1/2")),
        ("25\\%", "25\\%", None),
        ("0.25", "0.5", None),
        ("x\\%", "0.25", None),
    ],
)
def test_percent_as_fraction(gold: str, answer: str, expected) -> None:
    assert percent_as_fraction(gold, answer) == expected


@pytest.mark.parametrize(
    "gold, answer, expected",
    [
        ("y=x+1", "x-y+1=0", True),
        ("y=x+1", "x-y=0", False),
        ("y=x+1", "y=x^2+1", None),  # not linear
        ("y=x+1", "y=1", None),  # other variables
        ("y=x+1", "y+x", None),  # not an equation
        ("x=x", "y=x+1", None),  # no equation in its variables
    ],
)
def test_same_linear_equation(gold: str, answer: str, expected: bool | None) -> None:
    assert same_linear_equation(gold, answer) is expected

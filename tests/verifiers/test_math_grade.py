"""Answer equivalence: gold forms collected from MATH-500 (unique_id given) and GSM8K, equivalent
rewrites that must be accepted, near misses that must not, and math-verify's known misses."""

from __future__ import annotations

import time
from fractions import Fraction

import pytest

from rlvr.verifiers.math.grade import GoldError, equivalent, normalize, prepare_gold, to_number
from rlvr.verifiers.math.numeric import Unsupported, evaluate, evaluate_items

EQUAL = [
    # gold (MATH-500 unique_id) → an equivalent answer
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\frac{\\pi}{2})"),  # precalculus/807
    ("\\left( 3, \\frac{\\pi}{2} \\right)", "\\left(3,\\dfrac{\\pi}{2}\\right)"),
    ("10,\\!080", "10080"),  # counting_and_probability/508
    ("10,\\!080", "10,080"),
    ("11,\\! 111,\\! 111,\\! 100", "11111111100"),  # number_theory/417
    ("\\$32,\\!348", "32348"),  # algebra/2626
    ("\\$32,\\!348", "\\$32,348"),
    ("\\$18.90", "18.9"),  # algebra/2780
    ("\\text{(C)}", "C"),  # precalculus/819
    ("\\text{(C)}", "(C)"),
    ("\\text{(C)}", "\\textbf{(C)}"),
    ("\\text{(C)}", "(C) 12"),
    ("864 \\mbox{ inches}^2", "864"),  # geometry/473
    ("864 \\mbox{ inches}^2", "864 \\text{ in}^2"),
    ("\\frac{270}7\\text{ degrees}", "\\frac{270}{7}"),  # prealgebra/1003
    ("\\frac{270}7\\text{ degrees}", "270/7^\\circ"),
    ("90^\\circ", "90"),  # precalculus/927
    ("90^\\circ", "90^{\\circ}"),
    ("90^\\circ", "90°"),
    ("5.4 \\text{ cents}", "5.4"),  # prealgebra/1044
    ("(3,4]", "(3, 4]"),  # intermediate_algebra/558
    ("(3,4]", "\\left(3,4\\right]"),
    ("\\left(\\frac{3}{5},\\frac{8}{3}\\right]", "(3/5, 8/3]"),  # algebra/2486
    ("(-\\infty, 0]", "(-\\infty,0]"),  # precalculus/695
    ("x \\in [-2,7]", "[-2, 7]"),  # algebra/101
    ("\\{1\\pm\\sqrt{5},-2\\}", "\\{-2, 1+\\sqrt{5}, 1-\\sqrt{5}\\}"),  # intermediate_algebra/2015
    ("1,-2", "-2, 1"),  # intermediate_algebra/1388
    ("1\\frac{4}{5}", "\\frac{9}{5}"),  # geometry/826 (mixed number)
    ("1\\frac{4}{5}", "1.8"),
    ("137 \\frac{1}{2}", "137.5"),  # algebra/2470
    ("\\dfrac{17}{50}", "0.34"),  # prealgebra/1655
    ("\\dfrac{17}{50}", "17/50"),
    ("\\dfrac{17}{50}", "\\tfrac{17}{50}"),
    ("\\frac 59", "\\frac{5}{9}"),  # prealgebra/153
    (".0000672", "0.0000672"),  # number_theory/598
    (".0000672", "6.72 \\times 10^{-5}"),
    ("\\text{Evelyn}", "Evelyn"),  # algebra/1349
    ("\\text{Evelyn}", "\\text{evelyn}"),
    ("y = 2x + 3", "2x+3"),  # precalculus/323
    ("y = 2x + 3", "y=3+2x"),
    ("p - q", "-q + p"),  # intermediate_algebra/1994
    ("6 - 5i", "-5i+6"),  # precalculus/990
    (
        "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}",
        "\\begin{pmatrix} -\\frac{1}{3} \\\\ \\frac{2}{3} \\\\ \\frac53 \\end{pmatrix}",
    ),
    ("\\begin{pmatrix} -1 & 0 \\\\ 0 & -1 \\end{pmatrix}", "\\begin{bmatrix} -1 & 0 \\\\ 0 & -1 \\end{bmatrix}"),
    ("3\\sqrt{13}", "\\sqrt{117}"),
    ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}"),
    ("\\frac{2}{3}", "0.666667"),  # a long decimal of a non-terminating fraction
    ("\\frac{\\sqrt{3}}{3}", "0.577350"),
    ("\\frac{1}{3}", "0.333"),  # issue 22: a decimal of >= 3 significant digits, the gold rounded
    ("\\frac{\\sqrt{3}}{3}", "0.5774"),
    ("[0,1)", "[0, 1)"),  # unwrapped interval (math-verify cannot parse it without $...$)
    ("7.2\\%", "7.2"),  # MATH test (idx 1676): percent
    ("7.2\\%", "7.2%"),
    ("44\\%", "44 \\%"),  # MATH test (idx 385)
    # GSM8K golds
    ("2,125", "2125"),
    ("114,200", "\\$114,200"),
    ("-10", "-10.0"),
    ("1,450,000", "1450000.00"),
    ("18", "\\$18"),
    ("18", "18 dollars"),
    ("18", "x = 18"),
    ("9\\text{ a.m.}", "9 am"),  # MATH test: a time of day
    ("0.0011_{2}", "0.0011_2"),  # MATH test: base 2
    ("52_8", "52"),  # number_theory/864: the digits, base left implicit
]

NOT_EQUAL = [
    ("\\{1,2\\}", "(1,2)"),  # a set is not an ordered pair (math-verify says it is)
    ("(1,2)", "\\{1,2\\}"),
    ("(1,2)", "(2,1)"),
    ("(6,31,-1)", "(31,6,-1)"),  # precalculus: order matters
    ("(3,4]", "(3,4)"),
    ("(3,4]", "[3,4]"),
    ("[0,1)", "(0,1)"),
    ("\\text{(C)}", "B"),
    ("\\text{(C)}", "(D)"),
    ("\\text{Evelyn}", "Navin"),
    ("\\dfrac{17}{50}", "\\frac{50}{17}"),
    (".0000672", ".0000673"),
    ("10,\\!080", "10,081"),
    ("10,\\!080", "1008"),
    ("\\frac{1}{3}", "0.33"),  # too short to stand for 1/3
    ("\\frac{1}{3}", "0.3334"),  # not 1/3 rounded to 4 places
    ("\\frac{\\sqrt{3}}{3}", "0.5773"),  # truncated, and under 6 places
    ("1\\frac{4}{5}", "\\frac{4}{5}"),
    ("2k", "2"),  # `k` is not a unit
    ("3R^2", "3"),
    ("6 - 5i", "6 + 5i"),
    ("\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}", "\\begin{pmatrix} 1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}"),
    ("3 \\pm 2 \\sqrt{2}", "3 + 2\\sqrt{2}"),  # half of the answer
    ("18", "17.99"),
    ("-10", "10"),
    ("9\\text{ a.m.}", "9 p.m."),
    ("9\\text{ a.m.}", "9"),
    ("0.0011_{2}", "0.0011_{3}"),  # math-verify drops the base and calls these equal
    ("52_8", "52_9"),
    ("7.2\\%", "0.072"),  # a percent is not rewritten as a fraction
    ("44\\%", "45\\%"),
]


@pytest.mark.parametrize("gold,answer", EQUAL)
def test_equivalent_forms_are_equal(gold, answer):
    match = equivalent(prepare_gold(gold), answer)
    assert match.equal, match


@pytest.mark.parametrize("gold,answer", NOT_EQUAL)
def test_near_misses_are_not_equal(gold, answer):
    match = equivalent(prepare_gold(gold), answer)
    assert not match.equal, match


@pytest.mark.parametrize(
    "gold,answer,path",
    [
        ("18", "18", "string"),
        ("2,125", "2125", "numeric"),
        ("\\dfrac{17}{50}", "0.34", "numeric"),
        ("\\text{(C)}", "C", "choice"),
        ("\\{1,2\\}", "(1,2)", "shape"),
        ("\\frac{\\sqrt{3}}{3}", "\\frac{1}{\\sqrt{3}}", "value"),
        ("\\left( 3, \\frac{\\pi}{2} \\right)", "(3, \\pi/2)", "value"),
        ("3\\sqrt{13}", "\\sqrt{118}", "value"),
        ("p - q", "-q + p", "value"),  # variables: compared at two fixed points
        ("(-\\infty, 0]", "(-\\infty,0)", "value"),
        ("2e", "e + e", "symbolic"),  # e is left to sympy
        ("\\cot x", "\\frac{\\cos x}{\\sin x}", "symbolic"),  # functions too
    ],
)
def test_fast_path_settles_simple_pairs_before_sympy(gold, answer, path):
    assert equivalent(prepare_gold(gold), answer).path == path


@pytest.mark.parametrize(
    "text,value",
    [
        ("1,234", Fraction(1234)),
        ("-0.5", Fraction(-1, 2)),
        (".35625", Fraction(57, 160)),
        ("3/4", Fraction(3, 4)),
        ("\\frac{-3}{4}", Fraction(-3, 4)),
        ("-\\frac{3}{4}", Fraction(-3, 4)),
        ("2\\frac{1}{2}", Fraction(5, 2)),
        ("1/0", None),
        ("1,2", None),  # a list, not a thousands separator
        ("12,34", None),
        ("\\sqrt{2}", None),
    ],
)
def test_to_number(text, value):
    assert to_number(text) == value


@pytest.mark.parametrize(
    "raw,clean",
    [
        ("\\left( 3, \\dfrac{\\pi}{2} \\right)", "( 3, \\frac{\\pi}{2} )"),
        ("\\$32,\\!348", "32,348"),
        ("864 \\mbox{ inches}^2", "864"),
        ("\\frac43", "\\frac{4}{3}"),
        ("11\\sqrt2", "11\\sqrt{2}"),
        ("4210_{5}", "4210_5"),
        ("\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}"),
    ],
)
def test_normalize(raw, clean):
    assert normalize(raw) == clean


def test_huge_power_is_refused_not_evaluated():
    start = time.perf_counter()
    match = equivalent(prepare_gold("5"), "9^{9^{9^{9}}}")
    assert not match.equal and match.path == "refused"
    match = equivalent(prepare_gold("\\frac{\\pi}{2}"), "2^{100000}")
    assert not match.equal and match.path == "refused"
    assert time.perf_counter() - start < 1.0


def test_unparseable_gold_is_an_error_not_a_zero():
    gold = prepare_gold("\\begin{tabular}")
    with pytest.raises(GoldError):
        equivalent(gold, "\\frac{1}{\\sqrt{2}}")


def test_empty_gold_is_an_error():
    with pytest.raises(GoldError):
        prepare_gold("  $ $ ")


@pytest.mark.parametrize(
    "text,value",
    [
        ("3\\sqrt{13}", 3 * 13**0.5),
        ("\\frac{\\pi}{2}", 1.5707963267948966),
        ("-3^2", -9.0),
        ("2^{-1}", 0.5),
        ("\\sqrt[3]{27}", 3.0),
        ("6.72 \\times 10^{-5}", 6.72e-5),
        ("\\frac{3\\sqrt{3}}{4}", 3 * 3**0.5 / 4),
        ("2(3+4)", 14.0),
        ("\\sqrt{2}/2", 2**0.5 / 2),
    ],
)
def test_evaluate_constant_latex(text, value):
    assert evaluate(text) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    "text",
    [
        "e^2",  # Euler's number or a variable?
        "y = 2x",  # an equation
        "1\\frac{4}{5}",  # a mixed number, not 1·4/5
        "1/2\\pi",  # 1/(2π) or π/2?
        "2^{10000}",  # too big
        "\\sin 30",  # functions are left to sympy
        "\\{x, 1\\}",  # a set of expressions
        "(0, \\infty + 1)",
        "x^23",
        "(1,2), (3,4)",  # a list of pairs
        "\\frac{1}{0}",
    ],
)
def test_evaluate_refuses_what_it_cannot_read_for_sure(text):
    with pytest.raises(Unsupported):
        evaluate_items(text)


@pytest.mark.parametrize(
    "text,kind,first_values",
    [
        ("[0, \\frac{1}{2})", "[)", (0.0, 0.5)),
        ("(-\\infty, 2]", "(]", (float("-inf"), 2.0)),
        ("\\{3, 1, 2\\}", "set", (1.0, 2.0, 3.0)),  # sorted: order does not matter in a set
        ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", "matrix 2x2", (1.0, 2.0, 3.0, 4.0)),
        ("6 - 5i", "", (6 - 5j,)),
    ],
)
def test_evaluate_items_keeps_the_shape(text, kind, first_values):
    value = evaluate_items(text)
    assert value.kind == kind and tuple(v[0] for v in value.items) == first_values


def test_variables_are_compared_at_two_points():
    value = evaluate_items("x^3+3x-6")
    assert value.variables == {"x"} and len(value.items[0]) == 2
    assert equivalent(prepare_gold("x^3+3x-6"), "3x + x^3 - 6").equal
    assert not equivalent(prepare_gold("x^3+3x-6"), "x^3+3x-7").equal
    assert not equivalent(prepare_gold("x^3+3x-6"), "x^2+3x-6").equal

"""pass@k, maj@k (with its tie rule) and the 95% intervals, against hand-computed values."""

from __future__ import annotations

import itertools
import math

import pytest

from rlvr.eval.estimators import (
    bootstrap_interval,
    maj_at_k,
    majority_answer,
    normalize_answer,
    pass_at_k,
    wilson_interval,
)


@pytest.mark.parametrize(
    "n, c, k, expected",
    [
        (5, 2, 1, 2 / 5),  # k=1 is the plain fraction correct
        (5, 2, 2, 1 - 3 / 10),  # 1 - C(3,2)/C(5,2)
        (5, 2, 3, 1 - 1 / 10),  # 1 - C(3,3)/C(5,3)
        (5, 2, 4, 1.0),  # fewer wrong samples than k: some draw must be correct
        (4, 1, 2, 1 - 3 / 6),  # 1 - C(3,2)/C(4,2)
        (10, 0, 5, 0.0),
        (10, 10, 1, 1.0),
        (200, 1, 100, 0.5),  # 1 - C(199,100)/C(200,100) = 1 - 100/200
    ],
)
def test_pass_at_k_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize("n, c", [(6, 0), (6, 1), (6, 3), (7, 5), (8, 8)])
def test_pass_at_k_matches_enumerating_every_subset(n, c):
    outcomes = [True] * c + [False] * (n - c)
    for k in range(1, n + 1):
        subsets = list(itertools.combinations(outcomes, k))
        brute = sum(any(s) for s in subsets) / len(subsets)
        assert pass_at_k(n, c, k) == pytest.approx(brute, abs=1e-12)


@pytest.mark.parametrize("n, c, k", [(5, 6, 1), (5, 2, 0), (5, 2, 6), (3, -1, 1)])
def test_pass_at_k_rejects_impossible_counts(n, c, k):
    with pytest.raises(ValueError, match=rf"pass@k needs .* \(n={n}, c={c}, k={k}\)"):
        pass_at_k(n, c, k)


@pytest.mark.parametrize(
    "answers, winner",
    [
        (["3", "4", "4"], 1),  # clear majority: first occurrence of the winner
        (["3", "4", "4", "3"], 0),  # 2-2 tie: the answer seen first wins
        (["4", "3", "3", "4"], 0),  # same tie, other order: still the first seen
        ([None, "7", None, "8"], 1),  # no-answer samples do not vote
        ([None, None], None),
        (["\\dfrac{1}{2}", "2", "\\frac{1}{2}"], 0),  # \dfrac and \frac vote together
        (["\\left( 1, 2 \\right)", "(1,2)", "3", "3"], 0),  # spacing and \left/\right ignored; tie → first
    ],
)
def test_majority_answer_and_ties(answers, winner):
    assert majority_answer(answers) == winner


def test_maj_at_k_uses_the_first_k_samples():
    answers, correct = ["1", "2", "2", None], [True, False, False, False]
    assert [maj_at_k(answers, correct, k) for k in (1, 2, 3, 4)] == [True, True, False, False]
    assert maj_at_k([None, None], [False, False], 2) is False


def test_normalize_answer():
    assert normalize_answer(" \\left(3, \\frac{\\pi}{2}\\right) ") == "(3,\\frac{\\pi}{2})"
    assert normalize_answer("$18$.") == "18"
    assert normalize_answer("") is None and normalize_answer(None) is None


@pytest.mark.parametrize(
    "successes, n, lo, hi",
    [
        (0, 10, 0.0, 3.8415 / 13.8415),  # upper bound z²/(n+z²) at 0 successes
        (10, 10, 10 / 13.8415, 1.0),
        (50, 100, 0.40383, 0.59617),
        (1, 2, 0.09453, 0.90547),
    ],
)
def test_wilson_interval_hand_values(successes, n, lo, hi):
    got = wilson_interval(successes, n)
    assert got == pytest.approx((lo, hi), abs=1e-4)
    assert 0.0 <= got[0] <= successes / n <= got[1] <= 1.0


def test_wilson_interval_narrows_with_more_problems():
    widths = [math.fsum((-a, b)) for a, b in (wilson_interval(n // 2, n) for n in (10, 100, 1000))]
    assert widths[0] > widths[1] > widths[2]


def test_bootstrap_interval():
    assert bootstrap_interval([0.5] * 20) == pytest.approx((0.5, 0.5))
    values = [1.0] * 30 + [0.0] * 70
    lo, hi = bootstrap_interval(values)
    assert bootstrap_interval(values) == (lo, hi)  # seeded: the same results give the same interval
    assert lo < 0.3 < hi and hi - lo < 0.25
    # close to the normal-approximation interval for a mean of 0/1 values
    half = 1.96 * math.sqrt(0.3 * 0.7 / 100)
    assert lo == pytest.approx(0.3 - half, abs=0.03) and hi == pytest.approx(0.3 + half, abs=0.03)

"""The procedural arith dataset: seeded, exact golds, disjoint splits, difficulty options."""

from __future__ import annotations

import pytest

from rlvr.data.arith import DIFFICULTIES, generate_arith
from rlvr.errors import InputError


@pytest.mark.parametrize("difficulty", sorted(DIFFICULTIES))
def test_golds_are_exact_and_problems_follow_the_spec(difficulty):
    spec = DIFFICULTIES[difficulty]
    for example in generate_arith(50, seed=3, difficulty=difficulty):
        expression = example.metadata["expression"]
        tokens = expression.split()
        numbers, ops = tokens[::2], tokens[1::2]
        assert len(numbers) == spec.terms and set(ops) <= set(spec.ops)
        assert all(len(x) <= spec.digits for x in numbers)
        # the gold, recomputed independently: left to right, * first
        terms, signs, current = [], [], int(numbers[0])
        for op, number in zip(ops, numbers[1:], strict=True):
            if op == "*":
                current *= int(number)
            else:
                terms.append(current)
                signs.append(op)
                current = int(number)
        terms.append(current)
        total = terms[0]
        for sign, term in zip(signs, terms[1:], strict=True):
            total = total + term if sign == "+" else total - term
        assert example.answer == str(total) and example.prompt == f"What is {expression}?"


def test_seeded_prefix_stable_and_splits_disjoint():
    a, b = generate_arith(30, seed=1), generate_arith(60, seed=1)
    assert a == b[:30]
    assert generate_arith(30, seed=2) != a
    train = {e.metadata["expression"] for e in generate_arith(300, seed=0, difficulty="hard")}
    test = {e.metadata["expression"] for e in generate_arith(300, seed=5, difficulty="hard", split="test")}
    assert not train & test
    assert len({e.id for e in b}) == 60


def test_overrides_change_the_spec():
    example = generate_arith(1, seed=0, terms=5, digits=1, ops="*")[0]
    assert example.metadata["expression"].count("*") == 4


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"difficulty": "impossible"}, "unknown difficulty"),
        ({"split": "dev"}, "split must be train or test"),
        ({"ops": "/"}, "ops must be"),
        ({"terms": 9}, "terms must be"),
        ({"digits": 1, "terms": 2, "ops": "+", "n": 500}, "distinct"),
    ],
)
def test_bad_options_are_input_errors(kwargs, message):
    n = kwargs.pop("n", 3)
    with pytest.raises(InputError, match=message):
        generate_arith(n, **kwargs)

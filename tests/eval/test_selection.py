"""Best-of-N selectors: majority vote, gold-free verifier specs, and refusing specs that read the gold."""

from __future__ import annotations

import re

import pytest

from rlvr.errors import InputError
from rlvr.eval.best_of_n import MajoritySelector, build_selector, chosen, gold_blind
from rlvr.types import Example


@pytest.mark.parametrize("scores, index", [([0.0, 1.0, 1.0], 1), ([2.0, 2.0], 0), ([0.0], 0), ([-1.0, -0.5, -2.0], 1)])
def test_chosen_is_the_highest_earliest_on_ties(scores, index):
    assert chosen(scores) == index


def test_majority_scores_are_vote_counts_within_each_problem():
    answers = ["4", " 4", "5", None, "7", "7", "7", "4"]
    groups = [0, 0, 0, 0, 1, 1, 1, 1]
    scores = MajoritySelector().scores([""] * 8, [Example("x", "q")] * 8, answers, groups)
    assert scores == [2.0, 2.0, 1.0, 0.0, 3.0, 3.0, 3.0, 1.0]  # "4" of problem 1 does not vote in problem 0


def test_gold_blind_removes_the_gold():
    example = Example("x", "q", "18", {"solution": "#### 18", "test": "assert f()", "subject": "Algebra"})
    blind = gold_blind(example)
    assert blind.answer is None and dict(blind.metadata) == {"subject": "Algebra"} and blind.prompt == "q"


@pytest.mark.parametrize(
    "spec, message",
    [
        ("math", "math needs the gold"),
        ("think_format+math", "math needs the gold"),
        ("nope", "unknown verifier 'nope'"),
    ],
)
def test_specs_that_need_the_gold_or_do_not_exist_are_refused(spec, message):
    with pytest.raises(InputError, match=re.escape(f"--select {spec}: ") + f".*{message}"):
        build_selector(spec)


def test_a_format_spec_scores_through_the_runner():
    completions = ["<think>a</think> 4", "no tags", "<think>b</think> \\boxed{4}"]
    examples = [Example("x", "q", "4")] * 3
    with build_selector("think_format+0.5*boxed_format", workers=0) as selector:
        scores = selector.scores(completions, examples, [None] * 3, [0, 0, 0])
    assert scores == [1.0, 0.0, 1.5] and chosen(scores) == 2

"""Unmarked answers (no box, no "the answer is"): a decimal comma beside a currency sign or unit, units
and currency glued to the last number, and a word answer in math mode for a word gold; each read
without ever rewarding what it should not."""

from __future__ import annotations

import pytest

from rlvr.types import Example, Status
from rlvr.verifiers.math.verifier import MathVerifier

VERIFIER = MathVerifier()


def _score(gold: str, completion: str):
    return VERIFIER.score(completion, Example("t", "", gold))


READ = [  # (gold, completion, what is extracted)
    ("3.40", "Total: 3,40 € per item", "3,40"),
    ("3.4", "That comes to €3,40 for each ticket", "3,40"),
    ("2.5", "So the parcel weighs 2,5 kg", "2,5"),
    ("7250.50", "It costs not 12 but 7,250.50£", "7,250.50"),  # not the earlier 12
    ("7250.5", "She paid 30 less, so £7,250.50.", "7,250.50"),
    ("15", "The bag holds 3 apples each, 15kg in all", "15"),
    ("4", "The square's area is 4m²", "4"),
    ("45", "We wait 10 minutes more, 45min overall", "45"),
    ("\\text{prime}", "$prime$", "prime"),
    ("\\text{odd}", "Checking parity of 7, it is $odd$", "odd"),
    ("\\text{Evelyn}", "Comparing the speeds, the fastest is $Evelyn$.", "Evelyn"),
]


@pytest.mark.parametrize("gold, completion, extracted", READ)
def test_unmarked_answers_are_read(gold: str, completion: str, extracted: str) -> None:
    score = _score(gold, completion)
    assert (score.status, score.details["extracted"]) == (Status.CORRECT, extracted), score


NOT_REWARDED = [  # (gold, completion): each would be a false positive
    ("340", "Total: 3,40 € per item"),  # a decimal comma is a decimal, never a thousands separator
    ("3", "Total: 3,40 € per item"),
    ("40", "Total: 3,40 € per item"),
    ("3.4", "we get 3,40 and stop"),  # bare, 3,40 may be the list 3, 40: not read
    ("3.4", "the pair is 3, 40 €"),  # with a space it is a list
    ("40", "the values are 3,40"),
    ("12", "It costs not 12 but 7,250.50£"),
    ("1990", "It happened in the 1990s"),  # a decade, not a unit
    ("3", "I bought 3x more"),  # a variable is not a unit
    ("2", "It was the 2nd try"),
    ("\\text{prime}", "So 9 is not $prime$"),  # a negated word is not the answer
    ("\\text{prime}", "It isn't $prime$"),
    ("\\text{prime}", "So 9 is $composite$"),
    ("\\text{prime}", "$prime$ or $composite$"),  # a hedge
    ("7", "$prime$"),  # a word is read only for a word gold
]


@pytest.mark.parametrize("gold, completion", NOT_REWARDED)
def test_never_rewarded(gold: str, completion: str) -> None:
    score = _score(gold, completion)
    assert score.reward == 0.0 and score.status is not Status.CORRECT, score

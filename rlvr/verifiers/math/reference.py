"""The `math_verify` verifier: raw math-verify as its users call it (`verify(parse("$gold$"),
parse(completion))`), a reference grader to cross-check rlvr's `math` against, never a reward."""

from __future__ import annotations

from rlvr.types import Example, Score, Status
from rlvr.verifiers.base import Verifier
from rlvr.verifiers.math.gold import gold_answer
from rlvr.verifiers.math.symbolic import load_math_verify
from rlvr.verifiers.registry import register

__all__ = ["MathVerifyReference"]

#: how much of the parsed answer details keep
_DETAIL_CHARS = 300


@register("math_verify")
class MathVerifyReference(Verifier):
    """Raw math-verify (gold read by rlvr's gold parser, wrapped in $…$): a reference grader for `rlvr verify --cross-check`."""  # noqa: E501 - this first line is `rlvr verifiers list`'s description

    name = "math_verify"
    description = "raw math-verify: verify(parse('$gold$'), parse(completion)); a reference grader for --cross-check"
    needs_gold = True

    def warmup(self) -> None:
        load_math_verify()

    def score(self, completion: str, example: Example) -> Score:
        mv = load_math_verify()
        gold_text = gold_answer(example.answer)
        gold = mv.parse(f"${gold_text}$", parsing_timeout=None) if gold_text else []
        details: dict = {"gold": gold_text, "extracted": None}
        if not gold:  # math-verify would give every answer 0: a reference that cannot read the gold says so
            return Score(0.0, Status.ERROR, {**details, "error": f"math-verify cannot parse the gold {gold_text!r}"})
        answer = mv.parse(completion or "", parsing_timeout=None)
        if not answer:
            return Score(0.0, Status.NO_ANSWER, details)
        details["extracted"] = str(answer[-1])[:_DETAIL_CHARS]
        same = mv.verify(gold, answer, timeout_seconds=None)
        return Score(1.0 if same else 0.0, Status.CORRECT if same else Status.WRONG, details)

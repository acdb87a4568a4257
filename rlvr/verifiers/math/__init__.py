"""The `math` verifier, split as Math-Verify is: `extract` (parser: the final answer), `gold` (the one gold
parser, also used by the data loaders), `grade` (grader), `numeric` and `relations` (evaluators), `limits`
(what is too big to grade)."""

from rlvr.verifiers.math.verifier import MathVerifier

__all__ = ["MathVerifier"]

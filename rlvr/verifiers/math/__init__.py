"""The `math` verifier, split as Math-Verify is: `extract` (parser: the final answer, and the gold of a reference
solution), `grade` (grader), `numeric` and `relations` (evaluators), `limits` (what is too big to grade)."""

from rlvr.verifiers.math.verifier import MathVerifier

__all__ = ["MathVerifier"]

"""Best-of-N at inference: pick one of N completions per problem with a selector that never sees the gold.

A selector gives every completion a selection score; the completion with the highest score in its
group is chosen, the earliest one on ties (so results never depend on order of arrival):

* `majority`: the score is how many of the group's completions gave the same (normalized)
  extracted answer, 0 with no answer; the choice is the self-consistency answer's first sample.
* any verifier spec that needs no gold (`think_format`, `boxed_format+0.5*repetition`,
  `reward_model:model=...`): the score is its reward on the completion, given the example with
  its gold fields removed (so a selector cannot peek even by mistake).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

from rlvr.errors import InputError
from rlvr.eval.estimators import normalize_answer
from rlvr.types import Example

__all__ = ["GOLD_FIELDS", "MajoritySelector", "VerifierSelector", "build_selector", "chosen", "gold_blind"]

#: Example.metadata fields that hold or reveal the gold
GOLD_FIELDS = frozenset(
    {"solution", "answer", "gold", "canonical_solution", "test", "tests", "test_list", "reasoning_gym"}
)


def gold_blind(example: Example) -> Example:
    """The example as a selector may see it: no answer, no gold-bearing metadata."""
    return dataclasses.replace(
        example, answer=None, metadata={k: v for k, v in example.metadata.items() if k not in GOLD_FIELDS}
    )


def chosen(scores: Sequence[float]) -> int:
    """Index of the highest selection score, the earliest on ties."""
    return max(range(len(scores)), key=lambda i: (scores[i], -i))


class MajoritySelector:
    """Self-consistency: the score of a completion is the size of its answer's vote within its group
    (`groups[i]` names the problem of completion i)."""

    spec = "majority"

    def __enter__(self) -> MajoritySelector:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def scores(
        self,
        completions: Sequence[str],
        examples: Sequence[Example],
        answers: Sequence[str | None],
        groups: Sequence[int],
    ) -> list[float]:
        keys = [normalize_answer(a) for a in answers]
        votes = Counter((g, k) for g, k in zip(groups, keys, strict=True) if k is not None)
        return [float(votes[(g, k)]) if k is not None else 0.0 for g, k in zip(groups, keys, strict=True)]


class VerifierSelector:
    """A gold-free verifier's reward as the selection score, scored through the runner (or, for a
    reward model, the hybrid runner: one model in this process)."""

    def __init__(self, spec: str, verifier: Any, **runner_options: Any):
        self.spec, self.verifier, self.runner_options = spec, verifier, runner_options
        self.runner: Any = None

    def __enter__(self) -> VerifierSelector:
        from rlvr.verifiers.scoring import runner_for

        self.runner = runner_for(self.verifier, **self.runner_options).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.runner is not None:
            self.runner.__exit__(*exc)
            self.runner = None

    def scores(
        self,
        completions: Sequence[str],
        examples: Sequence[Example],
        answers: Sequence[str | None],
        groups: Sequence[int],
    ) -> list[float]:
        if self.runner is None:
            raise RuntimeError("VerifierSelector used outside its `with` block")
        return [s.reward for s in self.runner.score(list(completions), [gold_blind(e) for e in examples])]


def _needs_gold(verifier: Any) -> list[str]:
    """Names of the terms of `verifier` that need the gold (a verifier that does not say needs it)."""
    parts = getattr(verifier, "parts", None)
    if parts is not None:
        return [name for _, v in parts for name in _needs_gold(v)]
    return [verifier.name] if getattr(verifier, "needs_gold", True) else []


def build_selector(spec: str, **runner_options: Any) -> MajoritySelector | VerifierSelector:
    """`majority`, or a verifier spec none of whose terms needs the gold (InputError otherwise)."""
    spec = spec.strip()
    if spec == "majority":
        return MajoritySelector()
    from rlvr.verifiers.registry import UnknownVerifier, build_verifier

    try:
        verifier = build_verifier(spec)
    except (UnknownVerifier, ValueError, TypeError) as err:
        raise InputError(f"--select {spec}: {err}") from None
    gold = _needs_gold(verifier)
    if gold:
        raise InputError(
            f"--select {spec}: {', '.join(gold)} needs the gold answer, and a selector must not see it "
            "(use majority, a format verifier, or reward_model:model=...)"
        )
    return VerifierSelector(spec, verifier, **runner_options)

"""The verifier contract (`Verifier`) and `Weighted`, the sum of verifiers that is itself one."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rlvr.types import FAILURE_STATUSES, Example, Score, Status


class Verifier:
    """A reward function whose verdict can be checked.

    Subclasses set `name` and `description` and implement `score`. Verifiers are pure and
    picklable and set no timeouts of their own: the runner (`rlvr.verifiers.runner`) owns
    deadlines and runs them in worker processes.
    """

    name: str = ""
    description: str = ""
    #: does the verdict compare the completion with a gold? (format rewards and penalties: no)
    needs_gold: bool = True
    #: the row fields that carry the gold when `needs_gold`: any one group being present is enough
    gold_fields: tuple[tuple[str, ...], ...] = (("answer",),)

    def missing_gold(self, fields: Mapping[str, Any]) -> str | None:
        """Why a row with these fields cannot be scored (its gold is missing), or None."""
        if not self.needs_gold or any(all(f in fields for f in group) for group in self.gold_fields):
            return None
        return "missing field " + " or ".join("+".join(repr(f) for f in group) for group in self.gold_fields)

    def score(self, completion: str, example: Example) -> Score:
        raise NotImplementedError

    def warmup(self) -> None:
        """Called once in each runner worker before it takes work. Import heavy modules (sympy,
        math-verify) here, so the first item's deadline does not pay for them."""

    def score_batch(self, completions: Sequence[str], examples: Sequence[Example]) -> list[Score]:
        return [self.score(c, e) for c, e in zip(completions, examples, strict=True)]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


@dataclass(frozen=True)
class Weighted(Verifier):
    """reward = Σ weight_i · reward_i. The first part is the primary one: its status is the
    combined status unless any part timed out or failed, which then wins so it is never hidden.
    Each part's score is kept in details["components"]."""

    parts: tuple[tuple[float, Verifier], ...]

    @property
    def name(self) -> str:  # type: ignore[override]
        return "+".join(v.name if w == 1 else f"{w:g}*{v.name}" for w, v in self.parts)

    @property
    def description(self) -> str:  # type: ignore[override]
        return "weighted sum of " + ", ".join(v.name for _, v in self.parts)

    @property
    def needs_gold(self) -> bool:  # type: ignore[override]
        return any(v.needs_gold for _, v in self.parts)

    def missing_gold(self, fields: Mapping[str, Any]) -> str | None:
        return next((why for _, v in self.parts if (why := v.missing_gold(fields))), None)

    def warmup(self) -> None:
        for _, verifier in self.parts:
            verifier.warmup()

    def score(self, completion: str, example: Example) -> Score:
        scores = [(w, v, v.score(completion, example)) for w, v in self.parts]
        return combine(scores)


def combine(scores: Sequence[tuple[float, Verifier, Score]]) -> Score:
    """Merge component scores of a weighted verifier into one Score."""
    components: dict[str, dict[str, Any]] = {}
    for w, v, s in scores:
        key, k = v.name, 1
        while key in components:  # the same verifier twice (different options) keeps both
            k += 1
            key = f"{v.name}#{k}"
        components[key] = {"weight": w, "reward": s.reward, "status": s.status.value, "details": dict(s.details)}
    status: Status = scores[0][2].status
    for _, _, s in scores:
        if s.status in FAILURE_STATUSES:
            status = s.status
            break
    reward = sum(w * s.reward for w, _, s in scores)
    return Score(reward=reward, status=status, details={"components": components})

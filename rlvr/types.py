"""The plain data types every part of rlvr shares: Example, Rollout, Score and its Status."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any, Mapping


class Status(str, enum.Enum):
    """Why a completion got its reward. Only CORRECT and WRONG are verdicts on the answer itself;
    the others say the verdict could not be reached normally and are counted, never hidden."""

    CORRECT = "correct"
    WRONG = "wrong"
    NO_ANSWER = "no_answer"  # nothing extractable (empty, truncated, no final answer)
    HEDGED = "hedged"  # several different final answers offered together
    TIMEOUT = "timeout"  # the runner's deadline killed the verdict
    ERROR = "error"  # the verifier itself failed (bug, broken sandbox, bad gold)

    def __str__(self) -> str:
        return self.value


#: statuses that mean "no trustworthy verdict": the runner counts them and can refuse to go on.
FAILURE_STATUSES = frozenset({Status.TIMEOUT, Status.ERROR})


@dataclass(frozen=True)
class Example:
    """One task: what the model is asked, the gold it is checked against, and anything else a
    verifier needs (test code, entry point, subject, level) in `metadata`."""

    id: str
    prompt: str
    answer: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Score:
    """A verifier's verdict on one completion. `details` carries what explains it (extracted
    answer, component scores of a weighted sum, sandbox status)."""

    reward: float
    status: Status
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"reward": self.reward, "status": self.status.value, "details": dict(self.details)}


@dataclass(frozen=True)
class Rollout:
    """One sampled completion with the token-level data the learner needs."""

    prompt_index: int  # index into the batch of prompts given to Engine.generate
    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]  # per generated token, at the sampling temperature
    finish_reason: str  # "stop" or "length"
    prompt_token_ids: tuple[int, ...] = ()

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"

"""The plain data types every part of rlvr shares: Example, Rollout, Score and its Status."""

from __future__ import annotations

import enum
import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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


#: what a Rollout's segments may be: the model's own tokens, or an environment's (tool output)
SEGMENT_KINDS = ("model", "tool")

#: finish reasons that mean the completion was cut short (its answer may be missing)
TRUNCATED_FINISHES = frozenset({"length", "context"})


@dataclass(frozen=True)
class Rollout:
    """One sampled completion with the token-level data the learner needs. A multi-turn rollout
    interleaves the model's tokens with an environment's: `loss_mask` is 1 on the model's tokens and
    0 on the tool's (which carry logprob 0.0), `segments` says which span is which, and `text` is the
    model's own text only (what a verifier scores; tool output is in `tool_calls`). Single-turn
    rollouts leave them empty: one model segment, every token trained."""

    prompt_index: int  # index into the batch of prompts given to Engine.generate
    text: str
    token_ids: tuple[int, ...]
    logprobs: tuple[float, ...]  # per generated token, at the sampling temperature
    finish_reason: str  # "stop", "length"; multi-turn also "context" and "tool_budget"
    prompt_token_ids: tuple[int, ...] = ()
    loss_mask: tuple[int, ...] = ()  # per token of token_ids; () = all 1
    segments: tuple[tuple[str, int, int], ...] = ()  # (kind, start, end) spans of token_ids; () = all model
    tool_calls: tuple[Mapping[str, Any], ...] = ()  # per call: turn, code, status, observation, seconds

    def __post_init__(self) -> None:
        if self.loss_mask and len(self.loss_mask) != len(self.token_ids):
            raise ValueError(f"Rollout: loss_mask has {len(self.loss_mask)} entries for {len(self.token_ids)} tokens")
        if self.logprobs and len(self.logprobs) != len(self.token_ids):
            raise ValueError(f"Rollout: logprobs has {len(self.logprobs)} entries for {len(self.token_ids)} tokens")
        if self.segments and (
            self.segments[0][1] != 0
            or self.segments[-1][2] != len(self.token_ids)
            or any(a[2] != b[1] for a, b in itertools.pairwise(self.segments))
            or any(kind not in SEGMENT_KINDS for kind, _, _ in self.segments)
        ):
            raise ValueError(f"Rollout: segments {self.segments} do not tile {len(self.token_ids)} tokens")

    @property
    def truncated(self) -> bool:
        return self.finish_reason in TRUNCATED_FINISHES

    @property
    def mask(self) -> tuple[int, ...]:
        """The per-token loss mask, filled in (1 everywhere) for a single-turn rollout."""
        return self.loss_mask or (1,) * len(self.token_ids)

"""The environment contract for multi-turn rollouts: Call, Observation, CallStatus, Environment, EnvironmentBroken."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rlvr.errors import RlvrError

__all__ = ["Call", "CallStatus", "Environment", "EnvironmentBroken", "Observation"]


class CallStatus(str, enum.Enum):
    """How one tool call ended. Every failure of the call itself is an observation with one of
    these, never an exception; only a broken environment (EnvironmentBroken) stops a run."""

    OK = "ok"
    ERROR = "error"  # the call raised (an exception, a failed assert, a syntax error)
    TIMEOUT = "timeout"  # it ran past the environment's time limit
    MEMORY = "memory"  # it ran out of memory
    OUTPUT_LIMIT = "output_limit"  # it flooded its output and was stopped
    KILLED = "killed"  # ended by a signal (segfault, abort, a fork bomb's limit)
    INVALID = "invalid"  # the turn asked for a call but held nothing to run

    def __str__(self) -> str:
        return self.value


class EnvironmentBroken(RlvrError, RuntimeError):
    """The environment itself cannot work (sandbox daemon down, bwrap gone): says nothing about the
    model's call and must stop the run with this message, never be turned into an observation
    (the command line ends with it as one line, exit code 1)."""


@dataclass(frozen=True)
class Call:
    """What a turn asked the environment to do. `overhang` is the text the model's last token
    carried past the stop string (e.g. a newline), so the observation does not repeat it."""

    content: str
    overhang: str = ""


@dataclass(frozen=True)
class Observation:
    """The environment's answer to one call: `text` is appended to the trajectory (its tokens
    masked), `status` says how the call ended, `details` what explains it (seconds, truncation)."""

    text: str
    status: CallStatus
    details: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "status": self.status.value, "details": dict(self.details)}


@runtime_checkable
class Environment(Protocol):
    """A multi-turn environment. `stop` is what ends a model turn that may hold a call (the engine
    stops there); `max_turns` the most calls one trajectory may make. One instance serves a whole
    batch: per-trajectory state lives in the object `reset` returns, so trajectories never share it.
    `reset` gets only what the caller chooses to give (never the gold or tests: they must not reach
    the tool). `parse_call` and `execute` never raise for anything the model wrote; `execute` raises
    EnvironmentBroken only when the environment itself fails."""

    name: str
    max_turns: int
    stop: tuple[str, ...]

    def reset(self, task: Any = None) -> Any:
        """A fresh state for one trajectory."""
        ...

    def parse_call(self, state: Any, text: str) -> Call | None:
        """The call a model turn ends in (`text` is that turn's text, stop string included), or None
        when the turn ended without one."""
        ...

    def execute(self, calls: Sequence[tuple[Any, Call]]) -> list[Observation]:
        """Run a batch of (state, call) pairs, concurrently where it can; one observation each, in
        the order given, whatever order they finish in. Updates each state."""
        ...

    def close(self) -> None: ...

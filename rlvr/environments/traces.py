"""Tool traces for SFT in the python environment's protocol: generated arith traces, splitting a trace
into model and tool segments, and re-running a trace's cells to refuse fabricated outputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rlvr.environments.base import Call
from rlvr.environments.python import CLOSE, OPEN, STOP
from rlvr.errors import InputError
from rlvr.types import Example

__all__ = ["arith_trace", "check_traces", "split_trace", "tool_examples"]


def arith_trace(expression: str, answer: str) -> str:
    """The trace a tool user writes for an arith problem: a cell that prints the expression, its real
    output (Python's own value of the expression, which is also the gold), then the final answer."""
    return f"{OPEN}\nprint({expression})\n{CLOSE}\n{STOP}\n{answer}\n{CLOSE}\nThe final answer is \\boxed{{{answer}}}."


def tool_examples(examples: Sequence[Example]) -> list[Example]:
    """SFT rows whose response is a tool trace (`metadata["response"]`); arith rows only."""
    out = []
    for e in examples:
        if e.metadata.get("benchmark") != "arith":
            raise InputError(
                f"{e.id}: no generated tool traces for {e.metadata.get('benchmark')!r}: use arith, "
                "or a file of traces (prompt/completion or messages with ```python/```output blocks)"
            )
        out.append(
            Example(
                e.id,
                e.prompt,
                e.answer,
                {**e.metadata, "response": arith_trace(e.metadata["expression"], e.answer or "")},
            )
        )
    return out


def split_trace(text: str) -> list[tuple[str, str]]:
    """(kind, text) parts of a trace: the model's text through each ```output, then the recorded output
    through its closing fence and line end (exactly what the environment appends), and so on. A trace
    without ```output is one model part."""
    parts: list[tuple[str, str]] = []
    rest = text
    while (at := rest.find(STOP)) >= 0:
        parts.append(("model", rest[: at + len(STOP)]))
        rest = rest[at + len(STOP) :]
        close = rest.find(CLOSE)
        if close < 0:  # an output block never closed: the rest is the tool's
            parts.append(("tool", rest))
            return parts
        end = close + len(CLOSE) + (1 if rest[close + len(CLOSE) :].startswith("\n") else 0)
        parts.append(("tool", rest[:end]))
        rest = rest[end:]
    if rest or not parts:
        parts.append(("model", rest))
    return parts


def _output(observation: str) -> str:
    """An output block's content, without the fences' line ends: what two runs must agree on."""
    return observation.strip("\n").removesuffix(CLOSE).strip()


def check_traces(env: Any, rows: Sequence[tuple[str, str]]) -> None:
    """Re-run every trace's cells in `env` (each row's cells in order, in one interpreter state; rows
    batched together) and raise one InputError naming the first row and call whose recorded output
    differs from what its code prints: a fabricated tool output is not training data."""
    traces = []
    for ident, text in rows:
        parts = split_trace(text)
        pairs = [
            (parts[i][1], parts[i + 1][1])
            for i in range(len(parts) - 1)
            if parts[i][0] == "model" and parts[i + 1][0] == "tool"
        ]
        traces.append((ident, env.reset(None), pairs))
    turn = 0
    while active := [(ident, state, pairs[turn]) for ident, state, pairs in traces if turn < len(pairs)]:
        calls = [(state, env.parse_call(state, spoken) or Call("")) for _, state, (spoken, _) in active]
        for (ident, _, (_, recorded)), observation in zip(active, env.execute(calls), strict=True):
            if _output(observation.text) != _output(recorded):
                raise InputError(
                    f"{ident}: tool call {turn + 1} records {_output(recorded)[:200]!r}, but its code "
                    f"prints {_output(observation.text)[:200]!r} ({observation.status}) when re-run: "
                    "a fabricated tool output is not training data"
                )
        turn += 1

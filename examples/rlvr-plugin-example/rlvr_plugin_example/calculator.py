"""An example rlvr environment plugin: `calculator` evaluates `<calc>EXPR</calc>` while the model reasons."""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable, Sequence
from typing import Any

from rlvr.environments import Call, CallStatus, Observation

__all__ = ["Calculator"]

OPEN, CLOSE = "<calc>", "</calc>"

_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_UNARY: dict[type, Callable[[Any], Any]] = {ast.USub: operator.neg, ast.UAdd: operator.pos}


def evaluate(expression: str) -> int | float:
    """The value of an arithmetic expression: numbers, + - * / // %, parentheses; nothing else runs."""

    def value(node: ast.AST) -> int | float:
        if isinstance(node, ast.Constant) and type(node.value) in (int, float):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            return _BINARY[type(node.op)](value(node.left), value(node.right))
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](value(node.operand))
        raise ValueError(f"not arithmetic: {ast.unparse(node)!r}")

    return value(ast.parse(expression.strip(), mode="eval").body)


class Calculator:
    """Evaluates <calc>EXPR</calc> (+ - * / // % and parentheses) and appends the result."""

    name = "calculator"
    stop = (CLOSE,)

    def __init__(self, max_turns: int = 4):
        # options come from the config: env.max_turns
        self.max_turns = int(max_turns)

    def reset(self, task: Any = None) -> dict[str, int]:
        # per-trajectory state: the trajectory's own, never shared between trajectories
        return {"calls": 0}

    def parse_call(self, state: dict[str, int], text: str) -> Call | None:
        before, found, overhang = text.rpartition(CLOSE)
        if not found or OPEN not in before:
            return None
        return Call(before.rpartition(OPEN)[2], overhang)

    def execute(self, calls: Sequence[tuple[dict[str, int], Call]]) -> list[Observation]:
        observations = []
        for state, call in calls:
            state["calls"] += 1
            try:
                result = evaluate(call.content)
            except (ValueError, SyntaxError, ZeroDivisionError, OverflowError, RecursionError) as err:
                # a bad expression is the model's mistake: an observation it can read, never an exception
                observations.append(Observation(f" error: {err}\n", CallStatus.ERROR, {"error": str(err)}))
                continue
            observations.append(Observation(f" = {result:g}\n", CallStatus.OK))
        return observations

    def close(self) -> None:
        pass

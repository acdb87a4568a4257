"""Inequalities and intervals as sets of real numbers, so `x \\geq 5` = `[5, \\infty)`, `-x > -1` =
`x < 1` and `-2 \\le x \\le 7` = `x \\in [-2, 7]` compare by the set they describe.

Reads normalized answers (relations already spelled `\\leq \\geq \\neq < >`): a chain of one or
two relations in one variable whose sides are linear in it, `x \\neq c`, or intervals joined by
`\\cup`. Anything else is None: "not a region I can read", never a verdict."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from rlvr.verifiers.math.numeric import Unsupported, evaluate, split_top_level

__all__ = ["Region", "has_relation", "region", "regions_equal", "same_linear_equation"]

_RELATION = re.compile(r"(\\leq|\\geq|\\neq|<|>)")
_LETTERS = re.compile(r"(?<![\\a-zA-Z])[a-zA-Z](?![a-zA-Z])")
_INFINITY = {"\\infty": math.inf, "+\\infty": math.inf, "-\\infty": -math.inf, "\\infinity": math.inf}

Part = tuple[float, bool, float, bool]  # (low, low closed, high, high closed)


@dataclass(frozen=True)
class Region:
    variable: str | None  # None for a bare interval
    parts: tuple[Part, ...]  # disjoint, sorted


def has_relation(key: str) -> bool:
    return bool(_RELATION.search(key))


def region(clean: str) -> Region | None:
    """The set of reals `clean` describes, or None when it is not a relation/interval we read."""
    try:
        if has_relation(clean):
            return _from_relations(clean)
        return _from_intervals(clean)
    except (Unsupported, ArithmeticError, ValueError):
        return None


def regions_equal(a: Region, b: Region) -> bool:
    if a.variable and b.variable and a.variable != b.variable:
        return False
    return len(a.parts) == len(b.parts) and all(_same_part(p, q) for p, q in zip(a.parts, b.parts, strict=True))


def _close(a: float, b: float) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= 1e-9 * max(1.0, abs(a), abs(b))


def _same_part(p: Part, q: Part) -> bool:
    ends = _close(p[0], q[0]) and _close(p[2], q[2])
    low_closed = math.isinf(p[0]) or p[1] == q[1]
    high_closed = math.isinf(p[2]) or p[3] == q[3]
    return ends and low_closed and high_closed


def _real(text: str, env: dict[str, float] | None = None) -> float:
    text = text.strip()
    if text in _INFINITY:
        return _INFINITY[text]
    value = evaluate(text, env=env)
    if abs(value.imag) > 1e-12:
        raise Unsupported("complex value")
    return value.real


def _from_relations(clean: str) -> Region | None:
    pieces = _RELATION.split(clean)
    sides, ops = [p.strip() for p in pieces[0::2]], pieces[1::2]
    if not all(sides) or len(ops) > 2:
        return None
    letters = {m for s in sides for m in _LETTERS.findall(s)} - {"i", "e"}
    if len(letters) != 1:
        return None
    var = letters.pop()
    if ops == ["\\neq"]:
        if sides[0] != var:
            return None
        c = _real(sides[1])
        return Region(var, ((-math.inf, False, c, False), (c, False, math.inf, False)))
    if "\\neq" in ops:
        return None
    part: Part = (-math.inf, False, math.inf, False)
    for i, op in enumerate(ops):
        solved = _solve(sides[i], op, sides[i + 1], var)
        if solved is None:
            return None
        part = _intersect(part, solved)
    if part[0] > part[2] or (part[0] == part[2] and not (part[1] and part[3])):
        return Region(var, ())  # empty
    return Region(var, (part,))


def _solve(left: str, op: str, right: str, var: str) -> Part | None:
    """`left op right` for `var`, when left - right is linear in it."""
    f = [_real(left, {var: t}) - _real(right, {var: t}) for t in (0.0, 1.0, 2.0)]
    slope = f[1] - f[0]
    if abs(slope) < 1e-12 or not _close(f[2] - f[1], slope):
        return None
    root = -f[0] / slope
    below = (op in ("<", "\\leq")) == (slope > 0)  # left - right < 0 with a rising line: var below the root
    closed = op in ("\\leq", "\\geq")
    return (-math.inf, False, root, closed) if below else (root, closed, math.inf, False)


def _intersect(a: Part, b: Part) -> Part:
    low = a if a[0] > b[0] or (a[0] == b[0] and not a[1]) else b
    high = a if a[2] < b[2] or (a[2] == b[2] and not a[3]) else b
    return (low[0], low[1], high[2], high[3])


def _from_intervals(clean: str) -> Region | None:
    parts = []
    for raw in clean.split("\\cup"):
        piece = raw.strip()
        if piece.startswith("\\{") and piece.endswith("\\}"):  # points: \{-1\} \cup [0, 7)
            parts += [(v, True, v, True) for v in map(_real, split_top_level(piece[2:-2]))]
            continue
        if len(piece) < 5 or piece[0] not in "([" or piece[-1] not in ")]":
            return None
        ends = split_top_level(piece[1:-1])
        if len(ends) != 2:
            return None
        low, high = _real(ends[0]), _real(ends[1])
        if low > high:
            return None
        parts.append((low, piece[0] == "[", high, piece[-1] == "]"))
    return Region(None, tuple(sorted(parts)))


#: test points (away from 0 and 1, where the coefficients are read) that show an equation is linear
_PROBES = ((0.37, -1.9, 2.6), (-2.3, 0.71, -0.45))


def _linear(equation: str) -> tuple[tuple[str, ...], tuple[float, ...]] | None:
    """`3x - 6y + 9 = 0` → (("x", "y"), (9, 3, -6)): the constant and the coefficients of L - R, when it is linear
    in one to three single-letter variables (checked at two more points); None otherwise."""
    sides = equation.split("=")
    if len(sides) != 2 or not all(side.strip() for side in sides):
        return None
    names = tuple(sorted(set(_LETTERS.findall(equation)) - {"i", "e"}))
    if not 1 <= len(names) <= 3:
        return None

    def f(values: tuple[float, ...]) -> float:
        env = dict(zip(names, values, strict=True))
        return _real(sides[0], env) - _real(sides[1], env)

    try:
        constant = f((0.0,) * len(names))
        coefficients = [f(tuple(float(i == k) for i in range(len(names)))) - constant for k in range(len(names))]
        for probe in _PROBES:
            point = probe[: len(names)]
            if not _close(f(point), constant + sum(c * p for c, p in zip(coefficients, point, strict=True))):
                return None
    except (Unsupported, ArithmeticError, ValueError):
        return None
    if all(abs(c) < 1e-12 for c in coefficients):
        return None  # `0 = 0`, `x - x = 1`: no equation in its variables
    return names, (constant, *coefficients)


def same_linear_equation(gold: str, answer: str) -> bool | None:
    """Two linear equations in the same variables (`3x-6y+9=0`, `y = \\frac{1}{2}x + \\frac{3}{2}`): the same when,
    everything moved to one side, one is a nonzero constant times the other. None unless both are linear."""
    if gold.count("=") != 1 or answer.count("=") != 1:
        return None
    ours, theirs = _linear(gold), _linear(answer)
    if ours is None or theirs is None or ours[0] != theirs[0]:
        return None
    g, a = ours[1], theirs[1]
    k = max(range(len(a)), key=lambda i: abs(a[i]))
    factor = g[k] / a[k]
    return abs(factor) > 1e-12 and all(_close(x, factor * y) for x, y in zip(g, a, strict=True))

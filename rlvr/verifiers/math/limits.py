"""Limits of the math grader: answers too long, too deeply nested or too big to evaluate are
refused with a reason (a verdict, never an error), before any parser or sympy sees them."""

from __future__ import annotations

import re

__all__ = ["MAX_ANSWER_CHARS", "MAX_NESTING", "nesting", "too_big_to_evaluate", "too_complex"]

#: answers past these limits are refused (wrong, with the reason) rather than evaluated
MAX_ANSWER_CHARS = 1000
MAX_NESTING = 40


def nesting(text: str) -> int:
    depth = deepest = 0
    for ch in text:
        if ch in "{([":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "})]":
            depth = max(0, depth - 1)
    return deepest


def too_complex(answer: str) -> str:
    if len(answer) > MAX_ANSWER_CHARS:
        return f"answer too long ({len(answer)} chars > {MAX_ANSWER_CHARS})"
    if (depth := nesting(answer)) > MAX_NESTING:
        return f"answer nested {depth} deep (> {MAX_NESTING})"
    return ""


_POWER = re.compile(r"\^\s*(\{|\(|\d+)")
_FACTORIAL = re.compile(r"\d{3,}\s*!")


def too_big_to_evaluate(key: str) -> str:
    """Why sympy must not evaluate this (a power tower or a huge exponent / factorial), or ""."""
    if _FACTORIAL.search(key):
        return "huge factorial"
    for m in _POWER.finditer(key):
        if m[1] in "{(":
            closing = "}" if m[1] == "{" else ")"
            depth, i = 0, m.end(1) - 1
            while i < len(key):
                depth += {m[1]: 1, closing: -1}.get(key[i], 0)
                if depth == 0:
                    break
                i += 1
            exponent = key[m.end(1) : i]
        else:
            exponent = m[1]
        if "^" in exponent or "!" in exponent:
            return "power tower"
        number = re.fullmatch(r"\s*[-+]?\d+(?:\.\d*)?\s*", exponent)
        if number and abs(float(number.group())) > 10_000:
            return "huge exponent"
    return ""

"""Answers in the notations the grader reads besides plain LaTeX: exact numbers (thousands
separators, e-notation, mixed numbers, decimal commas), times of day, yes/no, and the guard that
keeps a list (`45, 120`) from being read as one number (45120)."""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from fractions import Fraction

__all__ = ["list_as_number", "numbers_apart", "percent_as_fraction", "same_time", "to_number", "truth"]

_PLAIN = re.compile(r"^[-+]?(?:[1-9]\d{0,2}(?:,\d{3})+|\d+)(?:\.\d*)?$|^[-+]?\.\d+$")
_GROUPED = re.compile(r"^[-+]?[1-9]\d{0,2}(?:,\d{3})+(?:\.\d+)?$")
_RATIO = re.compile(r"^([-+]?\d+)/(\d+)$")
_FRAC = re.compile(r"^([-+]?)\\frac\{([-+]?[\d.]+)\}\{([-+]?[\d.]+)\}$")
_MIXED = re.compile(r"^([-+]?)(\d+)\\frac\{(\d+)\}\{(\d+)\}$")
_SPACED_MIXED = re.compile(r"^([-+]?)(\d+) (\d+)/(\d+)$")  # 2 3/4, spaces kept
# 4.2e-05, 4.2E3, 3e+8 (a point or a signed exponent: `2e3` may be 2·e³), 4.2\times10^{-5}
_E_NOTATION = re.compile(r"^([-+]?(?:\d+\.\d*|\.\d+))[eE]([-+]?\d+)$|^([-+]?\d+)[eE]([-+]\d+)$")
_TIMES_TEN = re.compile(r"^([-+]?(?:\d+\.?\d*|\.\d+))(?:\\times|\\cdot|×|\*)10\^\{?([-+]?\d+)\}?$")
# a decimal comma: `0,375` always (a list is never written 0,375); `3,40` only where the caller
# knows a single number is expected (a list gold such as `0,1` or `27,93` is common)
_ZERO_COMMA = re.compile(r"^[-+]?0,\d{3,}$")
_SHORT_COMMA = re.compile(r"^[-+]?\d+,\d{1,2}$")
_TIME = re.compile(r"^(\d{1,2}):([0-5]\d)(?::([0-5]\d))?$")
_TRUTH = {"yes": True, "true": True, "no": False, "false": False}


def _decimal(text: str) -> Fraction | None:
    try:
        return Fraction(Decimal(text.replace(",", "")))
    except (InvalidOperation, ValueError):
        return None


def _signed(sign: str, value: Fraction) -> Fraction:
    return -value if sign == "-" else value


def to_number(answer: str, *, decimal_comma: bool = False) -> Fraction | None:
    """The exact value of a plain number: `1,234`, `-0.5`, `.35`, `3/4`, `\\frac{3}{4}`, mixed
    numbers `1\\frac{4}{5}` and `2 3/4`, `4.2e-05`, `4.2\\times10^{-5}`, `0,375`, and with
    `decimal_comma` also `3,40`; None for anything else, a list (`45, 120`) included."""
    if re.search(r",\s", answer):
        return None
    if m := _SPACED_MIXED.match(answer.strip()):
        num, den = int(m[3]), int(m[4])
        return _signed(m[1], int(m[2]) + Fraction(num, den)) if 0 < num < den else None
    s = answer.replace(" ", "")
    if _PLAIN.match(s):
        return _decimal(s)
    if _ZERO_COMMA.match(s) or (decimal_comma and _SHORT_COMMA.match(s)):
        return _decimal(s.replace(",", "."))
    if m := _RATIO.match(s):
        return Fraction(int(m[1]), int(m[2])) if int(m[2]) else None
    if m := _FRAC.match(s):
        top, bottom = _decimal(m[2]), _decimal(m[3])
        return _signed(m[1], top / bottom) if top is not None and bottom else None
    if m := _MIXED.match(s):
        return _signed(m[1], int(m[2]) + Fraction(int(m[3]), int(m[4]))) if int(m[4]) else None
    for pattern in (_E_NOTATION, _TIMES_TEN):
        if m := pattern.match(s):
            mantissa, exponent = (g for g in m.groups() if g is not None)
            value = _decimal(mantissa)
            return value * Fraction(10) ** int(exponent) if value is not None and abs(int(exponent)) <= 400 else None
    return None


def list_as_number(one: str, other: str) -> bool:
    """`45,120` or `45,012` (a number with thousands separators) against `45, 120` (a list):
    never the same answer, even where the characters without spaces are."""
    return any(
        _GROUPED.match(a.replace(" ", "")) and ", " not in a and re.search(r",\s", b)
        for a, b in ((one, other), (other, one))
    )


def _time(text: str) -> tuple[int, int, int] | None:
    m = _TIME.match(text.strip())
    return (int(m[1]), int(m[2]), int(m[3] or 0)) if m else None


def same_time(gold: str, answer: str) -> bool | None:
    """`09:15` = `9:15` = `09:15:00`; None unless both are times of day."""
    ours, theirs = _time(gold), _time(answer)
    return None if ours is None or theirs is None else ours == theirs


def truth(text: str) -> bool | None:
    """yes/true → True, no/false → False (any case), else None."""
    return _TRUTH.get(text.strip().lower())


_SPACED_DIGITS = re.compile(r"^[-+]?\d+(?:\.\d+)?(?:\s+\d+(?:\.\d+)?)+$")
_SPACE_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(?: \d{3})+(?:\.\d+)?$")


def numbers_apart(text: str) -> bool:
    """`2 3` or `12 34.5`: numbers set apart by spaces that are not thousands groups (`1 000` is one number).
    Never one number: `2 3` is not 23 (a mixed number `2 3/4` has its slash, and is not this)."""
    t = text.strip()
    return bool(_SPACED_DIGITS.match(t)) and not _SPACE_THOUSANDS.match(t)


_PERCENT = re.compile(r"^\s*\$?\s*([-+]?[\d.,]+)\s*\\?%\s*\$?\s*$")


def percent_as_fraction(gold: str, answer: str) -> tuple[str, str] | None:
    """`math:percent=fraction`: when exactly one of the two is a plain percentage (`25\\%`, `12.5%`), both with
    that one written as its fraction (`1/4`); None otherwise (neither, both, or not a plain number)."""
    marked = [(m := _PERCENT.match(t)) and to_number(m[1]) for t in (gold, answer)]
    if (marked[0] is None) == (marked[1] is None):
        return None
    out = [t if v is None else str(v / 100) for t, v in zip((gold, answer), marked, strict=True)]
    return out[0], out[1]

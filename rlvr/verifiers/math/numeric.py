"""A small evaluator for LaTeX arithmetic (`3\\sqrt{13}`, `6 - 5i`, `(3, \\frac{\\pi}{2})`, `x^3+3x-6`,
matrices, sets) so the grader can compare most MATH answers by value without the slow symbolic path.

Expressions with variables are evaluated at two fixed points per letter (two polynomials or
rational functions that agree there are taken as the same). It refuses (raises Unsupported)
anything it does not fully understand: functions, `e`, equations, ambiguous juxtapositions
(`1\\frac{4}{5}`, `1/2\\pi`), huge powers. A refusal only means "ask sympy", never a verdict."""

from __future__ import annotations

import cmath
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

__all__ = [
    "FLOAT_DIGITS",
    "MIN_ROUNDED_DIGITS",
    "Unsupported",
    "Value",
    "decimal_stands_for",
    "evaluate",
    "evaluate_items",
    "split_top_level",
    "values_equal",
]


class Unsupported(ValueError):
    """Not an expression this evaluator reads with certainty."""


_TOKEN = re.compile(r"\s*(\d+\.?\d*|\.\d+|\\[a-zA-Z]+|[a-zA-Z]|[-+*/^(){}\[\]])")
_COMMANDS = {"\\frac", "\\sqrt", "\\pi", "\\cdot", "\\times", "\\div"}
_MAX_MAGNITUDE = 1e200
_NOT_VARIABLES = {"e"}  # Euler's number or a variable? sympy decides


def _point(letter: str, k: int) -> float:
    """A fixed, unremarkable value for `letter` at evaluation point k (0 or 1)."""
    frac = (ord(letter) * (0.6180339887 if k == 0 else 0.4142135623)) % 1.0
    return (0.55 + 1.5 * frac) if k == 0 else (1.3 + 1.7 * frac)


def _tokens(text: str) -> list[str]:
    out, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise Unsupported(f"cannot read {text[pos : pos + 10]!r}")
        token = m[1]
        if token.startswith("\\") and token not in _COMMANDS:
            raise Unsupported(f"command {token}")
        if token in _NOT_VARIABLES:
            raise Unsupported(f"symbol {token}")
        out.append(token)
        pos = m.end()
    return out


class _Parser:
    def __init__(self, tokens: list[str], point: int, env: Mapping[str, float] | None = None):
        self.tokens = tokens
        self.point = point
        self.env = env
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> str:
        token = self.peek()
        if token is None or (expected is not None and token != expected):
            raise Unsupported(f"expected {expected or 'more'}, got {token}")
        self.i += 1
        return token

    def expr(self) -> complex:
        value = self.term()
        while self.peek() in ("+", "-"):
            value = value + self.term() if self.take() == "+" else value - self.term()
        return _check(value)

    def term(self) -> complex:
        value = self.factor()
        divided = implicit = False
        while True:
            token = self.peek()
            if token in ("*", "\\cdot", "\\times"):
                self.take()
                value *= self.factor()
            elif token in ("/", "\\div"):
                self.take()
                divided = True
                value = _divide(value, self.factor())
            elif token is not None and _starts_primary(token):
                if _is_number(token) or (token == "\\frac" and _is_number(self.tokens[self.i - 1])):
                    raise Unsupported("juxtaposed numbers (a mixed number?)")
                implicit = True
                value *= self.factor()
            else:
                break
            if divided and implicit:
                raise Unsupported("a/b c is ambiguous")
            value = _check(value)
        return value

    def factor(self) -> complex:
        if self.peek() in ("-", "+"):
            return -self.factor() if self.take() == "-" else self.factor()
        base = self.primary()
        if self.peek() != "^":
            return base
        self.take()
        exponent = self.group() if self.peek() in ("{", "(") else self._single_digit()
        if exponent.imag or (exponent.real != int(exponent.real) and (base.imag or base.real < 0)):
            raise Unsupported("complex or fractional power of a negative number")
        if base == 0 and exponent.real < 0:
            raise Unsupported("0 to a negative power")
        if abs(base) > 1 and exponent.real * math.log10(abs(base)) > 200:
            raise Unsupported("huge power")
        if exponent.real == int(exponent.real) and abs(exponent.real) <= 64:
            return _check(base ** int(exponent.real))
        return _check(complex(base.real**exponent.real))

    def _single_digit(self) -> complex:
        token = self.take()
        if not _is_number(token) or len(token) > 1:
            raise Unsupported("exponent")  # x^23 means x^2·3 in LaTeX: too easy to misread
        return complex(float(token))

    def group(self) -> complex:
        opening = self.take()
        closing = {"{": "}", "(": ")"}.get(opening)
        if closing is None:
            raise Unsupported("group")
        value = self.expr()
        self.take(closing)
        return value

    def primary(self) -> complex:
        token = self.take()
        if _is_number(token):
            return complex(float(token))
        if token == "\\pi":
            return complex(math.pi)
        if token == "i":
            return 1j
        if len(token) == 1 and token.isalpha():
            return complex(self.env[token] if self.env and token in self.env else _point(token, self.point))
        if token == "\\frac":
            numerator = self.group()
            return _divide(numerator, self.group())
        if token == "\\sqrt":
            degree = 2.0
            if self.peek() == "[":
                self.take()
                degree = self.expr().real
                self.take("]")
            radicand = self.group()
            if radicand.imag or radicand.real < 0 or degree <= 0:
                raise Unsupported("root of a negative or complex number")
            return complex(radicand.real ** (1.0 / degree))
        if token in ("(", "{"):
            self.i -= 1
            return self.group()
        raise Unsupported(f"unexpected {token}")


def _divide(numerator: complex, denominator: complex) -> complex:
    if abs(denominator) < 1e-300:
        raise Unsupported("division by zero")
    return numerator / denominator


def _is_number(token: str) -> bool:
    return token[:1].isdigit() or (token[:1] == "." and token[1:2].isdigit())


def _starts_primary(token: str) -> bool:
    return _is_number(token) or token in ("\\pi", "\\frac", "\\sqrt", "(", "{") or (len(token) == 1 and token.isalpha())


def _check(value: complex) -> complex:
    if not cmath.isfinite(value) or abs(value) > _MAX_MAGNITUDE:
        raise Unsupported("too large")
    return value


def _letters(text: str) -> frozenset[str]:
    return frozenset(re.findall(r"[a-zA-Z]", re.sub(r"\\[a-zA-Z]+", " ", text))) - {"i"}


def evaluate(text: str, point: int = 0, env: Mapping[str, float] | None = None) -> complex:
    """The value of a LaTeX expression (variables at evaluation point 0 or 1, or as `env` says),
    or Unsupported."""
    parser = _Parser(_tokens(text), point, env)
    value = parser.expr()
    if parser.peek() is not None:
        raise Unsupported(f"trailing {parser.peek()}")
    return value


@dataclass(frozen=True)
class Value:
    kind: str  # "" scalar, "()" "[)" ... bracketed tuple/interval, "set", "matrix 3x1"
    items: tuple[tuple[complex, ...], ...]  # per item, its value at each evaluation point
    texts: tuple[str, ...]
    variables: frozenset[str]


_MATRIX = re.compile(r"^\\begin\{([pb]?matrix)\}(.*)\\end\{\1\}$", re.DOTALL)
_INFINITY = {"\\infty": math.inf, "+\\infty": math.inf, "-\\infty": -math.inf}


def evaluate_items(text: str) -> Value:
    """`(3, \\frac{\\pi}{2})` → Value("()", ((3,), (1.5707…,)), ...); a lone expression → kind "".
    Infinity is allowed only as a whole item (an interval's end)."""
    text = text.strip()
    if m := _MATRIX.match(text):
        rows = [r for r in re.split(r"\\\\", m[2]) if r.strip()]
        cells = [c for r in rows for c in r.split("&")]
        if not rows or len(cells) % len(rows):
            raise Unsupported("ragged matrix")
        kind, items = f"matrix {len(rows)}x{len(cells) // len(rows)}", cells
    elif text.startswith("\\{") and text.endswith("\\}"):
        kind, items = "set", split_top_level(text[2:-2])
    elif text[:1] in "([" and text[-1:] in ")]" and _wraps(text) and len(split_top_level(text[1:-1])) > 1:
        kind, items = text[0] + text[-1], split_top_level(text[1:-1])
    elif "," in text:
        kind, items = "set", split_top_level(text)  # a bare list reads as a set, as in math-verify
    else:
        kind, items = "", [text]
    items = [i.strip() for i in items]
    if kind in ("", "set") and any("\\pm" in i for i in items):  # 1 \pm \sqrt{19}: two answers
        if any(i.count("\\pm") > 1 for i in items):
            raise Unsupported("several \\pm")
        kind, items = (
            "set",
            [i.replace("\\pm", sign, 1) for i in items for sign in ("+", "-") if sign == "+" or "\\pm" in i],
        )
    variables = frozenset().union(*(_letters(i) for i in items))
    if variables and kind == "set":
        raise Unsupported("a set of expressions")
    points = (0, 1) if variables else (0,)
    values = tuple(
        (complex(_INFINITY[item]),) * len(points) if item in _INFINITY else tuple(evaluate(item, k) for k in points)
        for item in items
    )
    if kind == "set":  # order and repeats do not matter: sort by value, drop repeats
        order = sorted(range(len(items)), key=lambda j: (round(values[j][0].real, 9), round(values[j][0].imag, 9)))
        kept = [j for n, j in enumerate(order) if n == 0 or not _close(values[order[n - 1]][0], "", values[j][0], "")]
        values, items = tuple(values[j] for j in kept), [items[j] for j in kept]
        if len(items) == 1 and not text.startswith("\\{"):
            kind = ""  # "a, a" (one answer boxed twice in two forms) is just a
    return Value(kind, values, tuple(items), variables)


def _wraps(text: str) -> bool:
    """The first bracket closes at the very end: `(1, 2)`, not `(x+1)(x+2)`."""
    depth = 0
    for i, ch in enumerate(text):
        depth += (ch in "([{") - (ch in ")]}")
        if depth == 0:
            return i == len(text) - 1
    return False


def split_top_level(text: str) -> list[str]:
    items, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in "({[":
            depth += 1
        elif ch in ")}]":
            depth -= 1
            if depth < 0:
                raise Unsupported("unbalanced brackets")
        elif ch == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    if depth:
        raise Unsupported("unbalanced brackets")
    return [*items, text[start:]]


_PLAIN_DECIMAL = re.compile(r"^[-+]?\d*\.(\d+)$")
#: a decimal with fewer significant digits than this never stands for a rounded gold (0.3 ≠ 1/3)
MIN_ROUNDED_DIGITS = 3
#: a decimal this long is a printed float: it equals a gold within a double's error (0.1 + 0.2)
FLOAT_DIGITS = 16


def decimal_stands_for(gold: Fraction | float, gold_text: str, answer_text: str) -> bool | None:
    """The rounding rule, one place for the exact and the evaluated paths. A decimal answer of k
    places with at least MIN_ROUNDED_DIGITS significant digits equals a gold that is not itself a
    plain decimal when it is the gold rounded to k places (80π vs 251.327, 2/3 vs 0.667, never
    0.3 or 0.33 for 1/3), or, from 6 places on, truncated (2/3 vs 0.666666, as math-verify). A
    decimal of FLOAT_DIGITS or more significant digits equals any gold within a double's error
    (0.30000000000000004 for 0.3). None: the rule does not apply (not a decimal answer)."""
    answer_text = answer_text.replace(" ", "")
    places = _PLAIN_DECIMAL.match(answer_text)
    if not places:
        return None
    digits = len(answer_text.lstrip("+-").replace(".", "").lstrip("0"))
    answer, exact = Fraction(answer_text), Fraction(gold)
    if digits >= FLOAT_DIGITS and abs(answer - exact) <= abs(exact) * Fraction(1, 10**15):
        return True
    if digits < MIN_ROUNDED_DIGITS or _PLAIN_DECIMAL.match(gold_text.replace(" ", "")):
        return None
    k = len(places[1])
    return abs(exact - answer) <= Fraction(1, 2 * 10**k) or (k >= 6 and abs(exact - answer) < Fraction(1, 10**k))


def _close(gold: complex, gold_text: str, answer: complex, answer_text: str) -> bool:
    """To 1e-10 relative, or a decimal standing for the gold (`decimal_stands_for`)."""
    if math.isinf(gold.real) or math.isinf(answer.real):
        return gold == answer
    # the rounding rule says yes (stands for it), no, or None (no opinion): only a yes decides here
    if abs(gold.imag) < 1e-12 and decimal_stands_for(gold.real, gold_text, answer_text):
        return True
    return abs(gold - answer) <= 1e-10 * max(abs(gold), abs(answer)) + 1e-12


def values_equal(gold: Value, answer: Value) -> bool | None:
    """Equal, not equal, or None when the two use different variables (left to sympy)."""
    if gold.variables != answer.variables:
        return None
    if gold.kind != answer.kind or len(gold.items) != len(answer.items):
        return False
    return all(
        _close(g, g_text, a, a_text)
        for g_values, g_text, a_values, a_text in zip(gold.items, gold.texts, answer.items, answer.texts, strict=True)
        for g, a in zip(g_values, a_values, strict=True)  # same variables: the same evaluation points
    )

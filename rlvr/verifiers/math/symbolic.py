"""The symbolic path of the math grader: math-verify + sympy, with their signal.alarm timeouts
switched off (the runner owns deadlines), the gold parsed once, and the warm-up that builds the
LaTeX parser's cache before the first verdict needs it."""

from __future__ import annotations

import logging
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache, partial

from rlvr.verifiers.math.numeric import decimal_stands_for

__all__ = ["WARMUP_ANSWERS", "GoldError", "load_math_verify", "symbolic_equal", "warm_up", "warm_up_steps"]


class GoldError(ValueError):
    """The gold answer cannot be graded against (empty, or unparseable where it must be parsed)."""


class _DropTimeoutWarning(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("Timeout is disabled")


def load_math_verify():
    """The math_verify module, its "timeout disabled" warning quieted."""
    import math_verify  # imported on first symbolic use: it pulls in sympy and antlr

    for name in ("math_verify.parser", "math_verify.grader"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DropTimeoutWarning) for f in logger.filters):
            logger.addFilter(_DropTimeoutWarning())  # the runner owns deadlines, by design
    return math_verify


def _parse(text: str, *, raise_on_error: bool = False, boxed: bool = True) -> list:
    mv = load_math_verify()
    wrapped = "$\\boxed{" + text + "}$" if boxed else "$" + text + "$"
    return mv.parse(wrapped, parsing_timeout=None, raise_on_error=raise_on_error)


def _readable(parsed: list, form: str) -> bool:
    """Whether math-verify read `form` whole: a value, from the whole text. A parse that stopped early
    (`1 + \\frac{1}{ e }` read as `1`, its text `1 + \\frac{1}{`) is a fragment, and a fragment of a gold or
    an answer is not its value (grading it would reward `1` for 1 + 1/e)."""
    texts = [p for p in parsed if isinstance(p, str)]
    whole = not texts or "".join(texts[-1].split()) == "".join(form.split())
    return whole and any(not isinstance(p, str) for p in parsed)


def _parsed(forms: tuple[str, ...]) -> list:
    """The first of `forms` math-verify reads whole (boxed, then as plain math), or []."""
    for form in dict.fromkeys(f for f in forms if f.strip()):
        for boxed in (True, False):
            if _readable(parsed := _parse(form, boxed=boxed), form):
                return parsed
    return []


@lru_cache(maxsize=8192)
def _gold_parsed(forms: tuple[str, ...]) -> tuple:
    parsed = _parsed(forms)
    if not parsed:
        raise GoldError(f"math-verify cannot parse the gold answer {forms[0]!r}")
    return tuple(parsed)


def symbolic_equal(gold_forms: tuple[str, ...], answer_forms: tuple[str, ...]) -> bool | None:
    """math-verify's verdict, each side read from the first of its forms (normalized, then as
    written) that math-verify can parse; None when the answer is unreadable. Raises GoldError
    only when no form of the gold is readable: any gold math-verify can parse is gradable."""
    gold = list(_gold_parsed(gold_forms))
    if (value := _real_number(tuple(gold))) is not None and decimal_stands_for(value, gold_forms[0], answer_forms[0]):
        return True  # e^2 vs 7.389: the rounding rule, on the gold's value to 30 digits
    answer = _parsed(answer_forms)
    if not answer:
        return None
    return bool(load_math_verify().verify(gold, answer, timeout_seconds=None, raise_on_error=False))


def _real_number(parsed: tuple) -> Fraction | None:
    """The gold's value when it is one real number (`e^2`, `\\ln 3`), to 30 digits."""
    import sympy  # type: ignore[import-untyped]  # sympy ships no py.typed

    expr = next((p for p in parsed if isinstance(p, sympy.Expr)), None)
    if expr is None or not expr.is_number or expr.is_real is not True:
        return None
    try:
        return Fraction(str(sympy.N(expr, 30)))
    except (ValueError, TypeError, ZeroDivisionError):
        return None


#: answers whose parsing builds most of the LaTeX parser's decision cache: a cold process pays
#: 50-400 ms for each of its first symbolic parses, a warm one a few ms
WARMUP_ANSWERS = (
    "(-\\infty, 1) \\cup (2, 3]",
    "\\cos 20^\\circ",
    "2e",
    "\\log_2 8",
    "y = 2x + 1",
    "\\{x, y\\}",
    "\\sin^2 x + 1",
    "\\sqrt{e}",
    "\\frac{\\pi}{e}",
    "[2, e)",
    "3 \\cdot 2^{x}",
    "\\begin{pmatrix} a \\\\ 2 \\end{pmatrix}",
)


def warm_up_steps() -> list[Callable[[], object]]:
    """The warm-up in small steps: import math-verify, then parse each of WARMUP_ANSWERS."""
    return [load_math_verify] + [partial(_parse, answer) for answer in WARMUP_ANSWERS]


def warm_up() -> None:
    """Import math-verify and parse WARMUP_ANSWERS once."""
    for step in warm_up_steps():
        step()

"""Decide whether an extracted answer equals the gold: the grader half of the math verifier.

A fast path (normalized strings, exact numbers with Fraction, multiple-choice letters, the shape
of sets/tuples/intervals) settles most pairs without sympy; the rest go to `symbolic`
(math-verify + sympy)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache

from rlvr.verifiers.math.forms import list_as_number, numbers_apart, same_time, to_number, truth
from rlvr.verifiers.math.limits import too_big_to_evaluate, too_complex
from rlvr.verifiers.math.numeric import Unsupported, Value, decimal_stands_for, evaluate_items, values_equal
from rlvr.verifiers.math.relations import has_relation, region, regions_equal, same_linear_equation
from rlvr.verifiers.math.symbolic import WARMUP_ANSWERS, GoldError, symbolic_equal, warm_up, warm_up_steps
from rlvr.verifiers.math.symbolic import load_math_verify as _math_verify  # noqa: F401  (lm_eval_tasks reads it here)

__all__ = [
    "WARMUP_ANSWERS",
    "Gold",
    "GoldError",
    "Match",
    "equivalent",
    "normalize",
    "prepare_gold",
    "to_number",
    "warm_up",
    "warm_up_steps",
]


@dataclass(frozen=True)
class Match:
    equal: bool
    path: str  # which rule decided: string, numeric, choice, text, shape, symbolic, refused
    note: str = ""


@dataclass(frozen=True)
class Gold:
    text: str  # the gold answer as given
    clean: str  # normalized, spaces kept (what math-verify reads)
    key: str  # normalized, no spaces (what strings are compared by)
    number: Fraction | None
    choice: str | None  # "B" for `\text{(B)}`, `(B)`, `B`
    shape: str  # see _shape
    is_text: bool  # a word answer such as `\text{Evelyn}`: compared as text only
    value: Value | None  # its value(s) when math_numeric can read it


# -- normalization -------------------------------------------------------------------------------

_WRAPPERS = re.compile(r"\\(?:text|textbf|textrm|textit|mathrm|mathbf|mbox|operatorname)\s*\{([^{}]*)\}")
_BRACE_SPACE = re.compile(r"\{\s+|\s+\}")  # what unwrapping leaves inside braces: math-verify stops at `{ e }`
_DROP = [  # (pattern, replacement) applied in order
    (re.compile(r"\\left\.|\\right\.|\\left|\\right|\\displaystyle|\\bigl|\\bigr|\\Bigl|\\Bigr"), ""),
    (re.compile(r"\\[dtc]frac"), r"\\frac"),
    (re.compile(r"\{,\}"), ","),  # 2{,}74: a decimal comma in LaTeX
    (re.compile(r"\{bmatrix\}"), "{pmatrix}"),
    (re.compile(r",\s*\\!\s*"), ","),  # 10,\! 080: a thousands separator, not a list
    (re.compile(r"(?<!\\)\\[!,;:]"), ""),  # thin spaces, also used as thousands separators (10,\!080)
    (re.compile(r"\\q?quad|~"), " "),
    (re.compile(r"(?<!\\)\\ "), " "),
    (re.compile(r"\\approx|≈"), "="),  # x \approx 3.14: the value is what follows
    (re.compile(r"\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|\\circ|°|\\degree"), ""),
    (re.compile(r"\\%|%"), ""),
    (re.compile(r"\\\$|\$"), ""),
    (re.compile("\u2212|\u2013"), "-"),  # MINUS SIGN, EN DASH
    (re.compile(r"\b([ap])\.\s?m\.?", re.IGNORECASE), r"\1m"),  # 9 a.m. → 9 am
    (re.compile(r"\\(?:dots|ldots|cdots)"), r"\\dots"),
]
# relations in one spelling each: \\ge, >=, ≥ → \\geq; \\lt → <  (`\\left` is gone by now)
_RELATIONS = [
    (re.compile(r"\\geqslant|\\geq|\\ge(?![a-zA-Z])|>=|≥"), r" \\geq "),
    (re.compile(r"\\leqslant|\\leq|\\le(?![a-zA-Z])|<=|≤"), r" \\leq "),
    (re.compile(r"\\neq|\\ne(?![a-zA-Z])|!=|≠"), r" \\neq "),
    (re.compile(r"\\lt(?![a-zA-Z])"), " < "),
    (re.compile(r"\\gt(?![a-zA-Z])"), " > "),
]
# "19, 46, and 82" / "3 and 5" between values is a list
_AND_LIST = re.compile(r"(?<=[\d}])\s*,?\s+and\s+(?=[-\d\\(])")
_SPACE_THOUSANDS = re.compile(r"^-?\d{1,3}(?: \d{3})+(?:\.\d+)?$")
_FRAC_SHORT = re.compile(r"\\frac\s*(\d|\{[^{}]*\})\s*(\d|\{[^{}]*\})")
_SQRT_SHORT = re.compile(r"\\sqrt\s*(\d+|[a-zA-Z])(?![\w{])")
_BRACED_TOKEN = re.compile(r"([_^])\{(\w)\}")
_LEAD_VAR = re.compile(r"^\s*[a-zA-Z](?:_\w)?\s*(?:=|\\in)\s*(?=[^=]+$)")
# a unit is a word of 2+ letters after a space: `864 inches^2`, `5.4 cents` (never the `k` of `2k`)
_UNIT = re.compile(r"^(?P<value>.*?[\d}])\s+(?P<unit>[a-zA-Z]{2,}(?: [a-zA-Z]+)*)(?:\s*\^\s*[23])?$")


def _brace(group: str) -> str:
    return group if group.startswith("{") else "{" + group + "}"


# an angle in degrees inside a trig function is an angle: `\\cos(90^\\circ - x)` = `\\sin x`
_TRIG = re.compile(r"\\(?:sin|cos|tan|cot|sec|csc)(?![a-zA-Z])")
_DEGREES = re.compile(r"(\d+(?:\.\d+)?)\s*(?:\^\s*\{\s*\\circ\s*\}|\^\s*\\circ|°)")
# `\\le` written with a doubled backslash (an escaping slip) outside matrices and arrays
_DOUBLED = re.compile(
    r"\\\\(?=(?:le|ge|leq|geq|lt|gt|ne|neq|in|cup|cap|frac|dfrac|sqrt|pi|infty|cdot|times|pm|text)(?![a-zA-Z]))"
)
# a unit or currency glued to a number: 15kg, 7,250.50£, £12, 4 m², 3 cm^2 (never `2k` or `4x^2`)
_GLUED = re.compile(
    r"^[£€¥₹]?\s*(?P<value>[-+]?[\d,]*\.?\d+)\s*(?:[£€¥₹]|kg|km|cm|mm|mg|ml|mL|lbs?|ft|hrs?|mins?|secs?|mph"
    r"|(?:[kcm]?m|ft|in)\s*(?:\^\s*\{?[23]\}?|[²³]))?$"
)


# a system or column written as cases/array is the list of its rows: `a = 1, b = 2`
_ROWS = re.compile(r"^\\begin\{(cases|array)\}(?:\{[^{}]*\})?(.*)\\end\{\1\}$", re.DOTALL)


def _rows(s: str) -> str:
    m = _ROWS.match(s)
    if not m:
        return s
    return ", ".join(r.replace("&", " ").strip() for r in re.split(r"\\\\", m[2]) if r.strip())


def normalize(answer: str) -> str:
    """Strip what never changes the value: delimiters, \\left/\\right, spacing commands, text
    wrappers, degrees, percent, currency, units after a number, a leading `x =`, trailing dots."""
    s = _rows(str(answer).strip().rstrip("\\").strip())  # a trailing backslash is a slip, never a command
    if "\\begin{" not in s:
        s = _DOUBLED.sub(lambda m: "\\", s)
    if _TRIG.search(s):
        s = _DEGREES.sub(r"\\frac{\1\\pi}{180}", s)
    for _ in range(3):  # \text{\textbf{..}} nests
        s = _WRAPPERS.sub(r" \1 ", s)
    s = _BRACE_SPACE.sub(lambda m: m[0].strip(), s)  # \frac{1}{\mathrm{e}} -> \frac{1}{ e } -> \frac{1}{e}
    for pattern, replacement in _DROP + _RELATIONS:
        s = pattern.sub(replacement, s)
    s = _AND_LIST.sub(", ", s)
    s = _FRAC_SHORT.sub(lambda m: r"\frac" + _brace(m[1]) + _brace(m[2]), s)
    s = _SQRT_SHORT.sub(r"\\sqrt{\1}", s)
    s = _BRACED_TOKEN.sub(r"\1\2", s)
    s = _LEAD_VAR.sub("", s)
    s = re.sub(r"^\s*=\s*(?=[^=]+$)", "", s)  # `\\approx 3.14`
    s = re.sub(r"\s+", " ", s).strip().rstrip(".").strip()
    if _SPACE_THOUSANDS.match(s):  # 1 000 000 (SI thousands separators)
        s = s.replace(" ", "")
    unit = _UNIT.match(s)
    if unit and to_number(unit["value"]) is not None and unit["unit"].lower() not in ("am", "pm"):
        s = unit["value"].strip()
    if (glued := _GLUED.match(s)) and glued.group() != glued["value"]:
        s = glued["value"]
    return s


def _key(clean: str) -> str:
    return clean.replace(" ", "")


# -- exact numbers -------------------------------------------------------------------------------


def _numbers_equal(gold: Fraction, gold_text: str, value: Fraction, value_text: str) -> bool:
    """Exact equality, or a decimal that stands for the gold rounded (`decimal_stands_for`)."""
    return gold == value or bool(decimal_stands_for(gold, gold_text, value_text))


# -- multiple choice, words, shapes ---------------------------------------------------------------

_CLOCK = re.compile(r"^[\d:]+[ap]m$", re.IGNORECASE)
_BASE = re.compile(r"^[0-9A-Z.]+_\d+$")
_CHOICE = re.compile(r"^\(?([A-E])\)?$")
_CHOICE_LEAD = re.compile(r"^\(?([A-E])(?:\)|$|[\s:.])")  # an answer may go on: "(C) 12"
_OPERAND = re.compile(r"\s*[-+*/^_=<>{}()\[\]\\!']")


def _choice(key: str) -> str | None:
    m = _CHOICE.match(key)
    return m[1] if m else None


def _answer_choice(clean: str) -> str | None:
    """The letter an answer picks: `(C)`, `(C) 12`, `C: 12`, never the letter of an expression
    (`D^3`, `D + 1`, `\\mathrm{D}^3`)."""
    m = _CHOICE_LEAD.match(clean)
    if not m or (")" not in m.group() and _OPERAND.match(clean, m.end())):
        return None
    return m[1]


def _is_text(gold_text: str, clean: str) -> bool:
    return bool(re.search(r"\\(?:text|mbox|textbf)", gold_text)) and bool(re.fullmatch(r"[A-Za-z][A-Za-z ]+", clean))


def _shape(key: str) -> str:
    """set `\\{..\\}`, tuple/interval `(..)`/`[..]` with a comma, matrix, or scalar."""
    if key.startswith("\\{") and key.endswith("\\}"):
        return "set"
    if "\\begin{" in key and "matrix" in key:
        return "matrix"
    if key[:1] in "([" and key[-1:] in ")]" and "," in key:
        return "bracketed"
    return "scalar"


# a set is never an ordered tuple or an interval (math-verify calls {1,2} equal to (1,2))
_INCOMPATIBLE = {frozenset({"set", "bracketed"}), frozenset({"matrix", "set"})}


# -- public entry points ----------------------------------------------------------------------------


@lru_cache(maxsize=8192)
def prepare_gold(gold: str) -> Gold:
    """Normalize a gold answer once (cached by its string)."""
    clean = normalize(gold)
    if not clean:
        raise GoldError(f"empty gold answer {gold!r}")
    key = _key(clean)
    return Gold(
        text=gold,
        clean=clean,
        key=key,
        number=to_number(clean),
        choice=_choice(key),
        shape=_shape(key),
        is_text=_is_text(gold, clean),
        value=_value(clean),
    )


@lru_cache(maxsize=8192)
def _gold_region(clean: str):
    return region(clean)


def _relation_match(gold: Gold, clean: str) -> Match | None:
    """Compare as sets of reals when one side is an inequality or a union of intervals; None:
    leave it to sympy."""
    ours, theirs = _gold_region(gold.clean), region(clean)
    if ours is not None and theirs is not None:
        return Match(regions_equal(ours, theirs), "relation")
    if ours is not None and "\\cup" in gold.clean and "\\cup" in clean:
        return Match(False, "relation", "not a union of intervals")
    if (ours is None) != (theirs is None) and (gold.number is not None or to_number(clean) is not None):
        return Match(False, "relation", "a relation is not a number")
    return None


def _equations_match(gold: str, answer: str) -> bool | None:
    """`L = R` against `L' = R'`: the same equation when L - R is a nonzero constant times L' - R'
    at the evaluator's fixed points (None when it cannot read them, or they use other variables)."""
    try:
        ours, theirs = (evaluate_items("({}) - ({})".format(*side.split("="))) for side in (gold, answer))
    except (Unsupported, ArithmeticError):
        return None
    if ours.kind or theirs.kind or ours.variables != theirs.variables or not ours.variables:
        return None
    g, a = ours.items[0], theirs.items[0]
    if any(abs(v) < 1e-12 for v in (*g, *a)):
        return None
    ratios = [x / y for x, y in zip(g, a, strict=True)]  # same variables: same points
    return all(abs(r - ratios[0]) <= 1e-9 * abs(ratios[0]) for r in ratios)


_LEAD_LETTER = re.compile(r"^\s*\$?\s*([a-zA-Z])\s*=")


def _equation(text: str, clean: str) -> str:
    """The equation as written: normalize drops a leading `y =`, which a line's equation needs back."""
    lead = _LEAD_LETTER.match(text) if "=" not in clean else None
    return f"{lead[1]}={clean}" if lead else clean


def _value(clean: str) -> Value | None:
    try:
        return evaluate_items(clean)
    except (Unsupported, ArithmeticError):
        return None


_LETTERS = re.compile(r"[a-zA-Z]+")
# the left side of an assignment whose right side stands for the answer: a name (`k`, `a_1`,
# `f(2)`, `P(A)`) or something the evaluator reads (`2(3+4)`, `\\pi r^2`), never junk
_NAME = re.compile(r"^\s*(?:\\?[a-zA-Z]+)(?:_\{?\w+\}?)?(?:\([^()=]*\))?\s*$")


def _last_side(clean: str) -> str:
    """`k = \\frac{1}{3}` → `\\frac{1}{3}`; `x = 2 \\cdot 3 = 6` → `6` (top-level `=` only), when
    the first side is a name or an expression (`z7q+-c = 1` stays whole: its left side is junk)."""
    depth, cuts = 0, []
    for i, ch in enumerate(clean):
        depth += (ch in "{([") - (ch in "})]")
        if ch == "=" and depth == 0:
            cuts.append(i)
    if not cuts or not _readable_side(clean[: cuts[0]]):
        return clean
    return clean[cuts[-1] + 1 :].strip()


def _readable_side(side: str) -> bool:
    if _NAME.match(side):
        return True
    try:
        evaluate_items(side)
    except (Unsupported, ArithmeticError):
        return False
    return True


def equivalent(gold: Gold, answer: str, *, symbolic: bool = True) -> Match:
    """Does `answer` (already extracted) equal the gold? Fast rules first; each one that applies
    decides. Raises GoldError when only the symbolic path could decide and the gold is unparseable.
    With `symbolic=False`, what only sympy could decide is "not equal" (path `fast_only`)."""
    if reason := too_complex(answer):
        return Match(False, "refused", reason)
    clean = normalize(answer)
    if (line := same_linear_equation(_equation(gold.text, gold.clean), _equation(answer, clean))) is not None:
        return Match(line, "equation")  # a line in any arrangement: 3x-6y+9=0 = y=\frac12x+\frac32
    if "=" in clean and "=" not in gold.clean:  # an assignment or a worked chain against a bare gold
        clean = _last_side(clean)
    key = _key(clean)
    if not key:
        return Match(False, "string", "empty answer")
    if list_as_number(gold.clean, clean):
        return Match(False, "numeric", "a list is not a number with thousands separators")
    if numbers_apart(gold.clean) != numbers_apart(clean):
        return Match(False, "numeric", "numbers set apart by a space are not one number")
    if key == gold.key:
        return Match(True, "string")
    if gold.choice:
        return Match(_answer_choice(clean) == gold.choice, "choice")
    if _BASE.match(gold.key):  # 52_8: the same digits, with or without the base
        return Match(key == gold.key.split("_")[0], "base")
    if _CLOCK.match(gold.key):  # 9 am is not 9 pm: a time of day is compared as written
        return Match(key.lower() == gold.key.lower(), "string")
    if (same := same_time(gold.clean, clean)) is not None:  # 09:15 = 09:15:00
        return Match(same, "time")
    if truth(gold.clean) is not None and truth(clean) is not None:  # yes = true
        return Match(truth(gold.clean) == truth(clean), "text")
    if gold.is_text:
        return Match(clean.lower() == gold.clean.lower(), "text")
    relational = has_relation(gold.key) or has_relation(key) or "\\cup" in gold.key
    if relational and (relation := _relation_match(gold, clean)) is not None:
        return relation
    one_equation = gold.clean.count("=") == 1 and clean.count("=") == 1
    if one_equation and (same := _equations_match(gold.clean, clean)) is not None:
        return Match(same, "equation")
    value = to_number(clean, decimal_comma=gold.number is not None)  # 2,74 for a number gold; never 1,234
    if gold.number is not None and value is not None:
        return Match(_numbers_equal(gold.number, gold.clean, value, clean), "numeric")
    if frozenset({gold.shape, _shape(key)}) in _INCOMPATIBLE:
        return Match(False, "shape", f"{_shape(key)} is not a {gold.shape}")
    if reason := too_big_to_evaluate(key) or too_big_to_evaluate(gold.key):
        return Match(False, "refused", f"{reason}: not evaluated")
    if gold.value is not None and (value := _value(clean)) is not None:
        verdict = values_equal(gold.value, value)
        if verdict is not None:
            return Match(verdict, "value")
    # e and i may be Euler's number and the imaginary unit: sympy decides
    letters = _LETTERS.findall(re.sub(r"\\[a-zA-Z]+", " ", clean)) if gold.number is not None else []
    if set(letters) - {"e", "i"}:
        return Match(False, "value", f"an expression in {letters[0]} is not the number {gold.clean}")
    if not symbolic:
        return Match(False, "fast_only", "not decided without sympy")
    equal = symbolic_equal((gold.clean, gold.text), (clean, answer))
    return Match(False, "symbolic", "answer not parseable") if equal is None else Match(equal, "symbolic")

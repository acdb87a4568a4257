"""Find the final answer in a completion (and, for the gold parser, the boxes of a solution): the
parser half of the math verifier, kept apart from the grader the way Math-Verify splits them."""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass

from rlvr.verifiers.math.boxes import (
    SENTENCE_END,
    find_boxes,
    match_brace,
    offered_together,
)

__all__ = [
    "FOUND_BY",
    "Extraction",
    "extract_answer",
    "find_boxes",
    "math_segments",
    "offered_together",
    "standalone_numbers",
    "trim_answer",
]

_HASHES = re.compile(r"####[ \t]*(?P<rest>[^\n]*)")
# "the answer is", "final answer:", "**Final Answer:** The final answer is $3$" (Minerva style)
_ANSWER_TAIL = re.compile(r"answer\s*(?:is\s*:?|:|=)\s*(?:\\boxed\s*)?")  # matched on lower-cased text
_ANSWER_LEAD = re.compile(r"(?:final|the)\s+$")
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
_MATH_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
# "The answer is $1,234." (GSM8K style): a dollar sign before a number, not the start of math
_CURRENCY = re.compile(r"\$(?!\$)\s?(-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)(?![\d,$])")
# Markdown fenced code (``` or ~~~, CommonMark: an unclosed fence runs to the end): never an answer
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]{0,3}\1[`~]*[ \t]*$|\Z)", re.MULTILINE | re.DOTALL)
# math segments: display $$..$$ and \[..\], inline \(..\) and $..$ (not across a blank line); an
# answer is never longer than the grader's limit, so neither is a segment (this bounds the work)
_SEGMENT = re.compile(
    r"\$\$(?P<dd>.{1,1000}?)\$\$|\\\[(?P<br>.{1,1000}?)\\\]|\\\((?P<pa>.{1,1000}?)\\\)"
    r"|(?<![\\$])\$(?P<d>(?:[^$\\\n]|\\.|\n(?!\s*\n)){1,1000}?)(?<!\\)\$",
    re.DOTALL,
)
_PROSE_WORD = re.compile(r"(?<![\\A-Za-z])[A-Za-z]{3,}\b")  # a word outside commands: "and", "dollars"
_TEXT_ARG = re.compile(r"\\(?:text|textbf|textrm|mathrm|mbox|operatorname|begin|end)\s*\{[^{}]*\}")
# number tokens for the last-number fallback: 1,234 / 1 000 / 3.5 / .5 / 3/4, and whole LaTeX fractions
_NUMBER = re.compile(r"-?(?:\d{1,3}(?:,\d{3})+(?!\d)|\d{1,3}(?: \d{3})+(?![\d,.])|\d+)(?:\.\d+)?(?:/\d+)?|-?\.\d+")
# a currency sign or short unit glued to a number (7,250.50£, £12, 15kg, 4m²): the number still stands alone
_CURRENCY_SIGNS = "£€¥₹¢"
_UNIT = re.compile(r"(?:[£€¥₹¢]|(?:kg|mg|km|cm|mm|ml|mL|min|hrs?|lbs?|oz|ft|mph|[gmhL])[²³]?)(?![A-Za-z0-9])")
# a decimal comma (3,40) outside a box: read only beside a currency sign or unit (`3,40 €`); bare, it may be a list
_DECIMAL_COMMA = re.compile(r"(?<![\d,.])-?\d+,\d{1,2}(?![\d,])")
# an unmarked mixed number: a whole number, one space, a proper fraction (`2 3/4`; never `2 7/4` or `2 3`)
_SPACED_MIXED = re.compile(r"(?<![\d.,/])-?\d+ (\d+)/(\d+)(?![\d/])")
# a word answer in math mode (`$prime$`), read only for a word gold, never right after a negation
_WORD_SEGMENT = re.compile(r"[A-Za-z]+(?: [A-Za-z]+)?")
_NEGATED = re.compile(r"(?:\b(?:not|no|never|nor)|n't)\W*$", re.IGNORECASE)
_FRACTION = re.compile(r"-?\\[dtc]?frac\s*(?:\{\s*-?\d+\s*\}|\d)\s*(?:\{\s*\d+\s*\}|\d)")
_CONNECTOR = re.compile(r"^(?:\s|,|;|\band\b|\bor\b)*$")
_OR_BEFORE = re.compile(r"(?:\$[^$\n]+\$|-?\d[\d.,/]*)\s*,?\s*\bor\s+(?:even\s+|maybe\s+|possibly\s+)?\$?\s*$")

#: the fallbacks read at most this many characters from the end, a marked sentence from its start
_FALLBACK_SCAN = 20_000
_RUNNING_LIST = re.compile(r"\d+(?:\s*,\s*\d+){3,}")  # four or more numbers separated by commas
_SENTENCE_SCAN = 2_000

#: what kind of rule found the answer, by extraction method
FOUND_BY = {
    "boxed": "box",
    "####": "marker",
    "answer_is": "marker",
    "last_expression": "last_expression",
    "last_number": "last_number",
}


@dataclass(frozen=True)
class Extraction:
    """What the completion offers as its final answer.

    `answer` is None when nothing could be extracted (`method` says why: "empty", "truncated",
    "empty_box", "none"). `together` holds every answer offered together with the final one (the
    final one included, in order), so a grader can tell `\\boxed{3} or \\boxed{4}` (hedged) from a
    list answer boxed piece by piece."""

    answer: str | None
    method: str
    together: tuple[str, ...] = ()

    @property
    def found_by(self) -> str | None:
        """box / marker / last_expression / last_number, or None when nothing was found."""
        return FOUND_BY.get(self.method) if self.answer is not None else None


def _from_boxes(text: str) -> tuple[int, Extraction] | None:
    boxes = find_boxes(text)
    if not boxes:
        return None
    last = boxes[-1]
    if not last.closed:
        return last.start, Extraction(None, "truncated")
    if last.blank:
        return last.start, Extraction(None, "empty_box")
    together = tuple(b.content for b in offered_together(text, boxes) if not b.blank)
    return last.start, Extraction(last.content, "boxed", together)


def _from_hashes(text: str) -> tuple[int, Extraction] | None:
    found = list(_HASHES.finditer(text))
    if not found:
        return None
    answer = trim_answer(found[-1]["rest"])
    return found[-1].start(), Extraction(answer, "####", (answer,)) if answer else Extraction(None, "truncated")


def _last_answer_phrase(text: str) -> tuple[int, int] | None:
    """(start, end) of the last "the answer is" / "final answer:" (found from the end with a
    plain substring search: a case-insensitive regex scan of a long completion is slow)."""
    low = text.translate(_ASCII_LOWER)  # not str.lower(): it may change the length (İ → i̇)
    at = len(low)
    while (at := low.rfind("answer", 0, at)) >= 0:
        if m := _ANSWER_TAIL.match(low, at):
            lead = _ANSWER_LEAD.search(low, max(0, at - 24), at)
            return (lead.start() if lead else at), m.end()
    return None


def _from_answer_phrase(text: str) -> tuple[int, Extraction] | None:
    text = text.replace("**", "  ")  # same length: positions still compare with the other rules
    found = _last_answer_phrase(text)
    if not found:
        return None
    answer = trim_answer(_leading_math(text[found[1] :].lstrip()))
    return found[0], Extraction(answer, "answer_is", (answer,)) if answer else Extraction(None, "truncated")


def _leading_math(rest: str) -> str:
    """`$\\frac12$. I hope...` → `\\frac12`; `3.5 apples.` → `3.5 apples`; `$1,234.` → `1,234`;
    a sentence of prose (`The largest $n$ is 34.`) → its last math or standalone number (`34`)."""
    if currency := _CURRENCY.match(rest):
        tail = rest[currency.end() :]
        end = SENTENCE_END.search(tail)
        if "$" not in tail[: end.start() if end else len(tail)]:  # no closing `$` in the sentence
            return currency[1]
    for left, right in _MATH_DELIMS:
        if rest.startswith(left):
            close = re.compile(r"(?<!\\)" + re.escape(right)).search(rest, len(left))  # not \$
            return rest[len(left) : close.start()] if close else ""  # unclosed math: truncated
    if rest.startswith("{"):
        end, closed = match_brace(rest, 0)
        return rest[1 : end - 1] if closed else ""
    head = rest[:_SENTENCE_SCAN]
    math = "$" in head or "\\(" in head
    end = SENTENCE_END.search(_blank_segments(head) if math else head)  # a `.` inside $...$ does not end it
    return _answer_in_sentence(head[: end.start()] if end else head)


def _blank_segments(text: str) -> str:
    return _SEGMENT.sub(lambda m: "$" + "_" * (len(m.group()) - 2) + "$", text)


def _answer_in_sentence(sentence: str) -> str:
    """The answer a marked sentence gives. Values joined only by commas/and/or (`19, 46, and 82`,
    `3 or 4`) and a value followed by a unit (`3.5 hours`) are kept whole; in prose, the last
    math segment or standalone number is the answer, unless the prose joins values with "or"."""
    candidates = list(math_segments(sentence))
    outside = _blank_segments(sentence)
    candidates += standalone_numbers(outside, lists=True)
    if not candidates:
        return sentence
    candidates.sort()
    between = [outside[a[1] : b[0]] for a, b in itertools.pairwise(candidates)]
    before = outside[: candidates[0][0]]
    if not _PROSE_WORD.search(before) and all(_CONNECTOR.match(gap) for gap in between):
        return sentence  # a value (with its unit after it) or a list / hedge of values
    if re.search(r"\bor\b", outside[candidates[0][0] : candidates[-1][0]]):
        return sentence  # "either 3 or maybe 4": the grader calls it hedged
    return candidates[-1][2]


def math_segments(text: str, *, words: bool = False) -> list[tuple[int, int, str]]:
    """(start, end, content) of every math segment that can be an answer: `$..$`, `$$..$$`,
    `\\(..\\)`, `\\[..\\]` with non-empty content that is not prose (`$5 and $7` is two dollar
    amounts, not math). With `words`, also a segment of one or two words (`$prime$`) not
    right after a negation ("is not $prime$")."""
    found = []
    for m in _SEGMENT.finditer(text):
        content = next(g for g in m.groups() if g is not None).strip()
        if (content and not _PROSE_WORD.search(_TEXT_ARG.sub(" ", content))) or (
            words and _WORD_SEGMENT.fullmatch(content) and not _NEGATED.search(text[max(0, m.start() - 20) : m.start()])
        ):
            found.append((m.start(), m.end(), content))
    return found


def _depths(text: str) -> list[int]:
    """Brace depth at each index, counting unescaped `{}` and `\\{ \\}` alike."""
    depth, out, i = 0, [0] * (len(text) + 1), 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and text[i + 1 : i + 2] in ("{", "}"):
            ch = text[i + 1]
            out[i] = depth
            i += 1
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth = max(0, depth - 1)
        out[i] = depth
        i += 1
    out[len(text)] = depth
    return out


_BEFORE_OK = set(" \t\n$=:*\"'")
_AFTER_OK = set(" \t\n$*\"'%")
_OPERATORS = set("+-*/^=<>×÷·")


def _standalone(text: str, start: int, end: int, depths: list[int], lists: bool) -> bool:
    """A number token with nothing glued to it: no letter, digit, brace, bracket or command on
    either side, not inside braces, not an operand of an operator, not the tail of a list."""
    if depths[start] or depths[end]:
        return False
    before, after = text[start - 1 : start], text[end : end + 1]
    if before and before not in _BEFORE_OK and before not in _CURRENCY_SIGNS:
        return False
    if (
        after
        and after not in _AFTER_OK
        and not _UNIT.match(text, end)
        and not (after in ".,;:?" and text[end + 1 : end + 2] in ("", " ", "\n", "\t", "$"))
        and text[end : end + 2] != "\\%"
    ):
        return False
    left = text[max(0, start - 40) : start].rstrip(" \t$")
    if left.endswith("**"):  # Markdown bold, not a product
        left = ""
    if left and (
        left[-1] in _OPERATORS - {"="}
        or re.search(r"\\[a-zA-Z]+$", left)
        or (not lists and left[-1] == "," and left[:-1].rstrip()[-1:].isdigit())
    ):
        return False
    if not lists and re.match(r",\s*-?\d", text[end : end + 6]):
        return False  # the head of a list
    right = text[end : end + 40].lstrip(" \t$")
    return not (
        right[:1] in _OPERATORS - {"*"} or re.match(r"\*(?!\*)", right) or re.match(r"\\(?:cdot|times|div)", right)
    )


def standalone_numbers(text: str, *, lists: bool = False) -> list[tuple[int, int, str]]:
    """(start, end, number) for every standalone number token (see `_standalone`); a LaTeX
    fraction of two integers counts as one number, never as its digits. Without `lists`, the
    items after the first of a list (`1, 2, 3`) are not standalone."""
    depths = _depths(text)
    found = [
        (m.start(), m.end(), m.group())
        for m in _FRACTION.finditer(text)
        if _standalone(text, m.start(), m.end(), depths, lists)
    ]
    commas = [
        (m.start(), m.end(), m.group())
        for m in _DECIMAL_COMMA.finditer(text)
        if _beside_unit(text, m.start(), m.end()) and _standalone(text, m.start(), m.end(), depths, lists)
    ]
    commas += [
        (m.start(), m.end(), m.group())
        for m in _SPACED_MIXED.finditer(text)
        if 0 < int(m[1]) < int(m[2]) and _standalone(text, m.start(), m.end(), depths, lists)
    ]
    found += commas + [
        (m.start(), m.end(), m.group().replace(" ", ""))
        for m in _NUMBER.finditer(text)
        if _standalone(text, m.start(), m.end(), depths, lists) and not any(s <= m.start() < e for s, e, _ in commas)
    ]  # not the pieces of 3,40 or of 2 3/4
    return sorted(found)


def _beside_unit(text: str, start: int, end: int) -> bool:
    """A currency sign just before, or a currency sign or unit just after (one space allowed)."""
    return text[max(0, start - 2) : start].strip()[-1:] in tuple(_CURRENCY_SIGNS) or bool(
        _UNIT.match(text[end : end + 8].lstrip(" "))
    )


def _hedge_before(text: str, start: int, answer: str) -> tuple[str, ...]:
    """`3 or 4` / `$3$ or $4$` at the end: the value before the "or" is offered too."""
    m = _OR_BEFORE.search(text[max(0, start - 200) : start])
    if not m:
        return (answer,)
    earlier = re.split(r"\bor\b", m.group())[0].strip(" ,$")
    return (earlier, answer)


def _from_fallbacks(text: str, *, numbers: bool, words: bool, prompt: str) -> Extraction | None:
    """No box, no marker: the last math segment (not one copied from the prompt; a word in math
    mode only for a word gold, `words`) or, for a gold that is a plain number, the last standalone
    number, whichever comes later."""
    text = text[-_FALLBACK_SCAN:]  # the final answer is at the end; bound the work on huge input
    candidates = []
    segments = [s for s in math_segments(text, words=words) if len(s[2]) < 3 or s[2] not in prompt]
    if segments:
        candidates.append((segments[-1], "last_expression"))
    if numbers:
        blanked = _blank_segments(text)
        found = standalone_numbers(blanked)
        # not when a list of numbers runs on after it (cut at the token limit mid-enumeration): the completion
        # went past it, and an earlier number (often the problem's own, restated) is not an answer
        if found and not _RUNNING_LIST.search(blanked, found[-1][1]):
            candidates.append((found[-1], "last_number"))
    if not candidates:
        return None
    (start, _, answer), method = max(candidates, key=lambda c: c[0][0])
    answer = answer.strip().rstrip(".,;:")
    return Extraction(answer, method, _hedge_before(text, start, answer))


def _math_like(answer: str | None) -> bool:
    return answer is None or bool(re.search(r"[\\\d]|^\(?[A-E]\)?$", answer))


def trim_answer(answer: str) -> str:
    return answer.strip().strip("$").strip().rstrip(".,;:").strip()


def mask_fences(text: str) -> str:
    """`text` with fenced code blocks replaced by spaces (same length): a box in code is code."""
    if "```" not in text and "~~~" not in text:
        return text
    return _FENCE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def extract_answer(
    completion: str,
    *,
    numeric_fallback: bool = False,
    fallbacks: bool = True,
    prompt: str = "",
    word_fallback: bool = False,
) -> Extraction:
    """The final answer: whichever of the last box, `#### N`, or "the answer is …"/"final answer:
    …" comes last in the text (a box inside the answer phrase wins). With no box and no marker,
    and `fallbacks` on: the last math segment or (only for plain-number golds, `numeric_fallback`)
    the last standalone number; `word_fallback` (a word gold) also reads a word in math mode,
    `$prime$`. Fenced code blocks are never read."""
    if not completion or not completion.strip():
        return Extraction(None, "empty")
    text = mask_fences(completion)
    found = [f for rule in (_from_boxes, _from_hashes) if (f := rule(text))]
    if (phrase := _from_answer_phrase(text)) and (not found or _math_like(phrase[1].answer)):
        found.append(phrase)  # "...the answer: it checks out" after a box is prose, not an answer
    if found:
        return max(found, key=lambda f: f[0])[1]
    if fallbacks and (last := _from_fallbacks(text, numbers=numeric_fallback, words=word_fallback, prompt=prompt)):
        return last
    return Extraction(None, "none")

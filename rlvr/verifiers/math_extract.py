"""Find the final answer in a completion (and the gold in a reference solution): the parser half
of the math verifier, kept apart from the grader the way Math-Verify splits them."""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Extraction", "extract_answer", "gold_answer", "find_boxes"]

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_HASHES = re.compile(r"####[ \t]*(?P<rest>[^\n]*)")
# "the answer is", "final answer:", "**Final Answer:** The final answer is $3$" (Minerva style)
_ANSWER_IS = re.compile(
    r"(?:final\s+answer|the\s+answer|answer)\s*(?:is\s*:?|:|=)\s*(?:\\boxed\s*)?",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")
_NUMBER = re.compile(r"-?\$?\s?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:\s*/\s*\d+)?|-?\.\d+")
_MATH_DELIMS = (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]"))
# "The answer is $1,234." (GSM8K style): a dollar sign before a number, not the start of math
_CURRENCY = re.compile(r"\$(?!\$)\s?(-?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?)(?![\d,$])")


@dataclass(frozen=True)
class Box:
    start: int  # index of the backslash of \boxed
    end: int  # index just past the closing brace (len(text) when unclosed)
    content: str
    closed: bool


@dataclass(frozen=True)
class Extraction:
    """What the completion offers as its final answer.

    `answer` is None when nothing could be extracted (`method` says why: "empty", "truncated",
    "none"). `together` holds every answer offered together with the final one (the final one
    included, in order), so a grader can tell `\\boxed{3} or \\boxed{4}` (hedged) from a list
    answer boxed piece by piece."""

    answer: str | None
    method: str
    together: tuple[str, ...] = ()


def find_boxes(text: str) -> list[Box]:
    """Every `\\boxed{...}` / `\\fbox{...}` / `\\boxed 5` with balanced braces (`\\{` and `\\}` are
    escaped braces, not groups). An unclosed one runs to the end and has closed=False."""
    boxes = []
    for m in _BOX.finditer(text):
        i = m.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            end, closed = _match_brace(text, i)
            content = text[i + 1 : end - 1] if closed else text[i + 1 :]
            boxes.append(Box(m.start(), end, content.strip(), closed))
        elif i > m.end():  # `\boxed 5`: one bare token
            token = re.match(r"[^\s$\\]+", text[i:])
            if token:
                boxes.append(Box(m.start(), i + token.end(), token.group().rstrip(".,;"), True))
        elif i == len(text):  # completion cut right after "\boxed"
            boxes.append(Box(m.start(), i, "", False))
    return boxes


def _match_brace(text: str, open_at: int) -> tuple[int, bool]:
    depth, i = 0, open_at
    while i < len(text):
        ch = text[i]
        if ch == "\\":
            i += 2  # skip the escaped character (\{ \} \\)
            continue
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return i + 1, True
        i += 1
    return len(text), False


def _offered_together(text: str, boxes: list[Box]) -> list[Box]:
    """The last box and the boxes offered with it: same line, or same sentence across a line
    break. A new paragraph, or a new line that starts a new sentence, begins a correction."""
    group = [boxes[-1]]
    for earlier in reversed(boxes[:-1]):
        gap = text[earlier.end : group[0].start]
        if "\n\n" in gap or ("\n" in gap and _SENTENCE_END.search(gap.replace("\n", " "))):
            break
        group.insert(0, earlier)
    return group


def _from_boxes(text: str) -> tuple[int, Extraction] | None:
    boxes = find_boxes(text)
    if not boxes:
        return None
    last = boxes[-1]
    if not last.closed:
        return last.start, Extraction(None, "truncated")
    if not last.content:
        return last.start, Extraction(None, "empty_box")
    together = tuple(b.content for b in _offered_together(text, boxes) if b.content)
    return last.start, Extraction(last.content, "boxed", together)


def _from_hashes(text: str) -> tuple[int, Extraction] | None:
    found = list(_HASHES.finditer(text))
    if not found:
        return None
    answer = _trim(found[-1]["rest"])
    return found[-1].start(), Extraction(answer, "####", (answer,)) if answer else Extraction(None, "truncated")


def _from_answer_phrase(text: str) -> tuple[int, Extraction] | None:
    text = text.replace("**", "")
    found = list(_ANSWER_IS.finditer(text))
    if not found:
        return None
    answer = _trim(_leading_math(text[found[-1].end() :].lstrip()))
    return found[-1].start(), Extraction(answer, "answer_is", (answer,)) if answer else Extraction(None, "truncated")


def _leading_math(rest: str) -> str:
    """`$\\frac12$. I hope...` → `\\frac12`; `3.5 apples.` → `3.5 apples`; `$1,234.` → `1,234`."""
    if currency := _CURRENCY.match(rest):
        tail = rest[currency.end() :]
        end = _SENTENCE_END.search(tail)
        if "$" not in tail[: end.start() if end else len(tail)]:  # no closing `$` in the sentence
            return currency[1]
    for left, right in _MATH_DELIMS:
        if rest.startswith(left):
            close = re.compile(r"(?<!\\)" + re.escape(right)).search(rest, len(left))  # not \$
            return rest[len(left) : close.start()] if close else ""  # unclosed math: truncated
    if rest.startswith("{"):
        end, closed = _match_brace(rest, 0)
        return rest[1 : end - 1] if closed else ""
    end = _SENTENCE_END.search(rest)
    return rest[: end.start()] if end else rest


def _from_last_number(text: str) -> Extraction | None:
    found = _NUMBER.findall(text)
    if not found:
        return None
    answer = re.sub(r"[\s$]", "", found[-1])
    return Extraction(answer, "last_number", (answer,))


def _math_like(answer: str | None) -> bool:
    return answer is None or bool(re.search(r"[\\\d]|^\(?[A-E]\)?$", answer))


def _trim(answer: str) -> str:
    return answer.strip().strip("$").strip().rstrip(".,;:").strip()


def extract_answer(completion: str, *, numeric_fallback: bool = False) -> Extraction:
    """The final answer: whichever of the last box, `#### N`, or "the answer is …"/"final answer:
    …" comes last in the text (a box inside the answer phrase wins); then, only for plain-number
    golds, the last number in the text."""
    if not completion or not completion.strip():
        return Extraction(None, "empty")
    found = [f for rule in (_from_boxes, _from_hashes) if (f := rule(completion))]
    if (phrase := _from_answer_phrase(completion)) and (not found or _math_like(phrase[1].answer)):
        found.append(phrase)  # "...the answer: it checks out" after a box is prose, not an answer
    if found:
        return max(found, key=lambda f: f[0])[1]
    if numeric_fallback and (last := _from_last_number(completion)):
        return last
    return Extraction(None, "none")


def gold_answer(gold: str) -> str:
    """The final answer inside a gold field: after the last `####` of a GSM8K solution, the last
    box of a MATH solution (the boxes given together, joined by commas, when a solution boxes
    each of several answers), or the field itself when it is already just the answer."""
    text = str(gold).strip()
    if "####" in text:
        after = text.rsplit("####", 1)[1].strip()
        return _trim(after.splitlines()[0]) if after else ""
    boxes = [b for b in find_boxes(text) if b.closed and b.content]
    if boxes:  # "the answers are \boxed{-2} and \boxed{1}" → "-2, 1"
        return ", ".join(dict.fromkeys(b.content for b in _offered_together(text, boxes)))
    return _trim(text) if text.startswith("$") else text

"""Boxes in a text: every `\\boxed{...}` with balanced braces, and which boxes are offered together with the last
one (the limits of how many), shared by the answer extractor and the gold parser."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["MAX_ANSWERS", "MAX_TOGETHER", "SENTENCE_END", "Box", "find_boxes", "match_brace", "offered_together"]

_BOX = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
_PHANTOM = re.compile(r"\\[hv]?phantom\s*\{[^{}]*\}")
SENTENCE_END = re.compile(r"[.!?](?=\s|$)|\n")

#: more different answers than this offered together are a spray of guesses (the grader calls it hedged)
MAX_ANSWERS = 16
#: boxes read together: one past MAX_ANSWERS, so the grader can see that limit passed
MAX_TOGETHER = MAX_ANSWERS + 1


@dataclass(frozen=True)
class Box:
    start: int  # index of the backslash of \boxed
    end: int  # index just past the closing brace (len(text) when unclosed)
    closed: bool
    text: str = field(repr=False, compare=False, default="")
    body: tuple[int, int] = (0, 0)  # where the content lies in `text` (not copied: boxes may nest deeply)

    @property
    def content(self) -> str:
        return self.text[self.body[0] : self.body[1]].strip()

    @property
    def blank(self) -> bool:
        """Nothing in it but space: `\\boxed{}` or `\\boxed{\\phantom{2}}` (a blank drawn in a problem)."""
        return not _PHANTOM.sub("", self.content).strip()


_BRACE_OR_ESCAPE = re.compile(r"\\[\s\S]|[{}]")


def _brace_closers(text: str, start: int = 0) -> dict[int, int]:
    """Index of every unescaped `{` from `start` on → index just past its matching `}` (one pass
    over the braces and escapes only)."""
    closers: dict[int, int] = {}
    stack: list[int] = []
    for m in _BRACE_OR_ESCAPE.finditer(text, start):
        token = m.group()
        if token == "{":
            stack.append(m.start())
        elif token == "}" and stack:
            closers[stack.pop()] = m.end()
    return closers


def find_boxes(text: str) -> list[Box]:
    """Every `\\boxed{...}` / `\\fbox{...}` / `\\boxed 5` with balanced braces (`\\{` and `\\}` are
    escaped braces, not groups). An unclosed one runs to the end and has closed=False."""
    boxes = []
    closers: dict[int, int] | None = None
    for m in _BOX.finditer(text):
        i = m.end()
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "{":
            closers = _brace_closers(text, m.start()) if closers is None else closers
            end = closers.get(i)
            boxes.append(
                Box(m.start(), end or len(text), end is not None, text, (i + 1, end - 1 if end else len(text)))
            )
        elif i > m.end():  # `\boxed 5`: one bare token
            token = re.match(r"[^\s$\\]+", text[i : i + 200])
            if token:
                bare = token.group().rstrip(".,;")
                boxes.append(Box(m.start(), i + token.end(), True, text, (i, i + len(bare))))
        elif i == len(text):  # completion cut right after "\boxed"
            boxes.append(Box(m.start(), i, False, text, (i, i)))
    return boxes


def match_brace(text: str, open_at: int) -> tuple[int, bool]:
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


def offered_together(text: str, boxes: list[Box]) -> list[Box]:
    """The last box and the boxes offered with it: same line, or same sentence across a line
    break. A new paragraph, or a new line that starts a new sentence, begins a correction."""
    group = [boxes[-1]]
    for earlier in reversed(boxes[-MAX_TOGETHER:-1]):
        gap = text[earlier.end : group[0].start]
        if "\n\n" in gap or ("\n" in gap and SENTENCE_END.search(gap.replace("\n", " "))):
            break
        group.insert(0, earlier)
    return group

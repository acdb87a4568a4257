"""Format rewards that are hard to game: one well-formed <think> block, a boxed final answer, and
soft penalties for overlong and repetitive completions.

`think_format` rules (anything else scores 0, with the reason in details):
  * the completion starts (after whitespace) with `<think>`, has exactly one `</think>` after it,
    non-blank thinking between them and a non-blank answer after it;
  * no other think-like tag anywhere: no second pair, no nesting, no `</think>` in the answer,
    no `<Think>`/`<THINK>`, `<think >`, `<think/>`, `</thinking>` — tags are lowercase and exact;
  * text inside Markdown code (``` or ~~~ fenced blocks, `inline spans`) is text, not tags, so a
    completion may *quote* `<think>` in code; an unclosed fence runs to the end (CommonMark), so
    hiding the real `</think>` in code makes it missing. Quoting can only avoid a penalty, never
    earn the reward.
  * `prefilled=true`: the chat template already opened `<think>` in the prompt, so the completion
    must contain no `<think>` and exactly one `</think>`.
"""

from __future__ import annotations

import re

from rlvr.types import Example, Score, Status
from rlvr.verifiers.base import Verifier
from rlvr.verifiers.registry import register

__all__ = ["BoxedFormat", "Overlong", "Repetition", "ThinkFormat", "find_boxed", "mask_code"]

OPEN, CLOSE = "<think>", "</think>"
# anything that looks like a think tag, in any case or spelling; only OPEN and CLOSE are well formed
_THINKISH = re.compile(r"<\s*/?\s*think\w*\b[^<>]*>", re.IGNORECASE)
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,})[^\n]*\n.*?(?:^[ \t]{0,3}\1[`~]*[ \t]*$|\Z)", re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"(`+)[^`\n](?:.*?[^`\n])?\1(?!`)")


def mask_code(text: str) -> str:
    """`text` with fenced code blocks and inline code spans replaced by spaces (same length, so
    positions still line up)."""
    blank = lambda m: re.sub(r"[^\n]", " ", m.group(0))  # noqa: E731
    return _INLINE_CODE.sub(blank, _FENCE.sub(blank, text))


def _result(ok: bool, reason: str, **details: object) -> Score:
    return Score(1.0 if ok else 0.0, Status.CORRECT if ok else Status.WRONG, {"reason": reason, **details})


@register("think_format")
class ThinkFormat(Verifier):
    """1 if there is exactly one well-formed <think>…</think> before a non-empty answer, else 0."""

    needs_gold = False

    def __init__(self, prefilled: bool = False):
        self.prefilled = bool(prefilled)

    def score(self, completion: str, example: Example) -> Score:
        text = (OPEN + completion) if self.prefilled else completion
        tags = [(m.start(), m.group(0)) for m in _THINKISH.finditer(mask_code(text))]
        if not tags:
            return _result(False, "no <think> tag")
        malformed = [tag for _, tag in tags if tag not in (OPEN, CLOSE)]
        if malformed:
            return _result(False, f"malformed or mismatched think tag {malformed[0]!r}")
        kinds = [tag for _, tag in tags]
        if kinds[0] != OPEN:
            return _result(False, "</think> before <think>")
        if kinds.count(OPEN) > 1 or kinds.count(CLOSE) > 1:
            nested = len(kinds) > 1 and kinds[1] == OPEN
            return _result(False, "nested <think> tags" if nested else "more than one think block or stray think tag")
        if kinds != [OPEN, CLOSE]:
            return _result(False, "unclosed <think>")
        (open_at, _), (close_at, _) = tags
        if text[:open_at].strip():
            return _result(False, "text before <think>")
        thinking = text[open_at + len(OPEN) : close_at]
        answer = text[close_at + len(CLOSE) :]
        if not thinking.strip():
            return _result(False, "empty <think> block")
        if not answer.strip():
            return _result(False, "no answer after </think>")
        return _result(True, "ok", think_chars=len(thinking.strip()), answer_chars=len(answer.strip()))


def find_boxed(text: str) -> list[tuple[int, str | None]]:
    """Every `\\boxed{…}` / `\\fbox{…}` in text as (position, content); content is None when the
    braces never balance. Escaped braces (`\\{`, `\\}`) are literal and do not count."""
    found = []
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            ch = text[i]
            if ch == "\\":
                i += 2
                continue
            depth += {"{": 1, "}": -1}.get(ch, 0)
            i += 1
        found.append((m.start(), text[m.end() : i - 1] if depth == 0 else None))
    return found


@register("boxed_format")
class BoxedFormat(Verifier):
    """1 if the final answer (after </think>, when there is one) is in a balanced, non-empty \\boxed{}."""

    needs_gold = False

    def score(self, completion: str, example: Example) -> Score:
        answer = completion.rsplit(CLOSE, 1)[-1]
        boxes = find_boxed(answer)
        if not boxes:
            return _result(False, "no \\boxed{} in the answer")
        _, content = boxes[-1]
        if content is None:
            return _result(False, "unbalanced braces in the last \\boxed{")
        if not content.strip():
            return _result(False, "empty \\boxed{}")
        return _result(True, "ok", boxed=content.strip())


_UNITS = {"words": lambda text: len(text.split()), "chars": len}


@register("overlong")
class Overlong(Verifier):
    """DAPO soft overlong penalty: 0 up to max_tokens-buffer, then linear down to -1 at max_tokens.

    Verifiers see text, not token ids, so length is counted in whitespace-separated words
    (`unit=words`, about 0.75 of a BPE token count for English) or characters (`unit=chars`)."""

    needs_gold = False

    def __init__(self, max_tokens: int = 1024, buffer: int = 256, unit: str = "words"):
        if unit not in _UNITS:
            raise ValueError(f"overlong: unit must be one of {sorted(_UNITS)}, got {unit!r}")
        if not 0 < buffer <= max_tokens:
            raise ValueError(f"overlong: need 0 < buffer <= max_tokens, got buffer={buffer}, max_tokens={max_tokens}")
        self.max_tokens, self.buffer, self.unit = int(max_tokens), int(buffer), unit

    def penalty(self, length: int) -> float:
        free = self.max_tokens - self.buffer
        return max(-1.0, min(0.0, (free - length) / self.buffer))

    def score(self, completion: str, example: Example) -> Score:
        length = _UNITS[self.unit](completion)
        reward = self.penalty(length)
        ok = reward == 0.0
        return Score(
            reward, Status.CORRECT if ok else Status.WRONG, {"length": length, "unit": self.unit, "penalty": reward}
        )


@register("repetition")
class Repetition(Verifier):
    """N-gram repetition penalty: -max_penalty x the fraction of word n-grams that repeat an earlier one."""

    needs_gold = False

    def __init__(self, n: int = 4, max_penalty: float = 1.0):
        if n < 1 or max_penalty < 0:
            raise ValueError(f"repetition: need n >= 1 and max_penalty >= 0, got n={n}, max_penalty={max_penalty}")
        self.n, self.max_penalty = int(n), float(max_penalty)

    def repeated_fraction(self, text: str) -> float:
        words = text.lower().split()
        grams = [tuple(words[i : i + self.n]) for i in range(len(words) - self.n + 1)]
        return 1.0 - len(set(grams)) / len(grams) if grams else 0.0

    def score(self, completion: str, example: Example) -> Score:
        fraction = self.repeated_fraction(completion)
        reward = -self.max_penalty * fraction if fraction else 0.0
        status = Status.CORRECT if fraction == 0 else Status.WRONG
        return Score(reward, status, {"repeated_fraction": round(fraction, 4), "n": self.n})

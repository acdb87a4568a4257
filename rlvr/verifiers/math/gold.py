"""The one gold parser: the final answer inside a gold field (GSM8K's `#### N`, a MATH solution's
boxes, or a bare answer) and the one rule that turns a numeric gold into text. The data loaders,
`rlvr verify` and the math verifier all read golds through it, so they never disagree."""

from __future__ import annotations

import json
import re
from typing import Any

from rlvr.verifiers.math.boxes import find_boxes, offered_together
from rlvr.verifiers.math.extract import trim_answer

__all__ = ["gold_answer", "gold_text"]

# GSM8K writes `#### 1,450,000`; its gold is the number without separators
_GROUPED = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def gold_text(value: Any) -> str | None:
    """A gold field as text: None stays None; a whole float is an integer (`27.0` → `27`: AMC
    stores floats, JSON writers too); other numbers as Python writes them; strings stripped;
    lists and objects as JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    return json.dumps(value, ensure_ascii=False)


def gold_answer(gold: Any) -> str:
    """The final answer inside a gold field: after the last `####` of a GSM8K solution (thousands
    separators dropped), the last box of a MATH solution (the boxes given together, joined by
    commas, when a solution boxes each of several answers; blank `\\phantom` boxes skipped), or
    the field itself when it is already just the answer. Parsing its own output changes nothing."""
    text = gold_text(gold) or ""
    if "####" in text:
        after = text.rsplit("####", 1)[1].strip()
        answer = trim_answer(after.splitlines()[0]) if after else ""
        return answer.replace(",", "") if _GROUPED.match(answer) else answer
    boxes = [b for b in find_boxes(text) if b.closed and not b.blank]
    if boxes:  # "the answers are \boxed{-2} and \boxed{1}" → "-2, 1"
        return ", ".join(dict.fromkeys(b.content for b in offered_together(text, boxes)))
    return trim_answer(text) if text.startswith("$") else text

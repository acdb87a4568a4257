"""An example rlvr plugin: the verifier `contains_keyword` and the environment `calculator` (calculator.py)."""

from __future__ import annotations

import re

from rlvr.types import Example, Score, Status
from rlvr.verifiers import Verifier

__all__ = ["ContainsKeyword"]


class ContainsKeyword(Verifier):
    """1 if the answer (text after </think>, if any) contains the gold keyword as a whole word."""

    name = "contains_keyword"

    def __init__(self, case_sensitive: bool = False):
        # options come from the spec: `contains_keyword:case_sensitive=true`
        self.case_sensitive = bool(case_sensitive)

    def score(self, completion: str, example: Example) -> Score:
        keyword = (example.answer or "").strip()
        if not keyword:
            # a row without a gold is the data's fault: an error, counted by the runner, not a 0
            raise ValueError(f"example {example.id!r} has no keyword in 'answer'")
        answer = completion.rsplit("</think>", 1)[-1]
        if not answer.strip():
            return Score(0.0, Status.NO_ANSWER, {"keyword": keyword})
        flags = 0 if self.case_sensitive else re.IGNORECASE
        found = re.search(rf"(?<!\w){re.escape(keyword)}(?!\w)", answer, flags) is not None
        return Score(float(found), Status.CORRECT if found else Status.WRONG, {"keyword": keyword})

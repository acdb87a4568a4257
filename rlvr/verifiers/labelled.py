"""`rlvr verify --labelled FILE`: a verifier's false-positive and false-negative rates per class, on
rows whose `expected` verdict a person wrote down (any spec, plugins included)."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Any

from rlvr.types import FAILURE_STATUSES, Score
from rlvr.verifiers.cross_check import grading, rewarded

__all__ = ["ClassRates", "LabelTally", "expected_of"]

#: the field a labelled row carries its verdict in (`label`, as in benchmarks/data/verifier_pairs.jsonl, also read)
EXPECTED_FIELDS = ("expected", "label")


def expected_of(row: dict[str, Any]) -> bool:
    """A labelled row's verdict: true/false or 1/0. Raises ValueError saying what is wrong."""
    field = next((f for f in EXPECTED_FIELDS if f in row), None)
    if field is None:
        raise ValueError("missing field 'expected' (true/false or 1/0)")
    value = row[field]
    if isinstance(value, bool) or (isinstance(value, (int, float)) and value in (0, 1)):
        return bool(value)
    raise ValueError(f"field {field!r} must be true/false or 1/0, got {value!r}")


@dataclass
class ClassRates:
    """Counts for one class: rows labelled positive / negative, false positives / negatives, and
    rows with no trustworthy verdict (timeout, error: counted as not rewarded)."""

    positives: int = 0
    negatives: int = 0
    fp: int = 0
    fn: int = 0
    failed: int = 0

    @property
    def rows(self) -> int:
        return self.positives + self.negatives

    @property
    def fp_rate(self) -> float:
        return self.fp / self.negatives if self.negatives else 0.0

    @property
    def fn_rate(self) -> float:
        return self.fn / self.positives if self.positives else 0.0

    @property
    def accuracy(self) -> float:
        return 1 - (self.fp + self.fn) / self.rows if self.rows else 0.0

    def add(self, expected: bool, score: Score) -> None:
        given = rewarded(score)
        self.positives += expected
        self.negatives += not expected
        self.fp += given and not expected
        self.fn += expected and not given
        self.failed += score.status in FAILURE_STATUSES

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "positives": self.positives,
            "negatives": self.negatives,
            "fp": self.fp,
            "fn": self.fn,
            "fp_rate": self.fp_rate,
            "fn_rate": self.fn_rate,
            "accuracy": self.accuracy,
            "failed": self.failed,
        }


class LabelTally:
    """Per grader (ours, and the cross-check reference when there is one), per class: the row's
    `class` field when it has one, else our extraction method; and "all"."""

    def __init__(self) -> None:
        self.rates: dict[str, dict[str, ClassRates]] = collections.defaultdict(
            lambda: collections.defaultdict(ClassRates)
        )

    def add(self, row: dict[str, Any], scores: dict[str, Score]) -> None:
        expected = expected_of(row)
        cls = str(row.get("class") or grading(scores["ours"])[0])
        for grader, score in scores.items():
            for key in (cls, "all"):
                self.rates[grader][key].add(expected, score)

    def table(self) -> list[tuple[str, str, ClassRates]]:
        """(grader, class, rates) rows, classes sorted, "all" last."""
        return [
            (grader, cls, by_class[cls])
            for grader, by_class in self.rates.items()
            for cls in sorted(by_class, key=lambda c: (c == "all", c))
        ]

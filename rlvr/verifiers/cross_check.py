"""`rlvr verify --cross-check SPEC`: score the same rows with a second grader (raw math-verify, any
verifier spec, a reward model), count where the two disagree, by direction and by how our verdict was
reached, and keep the disagreeing rows for a person to label."""

from __future__ import annotations

import collections
import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from rlvr.types import Example, Score, Status
from rlvr.verifiers.feed import RowFeed

__all__ = [
    "REWARDED_AT",
    "CrossCheck",
    "SampledCrossCheck",
    "agree",
    "default_disagreements_path",
    "grading",
    "rewarded",
]

#: a reward at or above this is "rewarded" (both graders agree when both are, or both are not)
REWARDED_AT = 0.5
#: the two ways to disagree
OURS_ONLY, THEIRS_ONLY = "ours 1 / theirs 0", "ours 0 / theirs 1"


def rewarded(score: Score) -> bool:
    return score.reward >= REWARDED_AT


def agree(ours: Score, theirs: Score) -> bool:
    """The two graders agree when both reward the row or neither does."""
    return rewarded(ours) == rewarded(theirs)


def grading(score: Score) -> tuple[str, str]:
    """How a verdict was reached: (extraction method, grading path) from the math verifier's details
    (the first term of a weighted spec that has them); "-" where the verifier does not say."""
    details = score.details
    if "method" not in details:
        parts = [c.get("details", {}) for c in details.get("components", {}).values()]
        details = next((d for d in parts if "method" in d), details)
    return str(details.get("method") or "-"), str(details.get("path") or "-")


def default_disagreements_path(output: Path | None, input_path: Path) -> Path:
    """Beside the output (`scored.jsonl` → `scored.disagreements.jsonl`), else beside the input."""
    base = output if output is not None else input_path
    return base.with_name(base.stem + ".disagreements.jsonl")


class CrossCheck:
    """Scores each row a second time with `reference` (a runner: `Runner` or `HybridRunner`), in
    lockstep with the main stream: when the main stream hands back a row the reference has not
    scored, the reference scores every row read so far, a window at a time. Counts disagreements;
    writes each disagreeing row, with both verdicts and `expected: null`, to `disagreements`."""

    def __init__(self, reference: Any, name: str, disagreements: IO[str]):
        self.reference, self.name, self.out = reference, name, disagreements
        self._scores: collections.deque = collections.deque()
        self.n = 0
        self.directions: collections.Counter = collections.Counter()
        self.groups: collections.Counter = collections.Counter()  # (method, path, direction)

    def next_score(self, rows: RowFeed) -> Score:
        """The reference's score of the next row `rows.take()` will hand back (call it first)."""
        if not self._scores:
            self._scores.extend(
                self.reference.score([r["completion"] for r, _ in rows.kept], [e for _, e in rows.kept])
            )
        return self._scores.popleft()

    def add(self, row: dict[str, Any], ours: Score, theirs: Score) -> dict[str, Any]:
        """Count one row; the `cross_check` field of its output row."""
        self.n += 1
        agreed = agree(ours, theirs)
        if not agreed:
            direction = OURS_ONLY if rewarded(ours) else THEIRS_ONLY
            self.directions[direction] += 1
            group = (*grading(ours), direction)  # a name, not a starred subscript: that needs Python 3.11
            self.groups[group] += 1
            # `expected` left for a person to fill in (a labelled input's own verdict is kept)
            record = {
                "expected": None,
                **row,
                "ours": ours.to_json(),
                "theirs": {"grader": self.name, **theirs.to_json()},
            }
            self.out.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
            self.out.flush()
        return {"reward": theirs.reward, "status": theirs.status.value, "agree": agreed}

    @property
    def disagree(self) -> int:
        return sum(self.directions.values())

    def lines(self) -> list[str]:
        """The summary: `cross-check: N of M rows disagree`, each direction, then each (method, path)."""
        share = f" ({self.disagree / self.n:.1%})" if self.n else ""
        out = [f"cross-check: {self.disagree} of {self.n} rows disagree{share} with {self.name!r}"]
        out += [f"  {d}: {self.directions[d]}" for d in (OURS_ONLY, THEIRS_ONLY)]
        for (method, path, direction), count in sorted(self.groups.items(), key=lambda kv: (-kv[1], kv[0])):
            out.append(f"  method {method}, path {path}, {direction}: {count}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return {
            "reference": self.name,
            "rows": self.n,
            "disagree": self.disagree,
            "directions": dict(self.directions),
            "groups": [{"method": m, "path": p, "direction": d, "rows": c} for (m, p, d), c in self.groups.items()],
        }


#: a reference verdict that says nothing about the text (the second grader failed): left out of the rate
_FAILED = (Status.TIMEOUT, Status.ERROR)


class SampledCrossCheck:
    """`reward.cross_check` in training: a runner (`score`, `close`, the wrapped runner's attributes) that
    scores every batch with `runner` as usual and a seeded random sample of at most `samples` of its
    items a second time with `reference` (a runner of the second grader). `take()` returns what the
    samples scored since the last take said, as metrics: `verifier_disagreement_rate` (the share of
    compared items where `agree` is false), `cross_checked` (items compared) and `cross_check_failures`
    (items whose reference verdict timed out or errored: not compared, so a failing second grader
    never reads as a disagreement)."""

    def __init__(self, runner: Any, reference: Any, samples: int, *, seed: int = 0):
        self.runner, self.reference, self.samples, self.seed = runner, reference, samples, seed
        self.calls = 0
        self.compared = self.disagree = self.failures = 0

    def __getattr__(self, name: str) -> Any:  # last_stats, timeout, workers, ... are the main runner's
        if name == "runner":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.runner, name)

    def start(self) -> None:
        for r in (self.runner, self.reference):
            r.start()

    def close(self) -> None:
        for r in (self.runner, self.reference):
            r.close()

    def __enter__(self) -> SampledCrossCheck:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def score(self, completions: Sequence[str], examples: Sequence[Example]) -> list[Score]:
        scores = self.runner.score(completions, examples)
        self.calls += 1
        rng = random.Random(self.seed * 1_000_003 + self.calls)  # the same sample when a run is repeated
        picked = sorted(rng.sample(range(len(scores)), min(self.samples, len(scores))))
        if picked:
            theirs = self.reference.score([completions[i] for i in picked], [examples[i] for i in picked])
            for i, ref in zip(picked, theirs, strict=True):
                if ref.status in _FAILED:
                    self.failures += 1
                    continue
                self.compared += 1
                self.disagree += not agree(scores[i], ref)
        return scores

    def take(self) -> dict[str, float]:
        """The metrics since the last take (the rate only where something was compared); then reset."""
        out = {"cross_checked": float(self.compared), "cross_check_failures": float(self.failures)}
        if self.compared:
            out["verifier_disagreement_rate"] = self.disagree / self.compared
        self.compared = self.disagree = self.failures = 0
        return out

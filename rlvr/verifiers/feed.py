"""What lets a runner stream: `Feed`, items read lazily and never more than a window ahead of the
consumer; `Tally`, the running counts a run's stats are made of (so no run keeps every score); and
the stats themselves (`RunStats`) with the failure-rate check every runner ends a batch with."""

from __future__ import annotations

import collections
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rlvr.types import FAILURE_STATUSES, Example, Score, Status

__all__ = [
    "Feed",
    "RowFeed",
    "RunStats",
    "Tally",
    "VerifierFailureRate",
    "batch_stats",
    "check_failure_rate",
    "tally_stats",
]


class Feed:
    """Numbered `(index, completion, example)` items taken from an iterable of `(completion, example)`
    pairs only when asked for, and at most `window` items read past `released` (the consumer's
    position: items before it were handed on and forgotten). `window=None` reads everything at once."""

    def __init__(self, pairs: Iterable[tuple[str, Example]], window: int | None):
        if window is not None and window < 1:
            raise ValueError(f"window must be >= 1 or None, got {window}")
        self._source = iter(pairs)
        self._ahead: collections.deque = collections.deque()
        self.window = window
        self.read = 0
        self.released = 0
        self.exhausted = False

    def _fill(self) -> None:
        while not self.exhausted and (self.window is None or self.read - self.released < self.window):
            try:
                completion, example = next(self._source)
            except StopIteration:
                self.exhausted = True
                return
            self._ahead.append((self.read, completion, example))
            self.read += 1

    def ahead(self) -> int:
        """How many items are read and waiting to be taken."""
        self._fill()
        return len(self._ahead)

    def take(self, size: int) -> list[tuple[int, str, Example]]:
        """Up to `size` items in input order ([] when none can be read now)."""
        self._fill()
        return [self._ahead.popleft() for _ in range(min(size, len(self._ahead)))]

    def done(self) -> bool:
        """Nothing is left to take, now or later."""
        self._fill()
        return self.exhausted and not self._ahead


class Tally:
    """Running counts of a run's verdicts: per status, the reward sum, and the first failure (the
    example a failure-rate error quotes)."""

    def __init__(self) -> None:
        self.n = 0
        self.reward_sum = 0.0
        self.counts = {s.value: 0 for s in Status}
        self.first_failure: Score | None = None

    @classmethod
    def of(cls, scores: Iterable[Score]) -> Tally:
        tally = cls()
        for score in scores:
            tally.add(score)
        return tally

    def add(self, score: Score) -> None:
        self.n += 1
        self.reward_sum += score.reward
        self.counts[score.status.value] += 1
        if self.first_failure is None and score.status in FAILURE_STATUSES:
            self.first_failure = score

    @property
    def mean_reward(self) -> float:
        return self.reward_sum / self.n if self.n else 0.0

    def failures(self) -> list[Score]:
        return [self.first_failure] if self.first_failure is not None else []

    def as_dict(self) -> dict[str, Any]:
        return {"n": self.n, "counts": dict(self.counts), "mean_reward": self.mean_reward}


@dataclass(frozen=True)
class RunStats:
    """What one `Runner.score` call did: counts per status, wall time, verdicts per second."""

    n: int
    counts: dict[str, int]
    seconds: float
    workers: int
    mean_reward: float
    replaced_workers: int = 0

    @property
    def verdicts_per_s(self) -> float:
        return self.n / self.seconds if self.seconds > 0 else float("inf") if self.n else 0.0

    @property
    def failures(self) -> int:
        return sum(self.counts.get(s.value, 0) for s in FAILURE_STATUSES)

    @property
    def failure_rate(self) -> float:
        return self.failures / self.n if self.n else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "counts": dict(self.counts),
            "seconds": round(self.seconds, 4),
            "verdicts_per_s": round(self.verdicts_per_s, 2),
            "workers": self.workers,
            "mean_reward": self.mean_reward,
            "failure_rate": self.failure_rate,
            "replaced_workers": self.replaced_workers,
        }


class VerifierFailureRate(RuntimeError):
    """Too many verdicts of a batch timed out or failed: training on them would be training on
    garbage. Carries the batch's `stats` and `scores` so the caller can look at what failed."""

    def __init__(self, verifier: str, stats: RunStats, limit: float, scores: list[Score]):
        self.stats, self.limit, self.scores = stats, limit, scores
        first = next((s for s in scores if s.status in FAILURE_STATUSES), None)
        example = f"; first failure: {first.status.value} {dict(first.details)}" if first else ""
        super().__init__(
            f"verifier {verifier!r}: {stats.failures} of {stats.n} verdicts failed "
            f"(timeout {stats.counts.get('timeout', 0)}, error {stats.counts.get('error', 0)}) = "
            f"{stats.failure_rate:.1%} > max_failure_rate {limit:.1%}{example}"
        )


def batch_stats(scores: list[Score], seconds: float, workers: int, *, replaced_workers: int = 0) -> RunStats:
    """The `RunStats` of one scored batch."""
    return tally_stats(Tally.of(scores), seconds, workers, replaced_workers=replaced_workers)


def tally_stats(tally: Tally, seconds: float, workers: int, *, replaced_workers: int = 0) -> RunStats:
    """The `RunStats` of a run counted as it went (`Tally`)."""
    return RunStats(
        n=tally.n,
        counts=dict(tally.counts),
        seconds=seconds,
        workers=workers,
        mean_reward=tally.mean_reward,
        replaced_workers=replaced_workers,
    )


def check_failure_rate(name: str, stats: RunStats, scores: list[Score], max_failure_rate: float | None) -> None:
    """Raise `VerifierFailureRate` when more than `max_failure_rate` of a batch's verdicts failed. Every
    runner ends a batch here, so the check is written once. A stream passes only its first failure
    as `scores` (it keeps no others)."""
    if max_failure_rate is not None and scores and stats.failure_rate > max_failure_rate:
        raise VerifierFailureRate(name, stats, max_failure_rate, scores)


class RowFeed:
    """Input rows as the `(completion, example)` pairs a runner's stream reads, each row kept until
    `take` hands it back beside its score (at most the stream's window of them at a time)."""

    def __init__(self, rows: Iterable[tuple[dict[str, Any], Example]]):
        self._rows = rows
        self.kept: collections.deque = collections.deque()

    def __iter__(self):
        for row, example in self._rows:
            self.kept.append((row, example))
            yield row["completion"], example

    def take(self) -> tuple[dict[str, Any], Example]:
        return self.kept.popleft()

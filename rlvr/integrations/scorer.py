"""A verifier scored through rlvr's runner on behalf of another trainer: the runner (worker processes with
hard deadlines) started on first use and kept, calls from several threads at once scored together as one
batch, running status counts, and the failure-rate check applied to each batch or every `guard_every`
verdicts."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rlvr.types import Example, Score
from rlvr.verifiers.base import Verifier
from rlvr.verifiers.feed import Tally, check_failure_rate, tally_stats
from rlvr.verifiers.registry import build_verifier
from rlvr.verifiers.scoring import runner_for

__all__ = ["Scorer"]


@dataclass
class _Item:
    completion: str
    example: Example
    score: Score | None = None
    error: BaseException | None = None


class Scorer:
    """Scores `(completion, example)` pairs with the verifier `spec` names (or a `Verifier` given as
    is) in rlvr's runner: `workers` processes (None: one per CPU; 0: this process, no deadline), each
    verdict killed after `timeout` seconds (status timeout) and a verifier exception turned into status
    error, never a silent 0.

    Safe to call from any thread (no signals: deadlines are the runner's, kept from the calling
    thread). Calls that arrive while a batch is being scored wait, then go together as the next batch,
    so many single-item callers (verl's reward loop) still fill the worker pool.

    The failure-rate check (`rlvr.verifiers.feed.check_failure_rate`) runs on each batch, or with
    `guard_every` on every that many verdicts (callers that score one item at a time), and raises
    `VerifierFailureRate` when more than `max_failure_rate` of them timed out or failed. `totals`
    counts every verdict so far. Pickling ships the settings only; the runner starts again on first
    use."""

    def __init__(
        self,
        spec: str | Verifier,
        *,
        workers: int | None = None,
        timeout: float | None = 5.0,
        max_failure_rate: float | None = 0.05,
        guard_every: int | None = None,
    ):
        if guard_every is not None and guard_every < 1:
            raise ValueError(f"guard_every must be >= 1 or None, got {guard_every}")
        self._settings = dict(
            spec=spec, workers=workers, timeout=timeout, max_failure_rate=max_failure_rate, guard_every=guard_every
        )
        self.verifier = build_verifier(spec) if isinstance(spec, str) else spec
        self.max_failure_rate, self.guard_every = max_failure_rate, guard_every
        self.totals = Tally()
        self._window, self._window_start = Tally(), time.perf_counter()
        self._runner: Any = None
        self._queue: list[_Item] = []
        self._queue_lock, self._run_lock = threading.Lock(), threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        return dict(self._settings)

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(**state)  # type: ignore[misc]

    @property
    def workers(self) -> int:
        return self._runner.workers if self._runner is not None else 0

    def close(self) -> None:
        """Stop the runner's workers (a later call starts them again)."""
        with self._run_lock:
            if self._runner is not None:
                self._runner.close()
                self._runner = None

    def score(self, completions: Sequence[str], examples: Sequence[Example]) -> list[Score]:
        """The verdicts, in input order. Raises `VerifierFailureRate` when the guard trips on a batch
        this call was part of."""
        items = [_Item(c, e) for c, e in zip(completions, examples, strict=True)]
        if not items:
            return []
        with self._queue_lock:
            self._queue.extend(items)
        with self._run_lock:
            if items[0].score is None and items[0].error is None:  # no other thread took them: score the queue
                self._run_queued()
        for item in items:
            if item.error is not None:
                raise item.error
        return [item.score for item in items]  # type: ignore[misc]

    def _run_queued(self) -> None:
        """Score everything queued as one batch (called holding the run lock)."""
        with self._queue_lock:
            batch, self._queue = self._queue, []
        try:
            if self._runner is None:
                self._runner = runner_for(
                    self.verifier,
                    workers=self._settings["workers"],
                    timeout=self._settings["timeout"],
                    max_failure_rate=None,  # checked below, over the batch or the window
                )
            scores = self._runner.score([i.completion for i in batch], [i.example for i in batch])
            for item, score in zip(batch, scores, strict=True):
                item.score = score
                self.totals.add(score)
                self._window.add(score)
            self._guard()
        except BaseException as err:  # noqa: BLE001 - not swallowed: every caller whose items were in this batch re-raises it
            for item in batch:
                item.error = err

    def _guard(self) -> None:
        if self.guard_every is not None and self._window.n < self.guard_every:
            return
        window, seconds = self._window, time.perf_counter() - self._window_start
        self._window, self._window_start = Tally(), time.perf_counter()
        stats = tally_stats(window, seconds, self.workers)
        check_failure_rate(self.verifier.name, stats, window.failures(), self.max_failure_rate)

"""Which runner a verifier spec needs: the process pool (`Runner`) for rule-based terms, or `HybridRunner` when a
term (a reward model) must be scored in this process, batched, beside the pool."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from rlvr.types import Example, Score, Status
from rlvr.verifiers.base import Verifier, Weighted, combine
from rlvr.verifiers.feed import Tally, tally_stats
from rlvr.verifiers.runner import STREAM_WINDOW, Runner, RunStats, batch_stats, check_failure_rate
from rlvr.verifiers.worker import error_score

__all__ = ["HybridRunner", "runner_for"]


def _parts(verifier: Verifier) -> tuple[tuple[float, Verifier], ...]:
    return verifier.parts if isinstance(verifier, Weighted) else ((1.0, verifier),)


def runner_for(verifier: Verifier, **runner_options: Any) -> Any:
    """A `Runner` for `verifier`, or a `HybridRunner` when any of its terms must run in this process."""
    if any(getattr(v, "in_process", False) for _, v in _parts(verifier)):
        return HybridRunner(verifier, **runner_options)
    return Runner(verifier, **runner_options)


class HybridRunner:
    """Scores a spec whose terms run in two places, with Runner's interface (`score`, `last_stats`,
    context manager). Terms marked `in_process` (reward models) are scored here, batched, by one
    model on this process's CPU/GPU; every other term goes to a `Runner`'s worker processes with
    their hard deadlines. The parts are then combined exactly as `Weighted` combines them.

    Why not a model per worker: each worker would hold its own copy of the weights (N× the memory),
    load it N times, and compete with the policy for the GPU; batching across the whole batch is
    also what makes a neural scorer fast. A neural forward pass needs no sandbox or deadline kill:
    it cannot hang on adversarial text the way sympy can. An exception in it makes every item of
    the batch an `error` (counted, never a silent 0)."""

    def __init__(
        self,
        verifier: Verifier,
        *,
        workers: int | None = None,
        timeout: float | None = 5.0,
        max_failure_rate: float | None = 0.05,
        **options: Any,
    ):
        self.verifier, self.max_failure_rate = verifier, max_failure_rate
        self.parts = _parts(verifier)
        self.local = [i for i, (_, v) in enumerate(self.parts) if getattr(v, "in_process", False)]
        pool = tuple(p for i, p in enumerate(self.parts) if i not in self.local)
        self.runner = (
            Runner(Weighted(pool), workers=workers, timeout=timeout, max_failure_rate=None, **options) if pool else None
        )
        self.last_stats: RunStats | None = None

    def __enter__(self) -> HybridRunner:
        self.start()
        return self

    def start(self) -> None:
        if self.runner is not None:
            self.runner.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.runner is not None:
            self.runner.close()

    @property
    def workers(self) -> int:
        return self.runner.workers if self.runner else 0

    def score(self, completions: Sequence[str], examples: Sequence[Example]) -> list[Score]:
        start = time.perf_counter()
        scores = self._combined(completions, examples)
        self.last_stats = batch_stats(scores, time.perf_counter() - start, self.workers)
        check_failure_rate(self.verifier.name, self.last_stats, scores, self.max_failure_rate)
        return scores

    def stream(self, pairs: Iterable[tuple[str, Example]], *, window: int = STREAM_WINDOW) -> Iterator[Score]:
        """`Runner.stream` for a spec with in-process terms: the pairs are scored in batches of
        `window` (the reward model batches within them), the stats counted as they go."""
        start, tally, source = time.perf_counter(), Tally(), iter(pairs)
        while block := list(itertools.islice(source, window)):
            completions, examples = zip(*block, strict=True)
            for score in self._combined(list(completions), list(examples)):
                tally.add(score)
                yield score
        self.last_stats = tally_stats(tally, time.perf_counter() - start, self.workers)
        check_failure_rate(self.verifier.name, self.last_stats, tally.failures(), self.max_failure_rate)

    def _combined(self, completions: Sequence[str], examples: Sequence[Example]) -> list[Score]:
        pooled = self._pool_scores(completions, examples)
        local = {i: self._local_scores(self.parts[i][1], completions, examples) for i in self.local}
        scores = []
        for k in range(len(completions)):
            parts = [(w, v, local[i][k] if i in local else pooled[k].pop(0)) for i, (w, v) in enumerate(self.parts)]
            scores.append(parts[0][2] if not isinstance(self.verifier, Weighted) else combine(parts))
        return scores

    def _pool_scores(self, completions: Sequence[str], examples: Sequence[Example]) -> list[list[Score]]:
        """Per item, the pool terms' scores in spec order (a killed item gives its failure to each)."""
        if self.runner is None:
            return [[] for _ in completions]
        width = len(self.parts) - len(self.local)
        out = []
        for score in self.runner.score(completions, examples):
            components = list(score.details.get("components", {}).values())
            if len(components) == width:
                out.append([Score(c["reward"], Status(c["status"]), c["details"]) for c in components])
            else:  # the whole item timed out or its worker died
                out.append([score] * width)
        return out

    @staticmethod
    def _local_scores(verifier: Verifier, completions: Sequence[str], examples: Sequence[Example]) -> list[Score]:
        try:
            return list(verifier.score_batch(completions, examples))
        except Exception as err:  # noqa: BLE001 - verifier code: any exception becomes error scores, never a silent 0
            return [error_score(err)] * len(completions)

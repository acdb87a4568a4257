"""Score batches in a pool of worker processes with a hard per-item deadline, counting every
timeout and error instead of hiding it as a 0."""

from __future__ import annotations

import collections
import contextlib
import multiprocessing
import multiprocessing.connection
import os
import pickle
import signal
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from rlvr.types import Example, Score, Status
from rlvr.verifiers.base import Verifier
from rlvr.verifiers.feed import Feed, RunStats, Tally, VerifierFailureRate, batch_stats, check_failure_rate, tally_stats
from rlvr.verifiers.worker import score_one, worker_main

__all__ = ["RunStats", "Runner", "VerifierFailureRate", "VerifierStartupError", "score_all"]

#: a worker that is killed gets this long to be reaped before we stop waiting for it
_REAP_S = 5.0
#: consecutive workers dying before they are ready means the verifier cannot start at all
_MAX_STARTUP_DEATHS = 3
#: a worker not ready this long after it was started (imports, warmup) is treated as dead
STARTUP_TIMEOUT_S = 120.0
#: `Runner.stream` reads at most this many items ahead of the one it yields next
STREAM_WINDOW = 2048


class VerifierStartupError(RuntimeError):
    """The verifier could not be started in a worker process (unpicklable, import error)."""


# ----------------------------------------------------------------------------- parent side


@dataclass
class _Worker:
    process: Any
    conn: multiprocessing.connection.Connection
    ready: bool = False
    inflight: collections.deque = field(default_factory=collections.deque)  # (index, completion, example), in order
    started: float = 0.0  # when the first index of `inflight` began (parent clock)
    spawned: float = field(default_factory=time.monotonic)


def _kill(worker: _Worker) -> None:
    """SIGKILL the worker's whole process group, reap it, close its pipe."""
    proc = worker.process
    if proc.is_alive():
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            proc.kill()
    proc.join(_REAP_S)
    worker.conn.close()


def _shutdown(workers: list[_Worker]) -> None:
    """Stop every worker: ask nicely, then kill (at once for one still starting: it holds no work,
    and may be seconds away from reading the request). Used by close() and the finalizer."""
    for w in [w for w in workers if not w.ready]:
        _kill(w)
    for w in workers:
        if w.ready and not w.inflight:
            with contextlib.suppress(OSError):
                w.conn.send(None)
    deadline = time.monotonic() + 1.0
    for w in workers:
        w.process.join(max(0.0, deadline - time.monotonic()))
    for w in workers:
        _kill(w)
    workers.clear()


class Runner:
    """Scores (completion, example) pairs with `verifier` in `workers` processes.

    Each item has a hard deadline of `timeout` seconds: a worker stuck past it is killed (with
    its process group) and replaced, and the item gets status timeout. A verifier exception gives
    status error with the exception in details. After each batch, if the share of timeouts and
    errors is above `max_failure_rate` (None: never), `VerifierFailureRate` is raised.

    `workers=0` scores in this process (for debugging: no deadline, exceptions still counted).
    Workers are started with `start_method` ("spawn" or "forkserver", never fork: the parent may
    hold vLLM/torch threads) on first use and reused across batches. Use as a context manager or
    call close(); a finalizer also stops them if neither happens.
    """

    def __init__(
        self,
        verifier: Verifier,
        *,
        workers: int | None = None,
        timeout: float | None = 5.0,
        max_failure_rate: float | None = 0.05,
        chunk_size: int | None = None,
        start_method: str = "spawn",
    ):
        if workers is not None and workers < 0:
            raise ValueError(f"workers must be >= 0, got {workers}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be > 0 seconds or None, got {timeout}")
        if start_method == "fork":
            raise ValueError("start_method 'fork' is unsafe here (the parent may hold torch/vLLM threads)")
        self.verifier = verifier
        self.workers = _default_workers() if workers is None else workers
        self.timeout = timeout
        self.max_failure_rate = max_failure_rate
        self.chunk_size = chunk_size
        self.last_stats: RunStats | None = None
        self._ctx = multiprocessing.get_context(start_method)
        self._blob: bytes | None = None
        self._pool: list[_Worker] = []
        self._replaced = 0
        self._startup_deaths = 0
        self._finalizer = weakref.finalize(self, _shutdown, self._pool)

    # -- lifecycle

    def __enter__(self) -> Runner:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, wait: bool = False) -> None:
        """Start the workers now (otherwise the first batch does); with `wait`, return only once
        every worker has started and warmed up (e.g. while the model loads)."""
        if self.workers == 0:
            return
        if self._blob is None:
            try:
                self._blob = pickle.dumps(self.verifier)
            except Exception as err:
                raise VerifierStartupError(
                    f"verifier {self.verifier.name!r} cannot be pickled for worker processes: {err}"
                ) from err
        while len(self._pool) < self.workers:
            self._pool.append(self._spawn())
        while wait and not all(w.ready for w in self._pool):
            starting = [w for w in self._pool if not w.ready]
            multiprocessing.connection.wait([w.conn for w in starting] + [w.process.sentinel for w in starting], 1.0)
            for w in starting:
                for _ in self._drain(w):  # idle workers have no verdicts to send
                    raise RuntimeError("verdict from an idle worker")
                if not w.ready and not w.process.is_alive():
                    raise VerifierStartupError(
                        f"verifier {self.verifier.name!r}: a worker died at start-up (exit code {w.process.exitcode})"
                    )

    def close(self) -> None:
        """Stop and reap every worker. Safe to call twice."""
        _shutdown(self._pool)

    def worker_pids(self) -> list[int]:
        return [w.process.pid for w in self._pool]

    def _spawn(self) -> _Worker:
        parent_conn, child_conn = self._ctx.Pipe(duplex=True)
        pdeathsig = threading.current_thread() is threading.main_thread()
        proc = self._ctx.Process(
            target=worker_main,
            args=(child_conn, self._blob, os.getpid(), pdeathsig),
            name=f"rlvr-verifier-{self.verifier.name}",
            daemon=True,
        )
        proc.start()
        child_conn.close()
        return _Worker(proc, parent_conn)

    # -- scoring

    def score(self, completions: Sequence[str], examples: Sequence[Example]) -> list[Score]:
        """Score every pair; results in input order. Sets `last_stats`."""
        scores: list[Score | None] = [None] * len(completions)
        for index, score in self.iter_scores(completions, examples):
            scores[index] = score
        return scores  # type: ignore[return-value]

    def imap(self, completions: Sequence[str], examples: Sequence[Example]) -> Iterator[Score]:
        """Scores in input order, each yielded as soon as it and all before it are done."""
        buffered: dict[int, Score] = {}
        next_index = 0
        for index, score in self.iter_scores(completions, examples):
            buffered[index] = score
            while next_index in buffered:
                yield buffered.pop(next_index)
                next_index += 1

    def stream(self, pairs: Iterable[tuple[str, Example]], *, window: int = STREAM_WINDOW) -> Iterator[Score]:
        """Scores of `(completion, example)` pairs in input order, for inputs of any length: pairs are
        read lazily, never more than `window` ahead of the score yielded next, and the stats are
        running counts, so memory stays flat. After the last one, sets `last_stats` and raises
        `VerifierFailureRate` (carrying only the first failure) if too many failed."""
        start = time.perf_counter()
        replaced_before = self._replaced
        feed, tally = Feed(pairs, window), Tally()
        buffered: dict[int, Score] = {}
        for index, score in self._scored(feed):
            buffered[index] = score
            while feed.released in buffered:
                ready = buffered.pop(feed.released)
                feed.released += 1
                tally.add(ready)
                yield ready
        self.last_stats = tally_stats(
            tally, time.perf_counter() - start, self.workers, replaced_workers=self._replaced - replaced_before
        )
        check_failure_rate(self.verifier.name, self.last_stats, tally.failures(), self.max_failure_rate)

    def iter_scores(self, completions: Sequence[str], examples: Sequence[Example]) -> Iterator[tuple[int, Score]]:
        """(index, score) pairs in the order verdicts finish. After the last one, sets
        `last_stats` and raises `VerifierFailureRate` if too many failed."""
        if len(completions) != len(examples):
            raise ValueError(f"{len(completions)} completions but {len(examples)} examples")
        start = time.perf_counter()
        replaced_before = self._replaced
        scores: list[Score | None] = [None] * len(completions)
        for index, score in self._scored(Feed(zip(completions, examples, strict=True), None)):
            scores[index] = score
            yield index, score
        done: list[Score] = scores  # type: ignore[assignment]
        self.last_stats = batch_stats(
            done, time.perf_counter() - start, self.workers, replaced_workers=self._replaced - replaced_before
        )
        check_failure_rate(self.verifier.name, self.last_stats, done, self.max_failure_rate)

    def _scored(self, feed: Feed) -> Iterator[tuple[int, Score]]:
        return self._in_process(feed) if self.workers == 0 else self._in_pool(feed)

    def _in_process(self, feed: Feed) -> Iterator[tuple[int, Score]]:
        while chunk := feed.take(1):
            for index, completion, example in chunk:
                yield index, score_one(self.verifier, completion, example)

    def _in_pool(self, feed: Feed) -> Iterator[tuple[int, Score]]:
        self.start()
        # contiguous chunks keep a GRPO group (same example) on one worker: its caches stay warm
        size = self.chunk_size or max(1, min(32, feed.ahead() // (self.workers * 8)))
        pending: collections.deque = collections.deque()  # chunks a replaced worker never started
        try:
            while pending or any(w.inflight for w in self._pool) or not feed.done():
                self._dispatch(pending, feed, size)
                self._wait()
                yield from self._collect(pending)
        finally:
            # stopped early (exception, consumer gave up): busy workers hold stale work
            for w in [w for w in self._pool if w.inflight]:
                self._pool.remove(w)
                _kill(w)

    def _dispatch(self, pending: collections.deque, feed: Feed, size: int) -> None:
        """Hand chunks only to ready, idle workers: they are blocked in recv, so a send never
        blocks on a full pipe while another worker's deadline passes."""
        now = time.monotonic()
        for w in self._pool:
            if w.ready and not w.inflight:
                chunk = pending.popleft() if pending else feed.take(size)
                if not chunk:
                    return
                w.conn.send(chunk)
                w.inflight.extend(chunk)
                w.started = now

    def _wait(self) -> None:
        """Sleep until a worker reports, dies, or the nearest deadline passes."""
        now = time.monotonic()
        left = [w.spawned + STARTUP_TIMEOUT_S - now for w in self._pool if not w.ready]
        if self.timeout is not None:
            left += [w.started + self.timeout - now for w in self._pool if w.inflight]
        timeout = max(0.0, min(left)) if left else None
        handles = [w.conn for w in self._pool] + [w.process.sentinel for w in self._pool]
        multiprocessing.connection.wait(handles, timeout)

    def _collect(self, pending: collections.deque) -> Iterator[tuple[int, Score]]:
        """Verdicts that arrived, then deaths (error), then passed deadlines (timeout)."""
        for w in list(self._pool):
            yield from self._drain(w)
        now = time.monotonic()
        for w in [w for w in self._pool if not w.ready and now - w.spawned > STARTUP_TIMEOUT_S]:
            _kill(w)  # stuck importing or warming up: handled as a death just below
        for w in [w for w in self._pool if not w.process.is_alive()]:
            yield from self._drain(w)  # what it said before dying still counts
            code = w.process.exitcode
            if not w.ready:
                self._startup_deaths += 1
                if self._startup_deaths >= _MAX_STARTUP_DEATHS:
                    raise VerifierStartupError(
                        f"verifier {self.verifier.name!r}: workers keep dying at start-up (exit code {code}); "
                        "workers are spawned and import the main module, so a script that starts a Runner "
                        "needs `if __name__ == '__main__':`"
                    )
            yield from self._replace(
                w, Score(0.0, Status.ERROR, {"error": f"worker process died (exit code {code})"}), pending
            )
        if self.timeout is None:
            return
        for w in list(self._pool):
            if w.inflight and time.monotonic() - w.started > self.timeout:
                yield from self._drain(w)  # a verdict may have landed since the first drain
                if w.inflight and time.monotonic() - w.started > self.timeout:
                    details = {"error": f"no verdict within {self.timeout:g} s; worker killed and replaced"}
                    yield from self._replace(w, Score(0.0, Status.TIMEOUT, details), pending)

    def _drain(self, w: _Worker) -> Iterator[tuple[int, Score]]:
        while True:
            try:
                if not w.conn.poll():
                    return
                message = w.conn.recv()
            except (EOFError, OSError):
                return  # died: the sentinel check handles it
            if message[0] == "ready":
                w.ready = True
                self._startup_deaths = 0
            elif message[0] == "init_error":
                raise VerifierStartupError(
                    f"verifier {self.verifier.name!r} failed to start in a worker:\n{message[1]}"
                )
            else:
                index, score = message
                if not w.inflight or w.inflight[0][0] != index:  # cannot happen unless the protocol broke
                    raise RuntimeError(f"worker sent a verdict for item {index} it was not scoring")
                w.inflight.popleft()
                w.started = time.monotonic()  # the next item starts now
                yield index, score

    def _replace(self, w: _Worker, verdict: Score, pending: collections.deque) -> Iterator[tuple[int, Score]]:
        """Kill `w`, give its current item `verdict`, put the rest back in front, start a new one."""
        self._pool.remove(w)
        _kill(w)
        self._replaced += 1
        self._pool.append(self._spawn())
        if not w.inflight:
            return
        current = w.inflight.popleft()[0]
        if w.inflight:  # the rest of its chunk never started: score it elsewhere
            pending.appendleft(list(w.inflight))
        yield current, verdict


def _default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:
        return max(1, os.cpu_count() or 1)


def score_all(
    verifier: Verifier, completions: Sequence[str], examples: Sequence[Example], **runner_options: Any
) -> tuple[list[Score], RunStats]:
    """One-shot: start a Runner, score everything, stop the workers."""
    with Runner(verifier, **runner_options) as runner:
        scores = runner.score(completions, examples)
        assert runner.last_stats is not None
        return scores, runner.last_stats

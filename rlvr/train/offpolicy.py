"""One step off-policy (`rollout.async=1`): the next step's batch is made on a background thread while this
step learns, so that an engine on its own device and the learner are busy at the same time."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from rlvr.algorithms.base import DataPlan, Step
from rlvr.config import TrainConfig
from rlvr.distributed import DistContext
from rlvr.errors import InputError
from rlvr.rollout.base import capabilities
from rlvr.train.monitor import StepTimer

__all__ = ["Ahead", "StepsAhead", "check_async"]


def check_async(algorithm: str, samples_online: bool, engine: Any, *, distributed: bool = False) -> None:
    """Refuse `rollout.async=1` where it cannot be right: an algorithm that does not sample has nothing to
    overlap; an engine that generates with the live policy (hf) or without its sampler's logprobs would
    sample from weights changing under it or leave the staleness uncorrected; under torchrun the batch's
    collectives (group advantages across ranks) would interleave with the learner's on another thread."""
    if distributed:
        raise InputError(
            "rollout.async=1 runs in one trainer process (the engine on its own device or server), not under torchrun"
        )
    if not samples_online:
        raise InputError(
            f"rollout.async=1: --algorithm {algorithm} does not sample while it trains; set rollout.async=0"
        )
    can = capabilities(engine)
    if not (can["holds_weights"] and can["sampler_logprobs"]):
        raise InputError(
            f"rollout.async=1 needs an engine that samples from its own copy of the weights with its sampler's "
            f"logprobs (vllm, vllm-server); --engine {getattr(engine, 'kind', '?')} does not: set rollout.async=0"
        )


@dataclass
class Ahead:
    """A step whose batch is being made ahead of the loop."""

    step: int
    future: Future[Step]
    timer: StepTimer  # its generate / verify seconds, counted in the step it is for
    version: int  # the learned step whose weights the engine held when it started sampling
    position: Any  # the data position before it took its rows (what a checkpoint records)


class StepsAhead:
    """Makes step t+1's batch (`make(step, timer)`, the algorithm's make_step) on one background thread while
    step t learns. The engine samples t+1 with the weights it holds, step t-1's: one update stale, which the
    truncated importance weights correct from the sampler's logprobs (metric `staleness`). The loop waits for
    the batch in flight before it pushes new weights, so the engine never changes weights mid-generation. A
    checkpoint records the data position from before that batch took its rows: a resumed run makes the step
    again (with the newer weights), neither skipping nor replaying a row."""

    def __init__(self, make: Callable[[int, StepTimer], Step], position: Callable[[], Any]) -> None:
        self._make = make
        self._position = position
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="rlvr-rollout-ahead")
        self._ahead: Ahead | None = None

    @classmethod
    def of_run(
        cls,
        config: TrainConfig,
        plan: DataPlan,
        engine: Any,
        ctx: DistContext,
        make: Callable[[int, StepTimer], Step],
        position: Callable[[], Any],
    ) -> StepsAhead | None:
        """The run's maker of steps ahead when rollout.async=1 (refused where it cannot be right), else None."""
        if not config.rollout.async_:
            return None
        check_async(config.algorithm, plan.samples_online, engine, distributed=ctx.distributed)
        return cls(make, position)

    def start(self, step: int, version: int) -> None:
        """Begin making `step`'s batch with the engine's current weights (those of learned step `version`)."""
        if self._ahead is not None:
            raise RuntimeError(f"step {self._ahead.step} is still being made ahead; take it first")
        position, timer = self._position(), StepTimer()
        self._ahead = Ahead(step, self._pool.submit(self._make, step, timer), timer, version, position)

    def wait(self) -> float:
        """Seconds spent waiting for the batch in flight to be made (0 when none is); its error is raised here."""
        if self._ahead is None:
            return 0.0
        start = time.perf_counter()
        self._ahead.future.result()
        return time.perf_counter() - start

    def take(self, step: int) -> tuple[Step, StepTimer, int] | None:
        """The batch made ahead for `step` (with its timer and weights version), or None when there is none."""
        ahead, self._ahead = self._ahead, None
        if ahead is None:
            return None
        if ahead.step != step:
            raise RuntimeError(f"the batch made ahead is for step {ahead.step}, not step {step}")
        return ahead.future.result(), ahead.timer, ahead.version

    def data_position(self) -> Any:
        """The data position a checkpoint records: from before the batch made ahead took its rows, if one is."""
        return self._position() if self._ahead is None else self._ahead.position

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

"""What an algorithm receives from the loop running it: `TrainContext`, the typed seam between the
algorithms (rlvr/algorithms/) and the Trainer (rlvr.train.trainer), which implements it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from rlvr.data.stream import PromptStream
from rlvr.distributed import DistContext
from rlvr.rollout import SamplingConfig
from rlvr.rollout.collect import Collected
from rlvr.types import Example

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["Timer", "TrainContext"]


class Timer(Protocol):
    """Adds seconds to one of the step's timed stages (generate, verify, learn, sync)."""

    def add(self, stage: str, seconds: float) -> None: ...


class TrainContext(Protocol):
    """The loop's shared pieces an algorithm's `make_step` may use; it reads nothing else of the loop."""

    @property
    def ctx(self) -> DistContext:
        """This process's rank and world (shard prompts, agree across ranks)."""
        ...

    @property
    def stream(self) -> PromptStream:
        """The training rows in their seeded order (the plan's rows, resumable)."""
        ...

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        """The policy's tokenizer (to tokenize fixed responses the way the policy packs them)."""
        ...

    @property
    def sampler_logprobs(self) -> bool:
        """Whether the engine's rollouts carry the sampler's own logprobs (vLLM: TIS can correct for it)."""
        ...

    def prompt_text(self, example: Example) -> str:
        """The prompt as the model sees it: a pre-rendered row as it is, others through the run's template."""
        ...

    def sampling(self, round_: int) -> SamplingConfig:
        """This step's sampling for refill round `round_`, seeded so that a resumed run repeats it."""
        ...

    def collect(self, examples: Sequence[Example], n: int, sampling: SamplingConfig, timer: Timer) -> Collected:
        """n completions per example from the engine, each verified (timed as generate and verify)."""
        ...

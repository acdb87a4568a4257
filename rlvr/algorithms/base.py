"""What the one training loop asks of an algorithm (its data plan, make_step, learn), and the pieces
several algorithms share."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import torch

from rlvr.algorithms.context import Timer, TrainContext
from rlvr.config import TrainConfig
from rlvr.learner.protocol import Learner
from rlvr.types import Example, Rollout, Score

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["Algorithm", "DataPlan", "Step", "dedupe", "response_rollout", "sequence_logprobs"]

T = TypeVar("T")
B = TypeVar("B")  # an algorithm's batch type


@dataclass(frozen=True)
class DataPlan:
    """What an algorithm trains on and needs, decided from the config alone before anything is built
    (rlvr.train.stages reads it to load data, size and start the engine, and load the policy); frozen:
    nothing changes it later."""

    #: what a row of the prompt stream holds: "prompts" (to sample from), "responses" (SFT rows),
    #: "preferences" (prompt/chosen/rejected rows)
    trains_on: str
    #: each step samples from the current policy: the engine serves the training prompts, and the loop
    #: pushes the new weights to it after every step (else only before an eval)
    samples_online: bool
    #: the rows come from the dataset as rlvr.data.benchmarks.load_examples reads it (arith, a benchmark, a
    #: prompt file); else from a file the algorithm reads itself with the policy's tokenizer
    reads_dataset: bool = True
    #: the policy keeps the initial model (or LoRA adapters off) as a reference
    needs_reference: bool = False
    #: the reference is this other model instead (a teacher: same tokenizer), loaded frozen beside the policy
    reference_model: str | None = None
    #: optimizer steps per loop step (sets the schedule's length)
    optimizer_steps: int = 1
    #: the model trained: "lm" (a causal LM, the policy the engine samples from) or "score" (the same base
    #: with a scalar head, rlvr.models.load_reward_model: the engine then samples from its own copy of the
    #: base model, never updated)
    head: str = "lm"
    #: the held-out set is part of the algorithm's own rows (a preference file split by the algorithm),
    #: not the dataset's held-out split: the loop loads none
    own_held_out: bool = False

    @property
    def policy_generates(self) -> bool:
        """Whether the trained model is what the engine samples from (and gets the new weights)."""
        return self.head == "lm"


@dataclass
class Step:
    """What an algorithm made for one step: the batch it will learn from, the metrics of making it, and
    the completions to log (examples with their n rollouts and scores, prompt-major)."""

    batch: object
    metrics: dict[str, float] = field(default_factory=dict)
    samples: tuple[list[Example], list[Rollout], list[Score]] | None = None


class Algorithm(Generic[B]):
    """One file per algorithm (rlvr/algorithms/) subclasses this: `plan` says what it needs (from the config
    alone), `make_step` makes a step's batch from the loop's shared pieces (a TrainContext), `learn`
    trains on it through the policy's interface (a Learner). The loop does everything else."""

    name: str = ""

    def __init__(self, config: TrainConfig) -> None:
        self.config = config
        self.plan: DataPlan = self.make_plan(config)

    @classmethod
    def make_plan(cls, config: TrainConfig) -> DataPlan:
        """The default: sample prompts of the dataset online, one optimizer step a loop step, no reference."""
        return DataPlan(trains_on="prompts", samples_online=True)

    def training_examples(self, rows: list[Example], tokenizer: PreTrainedTokenizerBase) -> list[Example]:
        """The rows the prompt stream draws from, given the dataset's rows (when the plan reads them) and
        the policy's tokenizer: by default the dataset's rows themselves."""
        return rows

    def make_step(self, context: TrainContext, timer: Timer) -> Step:
        raise NotImplementedError

    def learn(self, policy: Learner, batch: B) -> dict[str, float]:
        raise NotImplementedError

    def evaluate(self, context: TrainContext, policy: Learner, held_out: list[Example]) -> dict[str, Any] | None:
        """The held-out eval, when the algorithm measures its own (a reward model: pairwise accuracy): a
        summary with accuracy, ci95 and n_problems (and `measure`, what the accuracy counts). None: the
        loop's eval, the policy's held-out accuracy through `rlvr eval`."""
        return None


def response_rollout(tokenizer: PreTrainedTokenizerBase, prompt: str, response: str, index: int = 0) -> Rollout:
    """A fixed (prompt, response) pair as the Rollout the policy packs: the response's tokens end with
    the tokenizer's end-of-sequence token, so the model learns where to stop."""
    prompt_ids = tuple(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    ids = list(tokenizer(response, add_special_tokens=False)["input_ids"])
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return Rollout(index, response, tuple(ids), tuple(0.0 for _ in ids), "stop", prompt_ids)


def sequence_logprobs(logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Summed response logprobs per row [rows]."""
    return (logprobs * mask.to(logprobs.dtype)).sum(-1)


def dedupe(items: Sequence[T], key: Callable[[T], Hashable]) -> list[T]:
    seen: set[Hashable] = set()
    out: list[T] = []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out

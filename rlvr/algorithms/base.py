"""What the one training loop asks of an algorithm, and the pieces several algorithms share."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import torch

from rlvr.types import Example, Rollout, Score

__all__ = ["Algorithm", "Step", "dedupe", "prompt_text", "response_rollout", "sequence_logprobs"]


@dataclass
class Step:
    """What an algorithm made for one step: the batch it will learn from, the metrics of making it, and
    the completions to log (examples with their n rollouts and scores, prompt-major)."""

    batch: Any
    metrics: dict[str, float] = field(default_factory=dict)
    samples: tuple[list[Example], list[Rollout], list[Score]] | None = None


class Algorithm:
    """One file per algorithm (rlvr/algorithms/) subclasses this. It declares what it needs; the loop
    provides it. The defaults fit an algorithm that samples prompts from the dataset, takes one
    optimizer step per loop step and needs no reference model."""

    name: str = ""
    #: the step samples from the current policy (the loop then keeps the engine's weights in sync each step)
    samples_online: bool = True

    def __init__(self, config: Any) -> None:
        self.config = config

    def needs_reference(self) -> bool:
        """Whether the policy must keep the initial model (or LoRA adapters off) as a reference."""
        return False

    def optimizer_steps(self) -> int:
        """Optimizer steps per loop step (sets the schedule's length)."""
        return 1

    def training_examples(self, loop: Any) -> list[Example]:
        """The rows the prompt stream draws from (prompts; with SFT, prompts and responses)."""
        return loop.load_examples()

    def sampled_examples(self, loop: Any) -> list[Example]:
        """The prompts this algorithm will generate from, known before the policy loads (they size the
        engine's context and KV cache); none for one that does not sample."""
        return loop.load_examples() if self.samples_online else []

    def make_step(self, loop: Any, timer: Any) -> Step:
        raise NotImplementedError

    def learn(self, policy: Any, batch: Any) -> dict[str, float]:
        raise NotImplementedError


def response_rollout(tokenizer: Any, prompt: str, response: str, index: int = 0) -> Rollout:
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


def prompt_text(loop: Any, example: Example) -> str:
    """The prompt as the model sees it: pre-rendered rows as they are, others through the run's template."""
    return example.metadata.get("rendered_prompt") or loop.template(example)


def dedupe(items: Sequence[Any], key: Any) -> list[Any]:
    seen, out = set(), []
    for item in items:
        k = key(item)
        if k not in seen:
            seen.add(k)
            out.append(item)
    return out

"""Supervised fine-tuning on prompt→response rows (a cold start on reasoning traces): masked token NLL of
the response tokens only (rlvr.objectives.sft). RFT reuses its update on the completions it keeps."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from rlvr.algorithms.base import Algorithm, DataPlan, Step, response_rollout
from rlvr.algorithms.context import Timer, TrainContext
from rlvr.config import TrainConfig
from rlvr.distributed import all_reduce_sum, shard_groups
from rlvr.learner.protocol import Learner
from rlvr.objectives import sft
from rlvr.types import Example, Rollout

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["SFT", "SFTBatch", "sft_update"]


@dataclass
class SFTBatch:
    rollouts: list[Rollout]  # fixed responses packed like completions, one row each


def sft_update(policy: Learner, rows: Sequence[Rollout], reduction: str) -> dict[str, float]:
    """One optimizer step of response-token NLL over `rows`, micro-batched, normalized over the whole
    batch (and every rank) so that the micro-batches add up to the full-batch loss exactly."""
    if not rows:
        return policy.step([], None)
    tensors = policy.pack(rows, 1)
    normalizer = all_reduce_sum(sft.sft_normalizer(tensors["mask"], reduction), policy.ctx)

    def loss_fn(idx: slice) -> tuple[torch.Tensor, dict[str, float]]:
        logprobs, _ = policy.logprobs(tensors, idx)
        return sft.sft_loss(
            logprobs,
            tensors["mask"][idx].to(logprobs.device),
            reduction=reduction,
            normalizer=normalizer,
            loss_scale=policy.ctx.world_size,
        )

    return policy.step(policy.micro_batches(tensors), loss_fn)


class SFT(Algorithm[SFTBatch]):
    name = "sft"

    @classmethod
    def make_plan(cls, config: TrainConfig) -> DataPlan:
        """Fixed responses, never sampled: a file of rows (read with the policy's tokenizer), or the
        dataset's rows with their worked solutions."""
        return DataPlan(
            trains_on="responses", samples_online=False, reads_dataset=not Path(config.data.dataset).is_file()
        )

    def training_examples(self, rows: list[Example], tokenizer: PreTrainedTokenizerBase) -> list[Example]:
        """Rows with `metadata["response"]`: a prompt/completion, messages or samples.jsonl file, or the
        worked solutions of gsm8k / math train and generated arith answers."""
        from rlvr.data.supervised import sft_examples

        data = self.config.data
        if self.config.env.name not in (None, "none"):
            return self._tool_examples(rows, tokenizer)
        if not self.plan.reads_dataset:
            return sft_examples(None, path=data.dataset, tokenizer=tokenizer, keep_status=data.keep_status)
        return sft_examples(rows)

    def _tool_examples(self, rows: list[Example], tokenizer: PreTrainedTokenizerBase) -> list[Example]:
        """With an environment: generated arith tool traces, or a file's traces with every recorded
        output checked by re-running its code in the environment (a fabricated output is refused)."""
        from rlvr.data.supervised import sft_examples
        from rlvr.environments.registry import environment_from_config
        from rlvr.environments.traces import check_traces, tool_examples

        if self.plan.reads_dataset:
            return tool_examples(rows)
        data = self.config.data
        examples = sft_examples(None, path=data.dataset, tokenizer=tokenizer, keep_status=data.keep_status)
        env = environment_from_config(self.config.env)
        try:
            check_traces(env, [(e.id, e.metadata["response"]) for e in examples])
        finally:
            env.close()
        return examples

    def make_step(self, context: TrainContext, timer: Timer) -> Step:
        examples = shard_groups(context.stream.take(self.config.rollout.prompts_per_step), context.ctx)
        rows = [
            self._rollout(context.tokenizer, context.prompt_text(e), e.metadata["response"], i)
            for i, e in enumerate(examples)
        ]
        tokens = sum(len(r.token_ids) for r in rows)
        return Step(SFTBatch(rows), {"examples": float(len(rows)), "response_tokens_mean": tokens / max(1, len(rows))})

    def _rollout(self, tokenizer: PreTrainedTokenizerBase, prompt: str, response: str, index: int) -> Rollout:
        """A response as the policy packs it; with an environment, a tool trace tokenized by the segment
        code of RL rollouts (each part alone; the tool's outputs masked), so SFT tokens are RL tokens."""
        if self.config.env.name in (None, "none"):
            return response_rollout(tokenizer, prompt, response, index)
        from rlvr.environments.traces import split_trace
        from rlvr.rollout.multiturn import segment_rollout

        return segment_rollout(tokenizer, prompt, split_trace(response), index)

    def learn(self, policy: Learner, batch: SFTBatch) -> dict[str, float]:
        return sft_update(policy, batch.rollouts, self.config.sft.reduction)

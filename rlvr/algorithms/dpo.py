"""Online DPO with verifier-labelled pairs: sample n completions per prompt, verify them, pair a
best-rewarded with a worst-rewarded completion of the same prompt (ties skipped), and train
rlvr.objectives.dpo on the pairs. A file of prompt/chosen/rejected rows (TRL's preference format)
trains offline instead, with no sampling."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from rlvr.algorithms.base import Algorithm, DataPlan, Step, response_rollout, sequence_logprobs
from rlvr.algorithms.context import Timer, TrainContext
from rlvr.config import TrainConfig
from rlvr.distributed import all_reduce_sum, shard_groups
from rlvr.learner.protocol import Learner
from rlvr.objectives import dpo
from rlvr.rollout.stats import rollout_metrics
from rlvr.types import Example, Rollout, Score

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["DPO", "pair_completions"]


@dataclass
class PairBatch:
    rollouts: list[Rollout]  # chosen, rejected, chosen, rejected, ...: pairs share their prompt


def pair_completions(group: list[tuple[Rollout, Score]]) -> tuple[Rollout, Rollout] | None:
    """(chosen, rejected) for one prompt's scored completions: the first highest-reward completion and the
    first lowest-reward one that differs from it in text; None when every reward ties."""
    rewards = [s.reward for _, s in group]
    best, worst = max(rewards), min(rewards)
    if best == worst:
        return None
    chosen = next(r for r, s in group if s.reward == best)
    rejected = next((r for r, s in group if s.reward == worst and r.text.strip() != chosen.text.strip()), None)
    return None if rejected is None else (chosen, rejected)


class DPO(Algorithm[PairBatch]):
    name = "dpo"

    @classmethod
    def make_plan(cls, config: TrainConfig) -> DataPlan:
        """Online: prompts of the dataset, sampled and paired by reward. A file of prompt/chosen/rejected
        rows trains offline: nothing is sampled. A reference model unless dpo.reference_free."""
        from rlvr.data.supervised import is_preference_file

        offline = is_preference_file(config.data.dataset)
        return DataPlan(
            trains_on="preferences" if offline else "prompts",
            samples_online=not offline,
            reads_dataset=not offline,
            needs_reference=not config.dpo.reference_free,
        )

    def training_examples(self, rows: list[Example], tokenizer: PreTrainedTokenizerBase) -> list[Example]:
        from rlvr.data.supervised import preference_examples

        return rows if self.plan.reads_dataset else preference_examples(self.config.data.dataset, tokenizer)

    def make_step(self, context: TrainContext, timer: Timer) -> Step:
        cfg = self.config
        examples = shard_groups(context.stream.take(cfg.rollout.prompts_per_step), context.ctx)
        if not self.plan.samples_online:
            rows = [
                response_rollout(context.tokenizer, context.prompt_text(e), e.metadata[key], i)
                for i, e in enumerate(examples)
                for key in ("chosen", "rejected")
            ]
            return Step(PairBatch(rows), {"pairs": float(len(examples))})
        collected = context.collect(examples, cfg.rollout.n, context.sampling(0), timer)
        rows = []
        for g in range(len(collected.examples)):
            pair = pair_completions(collected.group(g))
            if pair is not None:
                rows.extend(pair)
        metrics = {**rollout_metrics(collected.scores, collected.rollouts), "pairs": float(len(rows) // 2)}
        return Step(PairBatch(rows), metrics, (collected.examples, collected.rollouts, collected.scores))

    def learn(self, policy: Learner, batch: PairBatch) -> dict[str, float]:
        opts = self.config.dpo
        if not batch.rollouts:
            return policy.step([], None)
        tensors = policy.pack(batch.rollouts, 2)
        micro = policy.micro_batches(len(batch.rollouts), 2)
        mask = tensors["mask"]
        reference = None
        if not opts.reference_free:
            reference = torch.cat(
                [
                    sequence_logprobs(policy.reference_logprobs(tensors, idx), mask[idx].to(policy.device))
                    for idx in micro
                ]
            )
        pairs = all_reduce_sum(torch.tensor(float(len(batch.rollouts) // 2)), policy.ctx)
        tokens = mask.sum(-1)

        def loss_fn(idx: slice) -> tuple[torch.Tensor, dict[str, float]]:
            logprobs, _ = policy.logprobs(tensors, idx)
            summed = sequence_logprobs(logprobs, mask[idx].to(logprobs.device))
            ref = None if reference is None else reference[idx]
            loss, m = dpo.dpo_loss(
                summed[0::2],
                summed[1::2],
                None if ref is None else ref[0::2],
                None if ref is None else ref[1::2],
                loss_type=opts.loss,
                beta=opts.beta,
                label_smoothing=opts.label_smoothing,
                chosen_tokens=tokens[idx][0::2],
                rejected_tokens=tokens[idx][1::2],
                normalizer=pairs,
                loss_scale=policy.ctx.world_size,
            )
            return loss, {f"dpo_{k.replace('/', '_')}" if k != "loss" else k: v for k, v in m.items()} | {
                "tokens": m["pairs"]
            }

        return policy.step(micro, loss_fn)

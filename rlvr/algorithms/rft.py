"""Rejection-sampling fine-tuning (STaR, ReST-EM, RFT): sample n completions per prompt, verify them, keep
the correct ones (distinct, at most rft.max_per_prompt per prompt) and take an SFT step on them."""

from __future__ import annotations

from rlvr.algorithms.base import Algorithm, Step, dedupe
from rlvr.algorithms.context import Timer, TrainContext
from rlvr.algorithms.sft import SFTBatch, sft_update
from rlvr.distributed import shard_groups
from rlvr.learner.protocol import Learner
from rlvr.rollout.stats import rollout_metrics
from rlvr.types import Status

__all__ = ["RFT"]


class RFT(Algorithm[SFTBatch]):
    name = "rft"

    def make_step(self, context: TrainContext, timer: Timer) -> Step:
        cfg = self.config
        examples = shard_groups(context.stream.take(cfg.rollout.prompts_per_step), context.ctx)
        collected = context.collect(examples, cfg.rollout.n, context.sampling(0), timer)
        kept = []
        for g in range(len(collected.examples)):
            correct = [r for r, s in collected.group(g) if s.status == Status.CORRECT and not r.truncated]
            kept.extend(dedupe(correct, key=lambda r: r.text.strip())[: cfg.rft.max_per_prompt])
        metrics = {
            **rollout_metrics(collected.scores, collected.rollouts),
            "kept": float(len(kept)),
            "prompts_with_correct": float(
                sum(
                    any(s.status == Status.CORRECT for _, s in collected.group(g))
                    for g in range(len(collected.examples))
                )
            ),
        }
        return Step(SFTBatch(kept), metrics, (collected.examples, collected.rollouts, collected.scores))

    def learn(self, policy: Learner, batch: SFTBatch) -> dict[str, float]:
        return sft_update(policy, batch.rollouts, self.config.sft.reduction)

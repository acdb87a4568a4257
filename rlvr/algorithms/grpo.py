"""GRPO (and its variants: Dr. GRPO, DAPO, GSPO, RLOO advantages): n completions per prompt, verified,
group-relative advantages, the clipped policy-gradient objective of rlvr.objectives.grpo."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rlvr.algorithms.base import Algorithm, DataPlan, Step
from rlvr.algorithms.context import Timer, TrainContext
from rlvr.config import TrainConfig
from rlvr.distributed import agree, all_reduce_sum, gather_cat, shard_groups
from rlvr.learner.protocol import Learner, Packed
from rlvr.objectives import grpo
from rlvr.rollout.collect import Collected
from rlvr.rollout.stats import is_void, rollout_metrics, tool_metrics
from rlvr.types import Example, Rollout, Score

__all__ = ["GRPO", "Groups"]


@dataclass
class Groups:
    """The groups of one step: G prompts × n completions (prompt-major), their scores and rewards."""

    examples: list[Example]
    rollouts: list[Rollout]
    scores: list[Score]
    rewards: torch.Tensor  # [G, n], shaped rewards (after any overlong penalty)

    def select(self, keep: torch.Tensor) -> Groups:
        n = self.rewards.shape[1]
        groups = [g for g in range(len(self.examples)) if keep[g]]
        flat = [g * n + j for g in groups for j in range(n)]
        return Groups(
            [self.examples[g] for g in groups],
            [self.rollouts[i] for i in flat],
            [self.scores[i] for i in flat],
            self.rewards[keep],
        )

    def first(self, groups: int) -> Groups:
        return self.select(torch.arange(len(self.examples)) < groups)

    @staticmethod
    def concat(parts: list[Groups], n: int) -> Groups:
        return Groups(
            [e for p in parts for e in p.examples],
            [r for p in parts for r in p.rollouts],
            [s for p in parts for s in p.scores],
            torch.cat([p.rewards for p in parts]) if parts else torch.zeros(0, n),
        )


@dataclass
class GRPOBatch:
    groups: Groups
    advantages: torch.Tensor  # [G * n] (or [G * n, 1] per sequence)
    use_tis: bool


class GRPO(Algorithm[GRPOBatch]):
    name = "grpo"

    @classmethod
    def make_plan(cls, config: TrainConfig) -> DataPlan:
        """Prompts sampled online; μ optimizer steps a loop step; a reference model when β > 0 (the KL term)."""
        return DataPlan(
            trains_on="prompts",
            samples_online=True,
            needs_reference=bool(config.grpo.beta),
            optimizer_steps=config.grpo.mu,
        )

    # -------------------------------------------------------------------------- the batch

    def make_step(self, context: TrainContext, timer: Timer) -> Step:
        """Generate n completions per prompt and verify them; with dynamic sampling, groups whose
        rewards are all equal (no signal) are dropped and refilled from new prompts."""
        cfg, ctx, n = self.config, context.ctx, self.config.rollout.n
        want = cfg.rollout.prompts_per_step // ctx.world_size  # this rank's groups
        parts, seen, rounds = [], [], 0
        while True:
            examples = shard_groups(context.stream.take(cfg.rollout.prompts_per_step), ctx)
            collected = context.collect(examples, n, context.sampling(rounds), timer)
            scored = self._groups(collected)
            zero_variance = grpo.zero_variance_groups(scored.rewards)
            seen.append((scored, zero_variance))
            parts.append(scored.select(~zero_variance) if cfg.grpo.dynamic_sampling else scored)
            rounds += 1
            # the fewest groups any rank kept: every rank refills alike and trains on as many groups
            kept = int(agree(sum(len(p.examples) for p in parts), ctx, "min"))
            if not cfg.grpo.dynamic_sampling or kept >= want or rounds > cfg.grpo.max_refill_rounds:
                break
        groups = Groups.concat(parts, n).first(min(want, kept))
        first, first_zero_variance = seen[0]  # what the policy produced before any filtering
        # advantages: one per completion (rlvr.objectives.grpo.ADVANTAGES), computed on every rank's rewards
        # so that batch-wide statistics ("batch": the std of the whole batch) are global under DDP; every
        # rank holds as many groups, so this rank's rows are one slice of the gathered batch
        mine = len(groups.examples)
        everyone = gather_cat(groups.rewards, ctx)
        advantages = grpo.group_advantages(everyone, cfg.grpo.advantage)[ctx.rank * mine : (ctx.rank + 1) * mine]
        advantages = advantages.reshape(-1)
        use_tis = cfg.grpo.tis == "on" or (cfg.grpo.tis == "auto" and context.sampler_logprobs)
        metrics = {
            **rollout_metrics([s for b, _ in seen for s in b.scores], [r for b, _ in seen for r in b.rollouts]),
            "zero_variance_fraction": first_zero_variance.float().mean().item(),
            "groups_trained": len(groups.examples),
            "generate_rounds": rounds,
        }
        if any(r.segments for b, _ in seen for r in b.rollouts):  # multi-turn: the tool's share of the step
            metrics.update(
                tool_metrics([s for b, _ in seen for s in b.scores], [r for b, _ in seen for r in b.rollouts])
            )
        return Step(GRPOBatch(groups, advantages, use_tis), metrics, (first.examples, first.rollouts, first.scores))

    def _groups(self, collected: Collected) -> Groups:
        rewards = torch.tensor([s.reward for s in collected.scores], dtype=torch.float32)
        if self.config.reward.truncated == "penalty":
            lengths = torch.tensor([len(r.token_ids) for r in collected.rollouts])
            rewards = rewards + grpo.overlong_penalty(
                lengths, self.config.rollout.max_new_tokens, self.config.reward.overlong_buffer
            )
        return Groups(
            collected.examples,
            collected.rollouts,
            collected.scores,
            rewards.reshape(len(collected.examples), collected.n),
        )

    # -------------------------------------------------------------------------- the update

    def learn(self, policy: Learner, batch: GRPOBatch) -> dict[str, float]:
        """μ optimizer steps with the clipped surrogate (rlvr.objectives.grpo.policy_loss); the sampler's
        logprobs weight tokens by truncated importance when `use_tis`."""
        cfg, alg = self.config, self.config.grpo
        groups, advantages = batch.groups, batch.advantages
        if not groups.examples:  # dynamic sampling found no group with signal: no step at all
            return {}
        n = groups.rewards.shape[1]
        tensors = policy.pack(groups.rollouts, n)
        full_mask = self._loss_mask(tensors, groups)
        # the denominator belongs to the whole batch, whatever part of it is run below
        normalizer = all_reduce_sum(
            grpo.loss_normalizer(alg.loss, full_mask, cfg.rollout.max_new_tokens), policy.ctx
        ).clamp(min=1.0)  # no token left (all masked): loss 0, not 0/0 = NaN weights
        advantages, found = self.token_advantages(policy, tensors, full_mask, advantages)
        # the KL term of the loss, unless the advantages carry it already (REINFORCE++)
        beta = 0.0 if grpo.ADVANTAGES[alg.advantage].per_token else alg.beta
        skipped = 0
        # with β = 0 a group whose advantages are all 0 adds nothing to the loss or its gradient, so it
        # need not run; under DDP every rank must run a backward in step, so there it always does
        if cfg.optimizer.skip_zero_advantage and not beta and not policy.ctx.distributed:
            groups, advantages, skipped = _without_zero_advantage_groups(groups, advantages)
            if skipped:  # rebuilt: fewer rows, padded only as wide as the rows left need
                tensors = policy.pack(groups.rollouts, n) if groups.examples else {}
        mask = self._loss_mask(tensors, groups) if tensors else None
        micro = policy.micro_batches(tensors) if tensors else []
        old = policy.frozen_logprobs(tensors, micro, cfg.rollout.temperature) if alg.mu > 1 and micro else None

        def loss_fn(idx: slice) -> tuple[torch.Tensor, dict[str, float]]:
            logprobs, entropy = policy.logprobs(tensors, idx, cfg.rollout.temperature, entropy=True)
            loss, m = grpo.policy_loss(
                logprobs,
                advantages[idx].to(logprobs.device),
                mask[idx].to(logprobs.device),
                old_logprobs=None if old is None else old[idx],
                behavior_logprobs=tensors["behavior"][idx].to(logprobs.device) if batch.use_tis else None,
                ref_logprobs=policy.reference_logprobs(tensors, idx, cfg.rollout.temperature) if beta else None,
                loss_type=alg.loss,
                ratio_level=alg.ratio_level,
                clip_eps_low=alg.clip_eps_low,
                clip_eps_high=alg.clip_eps_high,
                tis_cap=alg.tis_cap,
                sapo_tau_pos=alg.sapo_tau_pos,
                sapo_tau_neg=alg.sapo_tau_neg,
                beta=beta,
                kl_estimator=alg.kl_estimator,
                max_completion_length=cfg.rollout.max_new_tokens,
                normalizer=normalizer,
                loss_scale=policy.ctx.world_size,
            )
            m["entropy"] = grpo.masked_mean(entropy, mask[idx].to(entropy.device)).item()
            return loss, m

        totals: dict[str, float] = {}
        for _ in range(alg.mu):
            for key, value in policy.step(micro, loss_fn).items():
                totals[key] = totals.get(key, 0.0) + value / alg.mu
        return {**totals, **found, "groups_skipped": float(skipped)}

    def token_advantages(
        self, policy: Learner, tensors: Packed, mask: torch.Tensor, advantages: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The advantages the loss uses, from make_step's one per completion, once the batch is packed, and
        metrics of making them: as they are, or for a `per_token` kind (REINFORCE++) the return-to-go with
        β·KL(sampling policy || reference) per token folded in, whitened over the global batch's tokens."""
        alg = self.config.grpo
        if not grpo.ADVANTAGES[alg.advantage].per_token:
            return advantages, {}
        kl, metrics = None, {}
        if alg.beta:
            old, ref = self._frozen_and_reference(policy, tensors, advantages.shape[0])
            kl = grpo.KL_ESTIMATORS[alg.kl_estimator](old, ref)
            metrics["kl"] = grpo.masked_mean(kl, mask).item()

        def total(values: torch.Tensor) -> torch.Tensor:
            return all_reduce_sum(values, policy.ctx)

        return grpo.token_advantages(advantages, mask, kl, alg.beta, total), metrics

    def _frozen_and_reference(self, policy: Learner, tensors: Packed, rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Every row's logprobs [rows, T] under the current policy and under the reference, without grad."""
        temperature, micro = self.config.rollout.temperature, policy.micro_batches(tensors)
        own = policy.frozen_logprobs(tensors, micro, temperature)
        ref = torch.cat([policy.reference_logprobs(tensors, idx, temperature) for idx in micro])
        return own, ref

    def _loss_mask(self, tensors: Packed, groups: Groups) -> torch.Tensor:
        """The packed loss mask (tool tokens already 0), less cut-off completions under reward.truncated=mask
        and trajectories with a void turn under grpo.void_turns=mask (their rewards still shaped the
        group's advantages; an all-void batch is all 0, and the normalizer's clamp keeps the loss 0)."""
        mask = tensors["mask"]
        if self.config.reward.truncated == "mask":  # no gradient from cut-off completions (DAPO's overlong filter)
            mask = mask * (~tensors["truncated"]).float().unsqueeze(-1)
        if self.config.grpo.void_turns == "mask":
            void = torch.tensor(
                [
                    bool(r.segments) and is_void(r, s)  # multi-turn trajectories only
                    for r, s in zip(groups.rollouts, groups.scores, strict=True)
                ]
            )
            mask = mask * (~void).float().unsqueeze(-1)
        return mask


def _without_zero_advantage_groups(groups: Groups, advantages: torch.Tensor) -> tuple[Groups, torch.Tensor, int]:
    """The groups whose advantages are not all 0 (equal rewards under grpo, dr_grpo or rloo advantages),
    the advantages that remain, and how many groups went."""
    count, n = groups.rewards.shape
    per_group = advantages.reshape(count, n, -1)
    keep = per_group.ne(0).flatten(1).any(1)
    if keep.all():
        return groups, advantages, 0
    kept = per_group[keep].reshape(-1, *advantages.shape[1:])
    return groups.select(keep), kept, int(count - keep.sum())

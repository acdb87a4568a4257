"""Online DPO with verifier-labelled pairs: sample n completions per prompt, verify them, pair a
best-rewarded with a worst-rewarded completion of the same prompt (ties skipped), and train
rlvr.objectives.dpo on the pairs. A file of prompt/chosen/rejected rows (TRL's preference format)
trains offline instead, with no sampling.

The preference family (cpo.py, simpo.py, orpo.py, kto.py) runs this same step and update: a
subclass names its config section (its `name`), whether it needs a reference model, and its
objective (`objective`); KTO also labels every sampled completion instead of pairing (`select`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from rlvr.algorithms.base import Algorithm, DataPlan, Step, response_rollout, sequence_logprobs
from rlvr.algorithms.context import Timer, TrainContext
from rlvr.config import TrainConfig
from rlvr.distributed import all_reduce_sum, shard_groups
from rlvr.learner.protocol import Learner
from rlvr.objectives import dpo
from rlvr.rollout.collect import Collected
from rlvr.rollout.stats import rollout_metrics
from rlvr.types import Example, Rollout, Score

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["DPO", "PairBatch", "Totals", "pair_completions"]


@dataclass
class PairBatch:
    """Labelled completions: pairs are (chosen, rejected, chosen, rejected, ...), each pair one prompt's;
    KTO's online rows are every completion of each prompt (`group` of them a prompt), unpaired."""

    rollouts: list[Rollout]
    desirable: list[bool]
    group: int = 2  # consecutive rows sharing a prompt (never split across micro-batches)


@dataclass
class Totals:
    """A learn step's global counts (summed over ranks), the objectives' normalizers."""

    rows: torch.Tensor
    desirable_rows: torch.Tensor
    desirable_tokens: torch.Tensor
    world_size: int
    extra: dict[str, Any]  # what an objective computes once per step (KTO: its reference point)


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
        rows trains offline: nothing is sampled. A reference model when `uses_reference` says so."""
        from rlvr.data.supervised import is_preference_file

        offline = is_preference_file(config.data.dataset)
        return DataPlan(
            trains_on="preferences" if offline else "prompts",
            samples_online=not offline,
            reads_dataset=not offline,
            needs_reference=cls.uses_reference(config),
        )

    @classmethod
    def uses_reference(cls, config: TrainConfig) -> bool:
        return not config.dpo.reference_free

    @property
    def options(self) -> Any:
        """This algorithm's config section (dpo, kto, orpo, simpo, cpo)."""
        return getattr(self.config, self.name)

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
            return Step(PairBatch(rows, [True, False] * len(examples)), {"pairs": float(len(examples))})
        collected = context.collect(examples, cfg.rollout.n, context.sampling(0), timer)
        batch = self.select(collected)
        metrics = {**rollout_metrics(collected.scores, collected.rollouts), **self.select_metrics(batch)}
        return Step(batch, metrics, (collected.examples, collected.rollouts, collected.scores))

    def select(self, collected: Collected) -> PairBatch:
        """The rows to learn from among the step's verified completions: one pair per prompt whose rewards differ."""
        rows: list[Rollout] = []
        for g in range(len(collected.examples)):
            pair = pair_completions(collected.group(g))
            if pair is not None:
                rows.extend(pair)
        return PairBatch(rows, [True, False] * (len(rows) // 2))

    def select_metrics(self, batch: PairBatch) -> dict[str, float]:
        return {"pairs": float(len(batch.rollouts) // 2)}

    def step_totals(
        self, policy: Learner, batch: PairBatch, tensors: dict, micro: list[slice], reference: Any
    ) -> Totals:
        """The global counts this step's objective normalizes by; `extra` for what a subclass adds."""
        desirable = torch.tensor(batch.desirable)
        tokens = tensors["mask"].sum(-1)
        return Totals(
            rows=all_reduce_sum(torch.tensor(float(len(batch.rollouts))), policy.ctx),
            desirable_rows=all_reduce_sum(desirable.sum().double(), policy.ctx),
            desirable_tokens=all_reduce_sum(tokens[desirable].sum().double(), policy.ctx),
            world_size=policy.ctx.world_size,
            extra={},
        )

    def objective(
        self,
        logps: torch.Tensor,
        ref: torch.Tensor | None,
        tokens: torch.Tensor,
        desirable: torch.Tensor,
        totals: Totals,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """One micro-batch's loss from its rows' summed logprobs (policy, reference), token counts and labels."""
        opts = self.options
        return dpo.dpo_loss(
            logps[0::2],
            logps[1::2],
            None if ref is None else ref[0::2],
            None if ref is None else ref[1::2],
            loss_type=opts.loss,
            beta=opts.beta,
            label_smoothing=opts.label_smoothing,
            gamma=opts.gamma,
            chosen_tokens=tokens[0::2],
            rejected_tokens=tokens[1::2],
            normalizer=totals.desirable_rows,
            loss_scale=totals.world_size,
        )

    def learn(self, policy: Learner, batch: PairBatch) -> dict[str, float]:
        if not batch.rollouts:
            return policy.step([], None)
        tensors = policy.pack(batch.rollouts, batch.group)
        micro = policy.micro_batches(tensors, whole_groups=True)  # a pair's rows stay together
        mask = tensors["mask"]
        reference = None
        if self.plan.needs_reference:
            reference = torch.cat(
                [
                    sequence_logprobs(policy.reference_logprobs(tensors, idx), mask[idx].to(policy.device))
                    for idx in micro
                ]
            )
        totals = self.step_totals(policy, batch, tensors, micro, reference)
        tokens = mask.sum(-1)
        desirable = torch.tensor(batch.desirable)

        def loss_fn(idx: slice) -> tuple[torch.Tensor, dict[str, float]]:
            logprobs, _ = policy.logprobs(tensors, idx)
            summed = sequence_logprobs(logprobs, mask[idx].to(logprobs.device))
            ref = None if reference is None else reference[idx]
            loss, m = self.objective(
                summed, ref, tokens[idx].to(summed.device), desirable[idx].to(summed.device), totals
            )
            named = {f"{self.name}_{k.replace('/', '_')}" if k != "loss" else k: v for k, v in m.items()}
            return loss, named | {"tokens": float(m.get("pairs", m.get("rows", 0)))}

        return policy.step(micro, loss_fn)

"""Online KTO with verifier-labelled completions (rlvr.objectives.kto): sample n completions per prompt,
verify them, and label every one desirable when its reward reaches `kto.threshold`, undesirable
otherwise; no pairs, so groups whose rewards all tie still teach. A preference file trains offline,
its chosen rows desirable and its rejected ones undesirable (TRL's unpaired form of the same rows).

The reference point z0 is the step's mean log π - log π_ref over its own completions (sampled from
π online: the Monte-Carlo KL estimate; rlvr/objectives/kto.py says why not TRL's mismatched pairs;
offline, the same mean over the file's rows, which only approximates it as TRL's mismatched pairs do).
With `kto.desirable_weight` unset, λ_D is each step's undesirable/desirable count ratio, so both sides
weigh the same in total (the paper advises λ_D·n_D / λ_U·n_U in [1, 4/3]): a small model that gets
one answer in twenty right would otherwise learn almost only what not to say."""

from __future__ import annotations

from typing import Any

import torch

from rlvr.algorithms.base import sequence_logprobs
from rlvr.algorithms.dpo import DPO, PairBatch, Totals
from rlvr.config import TrainConfig
from rlvr.distributed import all_reduce_sum
from rlvr.learner.protocol import Learner
from rlvr.objectives import kto
from rlvr.rollout.collect import Collected

__all__ = ["KTO"]


class KTO(DPO):
    name = "kto"

    @classmethod
    def uses_reference(cls, config: TrainConfig) -> bool:
        return True

    def select(self, collected: Collected) -> PairBatch:
        threshold = self.options.threshold
        return PairBatch(list(collected.rollouts), [s.reward >= threshold for s in collected.scores], group=collected.n)

    def select_metrics(self, batch: PairBatch) -> dict[str, float]:
        return {"desirable": float(sum(batch.desirable)), "rows": float(len(batch.rollouts))}

    def step_totals(
        self, policy: Learner, batch: PairBatch, tensors: dict, micro: list[slice], reference: Any
    ) -> Totals:
        totals = super().step_totals(policy, batch, tensors, micro, reference)
        opts = self.options
        z0 = torch.zeros(())
        if kto.KTO_LOSSES[opts.loss].uses_reference_point:
            mask = tensors["mask"].to(policy.device)
            logps = sequence_logprobs(policy.frozen_logprobs(tensors, micro), mask)
            total = all_reduce_sum((logps - reference).sum().double().cpu(), policy.ctx)
            z0 = kto.reference_point(total.reshape(1), torch.zeros(1, dtype=total.dtype), totals.rows)
        weight = opts.desirable_weight
        if weight is None:
            good = float(totals.desirable_rows.item())
            weight = (float(totals.rows.item()) - good) / good if good else 1.0
        totals.extra = {"kl": z0, "desirable_weight": weight}
        return totals

    def objective(
        self,
        logps: torch.Tensor,
        ref: torch.Tensor | None,
        tokens: torch.Tensor,
        desirable: torch.Tensor,
        totals: Totals,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        opts = self.options
        assert ref is not None  # KTO always has a reference model (uses_reference)
        loss, metrics = kto.kto_loss(
            logps,
            ref,
            desirable,
            kl=totals.extra["kl"],
            loss_type=opts.loss,
            beta=opts.beta,
            desirable_weight=totals.extra["desirable_weight"],
            undesirable_weight=opts.undesirable_weight,
            normalizer=totals.rows,
            loss_scale=totals.world_size,
        )
        return loss, metrics | {"desirable_weight": totals.extra["desirable_weight"]}

"""Contrastive Preference Optimization (CPO, Xu et al. 2024): DPO's pairs and step with no reference
model, the pair loss on the policy's own logprobs plus an NLL term on the chosen completions
(rlvr.objectives.preference.cpo_loss); options in the config's `cpo` section."""

from __future__ import annotations

import torch

from rlvr.algorithms.dpo import DPO, Totals
from rlvr.config import TrainConfig
from rlvr.objectives import preference

__all__ = ["CPO"]


class CPO(DPO):
    name = "cpo"

    @classmethod
    def uses_reference(cls, config: TrainConfig) -> bool:
        return False

    def pair_loss_type(self) -> str:
        return str(self.options.loss)

    def objective(
        self,
        logps: torch.Tensor,
        ref: torch.Tensor | None,
        tokens: torch.Tensor,
        desirable: torch.Tensor,
        totals: Totals,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        opts = self.options
        return preference.cpo_loss(
            logps[0::2],
            logps[1::2],
            tokens[0::2],
            tokens[1::2],
            loss_type=self.pair_loss_type(),
            beta=opts.beta,
            label_smoothing=opts.label_smoothing,
            gamma=opts.gamma,
            nll_weight=opts.nll_weight,
            normalizer=totals.desirable_rows,
            token_normalizer=totals.desirable_tokens,
            loss_scale=totals.world_size,
        )

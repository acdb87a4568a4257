"""Odds Ratio Preference Optimization (ORPO, Hong et al. 2024): SFT on the chosen completion and an
odds-ratio term against the rejected one in one step, no reference model
(rlvr.objectives.preference.orpo_loss); DPO's pairs, online or from a file; the config's `orpo` section."""

from __future__ import annotations

import torch

from rlvr.algorithms.dpo import DPO, Totals
from rlvr.config import TrainConfig
from rlvr.objectives import preference

__all__ = ["ORPO"]


class ORPO(DPO):
    name = "orpo"

    @classmethod
    def uses_reference(cls, config: TrainConfig) -> bool:
        return False

    def objective(
        self,
        logps: torch.Tensor,
        ref: torch.Tensor | None,
        tokens: torch.Tensor,
        desirable: torch.Tensor,
        totals: Totals,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        return preference.orpo_loss(
            logps[0::2],
            logps[1::2],
            tokens[0::2],
            tokens[1::2],
            beta=self.options.beta,
            normalizer=totals.desirable_rows,
            token_normalizer=totals.desirable_tokens,
            loss_scale=totals.world_size,
        )

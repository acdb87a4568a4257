"""The Bradley-Terry reward-model objective (TRL RewardTrainer's), as a pure tensor function.

Inputs, one entry per preference pair [P]: the scalar reward r_c of the chosen and r_r of the
rejected sequence, an optional per-pair margin m (TRL reads it from a `margin` column) and the
centering coefficient λ (TRL's `center_rewards_coefficient`, None = off):

    loss = mean_P( -log σ(r_c - r_r - m) ) + λ · mean_P( (r_c + r_r)² )

The centering term (Eisenstein et al. 2023) keeps the rewards near zero mean. Here both means are
sums over pairs / `normalizer` (None = this batch's P): pass the global pair count and the
micro-batch losses add up to the full-batch loss exactly; under DDP also `loss_scale=world_size`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["pair_accuracy", "reward_loss"]


def pair_accuracy(chosen: Tensor, rejected: Tensor) -> Tensor:
    """Per pair, 1.0 where the chosen reward is strictly higher (a tie counts as wrong, as in TRL)."""
    return (chosen > rejected).to(torch.float64)


def reward_loss(
    chosen: Tensor,
    rejected: Tensor,
    *,
    margin: Tensor | None = None,
    center_rewards_coefficient: float | None = None,
    normalizer: Tensor | float | None = None,
    loss_scale: float = 1.0,
) -> tuple[Tensor, dict[str, float]]:
    """The Bradley-Terry loss over P pairs of rewards [P]. Returns (loss, metrics): loss (loss_scale
    included), accuracy, margin (mean r_c - r_r), rewards/chosen, rewards/rejected, pairs."""
    if chosen.dim() != 1 or chosen.shape != rejected.shape:
        raise ValueError(
            f"chosen/rejected rewards must both be [pairs], got {tuple(chosen.shape)} and {tuple(rejected.shape)}"
        )
    difference = chosen - rejected
    if margin is not None:
        difference = difference - margin.to(difference)
    per_pair = -F.logsigmoid(difference)
    if center_rewards_coefficient is not None:
        per_pair = per_pair + center_rewards_coefficient * (chosen + rejected) ** 2
    total = float(per_pair.numel()) if normalizer is None else normalizer
    total = torch.as_tensor(total, dtype=per_pair.dtype, device=per_pair.device)
    if total.item() <= 0:
        raise ValueError("the reward-model normalizer is 0: no preference pairs")
    loss = per_pair.sum() / total * loss_scale
    with torch.no_grad():
        metrics = {
            "loss": loss.item(),
            "accuracy": pair_accuracy(chosen, rejected).mean().item(),
            "margin": (chosen - rejected).mean().item(),
            "rewards/chosen": chosen.mean().item(),
            "rewards/rejected": rejected.mean().item(),
            "pairs": float(per_pair.numel()),
        }
    return loss, metrics

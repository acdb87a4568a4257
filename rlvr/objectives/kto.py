"""Kahneman-Tversky Optimization (KTO, Ethayarajh et al. 2024) on unpaired desirable / undesirable
completions, as pure tensor functions.

Inputs, one entry per completion [N]: the policy's summed response logprob, the reference's, and a
label (True = desirable). With the log-ratio r = log π(y|x) - log π_ref(y|x) and the reference point
z0 (a KL estimate, no gradient), the per-completion losses are a table (`KTO_LOSSES`):

- "kto": λ_D·(1 - σ(β(r - z0))) when desirable, λ_U·(1 - σ(β(z0 - r))) when not (the paper's Eq. 8;
  TRL's KTOTrainer "kto");
- "apo_zero_unpaired": λ_D·(1 - σ(βr)) and λ_U·σ(βr), no reference point (D'Oosterlinck et al. 2024,
  APO-zero, unpaired; TRL's "apo_zero_unpaired").

The loss is the sum over completions / `normalizer` (None = N): pass the global count and
micro-batch losses add up to the full-batch loss; under DDP also `loss_scale=world_size`.

The reference point is `reference_point(logps, ref_logps)` = max(0, mean(log π - log π_ref)),
detached. TRL (and the paper) take it over mismatched pairs (prompt i with the completion of prompt
i+1), since offline completions are not the policy's. rlvr's online KTO samples its completions from
the policy itself, so the mean log-ratio of the step's own completions is the direct Monte-Carlo
estimate of KL(π || π_ref) at the prompts trained on: rlvr takes z0 there (two fewer forward passes);
given TRL's mismatched-pair logprobs the same function gives TRL's z0 (tests/objectives check it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["KTO_LOSSES", "KTOLoss", "kto_loss", "reference_point"]


@dataclass(frozen=True)
class KTOLoss:
    """One unpaired loss: (r [N], z0, β) -> per-completion loss for desirable, and for undesirable ones."""

    desirable: Callable[[Tensor, Tensor, float], Tensor]
    undesirable: Callable[[Tensor, Tensor, float], Tensor]
    uses_reference_point: bool = True


KTO_LOSSES: dict[str, KTOLoss] = {
    "kto": KTOLoss(
        lambda r, z0, beta: 1 - torch.sigmoid(beta * (r - z0)),
        lambda r, z0, beta: 1 - torch.sigmoid(beta * (z0 - r)),
    ),
    "apo_zero_unpaired": KTOLoss(
        lambda r, z0, beta: 1 - torch.sigmoid(beta * r),
        lambda r, z0, beta: torch.sigmoid(beta * r),
        uses_reference_point=False,
    ),
}


def reference_point(logps: Tensor, ref_logps: Tensor, count: Tensor | float | None = None) -> Tensor:
    """z0 = max(0, Σ(log π - log π_ref) / count), detached (count None = the number of rows). Under DDP
    pass the all-reduced sum as `logps - ref_logps` of one row and the global count."""
    total = (logps.detach() - ref_logps.detach()).sum()
    n = torch.as_tensor(float(logps.numel()) if count is None else count, dtype=total.dtype, device=total.device)
    return (total / n).clamp(min=0)


def kto_loss(
    logps: Tensor,
    ref_logps: Tensor,
    desirable: Tensor,
    *,
    kl: Tensor | float = 0.0,
    loss_type: str = "kto",
    beta: float = 0.1,
    desirable_weight: float = 1.0,
    undesirable_weight: float = 1.0,
    normalizer: Tensor | float | None = None,
    loss_scale: float = 1.0,
) -> tuple[Tensor, dict[str, float]]:
    """The unpaired loss `KTO_LOSSES[loss_type]` over N completions. Returns (loss, metrics).

    - logps, ref_logps [N]: summed response logprobs under the policy (with gradient) and the reference.
    - desirable [N]: bool labels. kl: the reference point z0 (`reference_point`; detached here).
    - beta: β > 0. desirable_weight, undesirable_weight: λ_D, λ_U >= 0.

    Metrics (plain floats over this batch): loss (loss_scale included), kl, rewards/chosen and
    rewards/rejected (mean β·r of desirable / undesirable rows; 0 when there are none), margin (their
    difference; 0 unless both kinds are there), desirable and
    undesirable (counts), rows.
    """
    try:
        rule = KTO_LOSSES[loss_type]
    except KeyError:
        raise ValueError(f"unknown KTO loss_type {loss_type!r}; choose from {sorted(KTO_LOSSES)}") from None
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if desirable_weight < 0 or undesirable_weight < 0:
        raise ValueError(f"desirable/undesirable weights must be >= 0, got {desirable_weight}, {undesirable_weight}")
    if logps.dim() != 1 or logps.shape != ref_logps.shape or logps.shape != desirable.shape:
        raise ValueError(
            f"logps, ref_logps and desirable must all be [rows], got {tuple(logps.shape)}, "
            f"{tuple(ref_logps.shape)}, {tuple(desirable.shape)}"
        )
    z0 = torch.as_tensor(kl, dtype=logps.dtype, device=logps.device).detach()
    ratio = logps - ref_logps.detach()
    good = desirable.to(torch.bool)
    per_row = torch.where(
        good,
        desirable_weight * rule.desirable(ratio, z0, beta),
        undesirable_weight * rule.undesirable(ratio, z0, beta),
    )
    n = torch.as_tensor(float(per_row.numel()) if normalizer is None else normalizer, dtype=per_row.dtype)
    if n.item() <= 0:
        raise ValueError("the KTO normalizer is 0: no completions")
    loss = per_row.sum() / n.to(per_row.device) * loss_scale
    with torch.no_grad():
        rewards = beta * ratio.detach()
        n_good, n_bad = int(good.sum().item()), int((~good).sum().item())
        metrics = {
            "loss": loss.item(),
            "kl": z0.item() if rule.uses_reference_point else 0.0,
            "rewards/chosen": rewards[good].mean().item() if n_good else 0.0,
            "rewards/rejected": rewards[~good].mean().item() if n_bad else 0.0,
            "margin": rewards[good].mean().item() - rewards[~good].mean().item() if n_good and n_bad else 0.0,
            "desirable": float(n_good),
            "undesirable": float(n_bad),
            "rows": per_row.numel(),
        }
    return loss, metrics

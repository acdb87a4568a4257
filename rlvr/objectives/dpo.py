"""Direct preference objectives (DPO, robust DPO, IPO, hinge, SimPO) on sequence logprobs, as pure tensor functions.

Inputs, one entry per preference pair [P]: the policy's summed logprob of the chosen and of the
rejected completion (response tokens only), and the same two under the reference policy, or None
for reference-free DPO (the reference logprobs are taken as 0, so the implicit reward is β·log π).

With the log-ratios ρ_c = log π(c) - log π_ref(c) and ρ_r likewise, Δ = ρ_c - ρ_r, the per-pair
losses are a table (`PAIR_LOSSES`); each entry declares whether it takes label smoothing ε and
whether it needs the completions' token counts:

- "sigmoid": -(1-ε)·log σ(βΔ) - ε·log σ(-βΔ)  (DPO; with ε > 0 the conservative cDPO of
  Mitchell 2023, TRL's sigmoid loss before 1.0);
- "robust": (-(1-ε)·log σ(βΔ) + ε·log σ(-βΔ)) / (1-2ε), ε < 0.5  (rDPO, Chowdhury et al. 2024;
  TRL's "robust", whose `label_smoothing` means this);
- "ipo": (Δ' - 1/(2β))² with Δ' = ρ_c/n_c - ρ_r/n_r, the log-ratios per completion token
  (Azar et al. 2023, Eq. 17, length-normalized as TRL does; pass token counts of 1 for the
  paper's unnormalized form);
- "hinge": max(0, 1 - βΔ)  (SLiC, Zhao et al. 2023; TRL's "hinge");
- "simpo": the sigmoid loss on Δ' - gamma/β, Δ' per completion token as IPO's, with the target margin
  gamma (`gamma`): -(1-ε)·log σ(βΔ' - gamma) - ε·log σ(gamma - βΔ')  (Meng et al. 2024, Eq. 6; reference-free
  by definition, as rlvr.objectives.preference.cpo_loss uses it; TRL's CPOTrainer "simpo").

The loss is the sum over pairs / `normalizer` (None = this batch's number of pairs): pass the
global pair count and the micro-batch losses add up to the full-batch loss exactly; under DDP also
`loss_scale=world_size`, as `rlvr.objectives.grpo.policy_loss` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["PAIR_LOSSES", "PairLoss", "dpo_loss"]


@dataclass(frozen=True)
class PairLoss:
    """One preference loss: (Δ [P], β, ε) -> per-pair loss [P], and what it can take."""

    fn: Callable[[Tensor, float, float], Tensor]
    label_smoothing: bool = False  # accepts ε > 0
    per_token: bool = False  # divides each log-ratio by its completion's token count first
    margin: bool = False  # subtracts the target margin gamma/β from Δ first (accepts gamma)


def _sigmoid(delta: Tensor, beta: float, eps: float) -> Tensor:
    return -(1 - eps) * F.logsigmoid(beta * delta) - eps * F.logsigmoid(-beta * delta)


def _robust(delta: Tensor, beta: float, eps: float) -> Tensor:
    if not 0 <= eps < 0.5:
        raise ValueError(f"the robust DPO loss needs label_smoothing in [0, 0.5), got {eps}")
    return (-(1 - eps) * F.logsigmoid(beta * delta) + eps * F.logsigmoid(-beta * delta)) / (1 - 2 * eps)


def _ipo(delta: Tensor, beta: float, eps: float) -> Tensor:
    return (delta - 1 / (2 * beta)) ** 2


def _hinge(delta: Tensor, beta: float, eps: float) -> Tensor:
    return torch.relu(1 - beta * delta)


PAIR_LOSSES: dict[str, PairLoss] = {
    "sigmoid": PairLoss(_sigmoid, label_smoothing=True),
    "robust": PairLoss(_robust, label_smoothing=True),
    "ipo": PairLoss(_ipo, per_token=True),
    "hinge": PairLoss(_hinge),
    "simpo": PairLoss(_sigmoid, label_smoothing=True, per_token=True, margin=True),
}


def _pair_loss(loss_type: str, label_smoothing: float, gamma: float, tokens_given: bool) -> PairLoss:
    try:
        rule = PAIR_LOSSES[loss_type]
    except KeyError:
        raise ValueError(f"unknown DPO loss_type {loss_type!r}; choose from {sorted(PAIR_LOSSES)}") from None
    if label_smoothing and not rule.label_smoothing:
        raise ValueError(f"the {loss_type} loss takes no label_smoothing (got {label_smoothing})")
    if gamma and not rule.margin:
        raise ValueError(f"the {loss_type} loss takes no target margin gamma (got {gamma})")
    if rule.per_token and not tokens_given:
        raise ValueError(f"the {loss_type} loss needs chosen_tokens and rejected_tokens (completion token counts)")
    return rule


def dpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    ref_chosen_logps: Tensor | None = None,
    ref_rejected_logps: Tensor | None = None,
    *,
    loss_type: str = "sigmoid",
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    gamma: float = 0.0,
    chosen_tokens: Tensor | None = None,
    rejected_tokens: Tensor | None = None,
    normalizer: Tensor | float | None = None,
    loss_scale: float = 1.0,
) -> tuple[Tensor, dict[str, float]]:
    """The preference loss `PAIR_LOSSES[loss_type]` over P pairs. Returns (loss, metrics).

    - chosen_logps, rejected_logps [P]: summed response logprobs under the policy (with gradient).
    - ref_chosen_logps, ref_rejected_logps [P]: the same under the reference (no gradient), or
      both None for reference-free DPO.
    - beta: β > 0 (DPO's inverse temperature; IPO's τ). label_smoothing: ε (sigmoid, robust, simpo).
    - gamma: SimPO's target margin gamma ("simpo" only).
    - chosen_tokens, rejected_tokens [P]: response token counts; needed by "ipo" and "simpo".
    - normalizer: the denominator of the sum over pairs; None = P.

    Metrics (plain floats over this batch's pairs): loss (loss_scale included), rewards/chosen and
    rewards/rejected (mean β·ρ, the implicit rewards), accuracy (share of pairs whose chosen
    reward is strictly higher), margin (mean reward difference), pairs.
    """
    if beta <= 0:
        raise ValueError(f"beta must be > 0, got {beta}")
    if (ref_chosen_logps is None) != (ref_rejected_logps is None):
        raise ValueError("give both ref_chosen_logps and ref_rejected_logps, or neither (reference-free)")
    if chosen_logps.dim() != 1 or chosen_logps.shape != rejected_logps.shape:
        raise ValueError(
            f"chosen/rejected logps must both be [pairs], got {tuple(chosen_logps.shape)} "
            f"and {tuple(rejected_logps.shape)}"
        )
    rule = _pair_loss(loss_type, label_smoothing, gamma, chosen_tokens is not None and rejected_tokens is not None)
    chosen_ratio, rejected_ratio = chosen_logps, rejected_logps
    if ref_chosen_logps is not None:
        chosen_ratio = chosen_logps - ref_chosen_logps.detach()
        rejected_ratio = rejected_logps - ref_rejected_logps.detach()
    if rule.per_token:
        delta = chosen_ratio / chosen_tokens.to(chosen_ratio.dtype).clamp(min=1) - rejected_ratio / rejected_tokens.to(
            rejected_ratio.dtype
        ).clamp(min=1)
    else:
        delta = chosen_ratio - rejected_ratio
    if rule.margin:
        delta = delta - gamma / beta
    per_pair = rule.fn(delta, beta, label_smoothing)
    if normalizer is None:
        normalizer = float(per_pair.numel())
    normalizer = torch.as_tensor(normalizer, dtype=per_pair.dtype, device=per_pair.device)
    if normalizer.item() <= 0:
        raise ValueError("the DPO normalizer is 0: no preference pairs")
    loss = per_pair.sum() / normalizer * loss_scale
    with torch.no_grad():
        chosen_rewards, rejected_rewards = beta * chosen_ratio.detach(), beta * rejected_ratio.detach()
        metrics = {
            "loss": loss.item(),
            "rewards/chosen": chosen_rewards.mean().item(),
            "rewards/rejected": rejected_rewards.mean().item(),
            "accuracy": (chosen_rewards > rejected_rewards).to(per_pair.dtype).mean().item(),
            "margin": (chosen_rewards - rejected_rewards).mean().item(),
            "pairs": per_pair.numel(),
        }
    return loss, metrics

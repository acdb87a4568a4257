"""The per-token policy-gradient terms of GRPO and its family (PPO clip, CISPO, SAPO, GMPO), REINFORCE++'s
token advantages and on-policy distillation's, as pure tensor functions; rlvr.objectives.grpo's tables use them.

Every term maps (logprobs [B, T] with grad, log-ratio to the old policy [B, T] or [B, 1], advantages
[B, 1] or [B, T], mask, `TermOptions`) to a `Term`: the per-token loss, before aggregation, and which
tokens were clipped low/high (for the metrics). With r = exp(log-ratio), A the advantage:

- "clip" (GRPO, DAPO, Dr. GRPO): -min(r·A, clip(r, 1-ε_low, 1+ε_high)·A). Clipped tokens get no gradient.
- "cispo" (MiniMax-M1, arXiv 2506.13585): -sg(min(r, 1+ε_high))·A·log π. The importance weight is
  clipped and detached, so EVERY token keeps its gradient ĉ·A·∇log π; no lower bound (as the paper
  and ScaleRL use it). TRL 1.16 writes the cap as `epsilon_high` itself (ScaleRL's ε_max, e.g. 5.0);
  rlvr keeps ε_high's meaning of every other loss and caps at 1+ε_high, the paper's form: TRL's
  `epsilon_high` = 1 + rlvr's `grpo.clip_eps_high`. The loss VALUE is TRL's too (ĉ·A·log π, not ĉ·A):
  only its gradient means anything.
- "sapo" (Soft Adaptive Policy Optimization, arXiv 2511.20347): -A·(4/τ)·σ(τ(r-1)), τ = τ_pos when
  A > 0 else τ_neg. A smooth gate instead of a hard clip: its gradient 4σ(1-σ)·r·A·∇log π is the
  plain policy gradient at r = 1 and fades as r leaves 1. TRL and the paper agree.
- "gmpo" (Geometric-Mean Policy Optimization, arXiv 2507.20673): one value per sequence,
  -A·exp(mean over its tokens of the clipped log-ratio), clipped per token in log space and by the sign
  of A (min for A > 0, max for A < 0): ε_low/ε_high are log-space bounds here, the ratio staying in
  (e^-ε_low, e^ε_high); the paper recommends 0.4 both sides. With `ratio_level="sequence"` the log-ratio
  is GSPO's mean already, and the term clips it as a whole. TRL 1.16 has it as
  trl.experimental.gmpo.GMPOTrainer; both follow the paper.

REINFORCE++ (arXiv 2501.03262): no critic and no group baseline; a completion's reward is paid at its
last token and the per-token KL penalty -β·kl_t at every token, so a token's return is
r - β·Σ_{s≥t} kl_s (undiscounted), then every return is whitened over all real tokens of the GLOBAL batch:
(G - mean) / (std + eps). "-baseline" subtracts each group's mean reward first (REINFORCE++-baseline,
the variant its authors recommend with several samples per prompt). The KL then lives in the reward,
not in the loss.

On-policy distillation (prime-rl, Tinker, TRL's GKD with λ = 1, β = 1): the student samples, the
teacher scores each sampled token, and A_t = log π_teacher(y_t) - log π_student(y_t). Through the
on-policy clipped term (r = 1) the per-token loss is log π_s - log π_t, the sampled-token estimate of
the reverse KL(π_s || π_t), and its gradient (log π_s - log π_t)·∇log π_s has the exact reverse KL's
gradient as its expectation: GKD's full-vocabulary term, estimated from the sampled token.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rlvr.objectives.masked import masked_mean, masked_sum

__all__ = [
    "TERMS",
    "Term",
    "TermOptions",
    "distill_advantages",
    "whitened_token_returns",
]


@dataclass(frozen=True)
class TermOptions:
    """What the terms may read besides the tensors: the clip bounds and SAPO's gate temperatures."""

    eps_low: float = 0.2
    eps_high: float = 0.28
    sapo_tau_pos: float = 1.0
    sapo_tau_neg: float = 1.05


@dataclass(frozen=True)
class Term:
    """A term's per-token loss ([B, T], or [B, 1] for one value per sequence) and its clipped tokens."""

    per_token: Tensor
    clipped_low: Tensor  # bool, broadcastable to [B, T]
    clipped_high: Tensor


def _none(like: Tensor) -> Tensor:
    return torch.zeros_like(like, dtype=torch.bool)


def _clip(logprobs: Tensor, log_ratio: Tensor, adv: Tensor, mask: Tensor, o: TermOptions) -> Term:
    ratio = log_ratio.exp()
    clipped = ratio.clamp(1 - o.eps_low, 1 + o.eps_high)
    return Term(
        -torch.min(ratio * adv, clipped * adv),
        (ratio < 1 - o.eps_low) & (adv < 0),
        (ratio > 1 + o.eps_high) & (adv > 0),
    )


def _cispo(logprobs: Tensor, log_ratio: Tensor, adv: Tensor, mask: Tensor, o: TermOptions) -> Term:
    ratio = log_ratio.exp()
    weight = ratio.clamp(max=1 + o.eps_high).detach()
    return Term(-weight * adv * logprobs, _none(ratio), (ratio > 1 + o.eps_high) & (adv > 0))


def _sapo(logprobs: Tensor, log_ratio: Tensor, adv: Tensor, mask: Tensor, o: TermOptions) -> Term:
    ratio = log_ratio.exp()
    tau = torch.where(adv > 0, o.sapo_tau_pos, o.sapo_tau_neg).to(ratio.dtype)
    gate = torch.sigmoid(tau * (ratio - 1)) * 4 / tau
    return Term(-gate * adv, _none(ratio), _none(ratio))


def _gmpo(logprobs: Tensor, log_ratio: Tensor, adv: Tensor, mask: Tensor, o: TermOptions) -> Term:
    bounded = log_ratio.clamp(-o.eps_low, o.eps_high)
    clipped = torch.where(adv > 0, torch.minimum(log_ratio, bounded), torch.maximum(log_ratio, bounded))
    geometric = masked_mean(clipped.expand_as(mask), mask, dim=-1).unsqueeze(-1).exp()  # [B, 1]
    return Term(-geometric * adv, (log_ratio < -o.eps_low) & (adv < 0), (log_ratio > o.eps_high) & (adv > 0))


#: name -> per-token term; rlvr.objectives.grpo.LOSSES pairs each with an aggregation
TERMS: dict[str, Callable[[Tensor, Tensor, Tensor, Tensor, TermOptions], Term]] = {
    "clip": _clip,
    "cispo": _cispo,
    "sapo": _sapo,
    "gmpo": _gmpo,
}


def whitened_token_returns(
    rewards: Tensor,
    mask: Tensor,
    kl: Tensor | None = None,
    beta: float = 0.0,
    *,
    eps: float = 1e-4,
    total: Callable[[Tensor], Tensor] = lambda t: t,
) -> Tensor:
    """REINFORCE++ advantages [B, T] from one reward per sequence [B] (already baselined or not): the
    return-to-go r - β·Σ_{s≥t} kl_s over real tokens, whitened over every real token of the batch.
    `total` sums a tensor over data-parallel ranks (the identity on one process), so the mean and
    std are the global batch's; the std is the population one (divided by the token count)."""
    mask = mask.to(rewards.dtype)
    returns = rewards.reshape(-1, 1).expand_as(mask).clone()
    if kl is not None and beta:
        penalty = (kl.to(rewards.dtype) * mask).flip(-1).cumsum(-1).flip(-1)  # Σ_{s≥t} kl_s
        returns = returns - beta * penalty
    sums = total(torch.stack([masked_sum(returns, mask), mask.sum()]))
    mean = sums[0] / sums[1].clamp(min=1)
    variance = total(masked_sum((returns - mean) ** 2, mask).reshape(1))[0] / sums[1].clamp(min=1)
    return (returns - mean) / (variance.sqrt() + eps) * mask


def distill_advantages(student_logprobs: Tensor, teacher_logprobs: Tensor) -> Tensor:
    """On-policy distillation's per-token advantages [B, T]: log π_teacher - log π_student of each sampled
    token, detached (minus the per-token reverse KL estimate; see the module docstring)."""
    return (teacher_logprobs - student_logprobs).detach()

"""The tensor math of GRPO and its variants: advantages, log-probs, KL, clipped policy loss, aggregation.

Pure functions on tensors — no model, no I/O — so every formula can be checked by hand (see
tests/test_grpo.py). Variants are entries in small tables (`ADVANTAGES`, `LOSSES`,
`KL_ESTIMATORS`, `RATIOS`), never if-chains over names. The family's per-token terms (CISPO, SAPO,
GMPO), REINFORCE++'s token advantages and on-policy distillation's live in rlvr.objectives.grpo_family,
with where rlvr follows TRL and where the papers.

Shapes: `G` groups (prompts) × `n` completions per group for rewards; `B = G*n` sequences × `T`
completion positions for per-token tensors, prompt-major (sequence `g*n + j` is completion `j` of
prompt `g`). `mask` is 1 on real completion tokens and 0 on padding (and on anything the trainer
chooses not to learn from, e.g. truncated completions).

Data parallelism: a rank holds whole groups (see `rlvr.distributed.shard_groups`), so
advantages are exact per rank (except "batch", whose std needs the whole batch: compute it on the
gathered rewards; and REINFORCE++'s token whitening, which sums over ranks through `total`). The loss
aggregations take an explicit `normalizer`; pass the GLOBAL one
(`loss_normalizer` summed over ranks) and `loss_scale=world_size`: DDP averages gradients over
ranks, so the mean over ranks of `world_size * local_sum / global_normalizer` is exactly
`global_sum / global_normalizer`, the full-batch loss. Micro-batches on one rank work the same way:
with the global normalizer, their losses simply add up.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from rlvr.objectives.grpo_family import TERMS, TermOptions, whitened_token_returns
from rlvr.objectives.masked import masked_mean, masked_sum

__all__ = [
    "ADVANTAGES",
    "KL_ESTIMATORS",
    "LOSSES",
    "RATIOS",
    "Advantage",
    "Loss",
    "group_advantages",
    "loss_normalizer",
    "masked_mean",
    "masked_sum",
    "overlong_penalty",
    "policy_loss",
    "token_advantages",
    "truncated_importance_weights",
    "zero_variance_groups",
]

#: added to the std before dividing, as in TRL and the DeepSeekMath implementation (a group
#: whose rewards are all equal gets advantages of exactly 0, not NaN).
STD_EPS = 1e-4


# ---------------------------------------------------------------- helpers


def _check_groups(rewards: Tensor, minimum: int) -> None:
    if rewards.dim() != 2:
        raise ValueError(f"rewards must be [groups, completions_per_group], got shape {tuple(rewards.shape)}")
    if rewards.shape[1] < minimum:
        raise ValueError(f"this advantage needs at least {minimum} completions per group, got {rewards.shape[1]}")


# ---------------------------------------------------------------- advantages: Tensor[G, n] -> Tensor[G, n]


def _grpo_advantages(rewards: Tensor) -> Tensor:
    """(r - group mean) / (group std + eps); std with Bessel's correction (torch's default, as TRL)."""
    _check_groups(rewards, 2)
    return (rewards - rewards.mean(1, keepdim=True)) / (rewards.std(1, keepdim=True) + STD_EPS)


def _dr_grpo_advantages(rewards: Tensor) -> Tensor:
    """r - group mean. Dr. GRPO drops the std: dividing by it up-weights near-uniform groups."""
    _check_groups(rewards, 1)
    return rewards - rewards.mean(1, keepdim=True)


def _rloo_advantages(rewards: Tensor) -> Tensor:
    """r_i - mean of the OTHER n-1 rewards of the group (leave-one-out baseline, unbiased)."""
    _check_groups(rewards, 2)
    n = rewards.shape[1]
    return rewards - (rewards.sum(1, keepdim=True) - rewards) / (n - 1)


def _batch_advantages(rewards: Tensor) -> Tensor:
    """(r - group mean) / (std of all rewards in the batch + eps): TRL's scale_rewards="batch".
    Under data parallelism give it the gathered rewards of every rank."""
    _check_groups(rewards, 1)
    if rewards.numel() < 2:
        raise ValueError("batch-normalized advantages need at least 2 rewards in the batch")
    return (rewards - rewards.mean(1, keepdim=True)) / (rewards.std() + STD_EPS)


def _raw_rewards(rewards: Tensor) -> Tensor:
    """r itself: REINFORCE++ keeps no group baseline (its whitening over the batch is the baseline)."""
    _check_groups(rewards, 1)
    return rewards


@dataclass(frozen=True)
class Advantage:
    """One advantage kind: group rewards [G, n] -> one value per completion [G, n]; `per_token` kinds
    (REINFORCE++) turn those values into per-token advantages once the batch is packed: the KL penalty
    folded into the reward, then whitened over the batch's tokens (`token_advantages`)."""

    fn: Callable[[Tensor], Tensor]
    per_token: bool = False


ADVANTAGES: dict[str, Advantage] = {
    "grpo": Advantage(_grpo_advantages),
    "dr_grpo": Advantage(_dr_grpo_advantages),
    "rloo": Advantage(_rloo_advantages),
    "batch": Advantage(_batch_advantages),
    "reinforce_pp": Advantage(_raw_rewards, per_token=True),
    "reinforce_pp_baseline": Advantage(_dr_grpo_advantages, per_token=True),
}


def group_advantages(rewards: Tensor, kind: str = "grpo") -> Tensor:
    """Advantages [G, n] of `rewards` [G, n] (one row per prompt) by the method `kind` in
    `ADVANTAGES`. Flatten with `.reshape(-1)` to get one advantage per sequence, prompt-major. A
    `per_token` kind gives the per-completion value `token_advantages` starts from."""
    try:
        fn = ADVANTAGES[kind].fn
    except KeyError:
        raise ValueError(f"unknown advantage kind {kind!r}; choose from {sorted(ADVANTAGES)}") from None
    return fn(rewards.float())


def token_advantages(
    values: Tensor,
    mask: Tensor,
    kl: Tensor | None = None,
    beta: float = 0.0,
    total: Callable[[Tensor], Tensor] = lambda t: t,
) -> Tensor:
    """A `per_token` kind's advantages [B, T] from its per-completion `values` [B] (group_advantages,
    flattened): REINFORCE++'s return-to-go with the per-token `kl` [B, T] (to the reference, under the
    sampling policy) times β folded in, whitened over every real token (`total` sums over ranks)."""
    return whitened_token_returns(values.reshape(-1), mask, kl, beta, eps=STD_EPS, total=total)


def zero_variance_groups(rewards: Tensor, atol: float = 1e-6) -> Tensor:
    """BoolTensor[G]: groups whose n rewards are all equal. Their advantages are 0 under every
    kind above, so they carry no learning signal: dynamic sampling (DAPO) drops and refills them,
    and a batch made only of them is why "the loss is 0"."""
    return (rewards.max(1).values - rewards.min(1).values) <= atol


# ---------------------------------------------------------------- log-probs and entropy: rlvr.objectives.logprobs

# ---------------------------------------------------------------- KL estimators of KL(pi || ref), per token


def _kl_k1(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """log pi - log ref: unbiased, high variance, can be negative per token."""
    return logprobs - ref_logprobs


def _kl_k2(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """(log pi - log ref)^2 / 2: biased, low variance, non-negative."""
    return 0.5 * (logprobs - ref_logprobs) ** 2


def _kl_k3(logprobs: Tensor, ref_logprobs: Tensor) -> Tensor:
    """exp(ref - pi) - (ref - pi) - 1: unbiased and non-negative (Schulman's k3; GRPO's choice)."""
    delta = ref_logprobs - logprobs
    return delta.exp() - delta - 1


KL_ESTIMATORS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"k1": _kl_k1, "k2": _kl_k2, "k3": _kl_k3}


# ---------------------------------------------------------------- importance ratios: [B, T] -> [B, T] or [B, 1]


def _token_log_ratio(log_ratio: Tensor, mask: Tensor) -> Tensor:
    return log_ratio


def _sequence_log_ratio(log_ratio: Tensor, mask: Tensor) -> Tensor:
    """GSPO: the length-normalized sequence log-ratio, mean over the completion's tokens, one per
    sequence ([B, 1]); every token of a sequence shares it, so a sequence is clipped as a whole."""
    return masked_mean(log_ratio, mask, dim=-1).unsqueeze(-1)


RATIOS: dict[str, Callable[[Tensor, Tensor], Tensor]] = {"token": _token_log_ratio, "sequence": _sequence_log_ratio}


def truncated_importance_weights(old_logprobs: Tensor, behavior_logprobs: Tensor, cap: float | None = 2.0) -> Tensor:
    """min(exp(old - behavior), cap), detached: corrects for the sampler (vLLM) and the trainer
    disagreeing about the probability of the sampled tokens (different kernels, precision, or
    slightly stale weights). `old` = the trainer's logprobs at sampling time, `behavior` = the
    sampler's. Truncating at `cap` bounds the variance (TIS; TRL's token_truncate, default cap 3)."""
    weights = (old_logprobs - behavior_logprobs).detach().exp()
    return weights if cap is None else weights.clamp(max=cap)


# ---------------------------------------------------------------- aggregations of per-token losses


def _grpo_normalizer(mask: Tensor, max_completion_length: int | None) -> Tensor:
    return torch.tensor(float(mask.shape[0]), device=mask.device)


def _dapo_normalizer(mask: Tensor, max_completion_length: int | None) -> Tensor:
    return mask.sum().float()


def _dr_grpo_normalizer(mask: Tensor, max_completion_length: int | None) -> Tensor:
    if not max_completion_length:
        raise ValueError("the dr_grpo loss needs max_completion_length (its constant normalizer)")
    return torch.tensor(float(mask.shape[0] * max_completion_length), device=mask.device)


def loss_normalizer(loss_type: str, mask: Tensor, max_completion_length: int | None = None) -> Tensor:
    """This batch's denominator for `loss_type`: number of sequences (grpo), number of completion
    tokens (dapo), sequences × max_completion_length (dr_grpo). Under data parallelism, sum it over
    ranks (`rlvr.distributed.all_reduce_sum`) and pass that as `policy_loss(normalizer=...)`."""
    return LOSSES[loss_type].normalizer(mask, max_completion_length).float()


def _grpo_aggregate(per_token: Tensor, mask: Tensor, normalizer: Tensor) -> Tensor:
    """Mean over each sequence's tokens, then sum over sequences / normalizer (= number of
    sequences): every sequence weighs the same, whatever its length (GRPO paper)."""
    return masked_mean(per_token, mask, dim=-1).sum() / normalizer


def _sum_aggregate(per_token: Tensor, mask: Tensor, normalizer: Tensor) -> Tensor:
    """Sum over all tokens / normalizer. dapo: normalizer = number of tokens (every token weighs
    the same); dr_grpo: a constant (sequences × max length), so no length bias either way."""
    return masked_sum(per_token, mask) / normalizer


@dataclass(frozen=True)
class Loss:
    """One loss_type: its per-token term (rlvr.objectives.grpo_family.TERMS), how the per-token losses
    are aggregated, and the aggregation's local denominator (sum it over ranks for the global one)."""

    term: str
    aggregate: Callable[[Tensor, Tensor, Tensor], Tensor]
    normalizer: Callable[[Tensor, int | None], Tensor]


LOSSES: dict[str, Loss] = {
    "grpo": Loss("clip", _grpo_aggregate, _grpo_normalizer),
    "dapo": Loss("clip", _sum_aggregate, _dapo_normalizer),
    "dr_grpo": Loss("clip", _sum_aggregate, _dr_grpo_normalizer),
    # the aggregations the papers (and TRL) give them: CISPO a token mean, SAPO and GMPO a mean per sequence
    "cispo": Loss("cispo", _sum_aggregate, _dapo_normalizer),
    "sapo": Loss("sapo", _grpo_aggregate, _grpo_normalizer),
    "gmpo": Loss("gmpo", _grpo_aggregate, _grpo_normalizer),
}


# ---------------------------------------------------------------- the policy loss


def policy_loss(
    logprobs: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    old_logprobs: Tensor | None = None,
    behavior_logprobs: Tensor | None = None,
    ref_logprobs: Tensor | None = None,
    loss_type: str = "grpo",
    ratio_level: str = "token",
    clip_eps_low: float = 0.2,
    clip_eps_high: float = 0.2,
    tis_cap: float | None = 2.0,
    sapo_tau_pos: float = 1.0,
    sapo_tau_neg: float = 1.05,
    beta: float = 0.0,
    kl_estimator: str = "k3",
    max_completion_length: int | None = None,
    normalizer: Tensor | float | None = None,
    loss_scale: float = 1.0,
) -> tuple[Tensor, dict[str, float]]:
    """The GRPO surrogate of `loss_type`: its term, aggregated, both by `LOSSES[loss_type]`. Returns (loss, metrics).

    Per token: ratio = exp(logprobs - old_logprobs) (`ratio_level="sequence"`: GSPO's
    length-normalized sequence ratio), loss_t = -min(ratio·A, clip(ratio, 1-eps_low, 1+eps_high)·A)
    (clip-higher: `clip_eps_high` > `clip_eps_low` leaves room to raise unlikely tokens; cispo, sapo
    and gmpo: their terms in rlvr.objectives.grpo_family, SAPO's gate temperatures τ±), times the
    truncated importance weight when `behavior_logprobs` (the sampler's) are given, plus β·KL to
    `ref_logprobs` with `KL_ESTIMATORS[kl_estimator]`.

    - logprobs [B, T]: current policy (with grad), from `rlvr.objectives.logprobs.token_logprobs` at the
      sampling temperature.
    - advantages [B] (one per sequence) or [B, T].
    - old_logprobs [B, T]: the trainer's logprobs at sampling time (μ > 1 inner iterations, or with
      TIS); None means on-policy: `logprobs.detach()`, so the ratio is 1 and the gradient is A·∇logπ.
    - ref_logprobs: needed only if beta > 0 (beta 0, the default, means no reference model at all).
    - normalizer: the aggregation's denominator; None = this batch's own `loss_normalizer`. Under
      data parallelism pass the global one and `loss_scale=world_size` (see the module docstring).

    Metrics (plain floats over this batch's real tokens): loss (the value returned, loss_scale
    included, so that the MEAN over ranks of the ranks' losses is the full-batch loss), clip_fraction,
    clip_low_fraction, clip_high_fraction, ratio_mean, ratio_max, kl (if beta > 0 or ref given),
    tis_weight_mean, tis_truncated_fraction and sampler_logprob_gap (with behavior_logprobs), advantage_mean, tokens.
    """
    if loss_type not in LOSSES:
        raise ValueError(f"unknown loss_type {loss_type!r}; choose from {sorted(LOSSES)}")
    if ratio_level not in RATIOS:
        raise ValueError(f"unknown ratio_level {ratio_level!r}; choose from {sorted(RATIOS)}")
    if beta and ref_logprobs is None:
        raise ValueError("beta > 0 needs ref_logprobs (the reference model's logprobs)")
    mask = mask.to(logprobs.dtype)
    if advantages.dim() == 1:
        advantages = advantages.unsqueeze(-1)
    advantages = advantages.to(logprobs.dtype)
    if old_logprobs is None:
        old_logprobs = logprobs.detach()

    log_ratio = RATIOS[ratio_level](logprobs - old_logprobs, mask)
    ratio = log_ratio.exp()
    options = TermOptions(clip_eps_low, clip_eps_high, sapo_tau_pos, sapo_tau_neg)
    rule = LOSSES[loss_type]
    term = TERMS[rule.term](logprobs, log_ratio, advantages, mask, options)
    per_token = term.per_token

    metrics: dict[str, float] = {}
    if behavior_logprobs is not None:
        weights = truncated_importance_weights(old_logprobs, behavior_logprobs, tis_cap)
        per_token = per_token * weights
        metrics["tis_weight_mean"] = masked_mean(weights, mask).item()
        truncated = (weights >= tis_cap) if tis_cap is not None else torch.zeros_like(weights, dtype=torch.bool)
        metrics["tis_truncated_fraction"] = masked_mean(truncated.to(mask.dtype), mask).item()
        gap = (old_logprobs - behavior_logprobs).abs()  # the sampler/learner mismatch on the sampled tokens
        metrics["sampler_logprob_gap"] = masked_mean(gap.detach(), mask).item()

    if ref_logprobs is not None:
        kl = KL_ESTIMATORS[kl_estimator](logprobs, ref_logprobs)
        if beta:
            per_token = per_token + beta * kl
        metrics["kl"] = masked_mean(kl.detach(), mask).item()

    if normalizer is None:
        normalizer = loss_normalizer(loss_type, mask, max_completion_length)
    normalizer = torch.as_tensor(normalizer, dtype=per_token.dtype, device=per_token.device)
    loss = rule.aggregate(per_token, mask, normalizer)

    with torch.no_grad():
        full_ratio = ratio.expand_as(mask)
        low = term.clipped_low.expand_as(mask).to(mask.dtype)
        high = term.clipped_high.expand_as(mask).to(mask.dtype)
        metrics.update(
            loss=loss.item() * loss_scale,
            clip_low_fraction=masked_mean(low, mask).item(),
            clip_high_fraction=masked_mean(high, mask).item(),
            clip_fraction=masked_mean(low + high, mask).item(),
            ratio_mean=masked_mean(full_ratio, mask).item(),
            ratio_max=(full_ratio.masked_fill(mask == 0, -math.inf).max().item() if mask.any() else 1.0),
            advantage_mean=masked_mean(advantages.expand_as(mask), mask).item(),
            tokens=mask.sum().item(),
        )
    return loss * loss_scale, metrics


# ---------------------------------------------------------------- reward shaping


def overlong_penalty(lengths: Tensor, max_length: int, buffer: int) -> Tensor:
    """DAPO's soft overlong punishment: 0 up to `max_length - buffer` tokens, then falling
    linearly to -1 at `max_length` (and -1 beyond). Add it to the rewards of truncation-prone runs
    instead of (or besides) masking truncated completions."""
    if buffer <= 0:
        raise ValueError("buffer must be > 0")
    over = lengths.float() - (max_length - buffer)
    return -(over / buffer).clamp(min=0.0, max=1.0)

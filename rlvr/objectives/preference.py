"""Reference-free preference objectives (CPO, SimPO, ORPO): a pair loss on the policy's own logprobs,
plus an NLL term on the chosen completions, as pure tensor functions.

Inputs, one entry per preference pair [P]: the policy's summed response logprob of the chosen and of the
rejected completion, and their response token counts. No reference model.

- `cpo_loss`: a pair loss of `rlvr.objectives.dpo.PAIR_LOSSES` with no reference (Δ = log π(c) - log π(r),
  or per token for "ipo" and "simpo"), plus `nll_weight` × the chosen completions' NLL.
  CPO (Xu et al. 2024) is "sigmoid" with nll_weight 1; SimPO (Meng et al. 2024) is "simpo" with
  nll_weight 0 (TRL's CPOTrainer with loss_type="simpo" and cpo_alpha=0; with cpo_alpha > 0 it is
  TRL's "CPO-SimPO").
- `orpo_loss`: NLL(chosen) + λ·mean(-log σ(log odds(c) - log odds(r))), the odds of a completion being
  p/(1-p) with p = exp(mean token logprob) (Hong et al. 2024, Eqs. 4-7). λ is `beta`, as in TRL.

The NLL term is a token mean: the chosen completions' summed logprobs over their total token count
(`token_normalizer`, None = this batch's), as TRL's CrossEntropyLoss computes it. Where TRL differs
from the papers, rlvr follows:
- CPO's paper writes the NLL as -E log π(y_w|x), a sum per sequence; TRL (and rlvr) take the token mean,
  which keeps `nll_weight` meaning the same thing whatever the completions' lengths (a summed NLL of a
  64-token answer would outweigh the pair loss ~64 times).
- ORPO's paper takes the NLL over the response tokens (Eq. 2); TRL 1.16's ORPOTrainer over the prompt
  and the response ("computed over the full prompt and response"). rlvr follows the paper: the prompt is
  given, not something to learn, as in rlvr's SFT. The two agree when the prompt is one token (nothing
  of it is predicted); tests/objectives compare them there.

The pair loss is a sum over pairs / `normalizer` (None = P), the NLL a sum over chosen tokens /
`token_normalizer`: pass the global counts and micro-batch losses add up to the full-batch loss; under
DDP also `loss_scale=world_size`, as rlvr.objectives.dpo does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from rlvr.objectives.dpo import dpo_loss

__all__ = ["chosen_nll", "cpo_loss", "log1mexp", "orpo_loss"]


def _normalizer(value: Tensor | float | None, default: float, like: Tensor, what: str) -> Tensor:
    out = torch.as_tensor(default if value is None else value, dtype=like.dtype, device=like.device)
    if out.item() <= 0:
        raise ValueError(f"the {what} normalizer is 0: nothing to average")
    return out


def chosen_nll(chosen_logps: Tensor, chosen_tokens: Tensor, token_normalizer: Tensor | float | None = None) -> Tensor:
    """-Σ chosen logprobs / the chosen completions' token count (None = this batch's): the token-mean NLL."""
    total = _normalizer(token_normalizer, float(chosen_tokens.sum().item()), chosen_logps, "NLL token")
    return -chosen_logps.sum() / total


def log1mexp(x: Tensor) -> Tensor:
    """log(1 - exp(x)) for x < 0, stable on both sides of -ln 2 (Mächler 2012)."""
    return torch.where(x < -math.log(2), torch.log1p(-torch.exp(x)), torch.log(-torch.expm1(x)))


def _check(chosen_logps: Tensor, rejected_logps: Tensor, chosen_tokens: Tensor, rejected_tokens: Tensor) -> None:
    shapes = {tuple(t.shape) for t in (chosen_logps, rejected_logps, chosen_tokens, rejected_tokens)}
    if chosen_logps.dim() != 1 or len(shapes) != 1:
        raise ValueError(f"chosen/rejected logps and token counts must all be [pairs], got shapes {sorted(shapes)}")


def cpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    chosen_tokens: Tensor,
    rejected_tokens: Tensor,
    *,
    loss_type: str = "sigmoid",
    beta: float = 0.1,
    label_smoothing: float = 0.0,
    gamma: float = 0.0,
    nll_weight: float = 1.0,
    normalizer: Tensor | float | None = None,
    token_normalizer: Tensor | float | None = None,
    loss_scale: float = 1.0,
) -> tuple[Tensor, dict[str, float]]:
    """CPO / SimPO: `dpo_loss` with no reference + nll_weight · `chosen_nll`. Returns (loss, metrics):
    dpo_loss's (loss_scale included) and nll (this batch's term, unweighted)."""
    _check(chosen_logps, rejected_logps, chosen_tokens, rejected_tokens)
    if nll_weight < 0:
        raise ValueError(f"nll_weight must be >= 0, got {nll_weight}")
    pair, metrics = dpo_loss(
        chosen_logps,
        rejected_logps,
        loss_type=loss_type,
        beta=beta,
        label_smoothing=label_smoothing,
        gamma=gamma,
        chosen_tokens=chosen_tokens,
        rejected_tokens=rejected_tokens,
        normalizer=normalizer,
    )
    nll = chosen_nll(chosen_logps, chosen_tokens, token_normalizer)
    loss = (pair + nll_weight * nll) * loss_scale if nll_weight else pair * loss_scale
    return loss, metrics | {"loss": loss.item(), "nll": nll.item()}


def orpo_loss(
    chosen_logps: Tensor,
    rejected_logps: Tensor,
    chosen_tokens: Tensor,
    rejected_tokens: Tensor,
    *,
    beta: float = 0.1,
    normalizer: Tensor | float | None = None,
    token_normalizer: Tensor | float | None = None,
    loss_scale: float = 1.0,
) -> tuple[Tensor, dict[str, float]]:
    """ORPO: chosen_nll + β · Σ -log σ(log odds ratio) / normalizer. Returns (loss, metrics): loss, nll,
    log_odds_ratio (mean), accuracy (share of pairs whose chosen mean token logprob is higher), pairs."""
    _check(chosen_logps, rejected_logps, chosen_tokens, rejected_tokens)
    if beta < 0:
        raise ValueError(f"beta must be >= 0, got {beta}")
    mean_chosen = chosen_logps / chosen_tokens.to(chosen_logps.dtype).clamp(min=1)
    mean_rejected = rejected_logps / rejected_tokens.to(rejected_logps.dtype).clamp(min=1)
    log_odds = (mean_chosen - mean_rejected) - (log1mexp(mean_chosen) - log1mexp(mean_rejected))
    odds_term = -F.logsigmoid(log_odds)
    pairs = _normalizer(normalizer, float(odds_term.numel()), odds_term, "ORPO pair")
    nll = chosen_nll(chosen_logps, chosen_tokens, token_normalizer)
    loss = (nll + beta * odds_term.sum() / pairs) * loss_scale
    with torch.no_grad():
        metrics = {
            "loss": loss.item(),
            "nll": nll.item(),
            "log_odds_ratio": log_odds.mean().item(),
            "accuracy": (mean_chosen > mean_rejected).to(log_odds.dtype).mean().item(),
            "pairs": odds_term.numel(),
        }
    return loss, metrics

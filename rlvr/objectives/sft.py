"""Supervised fine-tuning objective: masked token NLL of the response tokens, as a pure tensor function.

Inputs are per-token logprobs [rows, C] of the response positions (from
`rlvr.objectives.logprobs.token_logprobs` or `chunked_token_logprobs_and_entropy`, already shifted so
position t predicts token t) and a mask [rows, C] that is 1 on response tokens only: the prompt and
the padding are 0, so the loss never teaches the model to write its own prompt.

The reductions are a table (`REDUCTIONS`), each a numerator over a normalizer, like GRPO's losses:

- "token": sum of -logp over every response token of the batch / number of response tokens
  (TRL's SFT default; long responses weigh more);
- "sequence": each row's mean -logp over its own tokens, summed / number of rows that have a
  response token (every example weighs the same, whatever its length).

Micro-batches and ranks: pass the GLOBAL `normalizer` (`sft_normalizer` summed over micro-batches
and ranks) and the micro-batch losses add up to the full-batch loss exactly; under DDP also pass
`loss_scale=world_size` (DDP averages gradients), as `rlvr.objectives.grpo.policy_loss` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = ["REDUCTIONS", "Reduction", "sft_loss", "sft_normalizer"]


@dataclass(frozen=True)
class Reduction:
    """How one reduction sums the per-token NLL and what it divides by (per batch, before summing)."""

    numerator: Callable[[Tensor, Tensor], Tensor]  # (nll [rows, C], mask [rows, C]) -> scalar
    normalizer: Callable[[Tensor], Tensor]  # mask [rows, C] -> scalar count


def _token_sum(nll: Tensor, mask: Tensor) -> Tensor:
    return (nll * mask).sum()


def _sequence_means(nll: Tensor, mask: Tensor) -> Tensor:
    # a row without response tokens contributes 0 (its count is clamped to 1) and is not counted below
    return ((nll * mask).sum(-1) / mask.sum(-1).clamp(min=1)).sum()


REDUCTIONS: dict[str, Reduction] = {
    "token": Reduction(_token_sum, lambda mask: mask.sum()),
    "sequence": Reduction(_sequence_means, lambda mask: (mask.sum(-1) > 0).sum()),
}


def _reduction(name: str) -> Reduction:
    try:
        return REDUCTIONS[name]
    except KeyError:
        raise ValueError(f"unknown SFT reduction {name!r}; choose from {sorted(REDUCTIONS)}") from None


def sft_normalizer(mask: Tensor, reduction: str = "token") -> Tensor:
    """This batch's denominator for `reduction`: response tokens ("token") or rows with at least
    one response token ("sequence"). Sum it over micro-batches / ranks for the global one."""
    return _reduction(reduction).normalizer(mask).float()


def sft_loss(
    logprobs: Tensor,
    mask: Tensor,
    *,
    reduction: str = "token",
    normalizer: Tensor | float | None = None,
    loss_scale: float = 1.0,
) -> tuple[Tensor, dict[str, float]]:
    """Masked negative log-likelihood of the response tokens. Returns (loss, metrics).

    - logprobs [rows, C]: log p(token) of each position under the policy (with gradient).
    - mask [rows, C]: 1 on response tokens, 0 on prompt and padding.
    - reduction: a key of `REDUCTIONS` ("token" or "sequence").
    - normalizer: the denominator; None = this batch's own `sft_normalizer`. A batch whose
      normalizer is 0 (no response token at all) is an error, not a silent 0 loss.

    Metrics (plain floats over this batch): loss (loss_scale included), nll (mean -logp per
    response token), tokens, sequences (rows with a response token).
    """
    if logprobs.shape != mask.shape or logprobs.dim() != 2:
        raise ValueError(
            f"logprobs and mask must both be [rows, C], got {tuple(logprobs.shape)} and {tuple(mask.shape)}"
        )
    rule = _reduction(reduction)
    mask = mask.to(logprobs.dtype)
    nll = -logprobs
    if normalizer is None:
        normalizer = rule.normalizer(mask)
    normalizer = torch.as_tensor(normalizer, dtype=logprobs.dtype, device=logprobs.device)
    if normalizer.item() <= 0:
        raise ValueError("the SFT normalizer is 0: the batch has no response tokens (is the mask all prompt/padding?)")
    loss = rule.numerator(nll, mask) / normalizer * loss_scale
    with torch.no_grad():
        tokens = mask.sum()
        metrics = dict(
            loss=loss.item(),
            nll=((nll * mask).sum() / tokens.clamp(min=1)).item(),
            tokens=tokens.item(),
            sequences=(mask.sum(-1) > 0).sum().item(),
        )
    return loss, metrics

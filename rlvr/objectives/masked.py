"""Sums and means over the real tokens of [B, T] tensors (mask 1 = a real token), shared by the objectives."""

from __future__ import annotations

from torch import Tensor

__all__ = ["masked_mean", "masked_sum"]


def masked_sum(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Sum of `values` where `mask` is 1 (over `dim`, or everything)."""
    masked = values * mask
    return masked.sum() if dim is None else masked.sum(dim)


def masked_mean(values: Tensor, mask: Tensor, dim: int | None = None) -> Tensor:
    """Mean of `values` where `mask` is 1. An all-masked row gives 0 (its count is clamped to 1),
    so an empty completion contributes nothing instead of NaN."""
    count = mask.sum() if dim is None else mask.sum(dim)
    return masked_sum(values, mask, dim) / count.clamp(min=1)

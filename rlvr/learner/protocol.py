"""What an algorithm may call on the model it trains: the typed interface of rlvr.learner.policy.Policy."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol

import torch

from rlvr.distributed import DistContext
from rlvr.types import Rollout

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["Learner", "LossFn", "Packed"]

#: rows packed for the model (rlvr.learner.packing.pack): input_ids, attention_mask, completion, mask, ...
Packed = dict[str, torch.Tensor]
#: loss_fn(rows) -> (loss, metrics): the objective of one micro-batch of packed rows
LossFn = Callable[[slice], tuple[torch.Tensor, dict[str, float]]]


class Learner(Protocol):
    """The policy as an algorithm sees it: pack rollouts, take logprobs (with grad, frozen, or under the
    reference) or a scalar head's values, and take an optimizer step of a loss over micro-batches.
    Nothing else of it is theirs."""

    @property
    def ctx(self) -> DistContext: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase: ...

    def pack(self, rollouts: Sequence[Rollout], group_size: int) -> Packed: ...

    def micro_batches(self, t: Packed, *, whole_groups: bool = False) -> list[slice]: ...

    def logprobs(
        self, t: Packed, idx: slice, temperature: float = 1.0, *, entropy: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]: ...

    def reference_logprobs(self, t: Packed, idx: slice, temperature: float = 1.0) -> torch.Tensor: ...

    def frozen_logprobs(self, t: Packed, micro: list[slice], temperature: float = 1.0) -> torch.Tensor: ...

    def values(self, t: Packed, idx: slice) -> torch.Tensor: ...

    def step(self, micro: list[slice], loss_fn: LossFn | None) -> dict[str, float]: ...

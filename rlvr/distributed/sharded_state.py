"""Checkpoints of FSDP2-sharded models: stand-ins that gather the full weights and optimizer state
for rank 0 to write, and shard a saved optimizer state over the ranks again on resume."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rlvr.distributed.context import DistContext
from rlvr.distributed.wrapping import full_state_dict, unwrap_model

__all__ = ["checkpoint_state", "resumable_optimizer"]


class _FullWeights:
    """A model seen by `save_pretrained` with its gathered (unsharded) weights."""

    def __init__(self, model: nn.Module, state: dict[str, torch.Tensor]):
        self.model, self.state = model, state

    def save_pretrained(self, directory: Any, **kwargs: Any) -> None:
        self.model.save_pretrained(directory, state_dict=self.state, **kwargs)


class _FullOptimizerState:
    """An optimizer seen by checkpoints with its state in full (keyed by parameter names): FSDP2
    shards it, so saving gathers it and loading hands each rank its shard again."""

    def __init__(self, model: nn.Module, optimizer: torch.optim.Optimizer, state: dict | None = None):
        self.model, self.optimizer, self.state = model, optimizer, state

    def state_dict(self) -> dict:
        assert self.state is not None, "gathered by checkpoint_state() on every rank"
        return self.state

    def load_state_dict(self, state: dict) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(self.model, self.optimizer, state, options=StateDictOptions(full_state_dict=True))


def _sharded(model: nn.Module) -> bool:
    from torch.distributed.tensor import DTensor

    return any(isinstance(p, DTensor) for p in model.parameters())


def checkpoint_state(model: nn.Module, optimizer: torch.optim.Optimizer | None, ctx: DistContext) -> tuple[Any, Any]:
    """(model, optimizer) as `rlvr.train.checkpoint.save_checkpoint` should see them: the unwrapped model
    and the optimizer itself, or for FSDP2 stand-ins holding the gathered full weights and optimizer
    state, so that rank 0 alone can write a checkpoint any world size (and `rlvr eval`) can load.
    Gathering is a collective: call it on EVERY rank, then write on rank 0 only."""
    inner = unwrap_model(model)
    if not _sharded(inner):
        return inner, optimizer
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    weights = full_state_dict(model, ctx, to_cpu=True)
    state = (
        None
        if optimizer is None
        else get_optimizer_state_dict(
            inner, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )
    )
    return _FullWeights(inner, weights), _FullOptimizerState(inner, optimizer, state)


def resumable_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> Any:
    """What `rlvr.train.checkpoint.load_training_state` should load the saved optimizer state into: the
    optimizer itself, or for FSDP2 a stand-in that shards the full saved state over the ranks."""
    inner = unwrap_model(model)
    return _FullOptimizerState(inner, optimizer) if _sharded(inner) else optimizer

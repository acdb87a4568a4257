"""The policy wrapped for data-parallel training (DDP, FSDP2, none), unwrapped again, and its full
unsharded weights for the vLLM push."""

from __future__ import annotations

import torch
from torch import nn

from rlvr.distributed.context import DistContext
from rlvr.errors import InputError

__all__ = ["STRATEGIES", "full_state_dict", "unwrap_model", "wrap_model"]


def _wrap_none(model: nn.Module, ctx: DistContext) -> nn.Module:
    return model


def _wrap_ddp(model: nn.Module, ctx: DistContext) -> nn.Module:
    """Replicated weights, gradients averaged over ranks in backward. Frozen parameters (LoRA's
    base model) are left alone by DDP."""
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [ctx.local_rank] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(model.to(ctx.device), device_ids=device_ids)


def _wrap_fsdp2(model: nn.Module, ctx: DistContext) -> nn.Module:
    """Parameters, gradients and optimizer state sharded over ranks (torch's `fully_shard`), one
    FSDP unit per transformer block (the classes the model lists in `_no_split_modules`, e.g.
    LlamaDecoderLayer) plus the root. The module stays the same object; its parameters become
    DTensors — build the optimizer AFTER wrapping. Every rank must run the same number of forward
    passes: HF `generate` on an FSDP2 model needs `synced_gpus=True`."""
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError as error:  # torch < 2.6
        raise InputError(
            f"the fsdp2 strategy needs torch.distributed.fsdp.fully_shard (torch >= 2.6): {error}"
        ) from None
    model = model.to(ctx.device)
    block_names = set(getattr(model, "_no_split_modules", None) or ())
    for module in model.modules():
        if type(module).__name__ in block_names:
            fully_shard(module)
    fully_shard(model)
    return model


STRATEGIES = {"none": _wrap_none, "ddp": _wrap_ddp, "fsdp2": _wrap_fsdp2}


def wrap_model(model: nn.Module, ctx: DistContext, strategy: str = "ddp") -> nn.Module:
    """The model wrapped for data-parallel training by `strategy` ("ddp", "fsdp2" or "none").

    A world of size 1 returns the model unchanged whatever the strategy. Call it after LoRA/peft has
    been applied and before the optimizer is built. Use `unwrap_model` for anything but
    forward/backward (generate, save_pretrained, peft calls)."""
    if strategy not in STRATEGIES:
        raise InputError(f"unknown data-parallel strategy {strategy!r}; choose from {sorted(STRATEGIES)}")
    if not ctx.distributed:
        return model
    return STRATEGIES[strategy](model, ctx)


def unwrap_model(model: nn.Module) -> nn.Module:
    """The user's module inside DDP (`.module`) or torch.compile (`._orig_mod`); FSDP2 wraps in
    place, so an FSDP2 model is returned as it is."""
    while True:
        inner = getattr(model, "module", None) or getattr(model, "_orig_mod", None)
        if not isinstance(inner, nn.Module):
            return model
        model = inner


def full_state_dict(model: nn.Module, ctx: DistContext, *, to_cpu: bool = False) -> dict[str, torch.Tensor]:
    """The complete, unsharded weights under the module's own parameter names (no `module.`
    prefix), on EVERY rank — each rank pushes them into its own colocated vLLM engine.

    With FSDP2 this all-gathers each sharded parameter (a collective: call it on every rank at the
    same point); with DDP or one process it is the (detached) state dict itself, no copy. With a
    tensor-parallel vLLM engine, push these full weights and let vLLM shard them across its GPUs on
    load. `to_cpu` copies to host memory (keeps GPU memory free at the cost of a transfer)."""
    from torch.distributed.tensor import DTensor

    state: dict[str, torch.Tensor] = {}
    for name, value in unwrap_model(model).state_dict().items():
        tensor = (value.full_tensor() if isinstance(value, DTensor) else value).detach()
        state[name] = tensor.cpu() if to_cpu else tensor
    return state

"""Collectives every rank calls at the same point, in the same order: metric reduction, sums,
gathers, object broadcast/gather/scatter, agreement and barriers. The identity in one process."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeVar

import torch
import torch.distributed as dist

from rlvr.distributed.context import DistContext

__all__ = [
    "agree",
    "all_reduce_sum",
    "barrier",
    "broadcast_object",
    "gather_cat",
    "gather_object",
    "reduce_metrics",
    "scatter_object",
]

T = TypeVar("T")

_REDUCE_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN, "mean": dist.ReduceOp.SUM}
#: metric-name suffix -> reduction, for metrics not named in `how`
_SUFFIX_REDUCTIONS = (("_max", "max"), ("_min", "min"), ("_sum", "sum"), ("_count", "sum"), ("_tokens", "sum"))


def _reduction_for(name: str, how: Mapping[str, str]) -> str:
    if name in how:
        return how[name]
    matches = (op for suffix, op in _SUFFIX_REDUCTIONS if name.endswith(suffix) or name == suffix[1:])
    return next(matches, "mean")


def reduce_metrics(
    metrics: Mapping[str, float], ctx: DistContext, how: Mapping[str, str] | None = None
) -> dict[str, float]:
    """Combine each rank's metrics into one dict (the same on every rank).

    The reduction of a metric is `how[name]` ("mean", "sum", "max", "min"); else from its suffix
    (`*_max` max, `*_min` min, `*_sum`/`*_count`/`*_tokens`/`tokens` sum), else "mean" — the mean of per-rank
    values, exact when ranks hold equal shares (which `shard_groups` guarantees for prompts). The
    "loss" metric of `rlvr.objectives.grpo.policy_loss` (global normalizer, loss_scale=world_size) is right
    with "mean"; counts and throughputs of each rank want "sum". One all_reduce per kind of
    reduction, not one per metric."""
    how = how or {}
    names = sorted(metrics)  # same order on every rank
    if not ctx.distributed:
        return {name: float(metrics[name]) for name in names}
    by_op: dict[str, list[str]] = {}
    for name in names:
        op = _reduction_for(name, how)
        if op not in _REDUCE_OPS:
            raise ValueError(f"unknown reduction {op!r} for metric {name!r}; choose from {sorted(_REDUCE_OPS)}")
        by_op.setdefault(op, []).append(name)
    out: dict[str, float] = {}
    for op in sorted(by_op):
        values = torch.tensor([float(metrics[n]) for n in by_op[op]], dtype=torch.float64, device=_comm_device(ctx))
        dist.all_reduce(values, op=_REDUCE_OPS[op])
        if op == "mean":
            values /= ctx.world_size
        out.update(zip(by_op[op], values.tolist(), strict=True))
    return {name: out[name] for name in names}


def _comm_device(ctx: DistContext) -> torch.device:
    # nccl only moves CUDA tensors; gloo only CPU ones
    return ctx.device if dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(value: torch.Tensor | float, ctx: DistContext) -> torch.Tensor:
    """The sum over ranks of a scalar or tensor (e.g. `rlvr.objectives.grpo.loss_normalizer`), as a new tensor
    on the caller's device."""
    tensor = torch.as_tensor(value).detach().clone()
    if not ctx.distributed:
        return tensor
    home = tensor.device
    tensor = tensor.to(_comm_device(ctx))
    dist.all_reduce(tensor)
    return tensor.to(home)


def gather_cat(tensor: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """All ranks' tensors concatenated along dim 0, in rank order: with `shard_groups`, that is
    the global batch in its original order. Shapes must be equal on all ranks (equal shares). Used
    for batch-wide statistics such as "batch" advantages (`rlvr.objectives.grpo.group_advantages(gathered,
    "batch")`, then keep this rank's rows)."""
    if not ctx.distributed:
        return tensor
    home = tensor.device
    local = tensor.detach().contiguous().to(_comm_device(ctx))
    parts = [torch.empty_like(local) for _ in range(ctx.world_size)]
    dist.all_gather(parts, local)
    return torch.cat(parts).to(home)


def broadcast_object(obj: T, ctx: DistContext, src: int = 0) -> T:
    """`obj` from rank `src` on every rank (any picklable object: a resume position, a run name)."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src, device=_comm_device(ctx))
    return box[0]


def gather_object(obj: T, ctx: DistContext, dst: int = 0) -> list[T] | None:
    """Every rank's `obj` as a list (rank order) on rank `dst`, None elsewhere: how per-rank state
    such as RNG states reaches the one rank that writes checkpoints."""
    if not ctx.distributed:
        return [obj]
    box: list[T] | None = [None] * ctx.world_size if ctx.rank == dst else None  # type: ignore[list-item]
    dist.gather_object(obj, box, dst=dst)
    return box


def scatter_object(objs: Sequence[T] | None, ctx: DistContext, src: int = 0) -> T:
    """Rank r gets `objs[r]` from rank `src` (which alone reads a checkpoint): the inverse of
    `gather_object`, e.g. to hand each rank its own saved RNG state on resume."""
    if not ctx.distributed:
        assert objs is not None
        return objs[0]
    box: list[T | None] = [None]
    dist.scatter_object_list(box, list(objs) if ctx.rank == src else None, src=src)
    return box[0]  # type: ignore[return-value]


def agree(value: float, ctx: DistContext, op: str = "max") -> float:
    """One number every rank agrees on ("max", "min" or "sum" over ranks), for decisions all ranks
    must take the same way: whether to refill a batch, whether the weights moved."""
    if not ctx.distributed:
        return float(value)
    tensor = torch.tensor([float(value)], dtype=torch.float64, device=_comm_device(ctx))
    dist.all_reduce(tensor, op=_REDUCE_OPS[op])
    return float(tensor.item())


def barrier(ctx: DistContext) -> None:
    """Wait for every rank (e.g. others wait while rank 0 writes a checkpoint they will read)."""
    if ctx.distributed:
        dist.barrier(device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)

"""Data-parallel training through torch.distributed: the rank context, prompt sharding, metric reduction,
DDP/FSDP2 wrapping and full-weight gathering for the vLLM push. One process = a world of size 1.

Launch with torchrun (`torchrun --nproc_per_node 8 -m rlvr train ...`); `init_distributed()` reads
its environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT). Every rank generates with its own
engine, scores and learns on its share of the PROMPTS; a prompt's whole group lives on one rank, so
group advantages need no communication. With the global loss normalizer and `loss_scale=world_size`
(see `rlvr.objectives.grpo`), DDP's gradient average is exactly the gradient of the full-batch loss.

Everything here is a no-op (or the identity) when `ctx.world_size == 1`, so the trainer calls the
same functions with and without torchrun. Collective calls (`reduce_metrics`, `all_reduce_sum`,
`gather_cat`, `broadcast_object`, `barrier`, `full_state_dict`) must be made by every rank, in the
same order.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Mapping, Sequence, TypeVar

import torch
import torch.distributed as dist
from torch import nn

from rlvr.errors import InputError

__all__ = [
    "DistContext",
    "init_distributed",
    "shutdown_distributed",
    "shard_groups",
    "reduce_metrics",
    "all_reduce_sum",
    "gather_cat",
    "broadcast_object",
    "gather_object",
    "scatter_object",
    "barrier",
    "wrap_model",
    "unwrap_model",
    "full_state_dict",
    "rank_seed",
    "agree",
    "STRATEGIES",
    "checkpoint_state",
    "resumable_optimizer",
    "vllm_parallel_options",
    "TensorParallelEngine",
]

T = TypeVar("T")


@dataclass(frozen=True)
class DistContext:
    """Who this process is. `is_main` (global rank 0) is the only rank that writes files: logs,
    metrics.jsonl, TensorBoard, checkpoints, the saved config. Guard every write with it."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    is_main: bool = True

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def _under_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(backend: str | None = None, timeout_s: float = 1800.0) -> DistContext:
    """Join the process group torchrun set up, or return a single-process context.

    backend: None picks nccl when CUDA is available, else gloo (CPU). Each rank is bound to GPU
    `LOCAL_RANK`. A world of size 1 (plain `python -m rlvr`, or torchrun with one process) starts no
    process group at all. `timeout_s` is generous because rank 0 may be slow in between collectives
    (periodic eval, checkpoint writes) while the others wait."""
    cuda = torch.cuda.is_available()
    if not _under_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        device = torch.device("cuda", local_rank) if cuda else torch.device("cpu")
        if cuda:
            torch.cuda.set_device(device)
        return DistContext(0, 1, local_rank, device, True)
    rank, world_size = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", rank))
    backend = backend or ("nccl" if cuda else "gloo")
    device = torch.device("cuda", local_rank) if backend == "nccl" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend, timeout=timedelta(seconds=timeout_s),
            device_id=device if device.type == "cuda" else None,
        )
    return DistContext(rank, world_size, local_rank, device, rank == 0)


def shutdown_distributed(ctx: DistContext) -> None:
    """Leave the process group (at the end of training; keeps NCCL from warning at exit)."""
    if ctx.distributed and dist.is_initialized():
        # every rank done first: a gloo peer that tears down while another still talks to it can
        # abort that one ("terminate called without an active exception")
        dist.barrier()
        dist.destroy_process_group()


def shard_groups(items: Sequence[T], ctx: DistContext) -> list[T]:
    """This rank's share of a batch of PROMPTS: a contiguous block, the same size on every rank.

    Shard prompts, never completions: each rank then samples all n completions of its prompts, so a
    group never spans ranks. The batch must divide by the world size — equal shares keep every
    rank's forward/backward count equal (a rank with one micro-batch more would hang DDP) and make
    `gather_cat` return the batch in its original order. Raises InputError otherwise."""
    if len(items) % ctx.world_size:
        raise InputError(
            f"a batch of {len(items)} prompts cannot be split evenly over {ctx.world_size} ranks: "
            f"set the number of prompts per step to a multiple of {ctx.world_size}"
        )
    share = len(items) // ctx.world_size
    return list(items[ctx.rank * share:(ctx.rank + 1) * share])


# ---------------------------------------------------------------- collectives

_REDUCE_OPS = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN, "mean": dist.ReduceOp.SUM}
#: metric-name suffix -> reduction, for metrics not named in `how`
_SUFFIX_REDUCTIONS = (("_max", "max"), ("_min", "min"), ("_sum", "sum"), ("_count", "sum"), ("_tokens", "sum"))


def _reduction_for(name: str, how: Mapping[str, str]) -> str:
    if name in how:
        return how[name]
    matches = (op for suffix, op in _SUFFIX_REDUCTIONS if name.endswith(suffix) or name == suffix[1:])
    return next(matches, "mean")


def reduce_metrics(metrics: Mapping[str, float], ctx: DistContext, how: Mapping[str, str] | None = None) -> dict[str, float]:
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
        out.update(zip(by_op[op], values.tolist()))
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


def rank_seed(seed: int, ctx: DistContext) -> int:
    """A per-rank sampling seed, so that ranks do not share one random stream for generation.
    Model initialisation (and LoRA init) must use the shared `seed` so replicas start equal."""
    return seed + 1_000_003 * ctx.rank


# ---------------------------------------------------------------- model wrapping


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
        raise InputError(f"the fsdp2 strategy needs torch.distributed.fsdp.fully_shard (torch >= 2.6): {error}") from None
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
    for name, tensor in unwrap_model(model).state_dict().items():
        if isinstance(tensor, DTensor):
            tensor = tensor.full_tensor()
        tensor = tensor.detach()
        state[name] = tensor.cpu() if to_cpu else tensor
    return state


# ---------------------------------------------------------------- checkpoints of sharded models


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
    """(model, optimizer) as `rlvr.checkpoint.save_checkpoint` should see them: the unwrapped model
    and the optimizer itself, or for FSDP2 stand-ins holding the gathered full weights and optimizer
    state, so that rank 0 alone can write a checkpoint any world size (and `rlvr eval`) can load.
    Gathering is a collective: call it on EVERY rank, then write on rank 0 only."""
    inner = unwrap_model(model)
    if not _sharded(inner):
        return inner, optimizer
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    weights = full_state_dict(model, ctx, to_cpu=True)
    state = None if optimizer is None else get_optimizer_state_dict(
        inner, optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    return _FullWeights(inner, weights), _FullOptimizerState(inner, optimizer, state)


def resumable_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> Any:
    """What `rlvr.checkpoint.load_training_state` should load the saved optimizer state into: the
    optimizer itself, or for FSDP2 a stand-in that shards the full saved state over the ranks."""
    inner = unwrap_model(model)
    return _FullOptimizerState(inner, optimizer) if _sharded(inner) else optimizer


# ---------------------------------------------------------------- vLLM tensor parallelism


def vllm_parallel_options(ctx: DistContext, tensor_parallel_size: int) -> dict[str, Any]:
    """Engine arguments for vLLM colocated with the trainer. Under torchrun every rank runs its own
    in-process vLLM on its own GPU ("external_launcher": vLLM joins torchrun's process group instead
    of spawning workers); with tensor_parallel_size k, ranks [0..k-1], [k..2k-1], ... each form one
    engine sharded over their k GPUs. In one process, vLLM spawns k workers itself."""
    tp = int(tensor_parallel_size)
    if tp < 1 or (ctx.distributed and ctx.world_size % tp):
        raise InputError(f"rollout.tensor_parallel_size={tp} must be >= 1 and divide the {ctx.world_size} ranks")
    options: dict[str, Any] = {"tensor_parallel_size": tp} if tp > 1 else {}
    if ctx.distributed:
        options["distributed_executor_backend"] = "external_launcher"
    return options


class TensorParallelEngine:
    """An engine shared by a tensor-parallel group of ranks. vLLM's external launcher needs every
    rank of a group to submit the SAME requests (each rank computes its slice of every layer), so
    `generate` gathers the group's prompts, generates them all with the group leader's sampling
    (one seed: the group must sample the same tokens), and hands each rank the rollouts of its own
    prompts. Weight sync needs no change: every rank pushes the full weights (`full_state_dict`)
    and vLLM keeps its own slice of each on load. Create it on every rank (it makes process groups)."""

    def __init__(self, engine: Any, ctx: DistContext, tensor_parallel_size: int):
        self.engine, self.ctx, self.size = engine, ctx, tensor_parallel_size
        self.kind, self.tokenizer = engine.kind, engine.tokenizer
        self.group = None
        if ctx.distributed and tensor_parallel_size > 1:
            for start in range(0, ctx.world_size, tensor_parallel_size):  # every rank creates every group
                group = dist.new_group(list(range(start, start + tensor_parallel_size)))
                if start <= ctx.rank < start + tensor_parallel_size:
                    self.group = group

    def generate(self, prompts: Sequence[str], n: int = 1, sampling: Any = None) -> list:
        if self.group is None:
            return self.engine.generate(prompts, n, sampling)
        import dataclasses

        shares: list[Any] = [None] * self.size
        dist.all_gather_object(shares, (list(prompts), sampling), group=self.group)
        everything = [p for part, _ in shares for p in part]
        rollouts = self.engine.generate(everything, n, shares[0][1])
        mine = self.ctx.rank % self.size
        start = sum(len(part) for part, _ in shares[:mine])
        return [dataclasses.replace(r, prompt_index=r.prompt_index - start) for r in rollouts
                if start <= r.prompt_index < start + len(prompts)]

    def sync_weights(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        return self.engine.sync_weights(state_dict)

    def close(self) -> None:
        self.engine.close()

    def __getattr__(self, name: str) -> Any:  # anything else: the engine's own (model_path, ...)
        return getattr(self.__dict__["engine"], name)

"""Who this process is under torchrun: the rank context, joining and leaving the process group,
this rank's share of the prompts and its sampling seed."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

import torch
import torch.distributed as dist

from rlvr.errors import InputError

__all__ = ["DistContext", "init_distributed", "rank_seed", "shard_groups", "shutdown_distributed"]

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
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
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
            backend=backend,
            timeout=timedelta(seconds=timeout_s),
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
    return list(items[ctx.rank * share : (ctx.rank + 1) * share])


def rank_seed(seed: int, ctx: DistContext) -> int:
    """A per-rank sampling seed, so that ranks do not share one random stream for generation.
    Model initialisation (and LoRA init) must use the shared `seed` so replicas start equal."""
    return seed + 1_000_003 * ctx.rank

"""vLLM tensor parallelism under torchrun: the engine options of a colocated vLLM, and the engine
a tensor-parallel group of ranks shares."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch.distributed as dist

from rlvr.distributed import DistContext
from rlvr.errors import InputError

__all__ = ["TensorParallelEngine", "vllm_parallel_options"]


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
        return [
            dataclasses.replace(r, prompt_index=r.prompt_index - start)
            for r in rollouts
            if start <= r.prompt_index < start + len(prompts)
        ]

    def sync_weights(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        return self.engine.sync_weights(state_dict)

    def close(self) -> None:
        self.engine.close()

    def __getattr__(self, name: str) -> Any:  # anything else: the engine's own (model_path, ...)
        return getattr(self.__dict__["engine"], name)

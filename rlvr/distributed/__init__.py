"""Data-parallel training through torch.distributed: the rank context, prompt sharding, metric reduction,
DDP/FSDP2 wrapping and full-weight gathering for the vLLM push. One process = a world of size 1.

One idea per module: `context` (who this rank is, its share, its seed), `collectives`, `wrapping`
(DDP/FSDP2, full weights), `sharded_state` (FSDP2 checkpoint stand-ins); vLLM tensor parallelism
is `rlvr.rollout.parallel`. Everything public is importable from `rlvr.distributed`.

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

from rlvr.distributed.collectives import (
    agree,
    all_reduce_sum,
    barrier,
    broadcast_object,
    gather_cat,
    gather_object,
    reduce_metrics,
    scatter_object,
)
from rlvr.distributed.context import DistContext, init_distributed, rank_seed, shard_groups, shutdown_distributed
from rlvr.distributed.sharded_state import checkpoint_state, resumable_optimizer
from rlvr.distributed.wrapping import STRATEGIES, full_state_dict, unwrap_model, wrap_model

__all__ = [
    "STRATEGIES",
    "DistContext",
    "agree",
    "all_reduce_sum",
    "barrier",
    "broadcast_object",
    "checkpoint_state",
    "full_state_dict",
    "gather_cat",
    "gather_object",
    "init_distributed",
    "rank_seed",
    "reduce_metrics",
    "resumable_optimizer",
    "scatter_object",
    "shard_groups",
    "shutdown_distributed",
    "unwrap_model",
    "wrap_model",
]

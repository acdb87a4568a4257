"""Attention for packed rows without a [T, T] mask: each row's queries, and the keys it may see, gathered into a
small [rows, L] batch, attended there and laid back end to end, while every other layer runs on the packed
sequence. Where flash-attention's varlen kernel is missing (the CPU, CUDA without flash_attn) this is what
keeps a packed pass's attention as cheap as a padded one's (rlvr.learner.passes)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from transformers import AttentionInterface

from rlvr.distributed import unwrap_model

__all__ = ["NAME", "RowLayout", "row_attention", "row_layout", "rows_attention"]

#: the attention implementation's name in transformers' registry while a packed forward runs
NAME = "rlvr_rows"


@dataclass
class RowLayout:
    """Where each row of a packed forward sits. `queries` [rows, Lq]: the row's positions in the packed sequence
    (past its length: its first, again); `real` [rows, Lq]: which of them are the row's; `keys` [rows, Lk]: the
    key positions it may see (a prefix in the cache, then its own tokens), padded; `allowed` [rows, 1, Lq, Lk];
    `back` [T]: where each position of the packed sequence is in the flattened [rows * Lq]."""

    queries: torch.Tensor
    real: torch.Tensor
    keys: torch.Tensor
    allowed: torch.Tensor
    back: torch.Tensor

    def to(self, device: torch.device) -> RowLayout:
        return RowLayout(*(getattr(self, field.name).to(device) for field in fields(self)))


def row_layout(lengths: Sequence[int], prefixes: Sequence[tuple[int, int]] | None = None, offset: int = 0) -> RowLayout:
    """Rows of `lengths` tokens laid end to end as the queries. Row i sees its own tokens up to itself, which sit
    at `offset` + its start among the keys (`offset`: the cached keys before this sequence's), and before them the
    cached span prefixes[i] = (start, length) (its group's prompt), all of it."""
    n = torch.tensor(list(lengths), dtype=torch.long)
    starts = torch.cat([torch.zeros(1, dtype=torch.long), n.cumsum(0)[:-1]])
    pre_start, pre_len = (
        torch.tensor(list(prefixes), dtype=torch.long).reshape(-1, 2).unbind(1)
        if prefixes
        else (torch.zeros_like(n), torch.zeros_like(n))
    )
    i = torch.arange(int(n.max()))
    real = i[None] < n[:, None]
    queries = torch.where(real, starts[:, None] + i[None], starts[:, None])
    j = torch.arange(int((pre_len + n).max()))
    own = j[None] - pre_len[:, None]  # [rows, Lk]: the row's own token j - prefix, where >= 0
    in_prefix = own < 0
    keys = torch.where(in_prefix, pre_start[:, None] + j[None], offset + starts[:, None] + own.clamp(min=0))
    keys = keys.clamp(max=offset + int(n.sum()) - 1)  # padding columns: some real key, never allowed
    allowed = real[:, :, None] & (in_prefix[:, None, :] | (own[:, None, :] <= i[None, :, None]))
    allowed[:, :, 0] |= ~real  # a padding query sees one key, so its softmax stays finite; its output is dropped
    return RowLayout(queries, real, keys, allowed[:, None], real.flatten().nonzero().flatten())


def _attend(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, allowed: torch.Tensor, scaling: float, dropout: float
) -> torch.Tensor:
    """SDPA over the gathered rows, grouped-query heads as they are. Its kernel keeps the scores and their
    gradients in float32 under bfloat16; the plain matmul + softmax ran 25% faster here but rounded them to
    bfloat16, doubled the error of the first layers' q/k gradients, and learned less (benchmarks/RESULTS.md)."""
    return F.scaled_dot_product_attention(
        query, key, value, attn_mask=allowed, dropout_p=dropout, scale=scaling, enable_gqa=True
    )


def row_attention(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    *,
    rows: RowLayout,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' attention signature: query [1, H, T, D], key/value [1, KV, K, D] (cached keys first) ->
    ([1, T, H, D], no weights). The mask transformers would build is not used: `rows` says who sees what."""
    q, k, v = (_gathered(x, index) for x, index in ((query, rows.queries), (key, rows.keys), (value, rows.keys)))
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    training = bool(getattr(module, "training", False))
    out = _attend(q, k, v, rows.allowed, scale, dropout if training else 0.0)  # [rows, H, Lq, D]
    # each row's real positions, in order: the packed sequence [1, T, H, D]
    return out.transpose(1, 2).flatten(0, 1).index_select(0, rows.back)[None], None


def _gathered(states: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """states [1, heads, N, D] at index [rows, L] -> [rows, heads, L, D]; index_select, whose backward adds
    into place (advanced indexing's sorts its indices first: slower here)."""
    picked = states[0].index_select(1, index.flatten())  # [heads, rows * L, D]
    return picked.unflatten(1, index.shape).transpose(0, 1)


@contextmanager
def rows_attention(model: Any) -> Iterator[None]:
    """Inside, the model's attention layers run `row_attention` (forwards then take `rows=`); transformers builds
    no mask for an implementation it has no mask function for."""
    config: Any = unwrap_model(model).config
    before = config._attn_implementation
    AttentionInterface.register(NAME, row_attention)  # transformers' own registry; the same entry each time
    config._attn_implementation = NAME
    try:
        yield
    finally:
        config._attn_implementation = before

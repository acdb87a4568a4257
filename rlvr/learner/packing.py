"""Rollouts as the tensors a learn pass runs on: prompts left-padded and completions right-padded so every row's
completion logits are the same slice, with the loss mask (tool tokens 0) and the sampler's logprobs; and the same
rows laid end to end without padding (`end_to_end`), their positions restarting at each row."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from rlvr.learner.protocol import Packed
from rlvr.types import Rollout

__all__ = ["EndToEnd", "end_to_end", "pack", "within_tokens"]


def pack(rollouts: Sequence[Rollout], group_size: int, pad: int) -> Packed:
    """Rows [pad.. prompt | completion ..pad]: prompts left-padded to P, completions right-padded to C,
    so completion logits are the same slice for every row. Every `group_size` consecutive rows share
    one prompt (a GRPO group, a DPO pair; 1 for SFT rows). `mask` is each rollout's loss mask: a
    multi-turn rollout's tool tokens are 0 there, so they get no gradient, entropy, KL or TIS weight
    (the learner's logprobs of them are 0 too)."""
    P = max(len(r.prompt_token_ids) for r in rollouts)
    C = max(1, *(len(r.token_ids) for r in rollouts))
    rows, attn, comp, mask, behavior = [], [], [], [], []
    for r in rollouts:
        p, c = list(r.prompt_token_ids), list(r.token_ids)
        rows.append([pad] * (P - len(p)) + p + c + [pad] * (C - len(c)))
        attn.append([0] * (P - len(p)) + [1] * (len(p) + len(c)) + [0] * (C - len(c)))
        comp.append(c + [pad] * (C - len(c)))
        mask.append([float(m) for m in r.mask] + [0.0] * (C - len(c)))  # tool tokens (multi-turn): 0
        behavior.append(
            list(r.logprobs[: len(c)]) + [0.0] * (len(c) - len(r.logprobs[: len(c)])) + [0.0] * (C - len(c))
        )
    attention = torch.tensor(attn)
    prompts = [list(r.prompt_token_ids) for r in rollouts[::group_size]]
    return {
        "input_ids": torch.tensor(rows),
        "attention_mask": attention,
        "position_ids": (attention.cumsum(-1) - 1).clamp(min=0),
        "completion": torch.tensor(comp),
        "mask": torch.tensor(mask),
        "behavior": torch.tensor(behavior),
        "truncated": torch.tensor([r.truncated for r in rollouts]),
        "prompt_length": torch.tensor([len(r.prompt_token_ids) for r in rollouts]),
        "length": torch.tensor([len(r.token_ids) for r in rollouts]),
        "width": torch.tensor(C),
        "group_size": torch.tensor(group_size),
        "prompt_ids": torch.tensor([[pad] * (P - len(p)) + p for p in prompts]),
        "prompt_attention": torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in prompts]),
    }


@dataclass
class EndToEnd:
    """Pieces of rows laid end to end: `ids` and `positions` [T] (positions restart at each piece's own
    offset), and `starts` [pieces] (where each piece begins)."""

    ids: torch.Tensor
    positions: torch.Tensor
    starts: torch.Tensor

    @property
    def lengths(self) -> list[int]:
        return torch.diff(self.starts, append=torch.tensor([len(self.ids)])).tolist()


def end_to_end(pieces: Sequence[torch.Tensor], offsets: Sequence[int]) -> EndToEnd:
    """`pieces` (1-D token tensors) concatenated; piece i's positions run from offsets[i] (its prompt's length
    when it continues a cached prompt, else 0)."""
    lengths = [len(piece) for piece in pieces]
    return EndToEnd(
        ids=torch.cat(list(pieces)) if pieces else torch.zeros(0, dtype=torch.long),
        positions=torch.cat([torch.arange(o, o + n) for o, n in zip(offsets, lengths, strict=True)])
        if pieces
        else torch.zeros(0, dtype=torch.long),
        starts=torch.tensor([0, *lengths[:-1]], dtype=torch.long).cumsum(0),
    )


def within_tokens(t: Packed, unit: int, budget: int, *, shared: bool) -> list[slice]:
    """Row slices of `t` of whole units (`unit` consecutive rows), as many as feed at most `budget` tokens (one
    unit at least): every row's completion, and its prompt, once per group when the group shares it."""
    prompts = t["prompt_length"]
    tokens = t["length"].reshape(-1, unit).sum(1) + (prompts[::unit] if shared else prompts.reshape(-1, unit).sum(1))
    slices, start, held = [], 0, 0
    for index, count in enumerate(tokens.tolist()):
        if held and held + count > budget:
            slices.append(slice(start * unit, index * unit))
            start, held = index, 0
        held += count
    return [*slices, slice(start * unit, len(t["input_ids"]))]

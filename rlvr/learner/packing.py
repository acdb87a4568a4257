"""Rollouts as the padded tensors a learn pass runs on: prompts left-padded and completions right-padded so every
row's completion logits are the same slice, with the loss mask (tool tokens 0) and the sampler's logprobs."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from rlvr.learner.protocol import Packed
from rlvr.types import Rollout

__all__ = ["pack"]


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
        "width": torch.tensor(C),
        "group_size": torch.tensor(group_size),
        "prompt_ids": torch.tensor([[pad] * (P - len(p)) + p for p in prompts]),
        "prompt_attention": torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in prompts]),
    }

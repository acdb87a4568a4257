"""Packed rows (every row end to end, attention kept to each row) against padded rows: the same logprobs, entropy
and gradient of every parameter in float64, with and without the shared-prompt pass, through the chunked LM head
and the dense logits; and the padding each pass feeds the model."""

from __future__ import annotations

import pytest
import torch
import transformers.models.llama.modeling_llama as llama

from rlvr.config import load_config, resolve_auto
from rlvr.distributed import init_distributed
from rlvr.learner import passes
from rlvr.learner.packing import end_to_end
from rlvr.learner.policy import Policy
from rlvr.learner.row_attention import RowLayout, row_attention, row_layout
from rlvr.types import Rollout

# groups of 3 rows: (prompt length, completion lengths, tool tokens (loss mask 0) at these completion positions)
GROUPS = [
    (4, [6, 1, 3], {0: (2, 3)}),  # a 1-token completion; a multi-turn row with two tool tokens
    (11, [2, 6, 6], {}),  # the longest prompt, two rows at the width
    (1, [0, 5, 2], {}),  # a 1-token prompt, an empty completion
]


def _rollouts() -> list[Rollout]:
    gen = torch.Generator().manual_seed(1)
    rollouts = []
    for index, (prompt_len, lengths, tools) in enumerate(GROUPS):
        prompt = tuple(torch.randint(10, 1000, (prompt_len,), generator=gen).tolist())
        for row, length in enumerate(lengths):
            mask = tuple(0 if j in tools.get(row, ()) else 1 for j in range(length))
            rollouts.append(
                Rollout(
                    prompt_index=index,
                    text="t",
                    token_ids=tuple(torch.randint(10, 1000, (length,), generator=gen).tolist()),
                    logprobs=(-1.0,) * length,
                    finish_reason="stop",
                    prompt_token_ids=prompt,
                    loss_mask=mask,
                )
            )
    return rollouts


def _policy(
    model_path, *, share: bool, packing: bool, micro: int, attention: str = "sdpa", tokens: int = 0, lora: int = 0
) -> Policy:
    overrides = {
        "model.name": str(model_path),
        "device": "cpu",
        "model.dtype": "float32",
        "optimizer.share_prompt": share,
        "optimizer.packing": packing,
        "optimizer.micro_batch_size": micro,
        "optimizer.micro_batch_tokens": tokens,
        "model.lora_r": lora,
        "model.lora_dropout": 0.0,  # the padded and packed passes would draw different dropout masks
        "rollout.n": 3,
    }
    torch.manual_seed(0)  # LoRA's A starts random: the same in every policy built here
    policy = Policy(
        resolve_auto(load_config(None, overrides), "cpu"), init_distributed(), torch.device("cpu"), model_path
    )
    policy.module.set_attn_implementation(attention)
    policy.module.double()
    return policy


@pytest.fixture
def exact_llama(monkeypatch):
    """HF's Llama rounds RMSNorm through float32 whatever the weights' dtype: float64 throughout instead."""

    def rms_norm(self, hidden):
        return self.weight * hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)

    monkeypatch.setattr(llama.LlamaRMSNorm, "forward", rms_norm)


def _pass(policy: Policy, dense: bool):
    """Logprobs and entropy of every row (chunked head, or dense logits) and every parameter's gradient
    of a weighted sum of the logprobs."""
    tensors = policy.pack(_rollouts(), 3)
    policy.wrapped.train()
    if dense:
        policy._heads[id(policy.wrapped)] = False
    logprobs, entropy = zip(
        *(policy.logprobs(tensors, idx, 0.7, entropy=True) for idx in policy.micro_batches(tensors)),
        strict=True,
    )
    mask = tensors["mask"]
    weights = torch.linspace(-1, 1, mask.numel(), dtype=torch.float64).view(mask.shape)
    (torch.cat(logprobs) * mask * weights).sum().backward()
    grads = {name: p.grad.clone() for name, p in policy.wrapped.named_parameters() if p.requires_grad}
    return torch.cat(logprobs).detach() * mask, torch.cat(entropy) * mask, grads, policy.step([], None)


@pytest.mark.parametrize(
    "share, micro, tokens, dense, attention, lora",
    [
        (False, 9, 0, False, "sdpa", 0),  # one micro-batch of every row
        (False, 4, 0, False, "sdpa", 0),  # micro-batches that cut a group
        (False, 4, 20, False, "sdpa", 0),  # packed micro-batches of at most 20 tokens, rows not groups
        (True, 9, 0, False, "sdpa", 0),  # the shared-prompt pass over three groups at once
        (True, 3, 0, True, "sdpa", 0),  # one group a pass, dense [rows, C, V] logits
        (True, 3, 40, False, "sdpa", 0),  # packed micro-batches of whole groups by tokens: two groups, then one
        (True, 3, 2048, False, "sdpa", 0),  # the default budget: every group in one packed pass
        (True, 9, 0, False, "eager", 0),  # packed eager against padded sdpa (padded rows under eager are NaN)
        (True, 9, 2048, False, "sdpa", 2),  # LoRA: the peft model passes row attention's layout through
    ],
)
def test_packed_rows_give_the_padded_logprobs_entropy_and_gradients(
    tiny_model, exact_llama, share, micro, tokens, dense, attention, lora
):
    padded, packed = (
        _pass(
            _policy(tiny_model, share=share, packing=packing, micro=micro, attention=kind, tokens=tokens, lora=lora),
            dense,
        )
        for packing, kind in ((False, "sdpa"), (True, attention))
    )
    tolerance = 1e-9
    torch.testing.assert_close(packed[0], padded[0], rtol=0, atol=tolerance)
    torch.testing.assert_close(packed[1], padded[1], rtol=0, atol=tolerance)
    assert padded[0].abs().sum() > 0 and padded[1].abs().sum() > 0
    assert padded[2]
    for name, grad in padded[2].items():
        assert grad.abs().max() > 0 or "lora_A" in name, name  # B starts at 0: A's first gradient is 0
        torch.testing.assert_close(packed[2][name], grad, rtol=tolerance, atol=tolerance, msg=name)
    assert packed[3]["padding_fraction"] == 0.0
    assert padded[3]["padding_fraction"] > 0.2


def test_padding_fraction_counts_the_padded_positions(tiny_model):
    """Unshared, one micro-batch: 9 rows of 11 + 6 positions; real tokens: every prompt and completion."""
    policy = _policy(tiny_model, share=False, packing=False, micro=9)
    tensors = policy.pack(_rollouts(), 3)
    with torch.no_grad():
        policy.logprobs(tensors, slice(0, 9))
    real = sum(3 * p + sum(c) for p, c, _ in GROUPS)
    assert policy.step([], None)["padding_fraction"] == pytest.approx(1 - real / (9 * (11 + 6)))


@pytest.mark.parametrize(
    "share, packing, tokens, whole, slices",
    [
        # groups of 3 rows feed 4 + 10, 11 + 14 and 1 + 7 tokens with their prompt shared
        (True, True, 30, False, [(0, 3), (3, 6), (6, 9)]),
        (True, True, 40, False, [(0, 6), (6, 9)]),
        (True, True, 1, False, [(0, 3), (3, 6), (6, 9)]),  # a group over the budget still runs, alone
        # rows feed 10, 5, 7, 13, 17, 17, 1, 6, 3 tokens unshared
        (False, True, 20, False, [(0, 2), (2, 4), (4, 5), (5, 7), (7, 9)]),
        (False, True, 0, False, [(0, 4), (4, 8), (8, 9)]),  # no budget: micro_batch_size rows
        (True, False, 40, False, [(0, 3), (3, 6), (6, 9)]),  # padded rows: micro_batch_size (4, whole groups: 3)
        # an objective that needs its groups whole (a preference pair) gets them unshared too
        (False, False, 0, True, [(0, 3), (3, 6), (6, 9)]),
        (False, True, 60, True, [(0, 3), (3, 9)]),  # unshared groups feed every row's prompt: 22, 47 and 10 tokens
    ],
)
def test_micro_batches_hold_whole_units_up_to_the_token_budget(tiny_model, share, packing, tokens, whole, slices):
    policy = _policy(tiny_model, share=share, packing=packing, micro=4, tokens=tokens)
    got = policy.micro_batches(policy.pack(_rollouts(), 3), whole_groups=whole)
    assert [(idx.start, idx.stop) for idx in got] == slices


def _pairs(rows: RowLayout) -> set[tuple[int, int]]:
    """(query position, key position) pairs the layout allows, its padding left out."""
    allowed = rows.allowed[:, 0]
    return {
        (int(rows.queries[r, i]), int(rows.keys[r, j])) for r, i, j in allowed.nonzero().tolist() if rows.real[r, i]
    }


@pytest.mark.parametrize(
    "lengths, prefixes, offset, pairs",
    [
        # two rows, no cache: each row causal over itself
        ([2, 1], None, 0, {(0, 0), (1, 0), (1, 1), (2, 2)}),
        # a 1-token row between longer ones
        ([1, 2], None, 0, {(0, 0), (1, 1), (2, 1), (2, 2)}),
        # two rows after 3 cached keys: row 0 sees cached 0..1, row 1 sees cached 2; own keys start at 3
        ([2, 1], [(0, 2), (2, 1)], 3, {(0, 0), (0, 1), (0, 3), (1, 0), (1, 1), (1, 3), (1, 4), (2, 2), (2, 5)}),
        # rows of one group share one cached prompt
        ([1, 1], [(0, 2), (0, 2)], 2, {(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (1, 3)}),
    ],
)
def test_row_layout_lets_each_row_see_its_prefix_and_its_own_past(lengths, prefixes, offset, pairs):
    assert _pairs(row_layout(lengths, prefixes, offset)) == pairs


def test_row_attention_equals_dense_masked_attention():
    """Values and gradients of q, k, v (float64) against SDPA over the whole sequence with the dense mask."""
    gen = torch.Generator().manual_seed(0)
    lengths, prefixes, offset = [3, 1, 4], [(0, 2), (0, 2), (2, 3)], 5
    rows = row_layout(lengths, prefixes, offset)
    T, K = sum(lengths), offset + sum(lengths)
    q, k, v = (
        torch.randn(1, h, n, 8, generator=gen, dtype=torch.float64, requires_grad=True)
        for h, n in ((4, T), (2, K), (2, K))
    )
    dense = torch.zeros(T, K, dtype=torch.bool)
    for qi, kj in _pairs(rows):
        dense[qi, kj] = True
    ours, _ = row_attention(None, q, k, v, None, 0.3, rows=rows)
    ref = torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), attn_mask=dense, scale=0.3
    ).transpose(1, 2)
    assert ours.shape == ref.shape == (1, T, 4, 8)
    assert torch.allclose(ours, ref, atol=1e-12)
    weights = torch.randn(ref.shape, generator=gen, dtype=torch.float64)
    grads = [torch.autograd.grad((out * weights).sum(), (q, k, v)) for out in (ours, ref)]
    for mine, theirs in zip(*grads, strict=True):
        assert torch.allclose(mine, theirs, atol=1e-12)


def test_end_to_end_restarts_positions_at_each_offset():
    seq = end_to_end([torch.tensor([7, 8]), torch.tensor([9]), torch.tensor([4, 5, 6])], [0, 3, 1])
    assert seq.ids.tolist() == [7, 8, 9, 4, 5, 6]
    assert seq.positions.tolist() == [0, 1, 3, 1, 2, 3]
    assert seq.starts.tolist() == [0, 2, 3]
    assert seq.lengths == [2, 1, 3]


@pytest.mark.parametrize(
    "attention, recomputed, packs",
    [("sdpa", False, True), ("sdpa", True, False), ("eager", False, True), ("flex_attention", False, False)],
)
def test_rows_pack_where_row_attention_or_a_varlen_kernel_covers_every_forward(
    tiny_model, attention, recomputed, packs
):
    """A layer recomputed in the backward (gradient checkpointing) runs outside row_attention's scope."""
    policy = _policy(tiny_model, share=False, packing=True, micro=4)
    policy.module.config._attn_implementation = attention
    assert passes.packs(policy.module, recomputed) is packs

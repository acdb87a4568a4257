"""Packed rows (every row end to end, attention kept to each row) against padded rows: the same logprobs, entropy
and gradient of every parameter in float64, with and without the shared-prompt pass, through the chunked LM head
and the dense logits; and the padding each pass feeds the model."""

from __future__ import annotations

import pytest
import torch
import transformers.models.llama.modeling_llama as llama

from rlvr.config import load_config, resolve_auto
from rlvr.distributed import init_distributed
from rlvr.learner.packing import end_to_end, row_causal
from rlvr.learner.policy import Policy
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


def _policy(model_path, *, share: bool, packing: bool, micro: int, attention: str = "sdpa") -> Policy:
    overrides = {
        "model.name": str(model_path),
        "device": "cpu",
        "model.dtype": "float32",
        "optimizer.share_prompt": share,
        "optimizer.packing": packing,
        "optimizer.micro_batch_size": micro,
        "rollout.n": 3,
    }
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
        *(policy.logprobs(tensors, idx, 0.7, entropy=True) for idx in policy.micro_batches(len(GROUPS) * 3, 3)),
        strict=True,
    )
    mask = tensors["mask"]
    weights = torch.linspace(-1, 1, mask.numel(), dtype=torch.float64).view(mask.shape)
    (torch.cat(logprobs) * mask * weights).sum().backward()
    grads = {name: p.grad.clone() for name, p in policy.wrapped.named_parameters()}
    return torch.cat(logprobs).detach() * mask, torch.cat(entropy) * mask, grads, policy.step([], None)


@pytest.mark.parametrize(
    "share, micro, dense, attention, tolerance",
    [
        (False, 9, False, "sdpa", 1e-9),  # one micro-batch of every row
        (False, 4, False, "sdpa", 1e-9),  # micro-batches that cut a group
        (True, 9, False, "sdpa", 1e-9),  # the shared-prompt pass over three groups at once
        (True, 3, True, "sdpa", 1e-9),  # one group a pass, dense [rows, C, V] logits
        # the additive mask, against padded sdpa (padded rows under eager are NaN); eager's softmax is float32
        (True, 9, False, "eager", 1e-5),
    ],
)
def test_packed_rows_give_the_padded_logprobs_entropy_and_gradients(
    tiny_model, exact_llama, share, micro, dense, attention, tolerance
):
    padded, packed = (
        _pass(_policy(tiny_model, share=share, packing=packing, micro=micro, attention=kind), dense)
        for packing, kind in ((False, "sdpa"), (True, attention))
    )
    torch.testing.assert_close(packed[0], padded[0], rtol=0, atol=tolerance)
    torch.testing.assert_close(packed[1], padded[1], rtol=0, atol=tolerance)
    assert padded[0].abs().sum() > 0 and padded[1].abs().sum() > 0
    for name, grad in padded[2].items():
        assert grad.abs().max() > 0, name
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
    "owners, allowed",
    [
        ([0, 0, 1], [[1, 0, 0], [1, 1, 0], [0, 0, 1]]),
        ([3, 5, 5, 5], [[1, 0, 0, 0], [0, 1, 0, 0], [0, 1, 1, 0], [0, 1, 1, 1]]),
    ],
)
def test_row_causal_keeps_each_row_to_itself(owners, allowed):
    assert row_causal(torch.tensor(owners)).int().tolist() == allowed


def test_end_to_end_restarts_positions_at_each_offset():
    seq = end_to_end([torch.tensor([7, 8]), torch.tensor([9]), torch.tensor([4, 5, 6])], [0, 3, 1], [2, 0, 1])
    assert seq.ids.tolist() == [7, 8, 9, 4, 5, 6]
    assert seq.positions.tolist() == [0, 1, 3, 1, 2, 3]
    assert seq.owner.tolist() == [2, 2, 0, 1, 1, 1]
    assert seq.starts.tolist() == [0, 2, 3]

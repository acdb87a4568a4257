"""SFT objective (masked response-token NLL) against values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from rlvr.objectives.logprobs import token_logprobs
from rlvr.objectives.sft import REDUCTIONS, sft_loss, sft_normalizer

LN2 = math.log(2)

# Three rows of four positions. Row 0: a prompt token (logprob -5, masked) then three response
# tokens with probabilities 1/2, 1/4, 1. Row 1: two prompt tokens, one response token of
# probability 1/8, then padding (-9, masked). Row 2: no response token at all (all masked).
LOGPROBS = [[-5.0, -LN2, -2 * LN2, 0.0], [-7.0, -7.0, -3 * LN2, -9.0], [-1.0, -1.0, -1.0, -1.0]]
MASK = torch.tensor([[0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
CASES = {
    # (1 + 2 + 0 + 3) ln2 over 4 response tokens; d/dlogp = -1/4 on each response token
    "token": (6 * LN2 / 4, 4.0, [[0, -1 / 4, -1 / 4, -1 / 4], [0, 0, -1 / 4, 0], [0, 0, 0, 0]]),
    # row means ln2 (3 ln2 / 3) and 3 ln2 (one token), over the 2 rows that have tokens (row 2 is
    # not counted); d/dlogp = -1/(row length · 2)
    "sequence": ((LN2 + 3 * LN2) / 2, 2.0, [[0, -1 / 6, -1 / 6, -1 / 6], [0, 0, -1 / 2, 0], [0, 0, 0, 0]]),
}


def _leaf(values=LOGPROBS):
    return torch.tensor(values, dtype=torch.float64, requires_grad=True)


@pytest.mark.parametrize("reduction", sorted(CASES))
def test_sft_loss_and_gradient_by_hand(reduction):
    value, normalizer, grad = CASES[reduction]
    logprobs = _leaf()
    loss, metrics = sft_loss(logprobs, MASK, reduction=reduction)
    assert loss.item() == pytest.approx(value, abs=1e-12)
    assert sft_normalizer(MASK, reduction).item() == normalizer
    assert metrics == pytest.approx(dict(loss=value, nll=6 * LN2 / 4, tokens=4.0, sequences=2))
    loss.backward()
    torch.testing.assert_close(logprobs.grad, torch.tensor(grad, dtype=torch.float64), rtol=0, atol=1e-12)


def test_every_reduction_is_tested():
    assert set(REDUCTIONS) == set(CASES)


def test_token_reduction_is_cross_entropy_with_ignored_labels():
    # an independent derivation: torch's cross entropy with ignore_index=-100 on the prompt/padding
    torch.manual_seed(0)
    logits = torch.randn(3, 6, 11, dtype=torch.float64)
    labels = torch.randint(0, 11, (3, 6))
    mask = torch.tensor([[0, 0, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1], [0, 0, 0, 1, 0, 0]], dtype=torch.float64)
    expected = F.cross_entropy(logits.reshape(-1, 11), labels.masked_fill(mask == 0, -100).reshape(-1))
    got, _ = sft_loss(token_logprobs(logits, labels).double(), mask, reduction="token")
    assert got.item() == pytest.approx(expected.item(), abs=1e-6)


@pytest.mark.parametrize("reduction", sorted(REDUCTIONS))
@pytest.mark.parametrize("loss_scale", [1.0, 3.0])
def test_micro_batches_with_the_global_normalizer_add_up_to_the_full_batch(reduction, loss_scale):
    torch.manual_seed(1)
    logprobs = (-3 * torch.rand(7, 5, dtype=torch.float64)).requires_grad_(True)
    mask = (torch.rand(7, 5) > 0.4).double()
    mask[4] = 0.0  # an empty row inside a micro-batch
    full, _ = sft_loss(logprobs, mask, reduction=reduction)
    (full_grad,) = torch.autograd.grad(full, logprobs)
    parts = [slice(0, 2), slice(2, 3), slice(3, 7)]
    normalizer = sum(sft_normalizer(mask[rows], reduction) for rows in parts)
    losses, grads = [], []
    for rows in parts:
        part = logprobs[rows].detach().requires_grad_(True)
        loss, metrics = sft_loss(part, mask[rows], reduction=reduction, normalizer=normalizer, loss_scale=loss_scale)
        assert metrics["loss"] == pytest.approx(loss.item())
        losses.append(loss)
        grads.append(torch.autograd.grad(loss, part)[0])
    # loss_scale = world size under DDP: the MEAN over 'ranks' (here the 3 parts, each scaled) is the loss
    assert (sum(losses) / loss_scale).item() == pytest.approx(full.item(), abs=1e-12)
    torch.testing.assert_close(torch.cat(grads) / loss_scale, full_grad, rtol=0, atol=1e-12)


def test_a_step_on_the_loss_raises_the_response_tokens_probability():
    torch.manual_seed(2)
    logits = torch.randn(2, 4, 7, requires_grad=True)
    tokens = torch.randint(0, 7, (2, 4))
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0], [0.0, 0.0, 1.0, 1.0]])
    before = token_logprobs(logits, tokens).detach()
    loss, _ = sft_loss(token_logprobs(logits, tokens), mask)
    loss.backward()
    with torch.no_grad():
        logits -= 1.0 * logits.grad
    after = token_logprobs(logits, tokens)
    assert (after[mask.bool()] > before[mask.bool()]).all()
    torch.testing.assert_close(after[~mask.bool()], before[~mask.bool()])  # prompt tokens are not taught


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(reduction="mean"), "sequence"),
        (dict(mask=torch.zeros(2, 3)), "no response tokens"),
        (dict(mask=torch.ones(2, 4)), r"\[rows, C\]"),
    ],
)
def test_bad_input_is_refused(kwargs, message):
    args = dict(logprobs=torch.zeros(2, 3), mask=torch.ones(2, 3)) | kwargs
    with pytest.raises(ValueError, match=message):
        sft_loss(args.pop("logprobs"), args.pop("mask"), **args)

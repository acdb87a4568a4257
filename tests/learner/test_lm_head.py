"""The learner's logprobs from hidden states in chunks of positions (rlvr.learner.lm_head): the same values and
gradients as the dense logits, and the dense path kept for a head that is more than a linear map."""

from __future__ import annotations

import pytest
import torch
import transformers.models.llama.modeling_llama as llama

from rlvr.learner.lm_head import head_is_linear, head_removed
from tests.learner.test_policy import _batch, _learner


@pytest.fixture
def exact_llama(monkeypatch):
    """RMSNorm in float64 too (HF's computes it in float32), so both paths agree to rounding."""

    def rms_norm(self, hidden):
        return self.weight * hidden * torch.rsqrt(hidden.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)

    monkeypatch.setattr(llama.LlamaRMSNorm, "forward", rms_norm)


def _logprobs_and_grads(policy, chunked: bool):
    """Through Policy.logprobs (chunked), or from the model's whole float64 logits (the reference)."""
    batch = _batch()
    tensors = policy.pack(batch.rollouts, 3)
    policy._heads[id(policy.wrapped)] = chunked
    policy.wrapped.train()
    policy.wrapped.zero_grad(set_to_none=True)
    out, entropies = [], []
    for idx in policy.micro_batches(tensors):
        if chunked:
            logprobs, entropy = policy.logprobs(tensors, idx, temperature=0.7, entropy=True)
        else:
            logits = policy._completion_logits(policy.wrapped, tensors, idx)
            assert logits.dtype == torch.float64 and logits.shape[-1] > 64
            logp = torch.log_softmax(logits / 0.7, -1)
            logprobs = logp.gather(-1, tensors["completion"][idx].unsqueeze(-1)).squeeze(-1)
            entropy = -(logp.exp() * logp).sum(-1).detach()
        (logprobs * tensors["mask"][idx]).sum().backward()
        out.append(logprobs.detach() * tensors["mask"][idx])
        entropies.append(entropy * tensors["mask"][idx])
    grads = {name: p.grad.clone() for name, p in policy.wrapped.named_parameters() if p.grad is not None}
    return torch.cat(out), torch.cat(entropies), grads


@pytest.mark.parametrize("share", [False, True])
def test_chunked_logprobs_equal_the_dense_logits_path(tiny_model, exact_llama, share):
    policy = _learner(tiny_model, share, 4)
    assert head_is_linear(policy.wrapped)
    dense_lp, dense_entropy, dense_grads = _logprobs_and_grads(policy, chunked=False)
    chunk_lp, chunk_entropy, chunk_grads = _logprobs_and_grads(policy, chunked=True)
    assert dense_lp.abs().max() > 0
    torch.testing.assert_close(chunk_lp, dense_lp, rtol=0, atol=1e-10)
    torch.testing.assert_close(chunk_entropy, dense_entropy, rtol=0, atol=1e-10)
    assert dense_grads.keys() == chunk_grads.keys() and any("embed" in n or "lm_head" in n for n in dense_grads)
    for name, grad in dense_grads.items():
        torch.testing.assert_close(chunk_grads[name], grad, rtol=1e-9, atol=1e-9, msg=name)


def test_reference_logprobs_with_lora_adapters_off_equal_the_dense_path(tiny_model):
    from rlvr.distributed import init_distributed
    from rlvr.learner.policy import Policy
    from tests.learner.test_policy import _config

    policy = Policy(
        _config(tiny_model, True, 9, **{"model.lora_r": 4}), init_distributed(), torch.device("cpu"), tiny_model
    )
    tensors = policy.pack(_batch().rollouts, 3)
    everything = slice(0, 9)
    policy._heads[id(policy.wrapped)] = True
    chunked = policy.reference_logprobs(tensors, everything)
    policy._heads[id(policy.wrapped)] = False
    dense = policy.reference_logprobs(tensors, everything)
    torch.testing.assert_close(chunked * tensors["mask"], dense * tensors["mask"], rtol=0, atol=1e-5)


def test_head_removed_returns_hidden_states_and_restores_the_head(tiny_model):
    policy = _learner(tiny_model, False, 9)
    ids = torch.tensor([[3, 4, 5]])
    before = policy.wrapped(input_ids=ids).logits
    with head_removed(policy.wrapped) as weight:
        hidden = policy.wrapped(input_ids=ids).logits
    assert hidden.shape[-1] == weight.shape[1] != before.shape[-1]
    torch.testing.assert_close(policy.wrapped(input_ids=ids).logits, before, rtol=0, atol=0)


def test_a_head_that_is_not_a_plain_linear_map_keeps_the_dense_path(tiny_model, monkeypatch):
    policy = _learner(tiny_model, False, 9)
    forward = llama.LlamaForCausalLM.forward

    def soft_capped(self, *args, **kwargs):  # a Gemma-2-like logit cap after the head
        out = forward(self, *args, **kwargs)
        out.logits = 30.0 * torch.tanh(out.logits / 30.0)
        return out

    monkeypatch.setattr(llama.LlamaForCausalLM, "forward", soft_capped)
    policy.wrapped.lm_head.weight.data.mul_(200.0)  # logits large enough for the cap to bend them
    assert not head_is_linear(policy.wrapped)
    monkeypatch.setattr(llama.LlamaForCausalLM, "forward", forward)
    assert head_is_linear(policy.wrapped)
    policy.wrapped.lm_head.bias = torch.nn.Parameter(
        torch.zeros(policy.wrapped.lm_head.out_features, dtype=torch.float64)
    )
    assert not head_is_linear(policy.wrapped)  # a biased head: not covered by the chunked path


class _NewLogitSized(torch.utils._python_dispatch.TorchDispatchMode):
    """The distinct memory blocks of at least `size` elements that ops return (views, in-place and out= ops
    return memory already counted). Each is kept alive, so a freed block's address is never handed out again."""

    def __init__(self, size: int):
        super().__init__()
        self.size, self.blocks, self.kept = size, {}, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if isinstance(out, torch.Tensor) and out.untyped_storage().nbytes() >= self.size * out.element_size():
            self.blocks.setdefault(out.untyped_storage().data_ptr(), func.__name__)
            self.kept.append(out)
        return out


@pytest.mark.parametrize("positions", [12, 40])  # one chunk (shorter than a chunk), and 5 chunks
def test_chunked_logprobs_reuse_their_chunk_buffers(positions):
    from rlvr.objectives.logprobs import chunked_token_logprobs_and_entropy

    chunk, vocab, width = 8, 64, 4  # the weight (V × H = 256) is smaller than a chunk's logits (512)
    hidden = torch.randn(positions, width, requires_grad=True)
    weight = torch.randn(vocab, width, requires_grad=True)
    tokens = torch.randint(0, vocab, (positions,))
    with _NewLogitSized(min(chunk, positions) * vocab) as counter:
        logprobs, _ = chunked_token_logprobs_and_entropy(hidden, weight, tokens, 0.7, chunk_size=chunk)
        logprobs.sum().backward()
    # two [chunk, V] buffers in forward, one in backward, however many chunks there are
    assert len(counter.blocks) == 3, counter.blocks

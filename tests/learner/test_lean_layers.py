"""rlvr.learner.lean_layers: the lean SwiGLU and RMSNorm give the stock forward bit for bit and its gradients
(float32 to 1e-6, under bfloat16 autocast no further from float32 than stock), keep less for backward,
and are only put where the probe says the module computes the same thing."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from rlvr.learner.lean_layers import make_lean, rms_norm, swiglu_down


@pytest.fixture(scope="module")
def llama(tiny_model):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32)


def _grads(model: nn.Module, ids: torch.Tensor, autocast: bool = False) -> tuple[torch.Tensor, dict]:
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = model(input_ids=ids, use_cache=False).logits
    loss = logits.float().log_softmax(-1)[:, :-1].gather(-1, ids[:, 1:, None]).mean()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _worst(grads: dict, truth: dict) -> float:
    return max(((grads[n] - truth[n]).norm() / truth[n].norm().clamp_min(1e-30)).item() for n in truth)


def test_a_llama_gets_every_mlp_and_norm_and_the_same_loss_and_gradients(llama):
    lean = copy.deepcopy(llama)
    layers = llama.config.num_hidden_layers
    assert make_lean(lean) == {"mlp": layers, "rms_norm": 2 * layers + 1}
    ids = torch.randint(0, llama.config.vocab_size, (3, 17), generator=torch.Generator().manual_seed(0))
    loss, truth = _grads(llama, ids)
    lean_loss, grads = _grads(lean, ids)
    assert torch.equal(loss, lean_loss)  # the forward is the stock one, op for op
    assert grads.keys() == truth.keys() and _worst(grads, truth) < 1e-4  # float32 rounding; float64 below
    # bfloat16 autocast: as close to the float32 gradients as the stock modules get
    stock_error = _worst(_grads(llama, ids, autocast=True)[1], truth)
    lean_error = _worst(_grads(lean, ids, autocast=True)[1], truth)
    assert lean_error < 1.5 * stock_error + 1e-3


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_swiglu_and_rms_norm_gradients_match_autograd(dtype):
    gen = torch.Generator().manual_seed(1)
    gate, up = (torch.randn(2, 5, 12, generator=gen, dtype=dtype, requires_grad=True) for _ in range(2))
    down = torch.randn(7, 12, generator=gen, dtype=dtype, requires_grad=True)
    x = torch.randn(2, 5, 7, generator=gen, dtype=dtype, requires_grad=True)
    weight = torch.randn(7, generator=gen, dtype=dtype, requires_grad=True)
    tol = dict(rtol=1e-10, atol=1e-10) if dtype == torch.float64 else dict(rtol=1e-5, atol=1e-6)

    def stock_norm(x, w):
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        return w * (xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + 1e-5)).to(x.dtype)

    for lean, stock, inputs in [
        (swiglu_down, lambda g, u, w: nn.functional.linear(nn.functional.silu(g) * u, w), (gate, up, down)),
        (lambda x, w: rms_norm(x, w, 1e-5), stock_norm, (x, weight)),
    ]:
        probe = torch.randn(lean(*inputs).shape, generator=gen, dtype=dtype)
        mine = torch.autograd.grad((lean(*inputs) * probe).sum(), inputs)
        theirs = torch.autograd.grad((stock(*inputs) * probe).sum(), inputs)
        for a, b in zip(mine, theirs, strict=True):
            torch.testing.assert_close(a, b, **tol)


def test_the_lean_mlp_keeps_half_of_what_stock_keeps_for_backward():
    def saved_bytes(fn, *inputs) -> int:
        total = 0

        def pack(t):
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            fn(*inputs).sum()
        return total

    gate, up = (torch.randn(64, 1536, requires_grad=True) for _ in range(2))
    down = torch.randn(576, 1536, requires_grad=True)
    stock = saved_bytes(lambda g, u, w: nn.functional.linear(nn.functional.silu(g) * u, w), gate, up, down)
    lean = saved_bytes(swiglu_down, gate, up, down)
    activation = gate.numel() * 4
    assert stock - lean >= 2 * activation  # silu(gate) and the product are no longer kept


class _OnePlusNorm(nn.Module):
    """Gemma-style: weight applied as (1 + weight), which the lean norm does not compute."""

    def __init__(self, width: int):
        super().__init__()
        self.weight, self.variance_epsilon = nn.Parameter(torch.randn(width)), 1e-6

    def forward(self, x):
        return (1 + self.weight) * x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)


class _GeluMLP(nn.Module):
    def __init__(self, width: int):
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(width, 2 * width, bias=False), nn.Linear(width, 2 * width, bias=False)
        self.down_proj = nn.Linear(2 * width, width, bias=False)

    def forward(self, x):
        return self.down_proj(nn.functional.gelu(self.gate_proj(x)) * self.up_proj(x))


class _BiasedMLP(_GeluMLP):
    def __init__(self, width: int):
        super().__init__(width)
        self.down_proj = nn.Linear(2 * width, width, bias=True)

    def forward(self, x):
        return self.down_proj(nn.functional.silu(self.gate_proj(x)) * self.up_proj(x))


@pytest.mark.parametrize("module", [_OnePlusNorm(8), _GeluMLP(8), _BiasedMLP(8)], ids=lambda m: type(m).__name__)
def test_modules_that_compute_something_else_keep_their_own_forward(module):
    assert make_lean(nn.Sequential(module)) == {"mlp": 0, "rms_norm": 0}
    assert "forward" not in vars(module)

"""QLoRA (model.quantization=4bit): refused in one line where bitsandbytes cannot run, and where it can, the
adapters' gradient and the merged weights the engine gets are LoRA's over the dequantized base."""

from __future__ import annotations

import pytest
import torch
from click.testing import CliRunner
from transformers import AutoModelForCausalLM

from rlvr.algorithms.grpo import GRPO, GRPOBatch
from rlvr.cli import main
from rlvr.distributed import init_distributed
from rlvr.errors import InputError
from rlvr.learner import quantize
from rlvr.learner.lora import merged_state_dict
from rlvr.learner.policy import Policy
from rlvr.train.checkpoint import save_final
from tests.learner.test_policy import _batch, _config

NO_BACKEND = quantize.four_bit_backend("cpu")
needs_backend = pytest.mark.skipif(NO_BACKEND is not None, reason=f"no 4-bit backend here: {NO_BACKEND}")


@pytest.mark.parametrize(
    "args, says",
    [
        (["--lora-r", "8", "--set", "model.quantization=4bit"], "no 4-bit backend for cpu"),  # never full precision
        (["--set", "model.quantization=4bit"], "set model.lora_r"),  # nothing would train
        (["--lora-r", "8", "--set", "model.quantization=8bit"], "model.quantization"),
    ],
)
def test_a_4bit_run_that_cannot_run_exits_2_in_one_line(monkeypatch, args, says):
    monkeypatch.setattr(quantize, "four_bit_backend", lambda device: f"bitsandbytes has no 4-bit backend for {device}")
    result = CliRunner().invoke(main, ["train", "--set", "device=cpu", "--engine", "hf", *args])
    assert result.exit_code == 2, result.output
    assert says in result.output and len(result.output.strip().splitlines()) == 1, result.output


def test_the_capability_check_refuses_and_passes(monkeypatch):
    monkeypatch.setattr(quantize, "four_bit_backend", lambda device: "no backend")
    with pytest.raises(InputError, match=r"model\.quantization=4bit: no backend"):
        quantize.require_four_bit("cpu")
    monkeypatch.setattr(quantize, "four_bit_backend", lambda device: None)
    quantize.require_four_bit("cpu")


def _pair(tiny_model) -> dict[str, Policy]:
    """A QLoRA policy and a LoRA one whose base holds the QLoRA base's dequantized weights, same adapters."""
    policies = {}
    for kind in ("4bit", "none"):
        cfg = _config(tiny_model, True, 9, **{"model.lora_r": 8, "model.quantization": kind, "optimizer.lr": 1e-3})
        torch.manual_seed(0)
        policies[kind] = Policy(cfg, init_distributed(), torch.device("cpu"), tiny_model)
    quantized = dict(policies["4bit"].module.named_modules())
    with torch.no_grad():
        for name, module in policies["none"].module.named_modules():
            if name in quantized and (weight := quantize.dequantized(quantized[name])) is not None:
                module.weight.copy_(weight)
        pairs = zip(policies["4bit"].module.parameters(), policies["none"].module.parameters(), strict=True)
        for q, f in pairs:
            if q.requires_grad:
                f.copy_(q)
    return policies


@needs_backend
def test_qlora_learns_as_lora_over_the_dequantized_base(tiny_model, tmp_path):
    policies = _pair(tiny_model)
    advantages = torch.tensor([0.8, -0.4, -0.4, -0.8, 0.4, 0.4, 0.4, -0.8, 0.4])
    for policy in policies.values():
        policy.module.eval()  # an eval-mode forward first: bitsandbytes would repack its CPU weights for inference
        with torch.no_grad():
            policy.module(torch.tensor([[1, 2, 3]]))
        for _ in range(2):
            GRPO(policy.config).learn(policy, GRPOBatch(_batch(), advantages, False))
    trained = {k: {n: p for n, p in pol.module.named_parameters() if p.requires_grad} for k, pol in policies.items()}
    assert {p.dtype for p in trained["4bit"].values()} == {torch.float32}  # the adapters train in float32
    pairs = zip(trained["4bit"].values(), trained["none"].values(), strict=True)
    moved = max((p - f).abs().max().item() for p, f in pairs)
    assert any(p.abs().max() > 0 for n, p in trained["4bit"].items() if "lora_B" in n)  # they did learn
    assert moved < 1e-5
    merged = {kind: merged_state_dict(policy.module) for kind, policy in policies.items()}  # what the engine gets
    assert set(merged["4bit"]) == set(merged["none"])
    for name, weight in merged["none"].items():
        torch.testing.assert_close(merged["4bit"][name].float(), weight.float(), rtol=0, atol=1e-4, msg=name)
    qlora = policies["4bit"]
    save_final(tmp_path / "final", qlora.module.get_base_model(), qlora.tokenizer, state_dict=merged["4bit"])
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "final").state_dict()  # a plain float32 folder
    for name, weight in merged["4bit"].items():
        torch.testing.assert_close(saved[name], weight.float(), rtol=0, atol=0, msg=name)

"""The judge on vLLM: the same greedy replies and prompt token counts as on transformers' generate."""

from __future__ import annotations

import pytest

from conftest import need
from rlvr.rollout.base import vllm_available
from rlvr.verifiers.judge_engines import HFJudgeEngine, VLLMJudgeEngine

pytestmark = [pytest.mark.vllm, pytest.mark.slow]

PROMPTS = ["Is 2+2=4? Say VERDICT: CORRECT or VERDICT: INCORRECT.", "Problem: 3*3\nSolution: 9"]


def test_vllm_judge_replies_as_hf_does(tiny_model):
    need("vllm", vllm_available())
    hf = HFJudgeEngine(tiny_model, max_new_tokens=6, batch_size=2, device="cpu").replies(PROMPTS, "VERDICT:")
    vllm = VLLMJudgeEngine(tiny_model, max_new_tokens=6, batch_size=2, device="cpu").replies(PROMPTS, "VERDICT:")
    assert [r.prompt_tokens for r in vllm] == [r.prompt_tokens for r in hf]
    assert [r.text for r in vllm] == [r.text for r in hf]
    assert all(1 <= r.new_tokens <= 6 for r in vllm)

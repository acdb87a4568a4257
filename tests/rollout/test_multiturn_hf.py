"""Multi-turn with the hf engine on the tiny model: token-id prompts sample like their text, keep their
own seed and budget anywhere in a batch; across tool turns the sampler's logprobs equal a float32
recomputation, and a trajectory is the same alone, in a group, or with calls finishing in another order."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from rlvr.environments import Call, CallStatus, Observation
from rlvr.rollout import SamplingConfig, TokenPrompt, create_engine
from rlvr.rollout.multiturn import generate_multiturn
from rlvr.testing import reference_logprobs

QUESTIONS = ["What is 2+2?", "Say hi", "Tell me a story about a cat."]


@pytest.fixture(scope="module")
def engine(tiny_model):
    return create_engine("hf", tiny_model, seed=0)


def chat_ids(tokenizer, question: str) -> list[int]:
    text = tokenizer.apply_chat_template(
        [{"role": "user", "content": question}], tokenize=False, add_generation_prompt=True
    )
    return tokenizer(text, add_special_tokens=False)["input_ids"]


class LetterEnv:
    """A call is any turn that ends at an "a" (frequent in the tiny model's random text); the tool
    answers after a delay, so with `delays` reversed the calls of a batch finish in the other order."""

    name, stop, max_turns = "letters", ("a",), 3

    def __init__(self, delays=(0.0,)):
        self.delays = delays

    def reset(self, task=None):
        return {"calls": 0}

    def parse_call(self, state, text):
        return Call(text[-8:]) if text.endswith("a") or "a" in text[-6:] else None

    def execute(self, calls):
        def one(index, state, call):
            time.sleep(self.delays[index % len(self.delays)])
            state["calls"] += 1
            return Observation(f"\n[tool {state['calls']}: {len(call.content)}]\n", CallStatus.OK)

        with ThreadPoolExecutor(max_workers=4) as pool:
            return list(pool.map(lambda args: one(*args), [(i, s, c) for i, (s, c) in enumerate(calls)]))

    def close(self):
        pass


def test_a_token_prompt_samples_like_its_text(engine):
    text = engine.tokenizer.apply_chat_template(
        [{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True
    )
    ids = engine.tokenizer(text, add_special_tokens=False)["input_ids"]
    sampling = SamplingConfig(max_new_tokens=16, seed=5)
    by_text = engine.generate([text], 2, sampling)
    by_ids = engine.generate([TokenPrompt(ids)], 2, sampling)
    assert [(r.token_ids, r.logprobs, r.prompt_token_ids) for r in by_text] == [
        (r.token_ids, r.logprobs, r.prompt_token_ids) for r in by_ids
    ]


def test_a_token_prompt_keeps_its_seed_and_budget_anywhere_in_the_batch(engine):
    prompts = [chat_ids(engine.tokenizer, q) for q in QUESTIONS]
    sampling = SamplingConfig(max_new_tokens=30, seed=1)
    mine = TokenPrompt(prompts[0], seed=77, max_new_tokens=5)
    alone = engine.generate([mine], 1, sampling)[0]
    crowded = engine.generate([TokenPrompt(prompts[1]), TokenPrompt(prompts[2], seed=3), mine], 1, sampling)
    assert crowded[2].token_ids == alone.token_ids and len(alone.token_ids) <= 5
    assert crowded[2].prompt_index == 2 and crowded[0].token_ids != alone.token_ids


@pytest.mark.parametrize(
    "sampling",
    [
        SamplingConfig(temperature=1.0, max_new_tokens=64, seed=11),
        SamplingConfig(temperature=0.7, top_k=20, max_new_tokens=64, seed=12),
    ],
    ids=["T1", "T0.7-k20"],
)
def test_logprobs_across_turns_equal_a_float32_recompute(engine, sampling):
    prompts = [chat_ids(engine.tokenizer, q) for q in QUESTIONS]
    rollouts = generate_multiturn(engine, LetterEnv(), prompts, 2, sampling)
    assert sum(len(r.tool_calls) for r in rollouts) >= 3  # the turns this test is about did happen
    for r in rollouts:
        assert len(r.token_ids) == len(r.logprobs) == len(r.loss_mask) <= sampling.max_new_tokens
        model = torch.tensor(r.loss_mask, dtype=torch.bool)
        expected = reference_logprobs(engine.model, r, sampling)
        torch.testing.assert_close(torch.tensor(r.logprobs)[model], expected[model], atol=1e-4, rtol=1e-4)
        assert all(lp == 0.0 for lp, m in zip(r.logprobs, r.loss_mask, strict=True) if not m)


def test_a_trajectory_is_the_same_alone_in_a_group_and_in_any_call_order(engine):
    prompts = [chat_ids(engine.tokenizer, q) for q in QUESTIONS]
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=48, seed=21)
    group = generate_multiturn(engine, LetterEnv(delays=(0.0, 0.05, 0.1)), prompts, 2, sampling)
    reordered = generate_multiturn(engine, LetterEnv(delays=(0.1, 0.05, 0.0)), prompts, 2, sampling)
    alone = generate_multiturn(engine, LetterEnv(), prompts[:1], 2, sampling)
    assert any(r.tool_calls for r in group[:2])
    key = lambda r: (r.token_ids, r.loss_mask, r.segments, r.finish_reason, r.tool_calls)  # noqa: E731
    assert [key(r) for r in reordered] == [key(r) for r in group]
    assert [key(r) for r in alone] == [key(r) for r in group[:2]]
    for one, other in zip(alone, group[:2], strict=True):  # batched with other lengths (padding): float32 rounding only
        torch.testing.assert_close(torch.tensor(one.logprobs), torch.tensor(other.logprobs), atol=1e-4, rtol=1e-4)

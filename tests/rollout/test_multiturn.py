"""Multi-turn rollouts with a scripted engine and the real python tool (local sandbox): the next
context is the engine's ids plus the observation's ids (never re-encoded text), masks and logprobs
line up, budgets end trajectories with the right finish reason, and nothing exceeds max_model_len."""

from __future__ import annotations

import pytest

from rlvr.environments.python import PythonEnvironment
from rlvr.errors import InputError
from rlvr.models import load_tokenizer, smollm2_tokenizer_dir
from rlvr.rollout import SamplingConfig, TokenPrompt
from rlvr.rollout.multiturn import FINISH_REASONS, generate_multiturn
from rlvr.types import Rollout

CALL = "Let me compute.\n```python\nprint(123 * 456)\n```\n```output"
ANSWER = "So the product is \\boxed{56088}."


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(smollm2_tokenizer_dir())


@pytest.fixture(scope="module")
def env():
    with PythonEnvironment(backend="local", max_turns=2, timeout=5.0) as environment:
        yield environment


def spelled(tokenizer, text: str) -> list[int]:
    """The text one character per token: a valid spelling that re-encoding would never give back."""
    return [i for ch in text for i in tokenizer(ch, add_special_tokens=False)["input_ids"]]


class ScriptedEngine:
    """Plays turn k of its script (token ids) when the context holds k observations; cuts at a stop
    string (token-exact: through the token that completes it) and at the prompt's budget."""

    kind, holds_weights, sampler_logprobs, can_sleep = "scripted", False, False, False

    def __init__(self, tokenizer, turns: list[list[int]], max_model_len: int = 2048):
        self.tokenizer, self.turns, self.max_model_len, self.requests = tokenizer, turns, max_model_len, []

    def generate(self, prompts, n=1, sampling=None):
        out = []
        for index, prompt in enumerate(prompts):
            assert isinstance(prompt, TokenPrompt) and n == 1
            self.requests.append(prompt)
            turn = self.tokenizer.decode(list(prompt.token_ids)).count("```output")
            ids, finish = list(self.turns[min(turn, len(self.turns) - 1)]), "stop"
            for k in range(1, len(ids) + 1):
                if any(s in self.tokenizer.decode(ids[:k]) for s in sampling.stop):
                    ids = ids[:k]
                    break
            if len(ids) > prompt.max_new_tokens:
                ids, finish = ids[: prompt.max_new_tokens], "length"
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            text = text[: min([text.find(s) for s in sampling.stop if s in text], default=len(text))]
            out.append(Rollout(index, text, tuple(ids), tuple(-0.5 for _ in ids), finish, prompt.token_ids))
        return out


def check_invariants(rollout, prompt_len: int, sampling: SamplingConfig, max_model_len: int) -> None:
    """What every multi-turn rollout keeps, whatever ended it."""
    assert len(rollout.token_ids) == len(rollout.logprobs) == len(rollout.loss_mask)
    assert len(rollout.token_ids) <= sampling.max_new_tokens
    assert prompt_len + len(rollout.token_ids) <= max_model_len
    assert rollout.finish_reason in FINISH_REASONS
    for kind, start, end in rollout.segments:
        assert set(rollout.loss_mask[start:end]) == {1 if kind == "model" else 0}
        if kind == "tool":
            assert set(rollout.logprobs[start:end]) == {0.0}


def test_the_next_turn_is_the_engine_ids_plus_the_observation_ids(tokenizer, env):
    prompt = tokenizer("Compute 123*456.\n", add_special_tokens=False)["input_ids"]
    turn0, turn1 = spelled(tokenizer, CALL), [*spelled(tokenizer, ANSWER), tokenizer.eos_token_id]
    engine = ScriptedEngine(tokenizer, [turn0, turn1])
    sampling = SamplingConfig(max_new_tokens=400, seed=1)
    (rollout,) = generate_multiturn(engine, env, [prompt], 1, sampling)
    observation = "\n56088\n```\n"
    obs_ids = tokenizer(observation, add_special_tokens=False)["input_ids"]
    assert list(engine.requests[1].token_ids) == prompt + turn0 + obs_ids  # concatenated, not re-encoded
    assert tokenizer(tokenizer.decode(turn0), add_special_tokens=False)["input_ids"] != turn0  # would have shown
    assert list(rollout.token_ids) == turn0 + obs_ids + turn1 and rollout.prompt_token_ids == tuple(prompt)
    assert rollout.loss_mask == (1,) * len(turn0) + (0,) * len(obs_ids) + (1,) * len(turn1)
    assert rollout.segments == (
        ("model", 0, len(turn0)),
        ("tool", len(turn0), len(turn0) + len(obs_ids)),
        ("model", len(turn0) + len(obs_ids), len(rollout.token_ids)),
    )
    assert rollout.logprobs == (-0.5,) * len(turn0) + (0.0,) * len(obs_ids) + (-0.5,) * len(turn1)
    assert rollout.finish_reason == "stop" and rollout.tool_calls[0]["status"] == "ok"
    assert rollout.tool_calls[0]["observation"] == observation and rollout.tool_calls[0]["code"] == "print(123 * 456)"
    assert rollout.text == CALL + ANSWER  # the model's own text: the tool's output is not in it
    check_invariants(rollout, len(prompt), sampling, engine.max_model_len)


def test_a_tool_printing_the_answer_does_not_put_it_in_the_scored_text(tokenizer, env):
    call = "```python\nprint(chr(92) + 'boxed{' + str(3 + 4) + '}')\n```\n```output"
    engine = ScriptedEngine(tokenizer, [spelled(tokenizer, call), [tokenizer.eos_token_id]])
    (rollout,) = generate_multiturn(engine, env, [[1, 2, 3]], 1, SamplingConfig(max_new_tokens=200, seed=0))
    assert rollout.tool_calls[0]["observation"] == "\n\\boxed{7}\n```\n"
    assert "boxed{7}" not in rollout.text and rollout.text == call


# (script, max_new_tokens, max_model_len, finish, calls run); the budgets are functions of the length
# of the first scripted turn (c) and of the prompt (p)
BUDGETS = {
    "answer_without_a_call": ([ANSWER + "<|im_end|>"], lambda c, p: 400, lambda c, p: 2048, "stop", 0),
    "calls_past_max_turns": ([CALL], lambda c, p: 400, lambda c, p: 2048, "tool_budget", 2),
    "observation_overflows_the_budget": ([CALL], lambda c, p: c + 2, lambda c, p: 2048, "length", 1),
    "the_call_uses_the_last_token": ([CALL], lambda c, p: c, lambda c, p: 2048, "length", 0),
    "model_runs_out_of_budget": (["x" * 300], lambda c, p: 50, lambda c, p: 2048, "length", 0),
    "observation_overflows_the_context": ([CALL], lambda c, p: 400, lambda c, p: p + c + 2, "context", 1),
    "the_call_fills_the_context": ([CALL], lambda c, p: 400, lambda c, p: p + c, "context", 0),
    "model_runs_out_of_context": (["x" * 300], lambda c, p: 400, lambda c, p: 60, "context", 0),
}


@pytest.mark.parametrize("case", BUDGETS)
def test_budgets_end_trajectories_with_their_reason(tokenizer, env, case):
    script, budget, context, finish, calls = BUDGETS[case]
    turns = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in script]
    prompt = tokenizer("Compute 123*456.\n", add_special_tokens=False)["input_ids"]
    max_model_len = context(len(turns[0]), len(prompt))
    engine = ScriptedEngine(tokenizer, turns, max_model_len=max_model_len)
    sampling = SamplingConfig(max_new_tokens=budget(len(turns[0]), len(prompt)), seed=3)
    (rollout,) = generate_multiturn(engine, env, [prompt], 1, sampling)
    assert rollout.finish_reason == finish and len(rollout.tool_calls) == calls
    check_invariants(rollout, len(prompt), sampling, max_model_len)
    for request in engine.requests:
        assert len(request.token_ids) + request.max_new_tokens <= max_model_len


def test_calls_of_a_group_run_as_one_batch(tokenizer, env, monkeypatch):
    batches = []
    execute = env.execute
    monkeypatch.setattr(env, "execute", lambda calls: batches.append(len(calls)) or execute(calls))
    engine = ScriptedEngine(tokenizer, [tokenizer(CALL, add_special_tokens=False)["input_ids"]])
    rollouts = generate_multiturn(engine, env, [[5, 6], [7, 8, 9]], 3, SamplingConfig(max_new_tokens=400, seed=4))
    assert batches == [6, 6] and [r.prompt_index for r in rollouts] == [0, 0, 0, 1, 1, 1]
    assert {r.finish_reason for r in rollouts} == {"tool_budget"}


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"sampling": SamplingConfig(max_new_tokens=10)}, "needs a seed"),
        ({"seed": 1, "n": 0}, "samples per prompt"),
        ({"seed": 1, "tasks": [None, None]}, "2 tasks for 1 prompts"),
    ],
)
def test_bad_calls_are_input_errors(tokenizer, env, kwargs, message):
    with pytest.raises(InputError, match=message):
        generate_multiturn(ScriptedEngine(tokenizer, [[1]]), env, [[1, 2]], **kwargs)


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"loss_mask": (1, 0)}, "loss_mask has 2 entries for 3 tokens"),
        ({"logprobs": (0.0,)}, "logprobs has 1 entries for 3 tokens"),
        ({"segments": (("model", 0, 2),)}, "do not tile 3 tokens"),
        ({"segments": (("model", 0, 1), ("tool", 2, 3))}, "do not tile"),
        ({"segments": (("model", 0, 1), ("python", 1, 3))}, "do not tile"),
    ],
)
def test_a_rollout_whose_lengths_disagree_is_refused(fields, message):
    base = {"prompt_index": 0, "text": "t", "token_ids": (1, 2, 3), "logprobs": (-1.0,) * 3, "finish_reason": "stop"}
    with pytest.raises(ValueError, match=message):
        Rollout(**{**base, **fields})


def test_a_single_turn_rollout_trains_every_token():
    rollout = Rollout(0, "t", (1, 2, 3), (-1.0,) * 3, "stop")
    assert rollout.mask == (1, 1, 1) and rollout.segments == () and rollout.tool_calls == ()
    assert not rollout.truncated and Rollout(0, "t", (1,), (-1.0,), "context").truncated

"""SFT tool traces: generated arith traces are real (re-running them agrees), a fabricated output is
refused naming the row, traces split into model/tool parts exactly as the environment appends them,
SFT tokens equal RL tokens, and `rlvr train --algorithm sft --env python` trains on them."""

from __future__ import annotations

import json
import sys

import pytest

from rlvr.config import load_config
from rlvr.data.arith import generate_arith
from rlvr.data.supervised import sft_examples
from rlvr.environments.python import PythonEnvironment
from rlvr.environments.traces import arith_trace, check_traces, split_trace, tool_examples
from rlvr.errors import InputError
from rlvr.models import load_tokenizer, smollm2_tokenizer_dir
from rlvr.rollout import SamplingConfig
from rlvr.rollout.multiturn import generate_multiturn, segment_rollout

sys.path.insert(0, __file__.rsplit("/tests/", 1)[0] + "/tests/rollout")
from test_multiturn import ScriptedEngine

TRACE = "```python\nprint(2 * 3)\n```\n```output\n6\n```\nThe final answer is \\boxed{6}."


@pytest.fixture(scope="module")
def env():
    with PythonEnvironment(backend="local", max_turns=4) as environment:
        yield environment


@pytest.fixture(scope="module")
def tokenizer():
    return load_tokenizer(smollm2_tokenizer_dir())


@pytest.mark.parametrize("text, parts", [
    (TRACE, [("model", "```python\nprint(2 * 3)\n```\n```output"), ("tool", "\n6\n```\n"),
             ("model", "The final answer is \\boxed{6}.")]),
    ("No tool here: \\boxed{1}.", [("model", "No tool here: \\boxed{1}.")]),
    ("```python\nx=1\n```\n```output\n```\n```python\nprint(x)\n```\n```output\n1\n```\n",
     [("model", "```python\nx=1\n```\n```output"), ("tool", "\n```\n"),
      ("model", "```python\nprint(x)\n```\n```output"), ("tool", "\n1\n```\n")]),
    ("```python\nprint(1)\n```\n```output\n1", [("model", "```python\nprint(1)\n```\n```output"), ("tool", "\n1")]),
])
def test_a_trace_splits_into_model_and_tool_parts(text, parts):
    assert split_trace(text) == parts
    assert "".join(p for _, p in parts) == text


def test_generated_arith_traces_are_what_the_code_prints(env):
    rows = tool_examples(generate_arith(12, difficulty="expert", seed=4))
    assert rows[0].metadata["response"] == arith_trace(rows[0].metadata["expression"], rows[0].answer)
    assert rows[0].metadata["response"].endswith(f"The final answer is \\boxed{{{rows[0].answer}}}.")
    check_traces(env, [(e.id, e.metadata["response"]) for e in rows])  # raises on any disagreement


@pytest.mark.parametrize("trace, call", [
    (TRACE.replace("\n6\n", "\n7\n"), 1),  # a fabricated output
    ("```python\nx = 5\n```\n```output\n```\n```python\nprint(x + 1)\n```\n```output\n7\n```\n", 2),  # state kept
])
def test_a_fabricated_output_is_refused_naming_the_row(env, trace, call):
    with pytest.raises(InputError, match=rf"rows/1: tool call {call} records '7', but its code prints '6'"):
        check_traces(env, [("rows/0", TRACE), ("rows/1", trace)])


def test_sft_tokens_equal_rl_tokens(tokenizer, env):
    """The RL rollout of a model that writes the trace's model parts (in their own tokens) and the SFT
    rollout of the same trace are the same ids, mask and segments."""
    prompt = "What is 2 * 3?\n"
    parts = split_trace(TRACE)
    turns = [tokenizer(parts[0][1], add_special_tokens=False)["input_ids"],
             [*tokenizer(parts[2][1], add_special_tokens=False)["input_ids"], tokenizer.eos_token_id]]
    [rl] = generate_multiturn(ScriptedEngine(tokenizer, turns), env,
                              [tokenizer(prompt, add_special_tokens=False)["input_ids"]],
                              sampling=SamplingConfig(max_new_tokens=200, seed=0))
    sft = segment_rollout(tokenizer, prompt, parts)
    assert (sft.token_ids, sft.loss_mask, sft.segments) == (rl.token_ids, rl.loss_mask, rl.segments)
    assert sft.prompt_token_ids == rl.prompt_token_ids and sft.text == rl.text


def test_trl_messages_with_tool_turns_become_one_trace(tokenizer, tmp_path):
    path = tmp_path / "traces.jsonl"
    path.write_text(json.dumps({"messages": [
        {"role": "user", "content": "What is 2 * 3?"},
        {"role": "assistant", "content": "```python\nprint(2 * 3)\n```"},
        {"role": "tool", "content": "6"},
        {"role": "assistant", "content": "The final answer is \\boxed{6}."}]}) + "\n")
    [row] = sft_examples(None, path=str(path), tokenizer=tokenizer)
    assert row.metadata["response"] == TRACE
    assert "What is 2 * 3?" in row.metadata["rendered_prompt"] and "print" not in row.metadata["rendered_prompt"]


# ------------------------------------------------------------------------------ through the trainer


def _config(model, out, **extra):
    return load_config(None, {
        "algorithm": "sft", "model.name": str(model), "device": "cpu", "rollout.engine": "hf", "data.size": 16,
        "reward.workers": 0, "reward.audit": False, "rollout.prompts_per_step": 4, "optimizer.max_steps": 1,
        "optimizer.warmup_steps": 0, "logging.output": str(out), "logging.progress": False,
        "checkpoint.every": 0, "eval.before_after": False, "env.name": "python", "env.backend": "local", **extra})


def test_sft_with_the_tool_trains_on_masked_arith_traces(tiny_model, tmp_path):
    from rlvr.train.monitor import read_metrics
    from rlvr.train.trainer import Trainer

    trainer = Trainer(_config(tiny_model, tmp_path))
    try:
        assert trainer.config.data.difficulty == "expert"  # the env runs' default
        step = trainer.algorithm.make_step(trainer, type("T", (), {"add": lambda *a: None})())
        for row in step.batch.rollouts:
            kinds = [kind for kind, _, _ in row.segments]
            assert kinds == ["model", "tool", "model"] and 0 < sum(row.mask) < len(row.token_ids)
            assert "```output" in row.text and "The final answer is \\boxed{" in row.text
    finally:
        trainer.close()
    Trainer(_config(tiny_model, tmp_path / "run")).train()
    assert read_metrics(tmp_path / "run")[0]["examples"] == 4


def test_sft_from_a_file_with_a_fabricated_output_is_refused(tiny_model, tmp_path):
    from rlvr.train.trainer import Trainer

    path = tmp_path / "traces.jsonl"
    path.write_text("\n".join(json.dumps({"prompt": "What is 2 * 3?", "completion": t})
                              for t in (TRACE, TRACE.replace("\n6\n", "\n7\n"))) + "\n")
    with pytest.raises(InputError, match="traces/1: tool call 1 records '7'"):
        Trainer(_config(tiny_model, tmp_path / "run", **{"data.dataset": str(path)}))

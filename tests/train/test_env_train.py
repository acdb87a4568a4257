"""Training with an environment: the env config section and --env, the stage that builds it (auto never
picks local; neither sandbox: one line, exit 2), generate→verify through multi-turn rollouts (the verifier
sees the model's own text only), a broken sandbox stopping the run, and tool metrics per step."""

from __future__ import annotations

import logging
import sys

import pytest
from click.testing import CliRunner

from rlvr.config import load_config
from rlvr.environments.base import EnvironmentBroken
from rlvr.environments.python import PythonEnvironment
from rlvr.errors import InputError, RlvrError
from rlvr.rollout import SamplingConfig
from rlvr.rollout.collect import sample_and_score
from rlvr.train import stages
from rlvr.types import Example, Score, Status

sys.path.insert(0, __file__.rsplit("/tests/", 1)[0] + "/tests/rollout")
from test_multiturn import ScriptedEngine, spelled


@pytest.mark.parametrize(
    "overrides, expected",
    [
        ({}, None),
        ({"env.name": "none"}, None),
        ({"env.name": "python"}, "python"),
    ],
)
def test_env_name_defaults_to_the_single_turn_path(overrides, expected):
    assert load_config(None, overrides).env.name == expected


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("env.backend", "podman", "env.backend must be one of auto, docker, bwrap, local"),
        ("env.max_turns", 0, "env.max_turns must be > 0"),
        ("env.timeout", -1, "env.timeout must be > 0"),
        ("grpo.void_turns", "drop", "grpo.void_turns must be one of keep, mask"),
        ("env.turns", 3, "unknown config key 'env.turns'"),
    ],
)
def test_bad_env_options_are_one_error_naming_the_key(key, value, message):
    with pytest.raises(InputError, match=message):
        load_config(None, {key: value})


def test_no_env_builds_nothing_and_local_warns(caplog):
    assert stages.build_environment(load_config(None, {})) is None
    with caplog.at_level(logging.WARNING):
        env = stages.build_environment(
            load_config(None, {"env.name": "python", "env.backend": "local", "env.max_turns": 2, "env.timeout": 3})
        )
    try:
        assert isinstance(env, PythonEnvironment) and (env.backend, env.max_turns, env.timeout) == ("local", 2, 3.0)
        assert "NOT a security boundary" in caplog.text
    finally:
        env.close()


def test_auto_never_falls_back_to_local(monkeypatch):
    from rlvr.environments import python as python_env

    class Missing:
        @staticmethod
        def available():
            return False, "not here"

    monkeypatch.setattr(python_env, "_backend_class", lambda name: Missing)
    with pytest.raises(InputError, match=r"env\.backend=auto found no sandbox") as err:
        stages.build_environment(load_config(None, {"env.name": "python"}))
    assert err.value.exit_code == 2


def test_an_unknown_environment_is_an_input_error():
    with pytest.raises(InputError, match="--env 'calculator'"):
        stages.build_environment(load_config(None, {"env.name": "calculator"}))


def test_train_cli_refuses_to_start_without_a_sandbox(monkeypatch, tmp_path):
    from rlvr.cli import main
    from rlvr.environments import python as python_env

    class Missing:
        @staticmethod
        def available():
            return False, "not here"

    monkeypatch.setattr(python_env, "_backend_class", lambda name: Missing)
    result = CliRunner().invoke(main, ["train", "--env", "python", "--dry-run", "--output", str(tmp_path)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines()[-1].startswith("error: env.backend=auto found no sandbox")


# ------------------------------------------------------------------------------ generate → verify


class TextRunner:
    """Scores what it is given: the texts, so a test can see that no tool output reached the reward."""

    def __init__(self):
        self.texts = []

    def score(self, texts, examples):
        self.texts.extend(texts)
        return [
            Score(1.0, Status.CORRECT) if f"\\boxed{{{e.answer}}}" in t else Score(0.0, Status.NO_ANSWER)
            for t, e in zip(texts, examples, strict=True)
        ]


@pytest.fixture(scope="module")
def tokenizer():
    from rlvr.models import load_tokenizer, smollm2_tokenizer_dir

    return load_tokenizer(smollm2_tokenizer_dir())


@pytest.mark.parametrize(
    "turns, reward",
    [
        # the tool prints the boxed gold, the model never writes it: no answer, no reward
        (["```python\nprint('\\\\boxed{%d}' % (123 * 456))\n```\n```output", "I am done."], 0.0),
        (["```python\nprint(123 * 456)\n```\n```output", "So it is \\boxed{56088}."], 1.0),
    ],
)
def test_the_verifier_scores_the_models_own_text_only(tokenizer, turns, reward):
    engine = ScriptedEngine(
        tokenizer,
        [spelled(tokenizer, t) for t in turns[:-1]] + [[*spelled(tokenizer, turns[-1]), tokenizer.eos_token_id]],
    )
    runner = TextRunner()
    with PythonEnvironment(backend="local", max_turns=2) as env:
        collected = sample_and_score(
            engine,
            runner,
            [Example("a/0", "123*456?", "56088")],
            1,
            SamplingConfig(max_new_tokens=200, seed=3),
            lambda e: e.prompt,
            env=env,
        )
    [rollout] = collected.rollouts
    assert [c["status"] for c in rollout.tool_calls] == ["ok"]
    assert collected.scores[0].reward == reward
    assert runner.texts == [rollout.text] and "56088" in rollout.tool_calls[0]["observation"]
    assert rollout.tool_calls[0]["observation"].strip() not in rollout.text
    assert ("56088" in rollout.text) is bool(reward)
    assert collected.tool_s > 0 and collected.generate_s >= 0


def test_a_broken_sandbox_stops_with_one_clear_error(tokenizer):
    class Broken(PythonEnvironment):
        def execute(self, calls):
            raise EnvironmentBroken("python environment: the docker sandbox failed: daemon not running")

    engine = ScriptedEngine(tokenizer, [spelled(tokenizer, "```python\nprint(1)\n```\n```output")])
    with Broken(backend="local") as env, pytest.raises(RlvrError, match="daemon not running") as err:
        sample_and_score(
            engine,
            TextRunner(),
            [Example("a/0", "q", "1")],
            1,
            SamplingConfig(max_new_tokens=50, seed=1),
            lambda e: e.prompt,
            env=env,
        )
    assert err.value.exit_code == 1


# ------------------------------------------------------------------------------ the trainer


def _tool_run(model, out, **extra):
    """One GRPO step of the tiny model with the python tool on the local backend."""
    return load_config(
        None,
        {
            "model.name": str(model),
            "device": "cpu",
            "rollout.engine": "hf",
            "data.dataset": "arith",
            "data.size": 16,
            "reward.workers": 0,
            "reward.audit": False,
            "rollout.n": 2,
            "rollout.prompts_per_step": 2,
            "rollout.max_new_tokens": 8,
            "optimizer.max_steps": 1,
            "optimizer.warmup_steps": 0,
            "logging.output": str(out),
            "logging.progress": False,
            "checkpoint.every": 0,
            "env.name": "python",
            "env.backend": "local",
            **extra,
        },
    )


def test_a_grpo_step_with_the_python_tool_logs_tool_metrics(tiny_model, tmp_path):
    from rlvr.train.monitor import read_metrics
    from rlvr.train.trainer import train

    config = _tool_run(tiny_model, tmp_path, **{"eval.before_after": False, "grpo.void_turns": "mask"})
    train(config)
    [step] = read_metrics(tmp_path)
    for key in (
        "tool_calls_mean",
        "tool_s",
        "generate_s",
        "turns_mean",
        "tool_error_rate",
        "tool_timeout_rate",
        "void_rate",
        "model_tokens",
        "tool_tokens",
        "time_tool",
    ):
        assert key in step, key
    assert step["turns_mean"] >= 1


def test_a_run_with_the_tool_reports_the_tool_off_accuracy_beside_before_and_after(tiny_model, tmp_path):
    import json

    from rlvr.train.summary import read_summary, summary_table
    from rlvr.train.trainer import train

    config = _tool_run(tiny_model, tmp_path, **{"eval.limit": 3})
    train(config)
    summary = read_summary(tmp_path)
    for block in ("before", "after", "after_tool_off"):
        assert {"accuracy", "ci", "n"} <= set(summary[block]) and summary[block]["n"] == 3, block
    assert summary["after_tool_off"]["step"] == summary["after"]["step"] == 1
    assert "(after, tool off)" in summary_table(summary)
    with_tool = json.loads((tmp_path / "eval" / "step_000001" / "summary.json").read_text())
    without = json.loads((tmp_path / "eval" / "step_000001_tool_off" / "summary.json").read_text())
    assert {"calls_mean", "used_rate", "error_rate", "timeout_rate"} <= set(with_tool["tool"])
    assert "tool_s" in with_tool["timing"] and "tool" not in without


def test_rlvr_eval_with_the_tool_writes_tool_statistics(tiny_model, tmp_path):
    import json

    from rlvr.cli import main

    result = CliRunner().invoke(
        main,
        [
            "eval",
            "--model",
            str(tiny_model),
            "--benchmark",
            "arith",
            "--limit",
            "2",
            "--engine",
            "hf",
            "--max-new-tokens",
            "8",
            "--workers",
            "1",
            "--env",
            "python",
            "--env-backend",
            "local",
            "--output",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 0, result.output
    (found,) = tmp_path.glob("arith*/summary.json")  # the folder is named by the benchmark spec
    summary = json.loads(found.read_text())
    assert summary["env"] == "python" and summary["tool"]["calls_mean"] >= 0 and "tool_s" in summary["timing"]

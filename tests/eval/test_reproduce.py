"""One number whatever reports it: a training run's before → after is what its recorded `rlvr eval` command
gives, sample by sample (hf engine); benchmark specs, the settings printed beside a number, and the
warnings when two numbers were made with different settings."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from click.testing import CliRunner

from rlvr.cli import main
from rlvr.config import load_config, resolve_auto
from rlvr.data.specs import load_examples, parse_spec, split_specs
from rlvr.errors import InputError
from rlvr.eval.spec import EvalSpec, describe, differences
from rlvr.train.summary import read_summary, summary_table
from rlvr.train.trainer import train
from tests.train.test_trainer import _config as _train_config


def _config(model: Path, out: Path, **extra):
    """test_trainer's tiny run (a reward with variance, so 2 steps move the weights), evaluated before and after."""
    held_out = {"eval.before_after": True, "eval.limit": 12, "eval.max_new_tokens": 16, "checkpoint.every": 0}
    return _train_config(model, out, **{**held_out, **extra})


def _samples(folder: Path) -> dict[tuple[str, int], str]:
    rows = [json.loads(line) for line in (folder / "samples.jsonl").read_text().splitlines()]
    return {(r["id"], r["sample"]): r["completion"] for r in rows}


@pytest.mark.slow
def test_the_recorded_eval_command_reproduces_before_and_after_sample_by_sample(tiny_model, tmp_path):
    run = tmp_path / "run"
    train(_config(tiny_model, run))
    summary = read_summary(run)
    command = summary["eval_command"]
    assert command.startswith("rlvr eval --model {model} ") and "--engine hf" in command
    # the trainer generated with its float32 master weights (whatever it computed the loss in): pinned
    assert "--dtype float32" in command and "--benchmark arith:easy,seed=0" in command
    assert "reproduce with" in summary_table(summary) and command in summary_table(summary)
    trained = {}
    for label, model, step in (("before", tiny_model, 0), ("after", run / "final", 2)):
        args = shlex.split(command.replace("{model}", str(model)))
        out = tmp_path / f"eval-{label}"
        result = CliRunner().invoke(main, [*args[1:], "--output", str(out)])
        assert result.exit_code == 0, result.output
        assert "warning" not in result.output  # the same settings as the run's: nothing to warn about
        (mine,) = [p for p in out.iterdir() if p.is_dir()]
        theirs = run / "eval" / f"step_{step:06d}"
        again = json.loads((mine / "summary.json").read_text())
        assert again["accuracy"] == summary[label]["accuracy"] and again["n_problems"] == summary[label]["n"] == 12
        assert _samples(mine) == _samples(theirs)  # every completion, sample by sample
        trained[label] = _samples(theirs)
    assert trained["before"] != trained["after"], "training must change some completion, else the test proves little"


@pytest.mark.slow
def test_a_checkpoint_evaluated_with_other_settings_warns_naming_them(tiny_model, tmp_path):
    run = tmp_path / "run"
    train(_config(tiny_model, run, **{"optimizer.max_steps": 1, "eval.limit": 3}))
    result = CliRunner(env={"COLUMNS": "200"}).invoke(
        main,
        [
            "bench",
            str(run / "final"),
            "--benchmark",
            "arith",
            "--limit",
            "3",
            "--max-new-tokens",
            "8",
            "--engine",
            "hf",
            "--output",
            str(tmp_path / "bench"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "warning" in result.output and "benchmark: arith:easy,seed=0 vs arith:medium,seed=0" in result.output
    assert "max_new_tokens: 16 vs 8" in result.output
    settings = "arith:medium,seed=0 test · n=3 · 8 new tokens · float32 · hf"  # beside the accuracy, in both tables
    assert settings in result.output and settings in (tmp_path / "bench" / "comparison.md").read_text()


@pytest.mark.parametrize(
    "text, name, options",
    [
        ("arith", "arith", {"difficulty": "medium", "seed": 0}),
        ("arith:easy", "arith", {"difficulty": "easy", "seed": 0}),
        ("arith:hard,seed=3", "arith", {"difficulty": "hard", "seed": 3}),
        ("arith:seed=5,difficulty=expert", "arith", {"difficulty": "expert", "seed": 5}),
        ("gsm8k", "gsm8k", {}),
    ],
)
def test_benchmark_specs_name_every_option(text, name, options):
    assert parse_spec(text) == (name, options)


@pytest.mark.parametrize(
    "text, error",
    [
        ("arith:trivial", "difficulty 'trivial'"),
        ("arith:easy,colour=red", "unknown option 'colour=red'"),
        ("gsm8k:easy", "takes no options"),
        ("arith:easy,seed=x", "seed must be an integer"),
    ],
)
def test_bad_benchmark_specs_are_one_clear_error(text, error):
    with pytest.raises(InputError, match=error):
        parse_spec(text)


@pytest.mark.parametrize(
    "text, specs",
    [
        ("gsm8k,math500", ["gsm8k", "math500"]),
        ("arith:easy,seed=3,gsm8k", ["arith:easy,seed=3", "gsm8k"]),
        ("gsm8k, arith:hard", ["gsm8k", "arith:hard"]),
    ],
)
def test_benchmark_lists_keep_a_specs_options_together(text, specs):
    assert split_specs(text) == specs


@pytest.mark.parametrize(
    "overrides, expected, tokens",
    [
        ({}, "arith:easy,seed=0", 64),  # the CPU defaults: easy problems, 64 new tokens
        ({"seed": 7, "data.difficulty": "hard", "eval.max_new_tokens": 100}, "arith:hard,seed=7", 100),
        ({"data.dataset": "math"}, "math500", 64),
        ({"eval.dataset": "gsm8k"}, "gsm8k", 64),
    ],
)
def test_the_trainers_held_out_eval_is_one_spec_with_the_same_examples(overrides, expected, tokens):
    config = resolve_auto(load_config(None, {"reward.verifier": "math", **overrides}), "cpu")
    spec = EvalSpec.from_train_config(config, engine="vllm", dtype="bfloat16")
    assert (spec.benchmark, spec.max_new_tokens, spec.limit) == (expected, tokens, config.eval.limit)
    assert [e.id for e in spec.examples()] == [e.id for e in load_examples(config, held_out=True)]
    assert f"--benchmark {expected} " in spec.to_command() and "--dtype bfloat16" in spec.to_command()


def test_the_command_round_trips_an_instruction_that_needs_quoting():
    spec = EvalSpec(benchmark="arith:easy", instruction="Answer in {braces} and 'quotes'.", top_k=5)
    args = shlex.split(spec.to_command())
    assert args[args.index("--instruction") + 1] == spec.instruction and args[args.index("--top-k") + 1] == "5"


def test_settings_are_printed_and_differences_named():
    a = {
        "benchmark": "arith:easy,seed=0",
        "split": "test",
        "n": 200,
        "max_new_tokens": 64,
        "dtype": "bfloat16",
        "engine": "vllm",
        "temperature": 0.0,
    }
    b = {**a, "benchmark": "arith:medium,seed=0", "max_new_tokens": 512, "dtype": "float32"}
    assert describe(a) == "arith:easy,seed=0 test · n=200 · 64 new tokens · bfloat16 · vllm"
    assert differences(a, b) == [
        "benchmark: arith:easy,seed=0 vs arith:medium,seed=0",
        "max_new_tokens: 64 vs 512",
        "dtype: bfloat16 vs float32",
    ]
    assert differences(a, {**a, "n": None}) == []  # unknown on one side is no difference

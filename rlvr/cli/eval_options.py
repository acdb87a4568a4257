"""The flags that define an eval (benchmark spec, split, style, length, sampling, engine, dtype, tool), shared by
`rlvr eval` and `rlvr bench` so both generate exactly the same way."""

from __future__ import annotations

import click

from rlvr import names

__all__ = ["DEFAULT_MAX_NEW_TOKENS", "STYLES", "generation_options"]

STYLES = tuple(names.STYLES)
DEFAULT_MAX_NEW_TOKENS = 512


def generation_options(command):
    """Options shared by eval and bench, so both generate exactly the same way."""
    options = [
        click.option(
            "--benchmark",
            "-b",
            default="gsm8k",
            show_default=True,
            help="Comma-separated benchmarks (gsm8k, math, math500, aime24, amc23, humaneval, arith, "
            "reasoning_gym:TASK) or paths of JSONL/Parquet files with problem/question and answer fields. arith "
            "takes its difficulty and generator seed: arith:easy, arith:hard,seed=3 [default: medium, 0]; "
            "reasoning_gym a task, its seed and config keys: reasoning_gym:countdown:seed=1,min_numbers=3.",
        ),
        click.option(
            "--prompt-field",
            default=None,
            help="For data files: the problem column [default: first of problem, question, prompt].",
        ),
        click.option(
            "--answer-field", default="answer", show_default=True, help="For data files: the gold answer column."
        ),
        click.option(
            "--id-field", default=None, help="For data files: the id column [default: file name + row number]."
        ),
        click.option(
            "--split", default="test", show_default=True, help="Benchmark split (math train = MATH minus MATH-500)."
        ),
        click.option("--limit", type=click.IntRange(min=1), default=None, help="Evaluate only the first N problems."),
        click.option(
            "--samples",
            "-k",
            type=click.IntRange(min=1),
            default=1,
            show_default=True,
            help="Completions per problem; >1 reports avg@k, pass@k and maj@k.",
        ),
        click.option(
            "--select",
            multiple=True,
            metavar="SPEC",
            help="Best-of-N: pick one of the --samples completions per problem without the gold, by "
            "`majority`, a gold-free verifier spec (think_format, boxed_format, ...) or "
            "reward_model:model=PATH; reports best-of-N@SPEC beside pass@N and maj@N. Repeatable.",
        ),
        click.option(
            "--temperature",
            "-t",
            type=click.FloatRange(min=0),
            default=None,
            help="Sampling temperature [default: 0 (greedy) with one sample, 1.0 with more].",
        ),
        click.option(
            "--top-p",
            type=click.FloatRange(0, 1, min_open=True),
            default=1.0,
            show_default=True,
            help="Nucleus sampling.",
        ),
        click.option(
            "--top-k", type=click.IntRange(min=0), default=0, show_default=True, help="Top-k sampling (0: off)."
        ),
        click.option(
            "--max-new-tokens",
            type=click.IntRange(min=1),
            default=None,
            help="Longest completion; longer ones are cut and count as truncated "
            "[default: 512; --style lm-eval: the task's own, 256].",
        ),
        click.option(
            "--engine",
            type=click.Choice(names.ENGINE_CHOICES),
            default="auto",
            show_default=True,
            help="Generation engine: vllm when importable (auto), or transformers generate (hf).",
        ),
        click.option(
            "--dtype",
            type=click.Choice((names.AUTO, *names.DTYPES)),
            default="auto",
            show_default=True,
            help="Engine weights dtype [auto: hf float32, vllm bfloat16 on CPU].",
        ),
        click.option(
            "--style",
            type=click.Choice(STYLES),
            default="chat",
            show_default=True,
            help="Prompt template: chat (instruct models), fewshot (base models, lm-eval GSM8K format), plain, "
            "lm-eval (exactly lm-eval's stock gsm8k / minerva_math prompts, stops and length).",
        ),
        click.option(
            "--instruction",
            default=None,
            help="The instruction after each problem [default: the style's own] (training's data.instruction).",
        ),
        click.option(
            "--verifier",
            default=None,
            help="Verifier spec (e.g. math, math+0.1*think_format) [default: math; code for humaneval; "
            "reasoning_gym for reasoning_gym:TASK].",
        ),
        click.option(
            "--sandbox",
            type=click.Choice(names.SANDBOX_CHOICES),
            default=None,
            help="Where the `code` verifier runs HumanEval programs [default: auto = docker, else "
            "bwrap, else local (a subprocess: NOT a security boundary)].",
        ),
        click.option(
            "--env",
            default=None,
            help="An environment the model calls while it reasons, e.g. python: its ```python cells run "
            "in a sandbox (multi-turn; tool statistics in summary.json) [default: none].",
        ),
        click.option(
            "--env-backend",
            type=click.Choice(names.SANDBOX_CHOICES),
            default="auto",
            show_default=True,
            help="The --env sandbox: auto = docker, else bwrap (never local, which must be named).",
        ),
        click.option(
            "--env-max-turns",
            type=click.IntRange(min=1),
            default=4,
            show_default=True,
            help="Tool calls per sample at most (--env).",
        ),
        click.option("--seed", type=int, default=0, show_default=True, help="Sampling seed."),
        click.option(
            "--max-model-len",
            type=click.IntRange(min=16),
            default=4096,
            show_default=True,
            help="Context length the engine reserves (prompt + completion).",
        ),
        click.option(
            "--chunk-size",
            type=click.IntRange(min=1),
            default=64,
            show_default=True,
            help="Completions per generate call; results are flushed after each.",
        ),
        click.option(
            "--workers",
            type=click.IntRange(min=1),
            default=None,
            help="Verifier worker processes [default: runner's choice].",
        ),
        click.option(
            "--data-dir",
            type=click.Path(file_okay=False),
            default=None,
            help="Local data folder laid out like shared/data [default: $RLVR_DATA_DIR, else the Hub].",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command

"""`rlvr eval` (one model on benchmarks) and `rlvr bench` (several checkpoints side by side)."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import click

from rlvr import names
from rlvr.errors import InputError

#: the verifier each benchmark is scored with unless --verifier says otherwise
DEFAULT_VERIFIER = {"humaneval": "code"}
STYLES = tuple(names.STYLES)
DEFAULT_MAX_NEW_TOKENS = 512


def _generation_options(command):
    """Options shared by eval and bench, so both generate exactly the same way."""
    options = [
        click.option(
            "--benchmark",
            "-b",
            default="gsm8k",
            show_default=True,
            help="Comma-separated benchmarks (gsm8k, math, math500, aime24, amc23, humaneval, arith) "
            "or paths of JSONL/Parquet files with problem/question and answer fields. arith takes "
            "its difficulty and generator seed: arith:easy, arith:hard,seed=3 [default: medium, 0].",
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
            help="Verifier spec (e.g. math, math+0.1*think_format) [default: math; code for humaneval].",
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


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text.strip("/")).strip("_") or "model"


def _with_sandbox(spec: str, sandbox: str | None) -> str:
    """The spec with `backend=SANDBOX` on every `code` term that does not choose its own."""
    from rlvr.verifiers.registry import parse_spec

    if sandbox is None:
        return spec
    terms = parse_spec(spec)
    if not any(name == "code" for _, name, _ in terms):
        return spec
    text = []
    for weight, name, given in terms:
        opts = {"backend": sandbox, **given} if name == "code" else given
        options = ",".join(f"{k}={str(v).lower() if isinstance(v, bool) else v}" for k, v in opts.items())
        text.append(("" if weight == 1.0 else f"{weight}*") + name + (f":{options}" if options else ""))
    return "+".join(text)


def _verifier(spec: str | None, benchmark: str, sandbox: str | None = None):
    from rlvr.verifiers.registry import UnknownVerifier, build_verifier

    spec = spec or DEFAULT_VERIFIER.get(benchmark, "math")
    try:
        spec = _with_sandbox(spec, sandbox)
        return build_verifier(spec)
    except UnknownVerifier as err:
        hint = (
            " (HumanEval needs the `code` verifier, which is not available in this install)" if "code" in spec else ""
        )
        raise InputError(f"--verifier {spec}: {err}{hint}") from None
    except (ValueError, TypeError) as err:
        raise InputError(f"--verifier {spec}: {err}") from None


def _plan(opts: dict[str, Any]) -> list[tuple[Any, list, Any]]:
    """Load every benchmark and build its EvalSpec and verifier before any model is loaded: bad input fails fast."""
    from rlvr.data.specs import split_specs

    names = split_specs(opts["benchmark"])
    if not names:
        raise InputError("--benchmark is empty")
    if opts["sandbox"] not in (None, "auto"):
        from rlvr.sandboxes import check_backends

        state = check_backends()[opts["sandbox"]]
        if not state["available"]:
            raise InputError(f"--sandbox {opts['sandbox']}: not available here ({state['why']})")
    if opts["select"]:
        from rlvr.eval.best_of_n import build_selector

        if opts["samples"] < 2:
            raise InputError(f"--select {opts['select'][0]} picks one of several samples: give --samples 2 or more")
        for spec in opts["select"]:
            build_selector(spec)  # a bad or gold-reading spec fails before any model loads
    plan = []
    for name in names:
        spec, examples = _spec(name, opts)
        plan.append((spec, examples, _verifier(spec.verifier, name, opts["sandbox"])))
    return plan


def _spec(name: str, opts: dict[str, Any]) -> tuple[Any, list]:
    """The EvalSpec these options give for one benchmark (lengths and verifier defaulted), and its examples."""
    from rlvr.data.specs import parse_spec
    from rlvr.data.templates import style_task
    from rlvr.eval.spec import EvalSpec

    temperature = opts["temperature"] if opts["temperature"] is not None else (0.0 if opts["samples"] == 1 else 1.0)
    if temperature == 0 and opts["samples"] > 1:
        raise InputError("--temperature 0 with --samples > 1 gives identical samples; set a temperature")
    spec = EvalSpec(
        benchmark=name,
        split=opts["split"],
        limit=opts["limit"],
        style=opts["style"],
        instruction=opts["instruction"],
        verifier=opts["verifier"] or DEFAULT_VERIFIER.get(parse_spec(name)[0], "math"),
        max_new_tokens=opts["max_new_tokens"] or DEFAULT_MAX_NEW_TOKENS,
        temperature=temperature,
        top_p=opts["top_p"],
        top_k=opts["top_k"],
        seed=opts["seed"],
        samples=opts["samples"],
        engine=opts["engine"],
        dtype=opts["dtype"],
        prompt_field=opts["prompt_field"],
        answer_field=opts["answer_field"],
        max_model_len=opts["max_model_len"],
    )
    examples = spec.examples(data_dir=opts["data_dir"], id_field=opts["id_field"])
    task = style_task(opts["style"], examples[0]) if examples and not opts["max_new_tokens"] else None
    return (dataclasses.replace(spec, max_new_tokens=task.max_new_tokens) if task else spec), examples


def _engine(model: str, opts: dict[str, Any]):
    from rlvr.models import resolve_model
    from rlvr.rollout import create_engine

    path = resolve_model(model)
    dtype = None if opts["dtype"] == "auto" else opts["dtype"]
    return create_engine(opts["engine"], path, seed=opts["seed"], max_model_len=opts["max_model_len"], dtype=dtype)


def _warn(text: str) -> None:
    click.echo(f"warning: {text}", err=True)


def _against_training(model: str, summary: dict[str, Any]) -> None:
    """Warn when `model` is a training run's checkpoint whose held-out eval used other settings."""
    from rlvr.eval.spec import differences, settings_of, training_settings

    found = training_settings(model)
    if found is None:
        return
    path, recorded = found
    changed = differences(recorded, settings_of(summary))
    if changed:
        _warn(
            f"{path}'s before/after was measured with other settings ({'; '.join(changed)}); its eval_command "
            "reproduces it"
        )


def _evaluate(
    engine_factory, model: str, plan, opts: dict[str, Any], output: Path, *, quiet: bool = False
) -> dict[str, dict]:
    """Evaluate one model on every planned benchmark into output/<benchmark>; finished ones are
    reused without loading the model (the engine is made on first need and closed at the end)."""
    from rich.console import Console

    from rlvr.eval.run import finished_summary, run_eval, summary_table
    from rlvr.eval.spec import describe, engine_dtype, settings_of

    engine = env = None
    summaries = {}
    try:
        for spec, examples, verifier in plan:
            common = dict(
                sampling=spec.sampling(),
                samples=spec.samples,
                style=spec.style,
                instruction=spec.instruction,
                select=opts["select"],
                run_info={"model": model, **spec.settings(), **_env_info(opts)},
            )
            target = output / _slug(Path(spec.benchmark).name)  # a data file's results go under its file name
            summary = finished_summary(target, examples, verifier, **common)
            if summary is None:
                env = env or _environment(opts)
                engine = engine or engine_factory()
                summary = run_eval(
                    engine,
                    examples,
                    verifier,
                    output_dir=target,
                    name=spec.benchmark,
                    chunk_size=opts["chunk_size"],
                    workers=opts["workers"],
                    env=env,
                    **common,
                )
                summary.update(engine=getattr(engine, "kind", type(engine).__name__), dtype=engine_dtype(engine))
                (target / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
            summaries[spec.benchmark] = summary
            _against_training(model, summary)
            if not quiet:
                Console().print(summary_table(summary, title=f"{model} · {describe(settings_of(summary))}"))
    finally:
        if engine is not None:
            engine.close()
        if env is not None:
            env.close()
    return summaries


def _env_info(opts: dict[str, Any]) -> dict[str, Any]:
    """What the environment adds to a results folder's config (nothing without --env: plain runs resume as before)."""
    if opts["env"] in (None, names.NO_ENV):
        return {}
    return {"env": opts["env"], "env_max_turns": opts["env_max_turns"]}


def _environment(opts: dict[str, Any]):
    """The --env environment (None without one); no sandbox to run in is one line, exit 2."""
    from rlvr.config import EnvConfig
    from rlvr.environments.registry import environment_from_config

    return environment_from_config(
        EnvConfig(name=opts["env"], max_turns=opts["env_max_turns"], backend=opts["env_backend"])
    )


@click.command("eval")
@click.option(
    "--model",
    "-m",
    required=True,
    help="Local folder, GGUF file, or Hub id (HuggingFaceTB/SmolLM2-135M-Instruct works offline).",
)
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False),
    default=None,
    help="Results folder; each benchmark goes in OUTPUT/<benchmark>/ (samples.jsonl, summary.json). "
    "Re-running into it resumes. [default: eval-results/<model>]",
)
@_generation_options
def eval_command(model: str, output: str | None, **opts: Any) -> None:
    """Evaluate MODEL on benchmarks with the same template and verifier training uses.

    Writes OUTPUT/<benchmark>/samples.jsonl as it goes and summary.json at the end (accuracy or
    avg@k with a 95% CI, pass@k, maj@k, best-of-k@SELECT, per-subject/level tables for MATH,
    lm-eval's own metrics with --style lm-eval, tokens/s)."""
    plan = _plan(opts)
    out = Path(output or Path("eval-results") / _slug(model))
    summaries = _evaluate(lambda: _engine(model, opts), model, plan, opts, out)
    click.echo(f"results in {out}/ ({', '.join(summaries)})")


@click.command("bench")
@click.argument("checkpoints", nargs=-1, required=True)
@click.option(
    "--output",
    "-o",
    type=click.Path(file_okay=False),
    default="bench-results",
    show_default=True,
    help="Folder for per-checkpoint eval dirs (reused when finished) and comparison.{md,json,png}.",
)
@_generation_options
def bench(checkpoints: tuple[str, ...], output: str, **opts: Any) -> None:
    """Evaluate each of CHECKPOINTS on the benchmarks and write a comparison table and bar chart."""
    plan = _plan(opts)
    out = Path(output)
    slugs = [_slug(c) for c in checkpoints]
    if len(set(slugs)) != len(slugs):
        raise InputError("two checkpoints map to the same results folder name; give distinct paths")
    results = {
        c: _evaluate(lambda c=c: _engine(c, opts), c, plan, opts, out / s, quiet=True)
        for c, s in zip(checkpoints, slugs, strict=True)
    }
    from rich.console import Console

    table, settings = write_comparison(results, out)
    Console().print(table)
    click.echo("settings: " + "\n          ".join(settings))
    click.echo(f"comparison in {out}/comparison.md, comparison.json, comparison.png")


def write_comparison(results: dict[str, dict[str, dict]], out: Path):
    """comparison.json (every summary's headline numbers and settings), comparison.md, comparison.png (bars
    with 95% CI error bars); returns the rich table and a line per benchmark naming its settings."""
    from rich.table import Table

    from rlvr.eval.spec import describe, differences, settings_of

    benchmarks = list(dict.fromkeys(b for per in results.values() for b in per))
    rows = {
        ckpt: {
            b: {
                **{
                    k: s[k]
                    for k in ("accuracy", "ci95", "ci_method", "metric", "n_problems", "samples", "pass@k", "maj@k")
                },
                "settings": settings_of(s),
            }
            for b, s in per.items()
        }
        for ckpt, per in results.items()
    }
    first = {b: next(per[b]["settings"] for per in rows.values() if b in per) for b in benchmarks}
    for ckpt, per in rows.items():
        for b, row in per.items():
            changed = differences(first[b], row["settings"])
            if changed:
                _warn(
                    f"{b}: {ckpt} was evaluated with other settings than the first checkpoint ({'; '.join(changed)}): "
                    "its accuracy is not comparable"
                )
    out.mkdir(parents=True, exist_ok=True)
    (out / "comparison.json").write_text(json.dumps(rows, indent=2) + "\n")
    cell = lambda r: f"{r['accuracy']:.1%} [{r['ci95'][0]:.1%}, {r['ci95'][1]:.1%}]"  # noqa: E731
    lines = ["| checkpoint | " + " | ".join(benchmarks) + " |", "| --- |" + " --- |" * len(benchmarks)]
    table = Table(title="rlvr bench (accuracy, 95% CI)")
    table.add_column("checkpoint")
    for b in benchmarks:
        table.add_column(b, justify="right")
    for ckpt, per in rows.items():
        cells = [cell(per[b]) if b in per else "-" for b in benchmarks]
        lines.append(f"| {ckpt} | " + " | ".join(cells) + " |")
        table.add_row(ckpt, *cells)
    settings = [describe(first[b]) for b in benchmarks]  # each starts with its benchmark's spec
    lines += ["", *(f"- {line}" for line in settings)]
    (out / "comparison.md").write_text("\n".join(lines) + "\n")
    _bar_chart(rows, benchmarks, out / "comparison.png")
    return table, settings


def _bar_chart(rows: dict[str, dict[str, dict]], benchmarks: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(4, 1.6 * len(benchmarks) * max(1, len(rows)) ** 0.5), 3.5))
    x = np.arange(len(benchmarks))
    for i, (ckpt, per) in enumerate(rows.items()):
        acc = np.array([per[b]["accuracy"] if b in per else np.nan for b in benchmarks]) * 100
        lo = np.array([per[b]["ci95"][0] if b in per else np.nan for b in benchmarks]) * 100
        hi = np.array([per[b]["ci95"][1] if b in per else np.nan for b in benchmarks]) * 100
        ax.bar(x + (i - (len(rows) - 1) / 2) * width, acc, width, yerr=[acc - lo, hi - acc], capsize=3, label=ckpt)
    ax.set_xticks(x, benchmarks)
    ax.set_ylabel("accuracy (%), 95% CI")
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)

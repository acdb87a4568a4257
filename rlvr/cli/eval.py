"""`rlvr eval`: one model on benchmarks, every setting that defines its number named by a flag."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any

import click

from rlvr import names
from rlvr.cli.eval_options import DEFAULT_MAX_NEW_TOKENS, generation_options
from rlvr.errors import InputError

#: the verifier each benchmark is scored with unless --verifier says otherwise (`rlvr train --dataset` too)
DEFAULT_VERIFIER = {"humaneval": "code", "reasoning_gym": "reasoning_gym"}


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

    from rlvr.eval.run import SUMMARY_FILE, finished_summary, run_eval, summary_table
    from rlvr.eval.spec import describe, engine_dtype, settings_of
    from rlvr.io import write_json

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
                write_json(target / SUMMARY_FILE, summary)  # the engine's own kind and dtype, once it has them
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
@generation_options
def eval_command(model: str, output: str | None, **opts: Any) -> None:
    """Evaluate MODEL on benchmarks with the same template and verifier training uses.

    Writes OUTPUT/<benchmark>/samples.jsonl as it goes and summary.json at the end (accuracy or
    avg@k with a 95% CI, pass@k, maj@k, best-of-k@SELECT, per-subject/level tables for MATH,
    lm-eval's own metrics with --style lm-eval, tokens/s)."""
    plan = _plan(opts)
    out = Path(output or Path("eval-results") / _slug(model))
    summaries = _evaluate(lambda: _engine(model, opts), model, plan, opts, out)
    click.echo(f"results in {out}/ ({', '.join(summaries)})")

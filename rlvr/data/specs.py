"""Benchmark specs (`arith:easy,seed=3`, `reasoning_gym:countdown:seed=0`, a benchmark name, a data file) and the
Examples a training config names: its training rows, and the held-out rows its before/after eval scores (one rule
for the trainer and `rlvr eval`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import rlvr.data.reasoning_gym as reasoning_gym
from rlvr.data.benchmarks import BENCHMARKS, load_benchmark, load_file
from rlvr.errors import InputError
from rlvr.types import Example

__all__ = [
    "SPEC_DEFAULTS",
    "SPEC_OPTIONS",
    "format_spec",
    "held_out_spec",
    "is_data_file",
    "load_examples",
    "load_spec",
    "parse_spec",
    "split_specs",
]

#: the options a benchmark spec "NAME:OPTIONS" may give, by benchmark; a bare value is the first key's
SPEC_OPTIONS: dict[str, tuple[str, ...]] = {"arith": ("difficulty", "seed")}
#: what an option left out of a spec means (the generator's own defaults)
SPEC_DEFAULTS: dict[str, dict[str, Any]] = {"arith": {"difficulty": "medium", "seed": 0}}
_DATA_SUFFIXES = (".jsonl", ".json", ".parquet", ".gz")


def is_data_file(spec: str) -> bool:
    """Whether a --benchmark/--dataset value names a data file rather than a benchmark."""
    return spec.lower().endswith(_DATA_SUFFIXES) or Path(spec).is_file()


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """A benchmark spec as (name, options), every option present: `arith:easy`, `arith:easy,seed=3` and
    `arith:difficulty=easy,seed=0` name the same kind of set; a data file or a plain benchmark has none."""
    if is_data_file(spec):
        return spec, {}
    name, _, text = spec.strip().partition(":")
    if name == reasoning_gym.NAME:  # `reasoning_gym:TASK[:key=value,...]`: the task's own config keys
        return name, reasoning_gym.parse_options(spec, text)
    allowed = SPEC_OPTIONS.get(name, ())
    options: dict[str, Any] = dict(SPEC_DEFAULTS.get(name, {}))
    for number, part in enumerate(p.strip() for p in text.split(",") if p.strip()):
        key, eq, value = part.partition("=")
        key, value = (
            (key.strip(), value.strip()) if eq else (allowed[0] if allowed and number == 0 else "", key.strip())
        )
        if key not in allowed:
            known = f"options: {', '.join(allowed)}" if allowed else "it takes no options"
            raise InputError(f"benchmark spec {spec!r}: unknown option {part!r} ({known})")
        options[key] = (
            int(value) if isinstance(SPEC_DEFAULTS[name][key], int) and value.lstrip("-").isdigit() else value
        )
    if name == "arith":
        from rlvr.data.arith import DIFFICULTIES

        if options["difficulty"] not in DIFFICULTIES:
            raise InputError(
                f"benchmark spec {spec!r}: difficulty {options['difficulty']!r} is not one of {', '.join(DIFFICULTIES)}"
            )
        if not isinstance(options["seed"], int):
            raise InputError(f"benchmark spec {spec!r}: seed must be an integer")
    return name, options


def format_spec(name: str, options: dict[str, Any]) -> str:
    """The canonical text of a spec (`arith:easy,seed=0`): what results record and commands repeat."""
    if not options:
        return name
    if name == reasoning_gym.NAME:
        return reasoning_gym.format_options(options)
    keys = SPEC_OPTIONS[name]
    first, rest = options[keys[0]], [f"{k}={options[k]}" for k in keys[1:] if k in options]
    return f"{name}:" + ",".join([str(first), *rest])


def split_specs(text: str) -> list[str]:
    """A comma-separated list of specs; a `key=value` piece continues the spec before it
    (`arith:easy,seed=3,gsm8k` is two specs)."""
    specs: list[str] = []
    for piece in (p.strip() for p in text.split(",")):
        if not piece:
            continue
        if specs and "=" in piece and ":" not in piece and ":" in specs[-1]:
            specs[-1] += "," + piece
        else:
            specs.append(piece)
    return specs


def load_spec(
    spec: str,
    split: str = "test",
    *,
    limit: int | None = None,
    data_dir: str | os.PathLike | None = None,
    prompt_field: str | None = None,
    answer_field: str | None = "answer",
    id_field: str | None = None,
) -> list[Example]:
    """The Examples a spec names: a data file (with its field mapping), or a benchmark's split with its options."""
    if is_data_file(spec):
        return load_file(spec, prompt_field=prompt_field, answer_field=answer_field, id_field=id_field, limit=limit)
    name, options = parse_spec(spec)
    return load_benchmark(name, split, data_dir=data_dir, limit=limit, **options)


def _unknown_dataset(name: str) -> InputError:
    return InputError(
        f"--dataset {name!r}: not arith, {reasoning_gym.NAME}:TASK, a benchmark ({', '.join(sorted(BENCHMARKS))}) "
        "or a file"
    )


def _reasoning_gym(name: str, seed: int) -> dict[str, Any] | None:
    """A `reasoning_gym:TASK...` dataset's options, its seed the spec's own or else the run's; None for another."""
    head, _, text = name.partition(":")
    return reasoning_gym.parse_options(name, text, seed=seed) if head == reasoning_gym.NAME else None


def held_out_spec(config: Any) -> tuple[str, str, int | None]:
    """(spec, split, limit) of the held-out set a TrainConfig evaluates on: the one rule, used by the trainer's
    load and by rlvr.eval.spec.EvalSpec.from_train_config (so `rlvr eval` gets the same rows)."""
    data = config.data
    name = config.eval.dataset or data.dataset
    if name == "math" and not config.eval.dataset:
        name = "math500"  # MATH's train split is the test set minus MATH-500
    if Path(name).is_file() and not config.eval.dataset:
        raise InputError(
            f"--dataset {name}: a file has no held-out split; set eval.dataset (e.g. gsm8k) or eval.before_after=false"
        )
    if name == "arith":
        name = format_spec("arith", {"difficulty": data.difficulty or "medium", "seed": config.seed})
    elif (options := _reasoning_gym(name, config.seed)) is not None:
        name = format_spec(reasoning_gym.NAME, options)
    elif name not in BENCHMARKS and not Path(name).is_file():
        raise _unknown_dataset(name)
    return name, config.eval.split, config.eval.limit


def load_examples(config: Any, *, held_out: bool = False) -> list[Example]:
    """The training examples (or the held-out eval examples) a TrainConfig names; the one place a
    dataset name (arith, a benchmark, a file) becomes Examples for training."""
    data = config.data
    if held_out:
        spec, split, limit = held_out_spec(config)
        return load_spec(spec, split, limit=limit, prompt_field=data.prompt_field, answer_field=data.answer_field)
    name = data.dataset
    if name == "arith":
        from rlvr.data.arith import generate_arith

        return generate_arith(
            data.limit or data.size, seed=config.seed, difficulty=data.difficulty or "medium", split=data.split
        )
    if (options := _reasoning_gym(name, config.seed)) is not None:
        return reasoning_gym.generate_reasoning_gym(data.limit or data.size, split=data.split, **options)
    if name in BENCHMARKS:
        return load_benchmark(name, data.split, limit=data.limit)
    if Path(name).is_file():
        return load_file(name, prompt_field=data.prompt_field, answer_field=data.answer_field, limit=data.limit)
    raise _unknown_dataset(name)

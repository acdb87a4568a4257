"""What defines an eval's number (benchmark spec, split, limit, prompt, verifier, sampling, engine, dtype) as one
EvalSpec: the trainer's held-out eval and `rlvr eval`/`rlvr bench` both build theirs here, it renders the
`rlvr eval` command that reproduces it, and it names how two results' settings differ."""

from __future__ import annotations

import dataclasses
import json
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlvr.data.specs import format_spec, held_out_spec, is_data_file, load_spec, parse_spec
from rlvr.types import Example

__all__ = [
    "MODEL_PLACEHOLDER",
    "EvalSpec",
    "describe",
    "differences",
    "engine_dtype",
    "settings_of",
    "training_settings",
]

#: where the checkpoint goes in a recorded command (substitute it with str.replace)
MODEL_PLACEHOLDER = "{model}"
#: the settings that define a number, in the order they are named; `n` is the problems actually scored
SETTINGS = (
    "benchmark",
    "split",
    "n",
    "samples",
    "style",
    "instruction",
    "verifier",
    "max_new_tokens",
    "temperature",
    "top_p",
    "top_k",
    "seed",
    "engine",
    "dtype",
    "env",
)


@dataclasses.dataclass(frozen=True)
class EvalSpec:
    """One eval's defining settings. `benchmark` is a spec (`gsm8k`, `arith:easy,seed=0`, or a data file);
    engine and dtype are what generated (`auto` only before an engine is chosen)."""

    benchmark: str = "gsm8k"
    split: str = "test"
    limit: int | None = None
    style: str = "chat"
    instruction: str | None = None
    verifier: str = "math"
    max_new_tokens: int = 512
    temperature: float = 0.0
    top_p: float = 1.0
    top_k: int = 0
    seed: int = 0
    samples: int = 1
    engine: str = "auto"
    dtype: str = "auto"
    prompt_field: str | None = None
    answer_field: str | None = "answer"
    max_model_len: int | None = None  # the context the engine reserved (vllm: it shapes the batches); not a setting
    env: str | None = None  # the environment the model calls while it reasons (rlvr.environments), None = none
    env_max_turns: int | None = None

    def __post_init__(self) -> None:
        if not is_data_file(self.benchmark):  # the canonical text, so equal settings compare equal
            object.__setattr__(self, "benchmark", format_spec(*parse_spec(self.benchmark)))

    @classmethod
    def from_train_config(
        cls,
        config: Any,
        *,
        engine: str = "auto",
        dtype: str = "auto",
        max_model_len: int | None = None,
        env: str | None = None,
    ) -> EvalSpec:
        """The held-out eval a (resolved) TrainConfig runs; `engine`, `dtype` and `max_model_len` are those of
        the engine that generates it (the trainer knows them once the engine is up)."""
        spec, split, limit = held_out_spec(config)
        rollout = config.rollout
        return cls(
            benchmark=spec,
            split=split,
            limit=limit,
            style=config.data.style,
            instruction=config.data.instruction,
            verifier=config.reward.verifier,
            max_new_tokens=config.eval.max_new_tokens or rollout.max_new_tokens,
            temperature=config.eval.temperature,
            top_p=rollout.top_p,
            top_k=rollout.top_k,
            seed=config.seed,
            engine=engine,
            dtype=dtype,
            prompt_field=config.data.prompt_field,
            answer_field=config.data.answer_field,
            max_model_len=max_model_len,
            env=env,
            env_max_turns=config.env.max_turns if env else None,
        )

    def examples(self, *, data_dir: str | None = None, id_field: str | None = None) -> list[Example]:
        return load_spec(
            self.benchmark,
            self.split,
            limit=self.limit,
            data_dir=data_dir,
            prompt_field=self.prompt_field,
            answer_field=self.answer_field,
            id_field=id_field,
        )

    def sampling(self) -> Any:
        """The SamplingConfig (run_eval adds the style's stop strings)."""
        from rlvr.rollout import SamplingConfig

        return SamplingConfig(
            temperature=self.temperature,
            top_p=self.top_p,
            top_k=self.top_k,
            max_new_tokens=self.max_new_tokens,
            seed=self.seed,
        )

    def settings(self) -> dict[str, Any]:
        """What a result records about how it was made (run_info of run_eval)."""
        return {k: getattr(self, k) for k in SETTINGS if k != "n"} | {"limit": self.limit}

    def to_command(self, model: str = MODEL_PLACEHOLDER) -> str:
        """The `rlvr eval` command that runs exactly this eval on `model` (default: the placeholder)."""
        args: list[tuple[str, Any]] = [
            ("--benchmark", self.benchmark),
            ("--split", self.split),
            ("--limit", self.limit),
            ("--style", self.style),
            ("--instruction", self.instruction),
            ("--verifier", self.verifier),
            ("--samples", self.samples),
            ("--max-new-tokens", self.max_new_tokens),
            ("--temperature", self.temperature),
            ("--seed", self.seed),
        ]
        if self.top_p != 1.0:
            args.append(("--top-p", self.top_p))
        if self.top_k:
            args.append(("--top-k", self.top_k))
        if is_data_file(self.benchmark):
            args += [("--prompt-field", self.prompt_field), ("--answer-field", self.answer_field)]
        args += [
            ("--engine", self.engine),
            ("--dtype", self.dtype),
            ("--max-model-len", self.max_model_len),
            ("--env", self.env),
            ("--env-max-turns", self.env_max_turns),
        ]
        head = "rlvr eval --model " + (model if model == MODEL_PLACEHOLDER else shlex.quote(model))
        return " ".join([head, *(f"{flag} {shlex.quote(str(value))}" for flag, value in args if value is not None)])


def engine_dtype(engine: Any) -> str:
    """The dtype an engine generates in, as config text (`auto` for an engine that does not say)."""
    return str(getattr(engine, "dtype", None) or "auto").removeprefix("torch.")


def settings_of(summary: dict[str, Any]) -> dict[str, Any]:
    """The defining settings of an eval summary (rlvr.eval.run.run_eval's, with run_info from EvalSpec.settings)."""
    sampling = summary.get("sampling") or {}
    found = {k: summary.get(k) for k in SETTINGS}
    found.update(
        n=summary.get("n_problems"),
        max_new_tokens=sampling.get("max_new_tokens"),
        temperature=sampling.get("temperature"),
        top_p=sampling.get("top_p"),
        top_k=sampling.get("top_k"),
    )
    return found


def describe(settings: dict[str, Any]) -> str:
    """The settings printed beside an accuracy: `arith:easy,seed=0 test · n=200 · 64 new tokens · bfloat16 · vllm`."""
    parts = [
        f"{settings.get('benchmark')} {settings.get('split') or ''}".strip(),
        f"n={settings.get('n')}",
        f"{settings.get('max_new_tokens')} new tokens",
        str(settings.get("dtype")),
        str(settings.get("engine")),
    ]
    if settings.get("temperature"):
        parts.append(f"temperature {settings['temperature']}")
    if (settings.get("samples") or 1) > 1:
        parts.append(f"{settings['samples']} samples")
    if settings.get("style") not in (None, "chat"):
        parts.append(f"style {settings['style']}")
    if settings.get("env"):
        parts.append(f"with {settings['env']}")
    return " · ".join(parts)


def differences(old: dict[str, Any], new: dict[str, Any], keys: Sequence[str] = SETTINGS) -> list[str]:
    """How two results' settings differ, each as `key: OLD vs NEW` (keys missing on either side are skipped)."""
    return [
        f"{k}: {old[k]} vs {new[k]}"
        for k in keys
        if old.get(k) is not None and new.get(k) is not None and old[k] != new[k]
    ]


def training_settings(model: str | Path) -> tuple[Path, dict[str, Any]] | None:
    """When `model` is a training run's DIR/final or DIR/checkpoints/step_N: (DIR/summary.json, the settings of
    its held-out eval), so a new eval of it can say how its settings differ; else None."""
    folder = Path(model)
    for run in (folder.parent, folder.parent.parent):
        path = run / "summary.json"
        if folder.is_dir() and path.is_file():
            try:
                recorded = json.loads(path.read_text(encoding="utf-8")).get("eval_settings")
            except (OSError, json.JSONDecodeError):
                return None
            return (path, recorded) if isinstance(recorded, dict) else None
    return None

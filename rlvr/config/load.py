"""Filling a TrainConfig: defaults, then a YAML file, then `--set` overrides; old key names read with
a deprecation warning (`RENAMED`); values checked (`CHOICES`, ranges); "auto" resolved per device."""

from __future__ import annotations

import dataclasses
import keyword
import logging
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rlvr import names
from rlvr.config.defaults import AUTO, AUTO_BY_ALGORITHM, AUTO_WITH_ENV, AUTO_WITH_ENV_BY_ALGORITHM
from rlvr.config.schema import GRPOConfig, TrainConfig
from rlvr.errors import InputError

__all__ = [
    "CHOICES",
    "RENAMED",
    "apply_overrides",
    "attribute",
    "config_keys",
    "config_to_dict",
    "dump_yaml",
    "get_key",
    "load_config",
    "parse_set",
    "resolve_auto",
    "validate",
]

log = logging.getLogger("rlvr.config")

#: allowed values of string options, from the one table of names (rlvr.names: imports nothing heavy,
#: so `--dry-run` needs no torch)
CHOICES: dict[str, tuple[str, ...]] = {
    "device": (names.AUTO, *names.DEVICES),
    "model.dtype": (names.AUTO, *names.DTYPES),
    "model.master_dtype": names.DTYPES,
    "model.quantization": ("none", "4bit"),
    "algorithm": tuple(names.ALGORITHMS),
    "data.difficulty": names.ARITH_DIFFICULTIES,
    "sft.reduction": names.SFT_REDUCTIONS,
    "dpo.loss": names.DPO_LOSSES,
    "cpo.loss": names.DPO_LOSSES,
    "kto.loss": names.KTO_LOSSES,
    "rollout.dtype": (names.AUTO, *names.DTYPES),
    "data.style": names.TRAIN_STYLES,
    "rollout.engine": names.ENGINE_CHOICES,
    "rollout.transport": tuple(names.WEIGHT_TRANSPORTS),
    "reward.truncated": names.TRUNCATED,
    "grpo.advantage": names.GRPO_ADVANTAGES,
    "grpo.loss": names.GRPO_LOSSES,
    "grpo.ratio_level": names.GRPO_RATIO_LEVELS,
    "grpo.kl_estimator": names.GRPO_KL_ESTIMATORS,
    "grpo.tis": (names.AUTO, "on", "off"),
    "optimizer.schedule": names.SCHEDULES,
    "distributed.strategy": names.STRATEGIES,
    "grpo.void_turns": names.GRPO_VOID_TURNS,
    "rm.pairs": names.RM_PAIRINGS,
    "env.backend": names.SANDBOX_CHOICES,
}

_POSITIVE = (
    "rollout.n",
    "rft.max_per_prompt",
    "dpo.beta",
    "kto.beta",
    "simpo.beta",
    "cpo.beta",
    "rollout.temperature",
    "rollout.prompts_per_step",
    "rollout.max_new_tokens",
    "grpo.mu",
    "optimizer.max_steps",
    "optimizer.micro_batch_size",
    "reward.timeout",
    "reward.cross_check_samples",
    "rollout.tensor_parallel_size",
    "env.max_turns",
    "env.timeout",
    "env.memory",
    "env.max_output_chars",
    "grpo.sapo_tau_pos",
    "grpo.sapo_tau_neg",
    "rm.max_length",
    "rm.held_out",
    "rollout.server_timeout",
)
_NON_NEGATIVE = (
    "optimizer.micro_batch_tokens",
    "model.lora_r",
    "grpo.beta",
    "optimizer.warmup_steps",
    "checkpoint.every",
    "eval.every",
    "eval.limit",
    "rm.center_rewards_coefficient",
    "grpo.max_refill_rounds",
    "eval.temperature",
    "optimizer.weight_decay",
    "logging.samples_every",
    "optimizer.lr",
    "orpo.beta",
    "kto.desirable_weight",
    "kto.undesirable_weight",
    "simpo.nll_weight",
    "cpo.nll_weight",
    "rollout.server_retries",
)


# ------------------------------------------------------------------------------ building


def attribute(part: str) -> str:
    """The dataclass attribute behind one part of a dotted key: a Python keyword (`rollout.async`) is spelled
    with a trailing underscore in the dataclass and without it everywhere a user reads or writes it."""
    return f"{part}_" if keyword.iskeyword(part) else part


def key_part(name: str) -> str:
    """The dotted key's spelling of a dataclass attribute (attribute's inverse)."""
    return name[:-1] if name.endswith("_") and keyword.iskeyword(name[:-1]) else name


def _fields(obj: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(type(obj))
    return {key_part(f.name): hints[f.name] for f in dataclasses.fields(obj)}


def _coerce(value: Any, kind: Any, key: str, source: str) -> Any:
    """`value` as type `kind` (int, float, bool, str, or Optional of one), else an InputError."""
    args = typing.get_args(kind)
    if type(None) in args:
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null", "auto")):
            return None
        kind = next(a for a in args if a is not type(None))
    if kind is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
    elif kind is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
    elif kind is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
    elif kind is str and isinstance(value, (str, int, float)) and not isinstance(value, bool):
        return str(value)
    name = getattr(kind, "__name__", str(kind))
    raise InputError(f"{source}: {key} must be {name}, got {value!r}")


#: keys of earlier releases, still read for one release with a warning naming the new key
_GRPO_KEYS = tuple(f.name for f in dataclasses.fields(GRPOConfig))
RENAMED: dict[str, str] = {"algorithm.name": "algorithm", **{f"algorithm.{k}": f"grpo.{k}" for k in _GRPO_KEYS}}


def _current_key(key: str, source: str) -> str:
    """`key` under its current name; an old name is read with a one-line deprecation warning."""
    new = RENAMED.get(key)
    if new is None:
        return key
    log.warning("%s: config key %r is deprecated, use %r", source, key, new)
    return new


def _set(config: TrainConfig, key: str, value: Any, source: str) -> None:
    key = _current_key(key, source)
    *sections, leaf = key.split(".")
    node: Any = config
    for depth, section in enumerate(sections):
        child = getattr(node, attribute(section), None) if section in _fields(node) else None
        if not dataclasses.is_dataclass(child):
            raise InputError(
                f"{source}: unknown config section {'.'.join(sections[: depth + 1])!r} "
                f"(known: {', '.join(k for k, v in _fields(node).items() if _is_section(node, k))})"
            )
        node = child
    known = _fields(node)
    if leaf not in known or _is_section(node, leaf):
        options = ", ".join(k for k in known if not _is_section(node, k))
        raise InputError(f"{source}: unknown config key {key!r} (known here: {options})")
    setattr(node, attribute(leaf), _coerce(value, known[leaf], key, source))


def _is_section(node: Any, name: str) -> bool:
    return dataclasses.is_dataclass(getattr(node, attribute(name)))


def _flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, path + "."))
        else:
            flat[path] = value
    return flat


def load_config(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None) -> TrainConfig:
    """Defaults, then the YAML file at `path`, then `overrides` ({"section.key": value}); checked."""
    import yaml

    config = TrainConfig()
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise InputError(f"config file not found: {path}")
        try:
            tree = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as err:
            raise InputError(f"{path}: invalid YAML ({err})") from None
        if not isinstance(tree, Mapping):
            raise InputError(f"{path}: expected a mapping of config sections, got {type(tree).__name__}")
        for key, value in _flatten(tree).items():
            _set(config, key, value, str(path))
    return apply_overrides(config, overrides or {})


def apply_overrides(config: TrainConfig, overrides: Mapping[str, Any], source: str = "command line") -> TrainConfig:
    """Set {"section.key": value} on `config` (in place, returned), then validate it."""
    for key, value in overrides.items():
        _set(config, key, value, f"{source} ({key})" if source == "command line" else source)
    validate(config)
    return config


def parse_set(assignments: typing.Iterable[str]) -> dict[str, Any]:
    """`--set section.key=value` strings as {key: value}; values are read as YAML scalars."""
    import yaml

    parsed: dict[str, Any] = {}
    for item in assignments:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"--set {item!r}: expected section.key=value")
        try:
            parsed[key.strip()] = yaml.safe_load(text) if text.strip() else ""
        except yaml.YAMLError:
            parsed[key.strip()] = text
    return parsed


def get_key(config: Any, key: str) -> Any:
    """The value of dotted `key` (e.g. "rollout.async") in `config`."""
    node: Any = config
    for part in key.split("."):
        node = getattr(node, attribute(part))
    return node


def config_keys(config: Any, prefix: str = "") -> list[str]:
    """Every dotted key of `config`, as users spell them."""
    keys: list[str] = []
    for name in _fields(config):
        value = getattr(config, attribute(name))
        keys += config_keys(value, f"{prefix}{name}.") if dataclasses.is_dataclass(value) else [prefix + name]
    return keys


def validate(config: TrainConfig) -> None:
    """Choices and ranges; each problem is an InputError naming the key."""
    for key, allowed in CHOICES.items():
        value = get_key(config, key)
        if value is not None and value not in allowed:  # None: "auto", resolved per device
            raise InputError(f"config: {key} must be one of {', '.join(allowed)}, got {value!r}")
    for key in _POSITIVE:
        value = get_key(config, key)
        if value is not None and value <= 0:
            raise InputError(f"config: {key} must be > 0, got {value}")
    for key in _NON_NEGATIVE:
        value = get_key(config, key)
        if value is not None and value < 0:
            raise InputError(f"config: {key} must be >= 0, got {value}")
    if config.rollout.n is not None and config.rollout.n < 2 and config.grpo.advantage in ("grpo", "rloo"):
        raise InputError(
            f"config: rollout.n must be >= 2 for {config.grpo.advantage} advantages, got {config.rollout.n}"
        )
    if not 0 < config.rm.held_out < 1:
        raise InputError(f"config: rm.held_out must be in (0, 1), got {config.rm.held_out}")
    if not 0 <= config.grpo.clip_eps_low < 1:
        raise InputError(f"config: grpo.clip_eps_low must be in [0, 1), got {config.grpo.clip_eps_low}")
    if config.model.quantization != "none" and not config.model.lora_r:
        raise InputError("config: model.quantization=4bit trains LoRA adapters over the frozen base: set model.lora_r")
    if config.rollout.async_ not in (0, 1):
        value = config.rollout.async_
        raise InputError(f"config: rollout.async must be 0 (generate, then learn) or 1 (one step ahead), got {value}")
    if config.reward.truncated == "penalty" and config.reward.overlong_buffer <= 0:
        raise InputError("config: reward.overlong_buffer must be > 0 with reward.truncated=penalty")


def resolve_auto(config: TrainConfig, device: str) -> TrainConfig:
    """A copy with every "auto"/None size filled for `device` ("cpu" or "cuda")."""
    resolved = dataclasses.replace(
        config,
        **{
            f.name: dataclasses.replace(getattr(config, f.name))
            for f in dataclasses.fields(config)
            if _is_section(config, f.name)
        },
    )
    kind = "cuda" if device.startswith("cuda") else "cpu"
    has_env = config.env.name not in (None, names.NO_ENV)
    with_env = AUTO_WITH_ENV[kind] if has_env else {}
    env_algorithm = AUTO_WITH_ENV_BY_ALGORITHM.get(config.algorithm, {}).get(kind, {}) if has_env else {}
    by_algorithm = AUTO_BY_ALGORITHM.get(config.algorithm, {}).get(kind, {})
    for table in (env_algorithm, by_algorithm, with_env, AUTO[kind]):
        for key, value in table.items():
            if get_key(resolved, key) is None:
                _set(resolved, key, value, "auto")
    resolved.device = device
    return resolved


def config_to_dict(config: Any) -> dict[str, Any]:
    """The config as nested dicts under the keys users write (config.yaml, config.json, settings)."""
    return {
        name: config_to_dict(value) if dataclasses.is_dataclass(value) else value
        for name, value in ((name, getattr(config, attribute(name))) for name in _fields(config))
    }


def dump_yaml(config: TrainConfig) -> str:
    import yaml

    return yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=False)

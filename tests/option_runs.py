"""Shared runs of the tiny model for tests/train/test_options.py: named scenarios (config overrides), each run
once per test session through the trainer (or the `rlvr train` CLI) with spies on what an option reaches."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest import mock

import torch
from safetensors.torch import load_file

from rlvr.config import TrainConfig, dump_yaml, load_config
from rlvr.train.monitor import read_metrics

# character length of random text varies between samples: a reward with variance in (almost) every group
VARIED = "math+overlong:max_tokens=60,buffer=50,unit=chars"

BASE: dict[str, Any] = {
    "model.name": "{tiny}",
    "device": "cpu",
    "model.dtype": "float32",
    "rollout.engine": "hf",
    "data.dataset": "arith",
    "data.size": 32,
    "reward.workers": 0,
    "reward.audit": False,
    "reward.verifier": VARIED,
    "rollout.n": 2,
    "rollout.prompts_per_step": 2,
    "rollout.max_new_tokens": 8,
    "rollout.temperature": 1.0,
    "optimizer.lr": 1e-3,
    "optimizer.max_steps": 2,
    "optimizer.warmup_steps": 0,
    "logging.output": "{out}",
    "logging.progress": False,
    "checkpoint.every": 0,
    "eval.before_after": False,
    "logging.samples_every": 1,
}

PREFS = "prefs"  # a prompt/chosen/rejected file

#: name -> overrides on top of BASE; one in-process run each (`rlvr train` in a subprocess: names starting "cmd_")
SCENARIOS: dict[str, dict[str, Any]] = {
    "base": {},
    "order": {
        "seed": 7,
        "data.size": 12,
        "data.difficulty": "hard",
        "data.split": "test",
        "data.shuffle": False,
        "data.instruction": "Answer in one word.",
        "logging.progress": True,
        "reward.audit": True,
    },
    "plain": {
        "data.style": "plain",
        "rollout.prompts_per_step": 3,
        "rollout.n": 3,
        "rollout.temperature": 0.5,
        "rollout.top_p": 0.9,
        "rollout.max_new_tokens": 5,
        "optimizer.micro_batch_size": 3,
        "optimizer.skip_zero_advantage": False,
        "logging.tensorboard": False,
        "reward.cross_check": "math",
        "reward.cross_check_samples": 3,
        "optimizer.packing": True,
        "optimizer.micro_batch_tokens": 0,  # packed micro-batches of micro_batch_size rows
    },
    # top_k 1 is greedy: a group's completions are all the same (every advantage 0); some stop, some are cut off
    # the second grader pays for long text (the length the reward's overlong term penalizes): it disagrees
    # with the reward (math, never right here) on every completion of 35 characters or more
    "flat": {"rollout.top_k": 1, "reward.cross_check": "-1*" + VARIED.split("+")[1]},
    "flat_masked": {
        "rollout.top_k": 1,
        "optimizer.skip_zero_advantage": False,
        "optimizer.weight_decay": 0.1,
        "reward.truncated": "mask",
    },
    "mask_all": {"reward.truncated": "mask", "rollout.max_new_tokens": 2},  # every completion is cut off
    "penalty": {
        "rollout.top_k": 1,
        "reward.truncated": "penalty",
        "reward.overlong_buffer": 6,
        "reward.verifier": "math",
        "rollout.prompts_per_step": 4,
    },
    "refill": {"grpo.dynamic_sampling": True},
    "refill_bound": {"rollout.top_k": 1, "grpo.dynamic_sampling": True, "grpo.max_refill_rounds": 1},
    "mu": {"grpo.mu": 2, "grpo.clip_eps_low": 0.0, "grpo.clip_eps_high": 0.0},
    "kl_full": {"grpo.beta": 0.1, "grpo.kl_estimator": "k2"},
    "kl_lora": {"grpo.beta": 0.1, "model.lora_r": 4},
    "lora": {
        "model.lora_r": 4,
        "model.lora_alpha": 16,
        "model.lora_dropout": 0.1,
        "model.lora_target": "q_proj,v_proj",
        "optimizer.lr": 1e-2,
    },
    "lora_cut": {
        "model.lora_r": 4,
        "model.lora_alpha": 16,
        "model.lora_dropout": 0.1,
        "model.lora_target": "q_proj,v_proj",
        "optimizer.lr": 1e-2,
        "optimizer.max_steps": 1,
    },
    "tis": {
        "grpo.tis": "on",
        "grpo.tis_cap": 1.5,
        "grpo.loss": "dr_grpo",
        "grpo.advantage": "rloo",
        "grpo.ratio_level": "sequence",
        "rollout.n": 3,
        "optimizer.packing": True,
        "optimizer.micro_batch_tokens": 1,  # every group over the budget: one packed pass each
    },
    "file": {"data.dataset": "{prompts}", "data.prompt_field": "q", "data.answer_field": "gold", "data.limit": 3},
    "sft": {"algorithm": "sft", "data.dataset": "{samples}", "data.keep_status": "wrong", "sft.reduction": "sequence"},
    "rft": {
        "algorithm": "rft",
        "rft.max_per_prompt": 1,
        "reward.verifier": "repetition:n=8",
        "rollout.n": 4,
        "rollout.temperature": 0.7,
        "rollout.max_new_tokens": 24,
    },
    "dpo_ipo": {
        "algorithm": "dpo",
        "data.dataset": "{prefs}",
        "dpo.loss": "ipo",
        "dpo.beta": 0.25,
        "optimizer.max_steps": 1,
    },
    "dpo_smooth": {"algorithm": "dpo", "data.dataset": "{prefs}", "dpo.label_smoothing": 0.5, "optimizer.max_steps": 1},
    "dpo_free": {"algorithm": "dpo", "data.dataset": "{prefs}", "dpo.reference_free": True, "optimizer.max_steps": 1},
    "rm_file": {
        "algorithm": "rm",
        "data.dataset": "{prefs}",
        "rm.center_rewards_coefficient": 0.25,
        "rm.max_length": 12,
        "rm.held_out": 0.5,
        "eval.before_after": True,
        "optimizer.max_steps": 1,
    },
    "rm_one": {"algorithm": "rm", "rm.pairs": "one", "rollout.n": 4, "optimizer.max_steps": 1},
    "sapo": {"grpo.loss": "sapo", "grpo.sapo_tau_pos": 0.5, "grpo.sapo_tau_neg": 2.0, "optimizer.max_steps": 1},
    "distill": {"algorithm": "distill", "distill.teacher": "{tiny}", "optimizer.max_steps": 1},
    "dpo_margin": {
        "algorithm": "dpo",
        "data.dataset": "{prefs}",
        "dpo.loss": "simpo",
        "dpo.gamma": 0.5,
        "optimizer.max_steps": 1,
    },
    "kto_file": {
        "algorithm": "kto",
        "data.dataset": "{prefs}",
        "kto.beta": 0.25,
        "kto.desirable_weight": 2.0,
        "kto.undesirable_weight": 0.5,
        "optimizer.max_steps": 1,
    },
    "kto_online": {
        "algorithm": "kto",
        "kto.loss": "apo_zero_unpaired",
        "kto.threshold": -100.0,
        "optimizer.max_steps": 1,
    },
    "orpo_file": {"algorithm": "orpo", "data.dataset": "{prefs}", "orpo.beta": 0.5, "optimizer.max_steps": 1},
    "simpo_file": {
        "algorithm": "simpo",
        "data.dataset": "{prefs}",
        "simpo.beta": 1.5,
        "simpo.gamma": 0.3,
        "simpo.label_smoothing": 0.1,
        "simpo.nll_weight": 0.5,
        "optimizer.max_steps": 1,
    },
    "cpo_file": {
        "algorithm": "cpo",
        "data.dataset": "{prefs}",
        "cpo.beta": 0.2,
        "cpo.loss": "simpo",
        "cpo.gamma": 0.4,
        "cpo.label_smoothing": 0.1,
        "cpo.nll_weight": 0.0,
        "optimizer.max_steps": 1,
    },
    "lowprec": {"model.dtype": "bfloat16", "model.master_dtype": "bfloat16"},
    "dense": {
        "optimizer.share_prompt": False,
        "rollout.dtype": "bfloat16",
        "model.lean_activations": False,
        "model.keep_freed_memory": False,
    },
    "cosine": {
        "optimizer.lr": 2e-3,
        "optimizer.warmup_steps": 1,
        "optimizer.min_lr_ratio": 0.5,
        "optimizer.max_steps": 3,
    },
    "clipped": {
        "optimizer.max_grad_norm": 1e-9,
        "optimizer.beta1": 0.5,
        "optimizer.beta2": 0.9,
        "optimizer.max_steps": 1,
    },
    "checkpoints": {
        "checkpoint.every": 1,
        "checkpoint.keep_last": 1,
        "optimizer.max_steps": 3,
        "logging.samples_every": 2,
        "optimizer.schedule": "constant",
    },
    "eval_every": {
        "eval.every": 1,
        "eval.limit": 3,
        "eval.split": "train",
        "eval.temperature": 0.5,
        "eval.max_new_tokens": 4,
    },
    "eval_gsm8k": {"eval.before_after": True, "eval.dataset": "gsm8k", "eval.limit": 2},
    "failures": {"reward.verifier": "code:backend=local", "reward.max_failure_rate": 1.0, "optimizer.max_steps": 1},
    "failures_stop": {"reward.verifier": "code:backend=local"},
    "workers": {"reward.workers": 1, "reward.timeout": 2.5, "optimizer.max_steps": 1},
    # options that are inert or need a service in one CPU process, in one run
    "wandb": {
        "logging.wandb": True,
        "logging.wandb_project": "rlvr-options",
        "distributed.strategy": "fsdp2",
        "model.gradient_checkpointing": True,
    },
    "short_context": {"rollout.max_model_len": 16},
    "async_hf": {"rollout.async": 1},  # refused: hf samples with the live policy (vllm: tests/train/test_async.py)
    "cmd_train": {"optimizer.max_steps": 1},
    "cmd_strict": {"reward.verifier": "boxed_format", "reward.audit": True, "reward.strict_audit": True},
}


@dataclass
class Run:
    """What one scenario did: the trainer after train() (None for CLI runs), its folder, and the spies."""

    out: Path
    built: Any = None  # the Trainer, when its construction succeeded
    error: BaseException | None = None
    stdout: str = ""
    returncode: int | None = None
    engine_kwargs: dict[str, Any] = field(default_factory=dict)
    calls: dict[str, list[Any]] = field(default_factory=dict)

    @property
    def trainer(self) -> Any:
        if self.built is None:
            raise AssertionError(f"the run in {self.out} did not start: {self.error!r}") from self.error
        return self.built

    @property
    def metrics(self) -> list[dict[str, Any]]:
        return read_metrics(self.out)

    def evals(self) -> list[dict[str, Any]]:
        return read_metrics(self.out, "eval.jsonl")

    def samples(self) -> list[dict[str, Any]]:
        path = self.out / "samples.jsonl"
        return [json.loads(line) for line in path.open()] if path.exists() else []

    def saved_config(self) -> dict[str, Any]:
        import yaml

        return yaml.safe_load((self.out / "config.yaml").read_text())

    def generations(self, *, training: bool = True) -> list[Any]:
        """engine.generate calls (prompts, n, sampling): training ones, or held-out eval ones."""
        return [c for c in self.calls.get("generate", []) if c.training == training]

    def count(self, name: str) -> int:
        return len(self.calls.get(name, []))


def value_at(config: TrainConfig, key: str) -> Any:
    from rlvr.config import get_key

    return get_key(config, key)


class Runs:
    """Scenarios run on first use and kept for the session; `runs["name"]` is a Run."""

    def __init__(self, tiny: Path, root: Path):
        self.tiny, self.root = tiny, root
        self._done: dict[str, Run] = {}
        self.files = write_data_files(root / "data")

    def overrides(self, name: str, **extra: Any) -> dict[str, Any]:
        return {k: self.place(v, name) for k, v in {**BASE, **SCENARIOS[name], **extra}.items()}

    def place(self, value: Any, name: str) -> Any:
        """A row's value with its placeholders ({tiny}, {out}, {prompts}, ...) filled for scenario `name`."""
        places = {"tiny": str(self.tiny), "out": str(self.root / name), **{k: str(v) for k, v in self.files.items()}}
        return value.format(**places) if isinstance(value, str) else value

    def config(self, name: str) -> TrainConfig:
        return load_config(None, self.overrides(name))

    def __getitem__(self, name: str) -> Run:
        if name not in self._done:
            self._done[name] = self._cli(name) if name.startswith("cmd_") else self._run(name)
        return self._done[name]

    def run(self, name: str, resume: Path | None = None, **extra: Any) -> Run:
        """A run not kept (a resumed one, a variant)."""
        return self._run(name, resume=resume, **extra)

    def _run(self, name: str, resume: Path | None = None, **extra: Any) -> Run:
        from rlvr.train.trainer import Trainer

        overrides = self.overrides(name, **extra)
        run = Run(Path(overrides["logging.output"]))
        stdout = io.StringIO()
        with contextlib.ExitStack() as stack:
            stack.enter_context(contextlib.redirect_stdout(stdout))
            _spy_modules(stack, run)
            if overrides.get("logging.wandb"):
                run.calls["wandb"] = [FakeWandb()]
                stack.enter_context(mock.patch.dict(sys.modules, {"wandb": run.calls["wandb"][0]}))
            try:
                run.built = Trainer(load_config(None, overrides), resume=resume)
                _spy_trainer(run.built, run)
                run.built.train()
            except Exception as err:  # noqa: BLE001 - a scenario that must be refused: the row checks run.error's type and message
                run.error = err
        run.stdout = stdout.getvalue()
        return run

    def _cli(self, name: str) -> Run:
        overrides = self.overrides(name)
        out = Path(overrides.pop("logging.output"))
        config = self.root / f"{name}.yaml"
        config.write_text(dump_yaml(load_config(None, overrides)))
        proc = subprocess.run(
            [sys.executable, "-m", "rlvr", "train", "--config", str(config), "-o", str(out)],
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        return Run(out, stdout=proc.stdout + proc.stderr, returncode=proc.returncode)


def _recorder(calls: dict[str, list[Any]], name: str, fn: Callable, note: Callable | None = None) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        calls.setdefault(name, []).append(
            note(args, kwargs, result) if note else SimpleNamespace(args=args, kwargs=kwargs, result=result)
        )
        return result

    return wrapper


def _spy_modules(stack: contextlib.ExitStack, run: Run) -> None:
    """Module-level functions the algorithms call through their module (so a patch is seen)."""
    import rlvr.algorithms.rm
    import rlvr.rollout
    from rlvr.learner import passes
    from rlvr.objectives import dpo, grpo, kto, preference, reward, sft

    def engine_kwargs(args: tuple, kwargs: dict, result: Any) -> Any:
        run.engine_kwargs.update(kwargs, kind=args[0])
        return kwargs

    stack.enter_context(
        mock.patch.object(
            rlvr.rollout,
            "create_engine",
            _recorder(run.calls, "create_engine", rlvr.rollout.create_engine, engine_kwargs),
        )
    )
    for module, name in (
        (grpo, "policy_loss"),
        (sft, "sft_normalizer"),
        (dpo, "dpo_loss"),
        (kto, "kto_loss"),
        (preference, "cpo_loss"),
        (preference, "orpo_loss"),
        (reward, "reward_loss"),
        (rlvr.algorithms.rm, "reward_inputs"),
    ):
        stack.enter_context(mock.patch.object(module, name, _recorder(run.calls, name, getattr(module, name))))
    spied = {}  # the learn pass's forwards: counted as "shared_prompt" and "packed" where they are
    for (shared, packed), forward in passes.PASSES.items():
        spy = forward
        for flag, name in ((shared, "shared_prompt"), (packed, "packed")):
            spy = _recorder(run.calls, name, spy, lambda a, k, r: 1) if flag else spy
        spied[shared, packed] = spy
    stack.enter_context(mock.patch.dict(passes.PASSES, spied))


def _spy_trainer(trainer: Any, run: Run) -> None:
    """Instance methods: what the engine was asked, the batches made, the passes and saves that ran."""
    calls, policy = run.calls, trainer.policy
    evaluating = []

    def generation(args: tuple, kwargs: dict, result: Any) -> Any:
        prompts, n, sampling = [*args, kwargs.get("n"), kwargs.get("sampling")][:3]
        return SimpleNamespace(
            prompts=list(prompts),
            n=n,
            sampling=sampling,
            rollouts=result,
            step=trainer.step_number,
            training=not evaluating,
        )

    def evaluate() -> Any:
        evaluating.append(True)
        try:
            return original_evaluate()
        finally:
            evaluating.pop()
            calls.setdefault("evaluate", []).append(trainer.step_number)

    original_evaluate = trainer.evaluate
    trainer.evaluate = evaluate
    trainer.engine.generate = _recorder(calls, "generate", trainer.engine.generate, generation)
    trainer.save = _recorder(calls, "save", trainer.save, lambda a, k, r: trainer.step_number)
    trainer.algorithm.make_step = _recorder(
        calls,
        "make_step",
        trainer.algorithm.make_step,
        lambda a, k, r: SimpleNamespace(step=trainer.step_number, made=r),
    )
    if hasattr(trainer.algorithm, "_groups"):
        trainer.algorithm._groups = _recorder(calls, "groups", trainer.algorithm._groups, lambda a, k, r: r)
    trainer.runner.score = _recorder(
        calls, "worker_pids", trainer.runner.score, lambda a, k, r: trainer.runner.worker_pids()
    )
    policy.frozen_logprobs = _recorder(calls, "frozen_logprobs", policy.frozen_logprobs)
    if hasattr(policy.module, "disable_adapter"):
        policy.module.disable_adapter = _recorder(
            calls, "disable_adapter", policy.module.disable_adapter, lambda a, k, r: 1
        )


class FakeWandb:
    """Stands in for the wandb module (no network here): records init, log and finish."""

    def __init__(self) -> None:
        self.inits: list[dict[str, Any]] = []
        self.logged: list[tuple[dict[str, Any], int]] = []
        self.finished = 0

    def init(self, **kwargs: Any) -> FakeWandb:
        self.inits.append(kwargs)
        return self

    def log(self, data: dict[str, Any], step: int) -> None:
        self.logged.append((data, step))

    def finish(self) -> None:
        self.finished += 1


# ------------------------------------------------------------------------------ what the checks read


def series(runs: Runs, name: str, key: str) -> list[Any]:
    return [r.get(key) for r in runs[name].metrics]


def ids(runs: Runs, name: str, step: int | None = None) -> list[str]:
    return list(dict.fromkeys(s["id"] for s in runs[name].samples() if step is None or s["step"] == step))


def prompts(runs: Runs, name: str) -> list[str]:
    return [p for call in runs[name].generations() for p in call.prompts]


def final_weights(runs: Runs, name: str) -> dict[str, torch.Tensor]:
    return load_file(runs[name].out / "final" / "model.safetensors")


def moved(runs: Runs, name: str) -> float:
    start, final = load_file(runs.tiny / "model.safetensors"), final_weights(runs, name)
    return max((final[k].float() - start[k].float()).abs().max().item() for k in final)


def adapter_config(runs: Runs, name: str) -> dict[str, Any]:
    return json.loads((runs[name].out / "checkpoints" / "step_000002" / "adapter_config.json").read_text())


def loss_kwargs(runs: Runs, name: str, objective: str = "policy_loss") -> list[dict[str, Any]]:
    return [c.kwargs for c in runs[name].calls.get(objective, [])]


def batches(runs: Runs, name: str) -> list[Any]:
    return [c.made.batch for c in runs[name].calls["make_step"]]


def optimizer_steps(runs: Runs, name: str) -> int:
    return runs[name].trainer.policy.scheduler.last_epoch


def summary(runs: Runs, name: str) -> dict[str, Any]:
    return json.loads((runs[name].out / "summary.json").read_text())


def refused(runs: Runs, name: str, kind: type, match: str) -> None:
    error = runs[name].error
    assert isinstance(error, kind) and match in str(error), repr(error)


def write_data_files(folder: Path) -> dict[str, Path]:
    """The files the file-based scenarios train on: prompts with renamed fields, rlvr eval samples with
    statuses (SFT's keep_status), preference pairs (offline DPO)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {"prompts": folder / "prompts.jsonl", "samples": folder / "samples.jsonl", "prefs": folder / "prefs.jsonl"}
    rows = [{"q": f"Add {i} and {i + 2}.", "gold": str(2 * i + 2)} for i in range(5)]
    samples = [
        {"id": f"s/{i}", "sample": 0, "prompt": f"<rendered {i}>", "completion": str(i), "gold": "0", "status": status}
        for i, status in enumerate(["correct", "wrong", "no_answer", "wrong", "correct"])
    ]
    prefs = [{"prompt": f"What is {i} + 1?", "chosen": str(i + 1), "rejected": "no idea"} for i in range(4)]
    for name, content in (("prompts", rows), ("samples", samples), ("prefs", prefs)):
        files[name].write_text("".join(json.dumps(r) + "\n" for r in content))
    return files


def engine_options(
    tiny: Path, overrides: dict[str, Any], device: str, world_size: int = 1, examples: Any = (), kind: str = "vllm"
) -> tuple[Any, dict]:
    """What the engine stages (rlvr.train.stages.engine_spec, start_engine) hand a vLLM engine for this
    config on `device` (which this machine need not have), serving `examples`: the engine is replaced by
    a recorder, so nothing starts."""
    import torch

    from rlvr.config import resolve_auto
    from rlvr.distributed import DistContext
    from rlvr.train import stages

    config = resolve_auto(
        load_config(None, {**BASE, "model.name": str(tiny), "logging.output": "unused", **overrides}), device
    )
    seen: dict[str, Any] = {}

    def create_engine(kind: str, model_path: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return SimpleNamespace(kind=kind, tokenizer=None, holds_weights=True)

    placement = stages.Placement(config, torch.device(device), "float32")
    ctx = DistContext(0, world_size, 0, torch.device(device), True)
    with (
        mock.patch("rlvr.rollout.create_engine", create_engine),
        mock.patch.object(stages, "holds_weights", return_value=True),
    ):
        spec = stages.engine_spec(config, placement, ctx, kind, tiny, examples)
        engine = stages.start_engine(spec, ctx)
    return engine, seen


__all__ = [
    "BASE",
    "SCENARIOS",
    "VARIED",
    "FakeWandb",
    "Run",
    "Runs",
    "adapter_config",
    "batches",
    "engine_options",
    "final_weights",
    "ids",
    "loss_kwargs",
    "moved",
    "optimizer_steps",
    "prompts",
    "refused",
    "series",
    "summary",
    "value_at",
]

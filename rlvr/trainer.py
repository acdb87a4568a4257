"""The GRPO trainer: one loop of generate → verify → advantages → learn → sync weights → evaluate/log.

`Trainer.step` is the algorithm, top to bottom. The rest is plumbing: the data stream, engines,
checkpoints and resume. The formulas live in `rlvr.objectives.grpo` (tables of small functions), the update in
`rlvr.learner`, engines in `rlvr.rollout`, verification in `rlvr.verifiers.runner`, and what gets
reported (metrics.jsonl, TensorBoard, alarms) in `rlvr.monitor`.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import signal
import threading
from pathlib import Path
from typing import Any, Sequence

import torch

from rlvr.objectives import grpo
from rlvr.checkpoint import latest_checkpoint, load_training_state, save_checkpoint
from rlvr.config import TrainConfig, dump_yaml, resolve_auto
from rlvr.distributed import (TensorParallelEngine, agree, barrier, checkpoint_state, init_distributed, rank_seed,
                              reduce_metrics, resumable_optimizer, shard_groups, vllm_parallel_options)
from rlvr.errors import InputError
from rlvr.learner import Batch, Learner, lr_lambda
from rlvr.monitor import Monitor, StepTimer, rollout_metrics, truncate_metrics
from rlvr.types import Example, Rollout

__all__ = ["PromptStream", "Trainer", "load_examples", "lr_lambda", "train"]

log = logging.getLogger("rlvr.train")


def load_examples(config: TrainConfig, *, held_out: bool = False) -> list[Example]:
    """Training examples (or the held-out eval examples) the config names."""
    data = config.data
    name = (config.eval.dataset or data.dataset) if held_out else data.dataset
    if held_out and name == "math" and not config.eval.dataset:
        name = "math500"  # MATH's train split is the test set minus MATH-500
    split = config.eval.split if held_out else data.split
    limit = config.eval.limit if held_out else data.limit
    if name == "arith":
        from rlvr.arith import generate_arith

        size = limit if held_out else (limit or data.size)
        return generate_arith(size, seed=config.seed, difficulty=data.difficulty, split=split)
    from rlvr.data import BENCHMARKS, load_benchmark, load_file

    if name in BENCHMARKS:
        return load_benchmark(name, split, limit=limit)
    if Path(name).is_file():
        return load_file(name, prompt_field=data.prompt_field, answer_field=data.answer_field, limit=limit)
    raise InputError(f"--dataset {name!r}: not arith, a benchmark ({', '.join(sorted(BENCHMARKS))}) or a file")


class PromptStream:
    """Training prompts in a seeded order, epoch after epoch; its position is saved in checkpoints."""

    def __init__(self, examples: Sequence[Example], seed: int, shuffle: bool, epoch: int = 0, index: int = 0):
        if not examples:
            raise InputError("the training dataset is empty")
        self.examples, self.seed, self.shuffle = list(examples), seed, shuffle
        self.epoch, self.index = epoch, index

    def _order(self) -> list[int]:
        order = list(range(len(self.examples)))
        if self.shuffle:
            random.Random(f"{self.seed}/{self.epoch}").shuffle(order)
        return order

    def take(self, k: int) -> list[Example]:
        taken: list[Example] = []
        order = self._order()
        while len(taken) < k:
            if self.index >= len(order):
                self.epoch, self.index = self.epoch + 1, 0
                order = self._order()
            taken.append(self.examples[order[self.index]])
            self.index += 1
        return taken

    def position(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}


class Trainer:
    """GRPO on one process or under torchrun. `Trainer(config).train()`; `resume=DIR` continues the
    run saved in DIR. `engine=` hands in a running engine that already serves config.model's
    weights (tests and benchmarks share one vLLM); the trainer then leaves it open."""

    def __init__(self, config: TrainConfig, *, resume: str | Path | None = None, engine: Any = None):
        self.ctx = init_distributed()
        device = self.ctx.device.type if config.device == "auto" else config.device
        self.config = cfg = resolve_auto(config, device)
        self.device = torch.device(device if device != "cuda" else self.ctx.device)
        self.out = Path(cfg.logging.output)
        self.interrupted = False
        checkpoint = latest_checkpoint(resume) if resume else None
        if resume and checkpoint is None:
            log.warning("no checkpoint in %s yet: starting from step 0", resume)

        from rlvr.models import resolve_model
        from rlvr.verifiers.registry import build_verifier
        from rlvr.verifiers.runner import Runner

        self.model_path = resolve_model(cfg.model.name)
        try:
            self.verifier = build_verifier(cfg.reward.verifier)
        except (ValueError, KeyError, TypeError) as err:
            raise InputError(f"--verifier {cfg.reward.verifier!r}: {err}") from None
        self.engine_kind = getattr(engine, "kind", None) or _engine_kind(cfg.rollout.engine)
        self.owns_engine, self.engine = engine is None, engine
        # an engine with its own copy of the weights needs them pushed after every update (an
        # FSDP2-sharded policy cannot generate by itself: the hf engine then keeps a full copy)
        sharded = self.ctx.distributed and cfg.distributed.strategy == "fsdp2"
        self.pushes_weights = engine is not None or self.engine_kind == "vllm" or sharded
        self.rollout_dtype = cfg.model.dtype if cfg.rollout.dtype == "auto" else cfg.rollout.dtype
        if self.engine is None and self.engine_kind == "vllm":  # in-process vLLM seeds the global RNG: start it before we seed
            self.engine = self._start_engine(policy=None)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.learner = Learner(cfg, self.ctx, self.device, self.model_path, checkpoint)
        self.examples = load_examples(cfg)
        self.eval_examples = load_examples(cfg, held_out=True) if cfg.eval.every else []
        self.step_number, saved = 0, {}
        if checkpoint is not None:
            saved = load_training_state(checkpoint, optimizer=resumable_optimizer(self.learner.model, self.learner.optimizer),
                                        scheduler=self.learner.scheduler)
            self.step_number = saved["step"]
            _reschedule(self.learner.scheduler)
            if saved.get("world_size", self.ctx.world_size) != self.ctx.world_size:
                log.warning("resuming a run of %s ranks on %d: it continues, but samples differ from the "
                            "uninterrupted run's (seeds are per rank)", saved["world_size"], self.ctx.world_size)
            log.info("resumed from %s at step %d", checkpoint, self.step_number)
        self.stream = PromptStream(self.examples, cfg.seed, cfg.data.shuffle, **saved.get("data", {}))
        if self.engine is None:
            self.engine = self._start_engine(policy=None if self.pushes_weights else self.learner.policy)
        if self.pushes_weights and self.step_number:
            self.engine.sync_weights(self.learner.weights())
        self.runner = Runner(self.verifier, workers=cfg.reward.workers, timeout=cfg.reward.timeout,
                             max_failure_rate=cfg.reward.max_failure_rate)
        if self.ctx.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.yaml").write_text(dump_yaml(self.config), encoding="utf-8")
            truncate_metrics(self.out, self.step_number)
        self.monitor = Monitor(self.out, total_steps=cfg.optimizer.max_steps, start_step=self.step_number,
                               enabled=self.ctx.is_main, progress=cfg.logging.progress,
                               wandb_project=cfg.logging.wandb_project if cfg.logging.wandb else None,
                               run_config=dataclasses.asdict(self.config))
        if saved.get("alarms"):
            self.monitor.alarms.__dict__.update(saved["alarms"])

    # -------------------------------------------------------------------------- the loop

    def train(self) -> dict[str, Any]:
        """Run until optimizer.max_steps, evaluating and checkpointing on schedule. Ctrl-C finishes
        the current step, saves a checkpoint and returns (a second Ctrl-C aborts at once)."""
        cfg = self.config
        previous = signal.getsignal(signal.SIGINT)
        on_main_thread = threading.current_thread() is threading.main_thread()
        if on_main_thread:
            signal.signal(signal.SIGINT, self._on_interrupt)
        last: dict[str, Any] = {}
        try:
            if cfg.eval.every and self.step_number == 0:
                self.evaluate()
            while self.step_number < cfg.optimizer.max_steps and not self.interrupted:
                self.step_number += 1
                last = self.step()
                done = self.step_number == cfg.optimizer.max_steps
                if cfg.checkpoint.every and self.step_number % cfg.checkpoint.every == 0 and not done:
                    self.save()
                if cfg.eval.every and (self.step_number % cfg.eval.every == 0 or done):
                    self.evaluate()
            self.save()
            if self.step_number >= cfg.optimizer.max_steps:
                self.save_final()
            if self.interrupted:
                log.warning("interrupted: saved step %d in %s; continue with --resume %s",
                            self.step_number, self.out, self.out)
        finally:
            if on_main_thread:
                signal.signal(signal.SIGINT, previous)
            self.close()
        return last

    def step(self) -> dict[str, Any]:
        """One GRPO step; returns its metrics (also written to metrics.jsonl)."""
        cfg, timer, n = self.config, StepTimer(), self.config.rollout.n
        want = cfg.rollout.prompts_per_step // self.ctx.world_size  # this rank's groups

        # 1. generate n completions per prompt and 2. verify them. With dynamic sampling, groups
        #    whose rewards are all equal (no signal) are dropped and refilled from new prompts.
        parts, seen, rounds = [], [], 0
        while True:
            examples = shard_groups(self.stream.take(cfg.rollout.prompts_per_step), self.ctx)
            with timer("generate"):
                rollouts = self.engine.generate(self._prompts(examples), n, self._sampling(rounds))
            with timer("verify"):
                scored = self._verify(examples, rollouts)
            zero_variance = grpo.zero_variance_groups(scored.rewards)
            seen.append((scored, zero_variance))
            parts.append(scored.select(~zero_variance) if cfg.algorithm.dynamic_sampling else scored)
            rounds += 1
            # the fewest groups any rank kept: every rank refills alike and trains on as many groups
            # (equal shares keep DDP's gradient average exact and its backward passes in step)
            kept = int(agree(sum(len(p.examples) for p in parts), self.ctx, "min"))
            if not cfg.algorithm.dynamic_sampling or kept >= want or rounds > cfg.algorithm.max_refill_rounds:
                break
        batch = Batch.concat(parts, n).first(min(want, kept))
        first, first_zero_variance = seen[0]  # what the policy produced before any filtering

        # 3. advantages: one per completion, from its group's rewards (rlvr.objectives.grpo.ADVANTAGES)
        advantages = grpo.group_advantages(batch.rewards, cfg.algorithm.advantage).reshape(-1)

        # 4. learn: μ optimizer steps with the clipped surrogate (rlvr.objectives.grpo.LOSSES), sampler
        #    mismatch corrected by truncated importance weights with vllm
        before, lr = self.learner.probe(), self.learner.lr
        with timer("learn"):
            use_tis = cfg.algorithm.tis == "on" or (cfg.algorithm.tis == "auto" and self.engine_kind == "vllm")
            learned = self.learner.learn(batch, advantages, use_tis=use_tis) if batch.examples else {}
        moved = agree(self.learner.moved_since(before), self.ctx, "max")  # FSDP2: each rank probes its shard

        # 5. sync: vllm gets the new weights in place (LoRA merged); hf generates with the policy
        #    itself. Nothing moved (every group had equal rewards): nothing to push.
        with timer("sync"):
            report = self.engine.sync_weights(self.learner.weights()) if self.pushes_weights and moved > 0 else {}

        # 6. log: metrics.jsonl, TensorBoard, progress bar, alarms (evaluate/checkpoint: in train)
        metrics = {
            **rollout_metrics([s for b, _ in seen for s in b.scores], [r for b, _ in seen for r in b.rollouts]),
            "zero_variance_fraction": first_zero_variance.float().mean().item(),
            "groups_trained": len(batch.examples), "generate_rounds": rounds, "epoch": self.stream.epoch,
            **learned, "lr": lr, "param_delta": moved, **timer.metrics(),
        }
        metrics["tokens_per_s"] = metrics["completion_tokens"] / max(timer.seconds["generate"], 1e-9)
        metrics.update(reduce_metrics(metrics, self.ctx))
        if report.get("changed") is not None:
            metrics["sync_changed"] = report["changed"]
        if report and self.engine_kind == "vllm" and self.rollout_dtype != cfg.model.dtype:  # what the engine kept
            metrics["sync_rounded_away"] = self.learner.rounded_away(before, getattr(torch, self.rollout_dtype))
        self.monitor.log_step(self.step_number, metrics)
        every = cfg.logging.samples_every
        if every and (self.step_number % every == 0 or self.step_number == 1):
            self.monitor.log_samples(self.step_number, first.examples, first.rollouts, first.scores)
        return metrics

    # -------------------------------------------------------------------------- stages

    def _prompts(self, examples: Sequence[Example]) -> list[str]:
        from rlvr.templates import render_prompt

        return [render_prompt(e, self.engine.tokenizer, style=self.config.data.style,
                              instruction=self.config.data.instruction) for e in examples]

    def _sampling(self, round_: int, *, held_out: bool = False) -> Any:
        """Sampling for this step and refill round, seeded by (seed, rank, step, round) so that a
        resumed run generates exactly what the uninterrupted one did."""
        from rlvr.rollout import SamplingConfig
        from rlvr.templates import stop_sequences

        r, e = self.config.rollout, self.config.eval
        stop = stop_sequences(self.config.data.style)
        if held_out:
            return SamplingConfig(temperature=e.temperature, top_p=r.top_p, top_k=r.top_k,
                                  max_new_tokens=e.max_new_tokens or r.max_new_tokens, seed=self.config.seed, stop=stop)
        seed = rank_seed(self.config.seed, self.ctx) + 7919 * self.step_number + 104_729 * round_
        return SamplingConfig(temperature=r.temperature, top_p=r.top_p, top_k=r.top_k,
                              max_new_tokens=r.max_new_tokens, seed=seed, stop=stop)

    def _verify(self, examples: list[Example], rollouts: list[Rollout]) -> Batch:
        """Score every completion against its example's gold; rewards shaped [groups, n]."""
        n = self.config.rollout.n
        scores = self.runner.score([r.text for r in rollouts], [examples[r.prompt_index] for r in rollouts])
        rewards = torch.tensor([s.reward for s in scores], dtype=torch.float32)
        if self.config.reward.truncated == "penalty":
            lengths = torch.tensor([len(r.token_ids) for r in rollouts])
            rewards = rewards + grpo.overlong_penalty(lengths, self.config.rollout.max_new_tokens,
                                                      self.config.reward.overlong_buffer)
        return Batch(list(examples), list(rollouts), scores, rewards.reshape(len(examples), n))

    def _start_engine(self, policy: Any) -> Any:
        from rlvr.rollout import create_engine
        from rlvr.rollout.vllm import kv_cache_gib

        r = self.config.rollout
        max_len = r.max_model_len or 1024 + r.max_new_tokens
        dtype = self.rollout_dtype  # hf generates with the policy, in its dtype
        extra: dict[str, Any] = {}
        if self.engine_kind == "vllm" and self.device.type == "cuda":
            extra["gpu_memory_utilization"] = r.gpu_memory_utilization
        elif self.engine_kind == "vllm":  # a KV cache for this step's rollouts, not vLLM-CPU's 4 GiB
            rows = r.prompts_per_step * r.n * (1 + self.config.algorithm.max_refill_rounds
                                                 * self.config.algorithm.dynamic_sampling)
            extra["kv_cache_gib"] = r.kv_cache_gib or kv_cache_gib(self.model_path, rows // self.ctx.world_size,
                                                                   max_len, dtype=dtype)
        tp = r.tensor_parallel_size if self.engine_kind == "vllm" else 1
        if self.engine_kind == "vllm":
            extra.update(vllm_parallel_options(self.ctx, tp))
        seed = rank_seed(self.config.seed, self.ctx) - 1_000_003 * (self.ctx.rank % tp)  # one seed per TP group
        engine = create_engine(self.engine_kind, self.model_path, policy=policy, seed=seed, max_model_len=max_len,
                               **({"dtype": dtype} if self.engine_kind == "vllm" else {}), **extra)
        return TensorParallelEngine(engine, self.ctx, tp) if tp > 1 else engine

    # -------------------------------------------------------------------------- eval, state, output

    def evaluate(self) -> dict[str, Any] | None:
        """Held-out accuracy through rlvr.eval.run_eval: the template, extraction and verifier of `rlvr eval`."""
        summary = None
        # a tensor-parallel engine needs all its ranks: then every rank runs the same eval, rank 0 writes it
        everyone = isinstance(self.engine, TensorParallelEngine)
        if (self.ctx.is_main or everyone) and self.eval_examples:
            from rlvr.eval import run_eval

            engine = self.engine.engine if everyone else self.engine
            output_dir = self.out / "eval" / f"step_{self.step_number:06d}" if self.ctx.is_main else None
            summary = run_eval(engine, self.eval_examples, self.verifier, sampling=self._sampling(0, held_out=True),
                               style=self.config.data.style, instruction=self.config.data.instruction,
                               output_dir=output_dir, progress=False,
                               workers=self.config.reward.workers, timeout=self.config.reward.timeout,
                               max_failure_rate=None, name=f"step {self.step_number}")
            self.monitor.log_eval(self.step_number, summary)
        barrier(self.ctx)
        return summary

    def state(self) -> dict[str, Any]:
        return {"step": self.step_number, "data": self.stream.position(), "world_size": self.ctx.world_size,
                "alarms": dataclasses.asdict(self.monitor.alarms)}

    def save(self) -> Path | None:
        """DIR/checkpoints/step_N: weights (or the peft adapter), optimizer, scheduler, RNG, data position."""
        path = None
        model, optimizer = checkpoint_state(self.learner.model, self.learner.optimizer, self.ctx)  # FSDP2: gathers
        if self.ctx.is_main:
            path = save_checkpoint(self.out, model=model, tokenizer=self.learner.tokenizer,
                                   optimizer=optimizer, scheduler=self.learner.scheduler,
                                   state=self.state(), keep_last=self.config.checkpoint.keep_last)
        barrier(self.ctx)
        return path

    def save_final(self) -> None:
        """DIR/final: the trained model as a plain HF folder (LoRA merged) for `rlvr eval --model`."""
        model, _ = checkpoint_state(self.learner.model, None, self.ctx)  # FSDP2: gathers, on every rank
        if not self.ctx.is_main:
            return
        target = self.out / "final"
        if self.config.model.lora_r:
            model.get_base_model().save_pretrained(target, state_dict=self.learner.weights(), safe_serialization=True)
        else:
            model.save_pretrained(target, safe_serialization=True)
        self.learner.tokenizer.save_pretrained(target)

    def close(self) -> None:
        self.monitor.close()
        self.runner.close()
        if self.owns_engine:
            self.engine.close()

    def _on_interrupt(self, signum: int, frame: Any) -> None:
        if self.interrupted:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.interrupted = True
        log.warning("Ctrl-C: finishing step %d, then saving a checkpoint (Ctrl-C again to abort)", self.step_number)


def _reschedule(scheduler: Any) -> None:
    """Set the learning rate a resumed LambdaLR schedule gives now: the saved one belongs to the
    saved run's schedule, which differs when optimizer.max_steps changed (a run extended)."""
    now = [base * fn(scheduler.last_epoch) for base, fn in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(scheduler.optimizer.param_groups, now):
        group["lr"] = lr
    scheduler._last_lr = now


def _engine_kind(kind: str) -> str:
    from rlvr.rollout import vllm_available

    return ("vllm" if vllm_available() else "hf") if kind == "auto" else kind


def train(config: TrainConfig, *, resume: str | Path | None = None, engine: Any = None) -> dict[str, Any]:
    """Build a Trainer and run it; returns the last step's metrics."""
    return Trainer(config, resume=resume, engine=engine).train()

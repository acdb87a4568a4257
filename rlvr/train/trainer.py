"""The one training loop every algorithm runs: make a batch → learn → push weights to the engine when it
holds its own copy → log and alarm → evaluate → checkpoint; resume, Ctrl-C/SIGTERM, torchrun.

What differs between GRPO, SFT, RFT and DPO lives in rlvr/algorithms/ (one file each): how a step's
batch is made and which objective (rlvr/objectives/) it trains. The model, its precision and the
optimizer are `rlvr.learner.policy.Policy`; generate → verify is `rlvr.rollout.collect.sample_and_score`.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import torch

from rlvr.algorithms import create_algorithm
from rlvr.train.checkpoint import latest_checkpoint, load_training_state, save_checkpoint, save_final
from rlvr.config import TrainConfig, dump_yaml, resolve_auto
from rlvr.data.benchmarks import PromptStream
from rlvr.distributed import (agree, barrier, broadcast_object, checkpoint_state, init_distributed, rank_seed,
                              reduce_metrics, resumable_optimizer)
from rlvr.errors import InputError, OutputError
from rlvr.train.monitor import Monitor, StepTimer, truncate_metrics
from rlvr.rollout.quiet import engine_output_to
from rlvr.rollout.collect import sample_and_score
from rlvr.rollout.parallel import TensorParallelEngine
from rlvr.train.summary import write_summary
from rlvr.types import Example

__all__ = ["PromptStream", "Trainer", "train"]

log = logging.getLogger("rlvr.train")

#: the signals that end a run cleanly: finish the step in flight, checkpoint, return
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Trainer:
    """`Trainer(config).train()` runs config.algorithm; `resume=DIR` continues the run saved in DIR.
    `engine=` hands in a running engine that already serves config.model's weights (tests and
    benchmarks share one vLLM); the trainer then leaves it open."""

    def __init__(self, config: TrainConfig, *, resume: str | Path | None = None, engine: Any = None,
                 engine_log: Path | None = None):
        self.started = time.perf_counter()
        self.engine_log = engine_log  # where the engines' own console output goes (None: the console)
        self.ctx = init_distributed()
        device = self.ctx.device.type if config.device == "auto" else config.device
        if device == "cuda" and self.ctx.device.type != "cuda":  # else it would train on the CPU with GPU sizes
            raise InputError("device=cuda, but CUDA is not available here: use device=cpu or auto")
        self.config = cfg = resolve_auto(config, device)
        self.device = torch.device(device if device != "cuda" else self.ctx.device)
        self.out = Path(cfg.logging.output)
        self.stop_signal: int | None = None
        checkpoint = latest_checkpoint(resume) if resume else None
        if resume and checkpoint is None:
            log.warning("no checkpoint in %s yet: starting from step 0", resume)

        from rlvr.models import resolve_model
        from rlvr.learner.precision import resolve_dtypes
        from rlvr.verifiers.registry import build_verifier
        from rlvr.verifiers.scoring import runner_for

        self.algorithm = create_algorithm(cfg.algorithm, cfg)
        self.model_path = resolve_model(cfg.model.name)
        try:
            self.verifier = build_verifier(cfg.reward.verifier)
        except (ValueError, KeyError, TypeError) as err:
            raise InputError(f"--verifier {cfg.reward.verifier!r}: {err}") from None
        self.audit = self._audit() if self.ctx.is_main else None
        _, compute = resolve_dtypes(cfg.model.dtype, cfg.model.master_dtype, device)
        # what config.yaml records (the measured choice); under torchrun rank 0's, so every rank computes alike
        cfg.model.dtype = broadcast_object(str(compute).removeprefix("torch."), self.ctx)
        self.rollout_dtype = cfg.model.dtype if cfg.rollout.dtype == "auto" else cfg.rollout.dtype
        self.owns_engine, self.engine = engine is None, engine
        # an FSDP2-sharded policy cannot generate by itself: the engine then keeps a full copy
        self.sharded = self.ctx.distributed and cfg.distributed.strategy == "fsdp2"
        from rlvr.rollout import resolve_kind

        kind = getattr(engine, "kind", None) or resolve_kind(cfg.rollout.engine)
        evaluates = cfg.eval.before_after or cfg.eval.every
        self._training_rows: list[Example] | None = None
        self.eval_examples = self.load_examples(held_out=True) if evaluates else []
        if self.engine is None and _holds_weights(kind):  # in-process vLLM seeds the global RNG: start it before we seed
            served = [*self.algorithm.sampled_examples(self), *self.eval_examples]
            self.engine = self._start_engine(kind, policy=None, examples=served)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        from rlvr.learner.policy import Policy

        self.policy = Policy(cfg, self.ctx, self.device, self.model_path, checkpoint,
                             reference=self.algorithm.needs_reference(), optimizer_steps=self.algorithm.optimizer_steps())
        self.examples = self.algorithm.training_examples(self)
        self.step_number, saved = 0, {}
        if checkpoint is not None:
            saved = load_training_state(checkpoint, optimizer=resumable_optimizer(self.policy.model, self.policy.optimizer),
                                        scheduler=self.policy.scheduler)
            self.step_number = saved["step"]
            _reschedule(self.policy.scheduler)
            if saved.get("world_size", self.ctx.world_size) != self.ctx.world_size:
                log.warning("resuming a run of %s ranks on %d: it continues, but samples differ from the "
                            "uninterrupted run's (seeds are per rank)", saved["world_size"], self.ctx.world_size)
            log.info("resumed from %s at step %d", checkpoint, self.step_number)
        self.stream = PromptStream(self.examples, cfg.seed, cfg.data.shuffle, **saved.get("data", {}))
        if self.engine is None:
            self.engine = self._start_engine(kind, policy=None if self.sharded else self.policy.policy)
        self.pushes_weights = _engine_holds_weights(self.engine)
        self.engine_stale = self.pushes_weights and bool(self.step_number)  # resumed: the engine has the base weights
        self.sync_engine()
        # a reward-model term scores in this process, batched; rule-based terms in the worker pool
        self.runner = runner_for(self.verifier, workers=cfg.reward.workers, timeout=cfg.reward.timeout,
                                 max_failure_rate=cfg.reward.max_failure_rate)
        if self.ctx.is_main:
            try:
                self.out.mkdir(parents=True, exist_ok=True)
                (self.out / "config.yaml").write_text(dump_yaml(self.config), encoding="utf-8")
                truncate_metrics(self.out, self.step_number)
            except OSError as err:
                raise OutputError(f"cannot write the run folder {self.out}: {err.strerror or err}") from None
        self.monitor = Monitor(self.out, total_steps=cfg.optimizer.max_steps, start_step=self.step_number,
                               enabled=self.ctx.is_main, progress=cfg.logging.progress,
                               wandb_project=cfg.logging.wandb_project if cfg.logging.wandb else None,
                               run_config=dataclasses.asdict(self.config))
        if saved.get("alarms"):
            self.monitor.alarms.__dict__.update(saved["alarms"])

    # -------------------------------------------------------------------------- the loop

    def train(self) -> dict[str, Any]:
        """Run until optimizer.max_steps, evaluating and checkpointing on schedule. Ctrl-C or SIGTERM
        finishes the current step, saves a checkpoint and returns (a second one aborts at once)."""
        cfg = self.config
        on_main_thread = threading.current_thread() is threading.main_thread()
        previous = {s: signal.signal(s, self._on_stop) for s in STOP_SIGNALS} if on_main_thread else {}
        last: dict[str, Any] = {}
        try:
            if (cfg.eval.before_after or cfg.eval.every) and self.step_number == 0:
                self.evaluate()
            while self.step_number < cfg.optimizer.max_steps and self.stop_signal is None:
                self.step_number += 1
                last = self.step()
                done = self.step_number == cfg.optimizer.max_steps
                if cfg.checkpoint.every and self.step_number % cfg.checkpoint.every == 0 and not done:
                    self.save()
                periodic = cfg.eval.every and self.step_number % cfg.eval.every == 0
                if periodic or (done and cfg.eval.before_after):
                    self.evaluate()
            self.save()
            if self.step_number >= cfg.optimizer.max_steps:
                self.save_final()
            if self.ctx.is_main:
                write_summary(self.out, steps=self.step_number, wall_s=time.perf_counter() - self.started,
                              final=self.out / "final" if self.step_number >= cfg.optimizer.max_steps else None,
                              audit=self.audit)
            if self.stop_signal is not None:
                log.warning("%s: saved step %d in %s; continue with --resume %s",
                            signal.Signals(self.stop_signal).name, self.step_number, self.out, self.out)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.close()
        return last

    def step(self) -> dict[str, Any]:
        """One step of the algorithm; returns its metrics (also written to metrics.jsonl)."""
        timer = StepTimer()
        made = self.algorithm.make_step(self, timer)
        before, lr = self.policy.probe(), self.policy.lr
        if self.engine.can_sleep:
            self.engine.sleep()  # the engine's weights (GPU: and KV cache) make room for the learner
        with timer("learn"):
            learned = self.algorithm.learn(self.policy, made.batch)
        moved = agree(self.policy.moved_since(before), self.ctx, "max")  # FSDP2: each rank probes its shard
        if self.engine.can_sleep:  # level 2 drops the weights too: wake() says they must be pushed again
            lost = bool(self.engine.wake())  # always woken, even when a push is already due (SFT: at the next eval)
            self.engine_stale = self.engine_stale or (lost and self.pushes_weights)
        # the engine generates with its own copy: push the new weights (LoRA merged). Nothing moved
        # (e.g. every group had equal rewards): nothing to push. An algorithm that does not sample
        # (SFT, offline DPO) needs them only at the next eval.
        report: dict[str, Any] = {}
        self.engine_stale = self.engine_stale or (self.pushes_weights and moved > 0)
        if self.algorithm.samples_online:
            with timer("sync"):
                report = self.sync_engine()
        metrics = {**made.metrics, "epoch": self.stream.epoch, **learned, "lr": lr, "param_delta": moved,
                   **timer.metrics()}
        if "completion_tokens" in metrics and timer.seconds.get("generate"):
            metrics["tokens_per_s"] = metrics["completion_tokens"] / max(timer.seconds["generate"], 1e-9)
        metrics.update(reduce_metrics(metrics, self.ctx))
        if report.get("changed") is not None:
            metrics["sync_changed"], metrics["sync_probe_s"] = report["changed"], report.get("probe_s", 0.0)
        if report and self.rollout_dtype != str(self.policy.master_dtype).removeprefix("torch."):  # what the engine kept
            metrics["sync_rounded_away"] = self.policy.rounded_away(before, getattr(torch, self.rollout_dtype))
        self.monitor.log_step(self.step_number, metrics)
        every = self.config.logging.samples_every
        if made.samples and every and (self.step_number % every == 0 or self.step_number == 1):
            self.monitor.log_samples(self.step_number, *made.samples)
        return metrics

    # -------------------------------------------------------------------------- shared pieces for algorithms

    def sync_engine(self) -> dict[str, Any]:
        """Push the policy's weights into an engine that holds its own copy, if they changed since the last push."""
        if not self.engine_stale:
            return {}
        with engine_output_to(self.engine_log):
            report = self.engine.sync_weights(self.policy.weights())
        self.engine_stale = False
        return report

    def template(self, example: Example) -> str:
        from rlvr.data.templates import render_prompt

        return render_prompt(example, self.engine.tokenizer, style=self.config.data.style,
                             instruction=self.config.data.instruction)

    def collect(self, examples: Sequence[Example], n: int, sampling: Any, timer: StepTimer) -> Any:
        """Generate n completions per example and verify them (timed as generate and verify)."""
        collected = sample_and_score(self.engine, self.runner, examples, n, sampling, self.template)
        timer.add("generate", collected.generate_s)
        timer.add("verify", collected.verify_s)
        return collected

    def sampling(self, round_: int) -> Any:
        """Sampling for this step and refill round, seeded by (seed, rank, step, round) so that a resumed
        run generates exactly what the uninterrupted one did (the held-out eval's: rlvr.eval.spec.EvalSpec)."""
        from rlvr.rollout import SamplingConfig
        from rlvr.data.templates import stop_sequences

        r = self.config.rollout
        stop = stop_sequences(self.config.data.style)
        seed = rank_seed(self.config.seed, self.ctx) + 7919 * self.step_number + 104_729 * round_
        return SamplingConfig(temperature=r.temperature, top_p=r.top_p, top_k=r.top_k,
                              max_new_tokens=r.max_new_tokens, seed=seed, stop=stop)

    def load_examples(self, *, held_out: bool = False) -> list[Example]:
        """Held-out examples, or the training ones (read once: the engine's sizing asks before the algorithm)."""
        from rlvr.data.benchmarks import load_examples

        if held_out:
            return load_examples(self.config, held_out=True)
        if self._training_rows is None:
            self._training_rows = load_examples(self.config)
        return self._training_rows

    def dataset_is_file(self) -> bool:
        return Path(self.config.data.dataset).is_file()

    @property
    def engine_sampler_logprobs(self) -> bool:
        return bool(self.engine.sampler_logprobs)

    # -------------------------------------------------------------------------- engines, audit

    def _start_engine(self, kind: str, policy: Any, examples: Sequence[Example] = ()) -> Any:
        """The rollout engine. One that holds its own weights is sized from `examples`, the prompts it will
        serve (training and held-out): max_model_len = the longest templated prompt + the longest
        generation, and on CPU a KV cache for one step's rollouts at that length (rlvr.rollout.vllm.sizing.kv_budget)."""
        from rlvr.rollout import create_engine
        from rlvr.rollout.parallel import vllm_parallel_options
        from rlvr.rollout.vllm.sizing import kv_budget, kv_cache_gib

        r, holds = self.config.rollout, _holds_weights(kind)
        new_tokens = max(r.max_new_tokens, self.config.eval.max_new_tokens or 0)
        rows = r.prompts_per_step * r.n * (1 + self.config.grpo.max_refill_rounds
                                           * self.config.grpo.dynamic_sampling) // self.ctx.world_size
        max_len, gib = r.max_model_len or 1024 + new_tokens, None
        extra: dict[str, Any] = {}
        if holds and not r.max_model_len and examples:
            from rlvr.data.templates import render_prompt
            from rlvr.models import load_tokenizer

            tokenizer = load_tokenizer(self.model_path)
            prompts = [render_prompt(e, tokenizer, style=self.config.data.style, instruction=self.config.data.instruction)
                       for e in examples]
            max_len, gib = kv_budget(self.model_path, prompts, rows, new_tokens, dtype=self.rollout_dtype, tokenizer=tokenizer)
            log.info("vllm context %d tokens (longest of %d prompts + %d new)", max_len, len(examples), new_tokens)
        if holds and self.device.type == "cuda":
            extra["gpu_memory_utilization"] = r.gpu_memory_utilization
        elif holds:  # a KV cache for this step's rollouts, not vLLM-CPU's 4 GiB
            extra["kv_cache_gib"] = r.kv_cache_gib or gib or kv_cache_gib(self.model_path, rows, max_len, dtype=self.rollout_dtype)
        tp = r.tensor_parallel_size if holds else 1
        if holds:
            extra.update(vllm_parallel_options(self.ctx, tp))
        seed = rank_seed(self.config.seed, self.ctx) - 1_000_003 * (self.ctx.rank % tp)  # one seed per TP group
        with engine_output_to(self.engine_log):
            engine = create_engine(kind, self.model_path, policy=policy, seed=seed, max_model_len=max_len,
                                   dtype=self.rollout_dtype, **extra)
        log.info("%s engine ready after %.1f s (its own output: %s)", kind, time.perf_counter() - self.started,
                 self.engine_log or "the console")
        return TensorParallelEngine(engine, self.ctx, tp) if tp > 1 else engine

    def _audit(self) -> Any:
        """The shipped suite of known reward hacks through this run's verifier: one line, a warning
        listing what earns reward, and a refusal to start under reward.strict_audit."""
        if not self.config.reward.audit:
            return None
        from rlvr.verifiers.audit import run_audit

        report = run_audit(self.verifier, workers=0)
        log.info("%s", report.line())
        if report.rewarded:
            log.warning("the reward %r pays for known hacks:\n%s", self.config.reward.verifier, report.details())
            if self.config.reward.strict_audit:
                raise InputError(f"--strict-audit: {report.line()} with --verifier {self.config.reward.verifier!r}")
        return report

    # -------------------------------------------------------------------------- eval, state, output

    def evaluate(self) -> dict[str, Any] | None:
        """Held-out accuracy through rlvr.eval.run.run_eval: the template, extraction and verifier of `rlvr eval`."""
        summary = None
        # a tensor-parallel engine needs all its ranks: then every rank runs the same eval, rank 0 writes it
        everyone = isinstance(self.engine, TensorParallelEngine)
        self.sync_engine()
        if (self.ctx.is_main or everyone) and self.eval_examples:
            from rlvr.eval.run import run_eval
            from rlvr.eval.spec import EvalSpec, engine_dtype

            engine = self.engine.engine if everyone else self.engine
            output_dir = self.out / "eval" / f"step_{self.step_number:06d}" if self.ctx.is_main else None
            # the settings `rlvr eval` takes to reproduce it: built by the same function, recorded with the result
            spec = EvalSpec.from_train_config(self.config, engine=getattr(engine, "kind", "auto"), dtype=engine_dtype(engine),
                                              max_model_len=getattr(engine, "max_model_len", None))
            summary = run_eval(engine, self.eval_examples, self.verifier, sampling=spec.sampling(),
                               style=spec.style, instruction=spec.instruction, samples=spec.samples,
                               run_info={**spec.settings(), "eval_command": spec.to_command()},
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
        """DIR/checkpoints/step_N: float32 master weights (or the peft adapter), optimizer, scheduler, RNG,
        data position; written to a temporary folder and renamed, so it is complete or absent."""
        path = None
        model, optimizer = checkpoint_state(self.policy.model, self.policy.optimizer, self.ctx)  # FSDP2: gathers
        if self.ctx.is_main:
            try:
                path = save_checkpoint(self.out, model=model, tokenizer=self.policy.tokenizer,
                                       optimizer=optimizer, scheduler=self.policy.scheduler,
                                       state=self.state(), keep_last=self.config.checkpoint.keep_last)
            except OSError as err:  # disk full, read-only: the temporary folder is what failed, never the last checkpoint
                previous = latest_checkpoint(self.out)
                raise OutputError(f"cannot write the checkpoint of step {self.step_number} under {self.out / 'checkpoints'}: "
                                  f"{err.strerror or err}; the previous checkpoint is intact: {previous or 'none yet'}") from None
        barrier(self.ctx)
        return path

    def save_final(self) -> None:
        """DIR/final: the trained model as a plain HF folder (LoRA merged) for `rlvr eval --model`."""
        model, _ = checkpoint_state(self.policy.model, None, self.ctx)  # FSDP2: gathers, on every rank
        if self.ctx.is_main:
            weights = self.policy.weights() if self.config.model.lora_r else None
            save_final(self.out / "final", model.get_base_model() if weights is not None else model,
                       self.policy.tokenizer, state_dict=weights)

    def close(self) -> None:
        self.monitor.close()
        self.runner.close()
        if self.owns_engine:
            self.engine.close()

    def _on_stop(self, signum: int, frame: Any) -> None:
        if self.stop_signal is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.stop_signal = signum
        log.warning("%s: finishing step %d, then saving a checkpoint (send it again to abort)",
                    signal.Signals(signum).name, self.step_number)


def _reschedule(scheduler: Any) -> None:
    """Set the learning rate a resumed LambdaLR schedule gives now: the saved one belongs to the saved
    run's schedule, which differs when optimizer.max_steps changed (a run extended)."""
    now = [base * fn(scheduler.last_epoch) for base, fn in zip(scheduler.base_lrs, scheduler.lr_lambdas)]
    for group, lr in zip(scheduler.optimizer.param_groups, now):
        group["lr"] = lr
    scheduler._last_lr = now


def _holds_weights(kind: str) -> bool:
    """Whether an engine of this kind keeps its own copy of the weights even when handed the policy (a
    class-level declaration; an engine that can generate with the live policy declares it per instance)."""
    from rlvr.rollout.base import engine_class

    return bool(getattr(engine_class(kind), "holds_weights", False))


def _engine_holds_weights(engine: Any) -> bool:
    inner = engine.engine if isinstance(engine, TensorParallelEngine) else engine
    return bool(inner.holds_weights)


def train(config: TrainConfig, *, resume: str | Path | None = None, engine: Any = None,
          engine_log: Path | None = None) -> dict[str, Any]:
    """Build a Trainer and run it; returns the last step's metrics."""
    return Trainer(config, resume=resume, engine=engine, engine_log=engine_log).train()

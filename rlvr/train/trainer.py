"""The one training loop every algorithm runs: make a batch → learn → push weights to the engine when it
holds its own copy → log and alarm → evaluate → checkpoint; resume, Ctrl-C/SIGTERM, torchrun.

What differs between GRPO, SFT, RFT and DPO lives in rlvr/algorithms/ (one file each): how a step's
batch is made and which objective (rlvr/objectives/) it trains. The Trainer is built from the stages of
rlvr.train.stages and is the `TrainContext` (rlvr.algorithms.context) its algorithm receives. The
model, its precision and the optimizer are `rlvr.learner.policy.Policy`; generate → verify is
`rlvr.rollout.collect.sample_and_score`.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rlvr.algorithms import create_algorithm
from rlvr.algorithms.base import Step
from rlvr.algorithms.context import Timer
from rlvr.config import TrainConfig
from rlvr.data.stream import PromptStream
from rlvr.distributed import agree, barrier, checkpoint_state, init_distributed, rank_seed, reduce_metrics
from rlvr.errors import EngineUnavailable, OutputError
from rlvr.rollout import SamplingConfig
from rlvr.rollout.collect import Collected, sample_and_score
from rlvr.rollout.parallel import TensorParallelEngine
from rlvr.rollout.quiet import engine_output_to
from rlvr.train import stages
from rlvr.train.alarms import settings_of
from rlvr.train.checkpoint import latest_checkpoint, save_checkpoint, save_final
from rlvr.train.heldout import held_out_eval
from rlvr.train.monitor import Monitor, StepTimer
from rlvr.train.offpolicy import StepsAhead
from rlvr.train.reward_stages import audit_reward, build_runner, build_verifier
from rlvr.train.stop import StopSignals
from rlvr.train.summary import own_eval_summary, write_summary
from rlvr.types import Example

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["PromptStream", "Trainer", "train"]

log = logging.getLogger("rlvr.train")


class Trainer:
    """`Trainer(config).train()` runs config.algorithm; `resume=DIR` continues the run saved in DIR.
    `engine=` hands in a running engine that already serves config.model's weights (tests and
    benchmarks share one vLLM); the trainer then leaves it open. Built from the stages of
    rlvr.train.stages, in the order their arguments allow; it is the `TrainContext` algorithms receive."""

    def __init__(
        self,
        config: TrainConfig,
        *,
        resume: str | Path | None = None,
        engine: Any = None,
        engine_log: Path | None = None,
    ):
        from rlvr.models import resolve_model
        from rlvr.rollout import resolve_kind

        self.started = time.perf_counter()
        self.engine_log = engine_log  # where the engines' own console output goes (None: the console)
        self.stop = StopSignals(lambda: self.step_number)  # Ctrl-C, SIGTERM: finish the step, checkpoint, return
        self.ctx = init_distributed()
        checkpoint = latest_checkpoint(resume) if resume else None
        if resume and checkpoint is None:
            log.warning("no checkpoint in %s yet: starting from step 0", resume)
        placement = stages.place(config, self.ctx)
        self.config = cfg = placement.config
        self.device, self.rollout_dtype = placement.device, placement.rollout_dtype
        self.algorithm = create_algorithm(cfg.algorithm, cfg)
        self.plan = self.algorithm.plan
        self.model_path = resolve_model(cfg.model.name)
        self.verifier = build_verifier(cfg)
        self.env = stages.build_environment(cfg)  # None: the single-turn path; refused here before any model loads
        self.audit = audit_reward(cfg, self.verifier) if self.ctx.is_main else None
        data = stages.load_data(self.plan, cfg)
        self.eval_examples = data.held_out
        self.owns_engine, self.engine = engine is None, engine
        # an FSDP2-sharded policy cannot generate by itself: the engine then keeps a full copy
        self.sharded = self.ctx.distributed and cfg.distributed.strategy == "fsdp2"
        kind = getattr(engine, "kind", None) or resolve_kind(cfg.rollout.engine)
        spec = (
            None
            if engine is not None
            else stages.engine_spec(cfg, placement, self.ctx, kind, self.model_path, data.served(self.plan))
        )
        if spec is not None and spec.holds_weights:  # its own copy of the weights: it needs no policy
            self.engine = stages.start_engine(spec, self.ctx, engine_log=engine_log, started=self.started)
        seeded = stages.seed_rngs(cfg.seed, after=self.engine)
        self.policy = stages.build_policy(placement, self.ctx, self.model_path, checkpoint, self.plan, seeded)
        resumed = stages.resume_state(checkpoint, self.policy, self.ctx)
        self.step_number = self.learned_step = resumed.step  # learned_step: the last step whose update was applied
        self.stream = stages.prompt_stream(self.algorithm, data, self.policy.tokenizer, cfg, resumed)
        if spec is not None and not spec.holds_weights:  # generates with the live policy (or its own copy)
            self.engine = stages.start_engine(
                spec,
                self.ctx,
                None if self.sharded or not self.plan.policy_generates else self.policy.module,
                engine_log=engine_log,
                started=self.started,
            )
        self.pushes_weights = self.plan.policy_generates and stages.engine_holds_weights(self.engine)  # rm: never
        self.engine_stale = self.pushes_weights and bool(self.step_number)  # resumed: the engine has the base weights
        self.sampling_step = self.engine_version = self.step_number  # the step sampled; the weights the engine has
        self.sync_engine()
        # rollout.async=1: the next step's batch is made while this one learns
        self.ahead = StepsAhead.of_run(cfg, self.plan, self.engine, self.ctx, self.make_batch, self.stream.position)
        self.runner = build_runner(self.verifier, cfg)
        self.out = stages.prepare_run_folder(cfg, self.step_number, self.ctx)
        self.monitor = Monitor(
            self.out,
            cfg.logging,
            total_steps=cfg.optimizer.max_steps,
            start_step=self.step_number,
            enabled=self.ctx.is_main,
            run_config=dataclasses.asdict(cfg),
            settings=settings_of(cfg, rollout__dtype=self.rollout_dtype, rollout__engine=kind),
        )
        self.start_probe = self.policy.probe()  # the engine copy's lag is measured from here (engine_lag)
        if resumed.alarms:
            self.monitor.alarms.__dict__.update(resumed.alarms)

    # -------------------------------------------------------------------------- the loop

    def train(self) -> dict[str, Any]:
        """Run until optimizer.max_steps, evaluating and checkpointing on schedule. Ctrl-C or SIGTERM
        finishes the current step, saves a checkpoint and returns (a second one aborts at once)."""
        cfg = self.config
        last: dict[str, Any] = {}
        try:
            with self.stop:
                if (cfg.eval.before_after or cfg.eval.every) and self.step_number == 0:
                    self.evaluate()
                while self.step_number < cfg.optimizer.max_steps and self.stop.received is None:
                    self.step_number += 1
                    last = self.step()
                    done = self.step_number == cfg.optimizer.max_steps
                    if cfg.checkpoint.every and self.step_number % cfg.checkpoint.every == 0 and not done:
                        self.save()
                    periodic = cfg.eval.every and self.step_number % cfg.eval.every == 0
                    if periodic or (done and cfg.eval.before_after):
                        self.evaluate()
                    if done and cfg.eval.before_after and self.env is not None:  # does the gain come from the tool?
                        self.evaluate(tool=False)
                self.save()
                if self.step_number >= cfg.optimizer.max_steps:
                    self.save_final()
                if self.ctx.is_main:
                    write_summary(
                        self.out,
                        steps=self.step_number,
                        wall_s=time.perf_counter() - self.started,
                        final=self.out / "final" if self.step_number >= cfg.optimizer.max_steps else None,
                        audit=self.audit,
                    )
                if self.stop.received is not None:
                    name, out = signal.Signals(self.stop.received).name, self.out
                    log.warning("%s: saved step %d in %s; continue with --resume %s", name, self.step_number, out, out)
        except EngineUnavailable:  # a server lost past its retries: keep what was learned, never stale rollouts
            self.step_number = self.learned_step
            self.save()
            log.error("rollout engine lost: saved step %d; continue with --resume %s", self.step_number, self.out)
            raise
        finally:
            self.close()
        return last

    def step(self) -> dict[str, Any]:
        """One step of the algorithm; returns its metrics (also written to metrics.jsonl)."""
        started = time.perf_counter()
        made, timer, version = self._batch()
        before, lr, staleness = self.policy.probe(), self.policy.lr, self.learned_step - version
        # a batch made ahead keeps the engine busy; one serving weights the learner never trains (rm: the base model)
        # keeps them, since nothing could push them back after a level-2 sleep
        sleeps = self.engine.can_sleep and self.ahead is None and self.plan.policy_generates
        if sleeps:
            self.engine.sleep()  # the engine's weights (GPU: and KV cache) make room for the learner
        with timer("learn"):
            learned = self.algorithm.learn(self.policy, made.batch)
        self.learned_step = self.step_number
        moved = agree(self.policy.moved_since(before), self.ctx, "max")  # FSDP2: each rank probes its shard
        if sleeps:  # level 2 drops the weights too: wake() says they must be pushed again
            lost = bool(self.engine.wake())  # always woken, even when a push is already due (SFT: at the next eval)
            self.engine_stale = self.engine_stale or (lost and self.pushes_weights)
        # the engine generates with its own copy: push the new weights (LoRA merged), unless nothing moved (equal
        # rewards everywhere). An algorithm that does not sample (SFT, offline DPO) needs them only at the next eval.
        report: dict[str, Any] = {}
        self.engine_stale = self.engine_stale or (self.pushes_weights and moved > 0)
        if self.plan.samples_online:
            if self.ahead is not None:  # never push weights under a generation in flight
                timer.add("wait", self.ahead.wait())
            with timer("sync"):
                report = self.sync_engine()
        metrics = {
            **made.metrics,
            "epoch": self.stream.epoch,
            **learned,
            "lr": lr,
            "param_delta": moved,
            **timer.metrics(),
            # updates between the weights that sampled this batch and those learning it (an algorithm that samples)
            **({"staleness": staleness} if self.plan.samples_online else {}),
            **(self.engine.step_stats() if hasattr(self.engine, "step_stats") else {}),  # vllm: prefix-cache hits
            **(self.runner.take() if self.config.reward.cross_check else {}),  # verifier_disagreement_rate
        }
        if self.ahead is not None:  # generation overlapped the previous step's learning: the step's wall time
            metrics["time_step"] = time.perf_counter() - started
        if self.env is not None:  # tool seconds beside generate seconds (also time_tool, time_generate)
            metrics.update(tool_s=timer.seconds.get("tool", 0.0), generate_s=timer.seconds.get("generate", 0.0))
        if "completion_tokens" in metrics and timer.seconds.get("generate"):
            metrics["tokens_per_s"] = metrics["completion_tokens"] / max(timer.seconds["generate"], 1e-9)
        metrics.update(reduce_metrics(metrics, self.ctx))
        if report.get("changed") is not None:
            metrics["sync_changed"], metrics["sync_probe_s"] = report["changed"], report.get("probe_s", 0.0)
        if report and self.rollout_dtype != str(self.policy.master_dtype).removeprefix("torch."):  # what it shows
            metrics["engine_lag"] = self.policy.engine_lag(self.start_probe, getattr(torch, self.rollout_dtype))
        self.monitor.log_step(self.step_number, metrics)
        every = self.config.logging.samples_every
        if made.samples and every and (self.step_number % every == 0 or self.step_number == 1):
            self.monitor.log_samples(self.step_number, *made.samples)
        return metrics

    def _batch(self) -> tuple[Step, StepTimer, int]:
        """This step's batch, its timer and the learned step whose weights sampled it: made ahead (rollout.async=1)
        or now. With rollout.async=1 the next step's batch is started here, before this one learns."""
        made = self.ahead.take(self.step_number) if self.ahead is not None else None
        if made is None:
            timer = StepTimer()
            made = self.make_batch(self.step_number, timer), timer, self.engine_version
        if self.ahead is not None and self.step_number < self.config.optimizer.max_steps and self.stop.received is None:
            self.ahead.start(self.step_number + 1, self.engine_version)
        return made

    def make_batch(self, step: int, timer: StepTimer) -> Step:
        """The algorithm's batch for `step`, its sampling seeded by that step (rollout.async=1: one step ahead)."""
        self.sampling_step = step
        return self.algorithm.make_step(self, timer)

    # -------------------------------------------------------------------------- the TrainContext of algorithms

    def sync_engine(self) -> dict[str, Any]:
        """Push the policy's weights into an engine that holds its own copy, if they changed since the last push."""
        report: dict[str, Any] = {}
        if self.engine_stale:
            with engine_output_to(self.engine_log):
                report = self.engine.sync_weights(self.policy.weights())
        # not stale: nothing moved since the last push, so the engine's weights are this step's too
        self.engine_stale, self.engine_version = False, self.learned_step
        return report

    @property
    def tokenizer(self) -> PreTrainedTokenizerBase:
        return self.policy.tokenizer

    @property
    def sampler_logprobs(self) -> bool:
        return bool(self.engine.sampler_logprobs)

    def prompt_text(self, example: Example) -> str:
        """The prompt as the model sees it: pre-rendered rows as they are, others through the run's template."""
        return example.metadata.get("rendered_prompt") or self.template(example)

    def template(self, example: Example) -> str:
        """The run's prompt template (data.style, data.instruction) applied to `example`."""
        from rlvr.data.templates import render_prompt

        return render_prompt(
            example, self.engine.tokenizer, style=self.config.data.style, instruction=self.config.data.instruction
        )

    def collect(self, examples: Sequence[Example], n: int, sampling: SamplingConfig, timer: Timer) -> Collected:
        """Generate n completions per example and verify them (timed as generate and verify)."""
        collected = sample_and_score(self.engine, self.runner, examples, n, sampling, self.template, env=self.env)
        timer.add("generate", collected.generate_s)
        timer.add("verify", collected.verify_s)
        if self.env is not None:
            timer.add("tool", collected.tool_s)
        return collected

    def sampling(self, round_: int) -> SamplingConfig:
        """Sampling for this step and refill round, seeded by (seed, rank, step, round) so that a resumed
        run generates exactly what the uninterrupted one did (the held-out eval's: rlvr.eval.spec.EvalSpec)."""
        from rlvr.data.templates import stop_sequences

        r = self.config.rollout
        stop = stop_sequences(self.config.data.style)
        seed = rank_seed(self.config.seed, self.ctx) + 7919 * self.sampling_step + 104_729 * round_
        return SamplingConfig(
            temperature=r.temperature,
            top_p=r.top_p,
            top_k=r.top_k,
            max_new_tokens=r.max_new_tokens,
            seed=seed,
            stop=stop,
        )

    # -------------------------------------------------------------------------- eval, state, output

    def evaluate(self, *, tool: bool = True) -> dict[str, Any] | None:
        """Held-out accuracy through rlvr.eval.run.run_eval: the template, extraction and verifier of `rlvr eval`;
        with the run's environment unless `tool` is False (the same checkpoint with the tool off)."""
        summary = None
        # a tensor-parallel engine needs all its ranks: then every rank runs the same eval, rank 0 writes it
        everyone = isinstance(self.engine, TensorParallelEngine)
        self.sync_engine()
        own = self.algorithm.evaluate(self, self.policy, self.eval_examples) if self.ctx.is_main else None
        if own is not None:  # the algorithm's own measure (a reward model's pairwise accuracy)
            self.monitor.log_eval(self.step_number, summary := own_eval_summary(own))
            barrier(self.ctx)
            return summary
        if (self.ctx.is_main or everyone) and self.eval_examples:
            engine, env = self.engine.engine if everyone else self.engine, self.env if tool else None
            folder = f"step_{self.step_number:06d}" + ("" if env is self.env else "_tool_off")
            output_dir = self.out / "eval" / folder if self.ctx.is_main else None
            summary = held_out_eval(
                engine,
                self.eval_examples,
                self.verifier,
                self.config,
                step=self.step_number,
                env=env,
                output_dir=output_dir,
            )
            self.monitor.log_eval(self.step_number, summary, tool=None if self.env is None else "on" if tool else "off")
        barrier(self.ctx)
        return summary

    def state(self) -> dict[str, Any]:
        return {
            "step": self.step_number,
            "data": self.stream.position() if self.ahead is None else self.ahead.data_position(),
            "world_size": self.ctx.world_size,
            "alarms": dataclasses.asdict(self.monitor.alarms),
        }

    def save(self) -> Path | None:
        """DIR/checkpoints/step_N: float32 master weights (or the peft adapter), optimizer, scheduler, RNG,
        data position; written to a temporary folder and renamed, so it is complete or absent."""
        path = None
        model, optimizer = checkpoint_state(self.policy.wrapped, self.policy.optimizer, self.ctx)  # FSDP2: gathers
        if self.ctx.is_main:
            try:
                path = save_checkpoint(
                    self.out,
                    model=model,
                    tokenizer=self.policy.tokenizer,
                    optimizer=optimizer,
                    scheduler=self.policy.scheduler,
                    state=self.state(),
                    keep_last=self.config.checkpoint.keep_last,
                )
            except OSError as err:  # disk full, read-only: the temporary folder failed, never the last checkpoint
                previous = latest_checkpoint(self.out)
                raise OutputError(
                    f"cannot write the checkpoint of step {self.step_number} under {self.out / 'checkpoints'}: "
                    f"{err.strerror or err}; the previous checkpoint is intact: {previous or 'none yet'}"
                ) from None
        barrier(self.ctx)
        return path

    def save_final(self) -> None:
        """DIR/final: the trained model as a plain HF folder (LoRA merged) for `rlvr eval --model`."""
        model, _ = checkpoint_state(self.policy.wrapped, None, self.ctx)  # FSDP2: gathers, on every rank
        if self.ctx.is_main:
            weights = self.policy.weights() if self.config.model.lora_r else None
            save_final(
                self.out / "final",
                model.get_base_model() if weights is not None else model,
                self.policy.tokenizer,
                state_dict=weights,
            )

    def close(self) -> None:
        if self.ahead is not None:
            self.ahead.close()
        self.monitor.close()
        self.runner.close()
        if self.env is not None:
            self.env.close()
        if self.owns_engine:
            self.engine.close()


def train(
    config: TrainConfig, *, resume: str | Path | None = None, engine: Any = None, engine_log: Path | None = None
) -> dict[str, Any]:
    """Build a Trainer and run it; returns the last step's metrics."""
    return Trainer(config, resume=resume, engine=engine, engine_log=engine_log).train()

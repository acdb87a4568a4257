"""The GRPO trainer: one loop of generate → verify → advantages → learn → sync weights → evaluate/log/checkpoint.

`Trainer.step` is the algorithm, top to bottom. Everything else here is plumbing: loading the
policy (optionally LoRA), the data stream, tensors for the learner, checkpoints and resume.
The formulas live in `rlvr.grpo` (tables of small functions); engines in `rlvr.rollout`;
verification in `rlvr.verifiers.runner`; what gets reported in `rlvr.monitor`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch

from rlvr import grpo
from rlvr.checkpoint import latest_checkpoint, load_training_state, merged_state_dict, save_checkpoint
from rlvr.config import TrainConfig, dump_yaml, resolve_auto
from rlvr.distributed import (barrier, full_state_dict, init_distributed, rank_seed, reduce_metrics,
                              shard_groups, unwrap_model, wrap_model, all_reduce_sum)
from rlvr.errors import InputError
from rlvr.monitor import Monitor, truncate_metrics
from rlvr.types import Example, Rollout, Score, Status

__all__ = ["Trainer", "train", "load_examples", "lr_lambda"]

log = logging.getLogger("rlvr.train")


# ------------------------------------------------------------------------------ data


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
        self.examples, self.seed, self.shuffle = list(examples), seed, shuffle
        self.epoch, self.index = epoch, index

    def _order(self) -> list[int]:
        order = list(range(len(self.examples)))
        if self.shuffle:
            random.Random(f"{self.seed}/{self.epoch}").shuffle(order)
        return order

    def take(self, k: int) -> list[Example]:
        taken: list[Example] = []
        while len(taken) < k:
            order = self._order()
            if self.index >= len(order):
                self.epoch, self.index = self.epoch + 1, 0
                continue
            taken.append(self.examples[order[self.index]])
            self.index += 1
        return taken

    def position(self) -> dict[str, int]:
        return {"epoch": self.epoch, "index": self.index}


def lr_lambda(step: int, *, warmup: int, total: int, schedule: str, min_ratio: float) -> float:
    """Linear warmup over `warmup` optimizer steps, then cosine down to `min_ratio` (or constant)."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


# ------------------------------------------------------------------------------ a step's batch


@dataclass
class Batch:
    """The groups of one step: G prompts × n completions (prompt-major), their scores and rewards."""

    examples: list[Example]
    rollouts: list[Rollout]
    scores: list[Score]
    rewards: torch.Tensor  # [G, n], shaped rewards (after any overlong penalty)

    def select(self, keep: torch.Tensor) -> "Batch":
        n = self.rewards.shape[1]
        groups = [g for g in range(len(self.examples)) if keep[g]]
        flat = [g * n + j for g in groups for j in range(n)]
        return Batch([self.examples[g] for g in groups], [self.rollouts[i] for i in flat],
                     [self.scores[i] for i in flat], self.rewards[keep])

    @staticmethod
    def concat(parts: list["Batch"], n: int) -> "Batch":
        return Batch([e for p in parts for e in p.examples], [r for p in parts for r in p.rollouts],
                     [s for p in parts for s in p.scores],
                     torch.cat([p.rewards for p in parts]) if parts else torch.zeros(0, n))


class Trainer:
    """GRPO on one process or under torchrun. `Trainer(config).train()`; `resume=DIR` continues."""

    def __init__(self, config: TrainConfig, *, resume: str | Path | None = None):
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

        self.model_path = resolve_model(cfg.model.name)
        try:
            self.verifier = build_verifier(cfg.reward.verifier)
        except (ValueError, KeyError, TypeError) as err:
            raise InputError(f"--verifier {cfg.reward.verifier!r}: {err}") from None
        self.engine_kind = _engine_kind(cfg.rollout.engine)
        if self.engine_kind == "vllm":  # in-process vLLM seeds the global RNG: start it before we seed
            self.engine = self._start_engine(policy=None)
        torch.manual_seed(cfg.seed)
        random.seed(cfg.seed)
        self.policy, self.tokenizer = self._load_policy(checkpoint)
        self.model = wrap_model(self.policy, self.ctx, "ddp")
        self.reference = self._load_reference()
        trainable = [p for p in self.policy.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(trainable, lr=cfg.optimizer.lr, weight_decay=cfg.optimizer.weight_decay,
                                           betas=(cfg.optimizer.beta1, cfg.optimizer.beta2))
        total = cfg.optimizer.max_steps * cfg.algorithm.mu
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_lambda(
            s, warmup=cfg.optimizer.warmup_steps * cfg.algorithm.mu, total=total,
            schedule=cfg.optimizer.schedule, min_ratio=cfg.optimizer.min_lr_ratio))
        self.examples = load_examples(cfg)
        self.eval_examples = load_examples(cfg, held_out=True) if cfg.eval.every else []
        self.step_number = 0
        saved: dict[str, Any] = {}
        if checkpoint is not None:
            saved = load_training_state(checkpoint, optimizer=self.optimizer, scheduler=self.scheduler)
            self.step_number = saved["step"]
            log.info("resumed from %s at step %d", checkpoint, self.step_number)
        self.stream = PromptStream(self.examples, cfg.seed, cfg.data.shuffle, **saved.get("data", {}))
        if self.engine_kind == "hf":
            self.engine = self._start_engine(policy=self.policy)
        elif self.step_number:
            self.engine.sync_weights(self._policy_weights())
        from rlvr.verifiers.runner import Runner

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
        """Run until optimizer.max_steps (or Ctrl-C: finish the step, checkpoint, return)."""
        cfg = self.config
        previous = signal.getsignal(signal.SIGINT)
        if hasattr(signal, "SIGINT") and _main_thread():
            signal.signal(signal.SIGINT, self._on_interrupt)
        last: dict[str, Any] = {}
        try:
            if cfg.eval.every and self.step_number == 0:
                self.evaluate()
            while self.step_number < cfg.optimizer.max_steps and not self.interrupted:
                self.step_number += 1
                last = self.step()
                every = cfg.checkpoint.every
                if every and self.step_number % every == 0 and self.step_number < cfg.optimizer.max_steps:
                    self.save()
                if cfg.eval.every and (self.step_number % cfg.eval.every == 0 or self.step_number == cfg.optimizer.max_steps):
                    self.evaluate()
            self.save()
            if self.step_number >= cfg.optimizer.max_steps:
                self.save_final()
            if self.interrupted:
                log.warning("interrupted: saved step %d to %s; continue with --resume %s", self.step_number, self.out, self.out)
        finally:
            if _main_thread():
                signal.signal(signal.SIGINT, previous)
            self.close()
        return last

    def step(self) -> dict[str, Any]:
        """One GRPO step. Returns the step's metrics (also written to metrics.jsonl)."""
        cfg, timer = self.config, _Timer()
        n = cfg.rollout.n

        # 1-2. generate n completions per prompt, verify them; with dynamic sampling, drop groups
        #      whose rewards are all equal (no signal) and refill from new prompts, up to a cap.
        want = cfg.rollout.prompts_per_step // self.ctx.world_size
        parts, first_zero_var, stats, rounds = [], None, [], 0
        while True:
            examples = shard_groups(self.stream.take(cfg.rollout.prompts_per_step), self.ctx)
            with timer("generate"):
                rollouts = self.engine.generate(self._prompts(examples), n, self._sampling(rounds))
            with timer("verify"):
                batch = self._verify(examples, rollouts)
                stats.append(self.runner.last_stats)
            zero_var = grpo.zero_variance_groups(batch.rewards)
            first_zero_var = zero_var if first_zero_var is None else first_zero_var
            parts.append(batch.select(~zero_var) if cfg.algorithm.dynamic_sampling else batch)
            rounds += 1
            kept = sum(len(p.examples) for p in parts)
            if not cfg.algorithm.dynamic_sampling or kept >= want or rounds > cfg.algorithm.max_refill_rounds:
                break
        full = Batch.concat(parts, n)
        batch = full.select(torch.arange(len(full.examples)) < want) if len(full.examples) > want else full

        # 3. advantages: one per completion, from its group's rewards (rlvr.grpo.ADVANTAGES)
        advantages = grpo.group_advantages(batch.rewards, cfg.algorithm.advantage).reshape(-1) \
            if len(batch.examples) else torch.zeros(0)

        # 4. learn: μ optimizer steps on this batch with the clipped surrogate (rlvr.grpo.LOSSES)
        probe = self._param_probe()
        with timer("learn"):
            learned = self._learn(batch, advantages) if len(batch.examples) else {}
        param_delta = self._param_probe_delta(probe)

        # 5. sync: the vllm engine gets the new weights (LoRA merged); hf generates with the policy
        with timer("sync"):
            report = self.engine.sync_weights(self._policy_weights()) if self.engine_kind == "vllm" else {}

        # 6. log (and the caller evaluates/checkpoints)
        metrics = self._step_metrics(full, batch, first_zero_var, stats, rounds, learned, timer)
        metrics.update(param_delta=param_delta, sync_changed=report.get("changed"),
                       lr=self.scheduler.get_last_lr()[0])
        metrics = {k: v for k, v in metrics.items() if v is not None}
        reduced = reduce_metrics({k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)},
                                 self.ctx)
        metrics.update(reduced)
        self.monitor.log_step(self.step_number, metrics)
        self._write_samples(batch)
        return metrics

    # -------------------------------------------------------------------------- stages

    def _prompts(self, examples: Sequence[Example]) -> list[str]:
        from rlvr.templates import render_prompt

        return [render_prompt(e, self.engine.tokenizer, style=self.config.data.style,
                              instruction=self.config.data.instruction) for e in examples]

    def _sampling(self, round_: int, *, eval_: bool = False) -> Any:
        """Sampling for this step and refill round: seeded by (seed, rank, step, round) so that a
        resumed run generates exactly what the uninterrupted one did."""
        from rlvr.rollout import SamplingConfig
        from rlvr.templates import stop_sequences

        r, e = self.config.rollout, self.config.eval
        stop = stop_sequences(self.config.data.style)
        if eval_:
            return SamplingConfig(temperature=e.temperature, top_p=r.top_p, top_k=r.top_k,
                                  max_new_tokens=e.max_new_tokens or r.max_new_tokens, seed=self.config.seed, stop=stop)
        seed = rank_seed(self.config.seed, self.ctx) + 7919 * self.step_number + 104_729 * round_
        return SamplingConfig(temperature=r.temperature, top_p=r.top_p, top_k=r.top_k,
                              max_new_tokens=r.max_new_tokens, seed=seed, stop=stop)

    def _verify(self, examples: list[Example], rollouts: list[Rollout]) -> Batch:
        n = self.config.rollout.n
        expanded = [examples[r.prompt_index] for r in rollouts]
        scores = self.runner.score([r.text for r in rollouts], expanded)
        rewards = torch.tensor([s.reward for s in scores], dtype=torch.float32)
        if self.config.reward.truncated == "penalty":
            lengths = torch.tensor([len(r.token_ids) for r in rollouts])
            rewards = rewards + grpo.overlong_penalty(lengths, self.config.rollout.max_new_tokens,
                                                      self.config.reward.overlong_buffer)
        return Batch(list(examples), list(rollouts), scores, rewards.reshape(len(examples), n))

    def _learn(self, batch: Batch, advantages: torch.Tensor) -> dict[str, float]:
        cfg, alg = self.config, self.config.algorithm
        tensors = self._tensors(batch)
        mask = tensors["mask"]
        if cfg.reward.truncated == "mask":  # no gradient from cut-off completions (DAPO's overlong filter)
            mask = mask * (~tensors["truncated"]).float().unsqueeze(-1)
        use_tis = alg.tis == "on" or (alg.tis == "auto" and self.engine_kind == "vllm")
        normalizer = all_reduce_sum(grpo.loss_normalizer(alg.loss, mask, cfg.rollout.max_new_tokens), self.ctx)
        micro = _micro_batches(len(batch.rollouts), cfg.optimizer.micro_batch_size)
        old = self._old_logprobs(tensors, micro) if alg.mu > 1 else None
        self.model.train()
        totals: dict[str, float] = {}
        for _ in range(alg.mu):
            self.optimizer.zero_grad(set_to_none=True)
            for idx in micro:
                logits = self._completion_logits(self.model, tensors, idx)
                logprobs = grpo.token_logprobs(logits, tensors["completion"][idx], cfg.rollout.temperature)
                loss, m = grpo.policy_loss(
                    logprobs, advantages[idx], mask[idx],
                    old_logprobs=None if old is None else old[idx],
                    behavior_logprobs=tensors["behavior"][idx] if use_tis else None,
                    ref_logprobs=self._ref_logprobs(tensors, idx) if alg.beta else None,
                    loss_type=alg.loss, ratio_level=alg.ratio_level, clip_eps_low=alg.clip_eps_low,
                    clip_eps_high=alg.clip_eps_high, tis_cap=alg.tis_cap, beta=alg.beta,
                    kl_estimator=alg.kl_estimator, max_completion_length=cfg.rollout.max_new_tokens,
                    normalizer=normalizer, loss_scale=self.ctx.world_size)
                loss.backward()
                with torch.no_grad():
                    m["entropy"] = grpo.masked_mean(grpo.entropy_from_logits(logits, cfg.rollout.temperature),
                                                    mask[idx]).item()
                _accumulate(totals, m)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optimizer.max_grad_norm)
            totals["grad_norm"] = totals.get("grad_norm", 0.0) + float(grad_norm)
            self.optimizer.step()
            self.scheduler.step()
        return _averaged(totals, alg.mu)

    # -------------------------------------------------------------------------- learner tensors

    def _tensors(self, batch: Batch) -> dict[str, torch.Tensor]:
        """[pad.. prompt | completion ..pad]: prompts left-padded to P, completions right-padded to
        C, so completion logits are the same slice for every row."""
        pad = self.tokenizer.pad_token_id
        P = max(len(r.prompt_token_ids) for r in batch.rollouts)
        C = max(1, max(len(r.token_ids) for r in batch.rollouts))
        rows, attn, comp, mask, behavior = [], [], [], [], []
        for r in batch.rollouts:
            p, c = list(r.prompt_token_ids), list(r.token_ids)
            rows.append([pad] * (P - len(p)) + p + c + [pad] * (C - len(c)))
            attn.append([0] * (P - len(p)) + [1] * (len(p) + len(c)) + [0] * (C - len(c)))
            comp.append(c + [pad] * (C - len(c)))
            mask.append([1.0] * len(c) + [0.0] * (C - len(c)))
            behavior.append(list(r.logprobs[:len(c)]) + [0.0] * (C - len(c)))
        attention = torch.tensor(attn)
        return {"input_ids": torch.tensor(rows), "attention_mask": attention,
                "position_ids": (attention.cumsum(-1) - 1).clamp(min=0), "completion": torch.tensor(comp),
                "mask": torch.tensor(mask), "behavior": torch.tensor(behavior),
                "truncated": torch.tensor([r.truncated for r in batch.rollouts]), "width": torch.tensor(C)}

    def _completion_logits(self, model: Any, t: dict[str, torch.Tensor], idx: slice) -> torch.Tensor:
        C = int(t["width"])
        out = model(input_ids=t["input_ids"][idx].to(self.device), attention_mask=t["attention_mask"][idx].to(self.device),
                    position_ids=t["position_ids"][idx].to(self.device), logits_to_keep=C + 1, use_cache=False)
        return out.logits[:, :-1].cpu() if self.device.type == "cpu" else out.logits[:, :-1]

    @torch.no_grad()
    def _old_logprobs(self, t: dict[str, torch.Tensor], micro: list[slice]) -> torch.Tensor:
        self.model.eval()
        parts = [grpo.token_logprobs(self._completion_logits(self.model, t, idx), t["completion"][idx],
                                     self.config.rollout.temperature) for idx in micro]
        return torch.cat(parts)

    @torch.no_grad()
    def _ref_logprobs(self, t: dict[str, torch.Tensor], idx: slice) -> torch.Tensor:
        if self.reference is None:  # LoRA: the reference is the base model, adapters switched off
            with unwrap_model(self.model).disable_adapter():
                logits = self._completion_logits(self.model, t, idx)
        else:
            logits = self._completion_logits(self.reference, t, idx)
        return grpo.token_logprobs(logits, t["completion"][idx], self.config.rollout.temperature)

    # -------------------------------------------------------------------------- models

    def _load_policy(self, checkpoint: Path | None) -> tuple[Any, Any]:
        from rlvr.models import load_policy

        cfg = self.config.model
        lora_checkpoint = checkpoint is not None and (checkpoint / "adapter_config.json").exists()
        source = checkpoint if checkpoint is not None and not lora_checkpoint else self.model_path
        model, tokenizer = load_policy(source, dtype=cfg.dtype, device=self.device)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        if cfg.lora_r:
            from peft import LoraConfig, PeftModel, get_peft_model

            if lora_checkpoint:
                model = PeftModel.from_pretrained(model, checkpoint, is_trainable=True)
            else:
                targets = cfg.lora_target if cfg.lora_target == "all-linear" else cfg.lora_target.split(",")
                model = get_peft_model(model, LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha or 2 * cfg.lora_r,
                                                         lora_dropout=cfg.lora_dropout, target_modules=targets,
                                                         task_type="CAUSAL_LM"))
        return model, tokenizer

    def _load_reference(self) -> Any:
        """None when β = 0 (nothing loaded) or with LoRA (the base model is the reference)."""
        if not self.config.algorithm.beta or self.config.model.lora_r:
            return None
        from rlvr.models import load_policy

        reference, _ = load_policy(self.model_path, dtype=self.config.model.dtype, device=self.device)
        return reference.eval().requires_grad_(False)

    def _start_engine(self, policy: Any) -> Any:
        from rlvr.rollout import create_engine

        r = self.config.rollout
        max_len = r.max_model_len or 1024 + r.max_new_tokens
        dtype = self.config.model.dtype if self.engine_kind == "vllm" else None
        extra = {"gpu_memory_utilization": r.gpu_memory_utilization} if self.engine_kind == "vllm" and self.device.type == "cuda" else {}
        return create_engine(self.engine_kind, self.model_path, policy=policy, seed=rank_seed(self.config.seed, self.ctx),
                             max_model_len=max_len, dtype=dtype, **extra)

    def _policy_weights(self) -> dict[str, torch.Tensor]:
        if self.config.model.lora_r:
            return merged_state_dict(unwrap_model(self.model))
        return full_state_dict(self.model, self.ctx)

    def _param_probe(self) -> list[torch.Tensor]:
        """A small fixed sample of the trainable weights, to measure whether a step moved them."""
        return [p.detach().flatten()[:256].clone() for p in self.policy.parameters() if p.requires_grad][:64]

    def _param_probe_delta(self, probe: list[torch.Tensor]) -> float:
        now = self._param_probe()
        return float(sum((a - b).abs().max() for a, b in zip(now, probe))) if probe else 0.0

    # -------------------------------------------------------------------------- eval, state, output

    def evaluate(self) -> dict[str, Any] | None:
        """Held-out accuracy through rlvr.eval.run_eval: the same template, extraction and verifier as eval."""
        summary = None
        if self.ctx.is_main and self.eval_examples:
            from rlvr.eval import run_eval

            summary = run_eval(self.engine, self.eval_examples, self.verifier, sampling=self._sampling(0, eval_=True),
                               style=self.config.data.style, instruction=self.config.data.instruction,
                               output_dir=self.out / "eval" / f"step_{self.step_number:06d}", progress=False,
                               workers=self.config.reward.workers, timeout=self.config.reward.timeout,
                               max_failure_rate=None, name=f"step {self.step_number}")
            self.monitor.log_eval(self.step_number, summary)
        barrier(self.ctx)
        return summary

    def state(self) -> dict[str, Any]:
        return {"step": self.step_number, "data": self.stream.position(),
                "alarms": dataclasses.asdict(self.monitor.alarms)}

    def save(self) -> Path | None:
        path = None
        if self.ctx.is_main:
            path = save_checkpoint(self.out, model=unwrap_model(self.model), tokenizer=self.tokenizer,
                                   optimizer=self.optimizer, scheduler=self.scheduler, state=self.state(),
                                   keep_last=self.config.checkpoint.keep_last)
        barrier(self.ctx)
        return path

    def save_final(self) -> None:
        """DIR/final: the trained model as a plain HF folder (LoRA merged) for `rlvr eval --model`."""
        if not self.ctx.is_main:
            return
        model = unwrap_model(self.model)
        target = self.out / "final"
        if self.config.model.lora_r:
            model.get_base_model().save_pretrained(target, state_dict=merged_state_dict(model), safe_serialization=True)
        else:
            model.save_pretrained(target, safe_serialization=True)
        self.tokenizer.save_pretrained(target)

    def close(self) -> None:
        self.monitor.close()
        self.runner.close()
        self.engine.close()

    def _on_interrupt(self, signum: int, frame: Any) -> None:
        if self.interrupted:  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        self.interrupted = True
        log.warning("Ctrl-C: finishing step %d, then saving a checkpoint (Ctrl-C again to abort)", self.step_number)

    def _step_metrics(self, full: Batch, batch: Batch, zero_var: torch.Tensor, stats: list[Any], rounds: int,
                      learned: dict[str, float], timer: "_Timer") -> dict[str, Any]:
        """Everything metrics.jsonl reports about one step (before reduction over ranks)."""
        scores, rollouts = full.scores, full.rollouts
        raw = torch.tensor([s.reward for s in scores])
        lengths = torch.tensor([len(r.token_ids) for r in rollouts], dtype=torch.float32)
        counts = {s.value: sum(x.status is s for x in scores) for s in Status}
        total = max(1, len(scores))
        tokens = float(lengths.sum())
        metrics: dict[str, Any] = {
            "reward_mean": raw.mean().item(), "reward_std": raw.std().item() if len(raw) > 1 else 0.0,
            "accuracy": counts["correct"] / total, "no_answer_rate": counts["no_answer"] / total,
            "verifier_failure_rate": (counts["timeout"] + counts["error"]) / total,
            "verifier_timeouts": counts["timeout"], "verifier_errors": counts["error"],
            "completion_len_mean": lengths.mean().item(), "completion_len_max": lengths.max().item(),
            "truncation_rate": sum(r.truncated for r in rollouts) / total,
            "zero_variance_fraction": zero_var.float().mean().item(), "groups_trained": len(batch.examples),
            "generate_rounds": rounds, "completions": len(rollouts), "completion_tokens": tokens,
            "tokens_per_s": tokens / timer.seconds["generate"] if timer.seconds.get("generate") else 0.0,
            "epoch": self.stream.epoch,
            **{f"time_{k}": v for k, v in timer.seconds.items()}, "time_step": sum(timer.seconds.values()),
            **_component_metrics(scores), **learned,
        }
        return metrics

    def _write_samples(self, batch: Batch) -> None:
        every = self.config.logging.samples_every
        if not (self.ctx.is_main and every and (self.step_number % every == 0 or self.step_number == 1)):
            return
        n = self.config.rollout.n
        with open(self.out / "samples.jsonl", "a", encoding="utf-8") as handle:
            for i, (rollout, score) in enumerate(zip(batch.rollouts, batch.scores)):
                example = batch.examples[i // n]
                handle.write(json.dumps({"step": self.step_number, "id": example.id, "gold": example.answer,
                                         "completion": rollout.text, "reward": score.reward,
                                         "status": score.status.value, "finish_reason": rollout.finish_reason}) + "\n")


# ------------------------------------------------------------------------------ helpers


class _Timer:
    """Named wall-clock sections that add up over a step."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {"generate": 0.0, "verify": 0.0, "learn": 0.0, "sync": 0.0}

    def __call__(self, name: str) -> "_Section":
        return _Section(self, name)


class _Section:
    def __init__(self, timer: _Timer, name: str):
        self.timer, self.name = timer, name

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timer.seconds[self.name] = self.timer.seconds.get(self.name, 0.0) + time.perf_counter() - self.start


def _engine_kind(kind: str) -> str:
    from rlvr.rollout import vllm_available

    if kind == "auto":
        return "vllm" if vllm_available() else "hf"
    return kind


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _micro_batches(size: int, micro: int) -> list[slice]:
    return [slice(start, min(size, start + micro)) for start in range(0, size, micro)]


def _accumulate(totals: dict[str, float], metrics: dict[str, float]) -> None:
    """Token-weighted sums of per-micro-batch metrics (loss adds up: it is already normalized globally)."""
    tokens = metrics.get("tokens", 0.0)
    for key, value in metrics.items():
        if key in ("loss", "tokens"):
            totals[key] = totals.get(key, 0.0) + value
        elif key == "ratio_max":
            totals[key] = max(totals.get(key, -math.inf), value)
        else:
            totals[key] = totals.get(key, 0.0) + value * tokens
    totals["_weight"] = totals.get("_weight", 0.0) + tokens


def _averaged(totals: dict[str, float], mu: int) -> dict[str, float]:
    weight = totals.pop("_weight", 0.0) or 1.0
    out = {}
    for key, value in totals.items():
        if key in ("loss", "tokens", "grad_norm"):
            out[key] = value / mu
        elif key == "ratio_max":
            out[key] = value
        else:
            out[key] = value / weight
    return out


def _component_metrics(scores: Sequence[Score]) -> dict[str, float]:
    """reward mean/std of each part of a weighted verifier (math+0.1*boxed_format → two columns)."""
    parts: dict[str, list[float]] = {}
    for score in scores:
        for name, component in (score.details.get("components") or {}).items():
            parts.setdefault(name, []).append(float(component["reward"]))
    out = {}
    for name, values in parts.items():
        t = torch.tensor(values)
        out[f"reward_{name}_mean"] = t.mean().item()
        out[f"reward_{name}_std"] = t.std().item() if len(t) > 1 else 0.0
    return out


def train(config: TrainConfig, *, resume: str | Path | None = None) -> dict[str, Any]:
    """Build a Trainer and run it; returns the last step's metrics."""
    return Trainer(config, resume=resume).train()

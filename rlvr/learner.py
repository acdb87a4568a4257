"""The learner half of a GRPO step: the policy (full or LoRA), AdamW with warmup + cosine, and the
clipped policy-gradient update on one batch of scored completions."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from rlvr.objectives import grpo
from rlvr.checkpoint import merged_state_dict
from rlvr.config import TrainConfig
from rlvr.distributed import DistContext, all_reduce_sum, full_state_dict, unwrap_model, wrap_model
from rlvr.errors import InputError
from rlvr.types import Example, Rollout, Score

__all__ = ["Batch", "Learner", "lr_lambda"]


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

    def first(self, groups: int) -> "Batch":
        return self.select(torch.arange(len(self.examples)) < groups)

    @staticmethod
    def concat(parts: list["Batch"], n: int) -> "Batch":
        return Batch([e for p in parts for e in p.examples], [r for p in parts for r in p.rollouts],
                     [s for p in parts for s in p.scores],
                     torch.cat([p.rewards for p in parts]) if parts else torch.zeros(0, n))


def lr_lambda(step: int, *, warmup: int, total: int, schedule: str, min_ratio: float) -> float:
    """Linear warmup over `warmup` optimizer steps, then cosine down to `min_ratio` (or constant)."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class Learner:
    """The trainable policy (wrapped for data parallelism), the reference model when β > 0, the
    optimizer and its schedule. `learn(batch, advantages)` takes algorithm.mu optimizer steps."""

    def __init__(self, config: TrainConfig, ctx: DistContext, device: torch.device, model_path: Path,
                 checkpoint: Path | None = None):
        self.config, self.ctx, self.device, self.model_path = config, ctx, device, model_path
        self.policy, self.tokenizer = self._load_policy(checkpoint)
        if ctx.distributed and config.distributed.strategy == "fsdp2" and config.model.lora_r:
            raise InputError("distributed.strategy=fsdp2 with LoRA is not supported: use ddp (LoRA's trainable weights are small)")
        self.model = wrap_model(self.policy, ctx, config.distributed.strategy)
        # DDP/FSDP2 expect one forward per backward, and checkpointed layers keep no cache
        self.share_prompt = (config.optimizer.share_prompt and not ctx.distributed
                             and not config.model.gradient_checkpointing)
        # with β = 0 a row whose advantage is 0 adds nothing to the loss or its gradient, so it
        # need not run; under DDP every rank must run a backward, so there it always does
        self.skip_zero_advantage = (config.optimizer.skip_zero_advantage and not config.algorithm.beta
                                    and not ctx.distributed)
        self.reference = self._load_reference()
        opt, mu = config.optimizer, config.algorithm.mu
        trainable = [p for p in self.policy.parameters() if p.requires_grad]
        # fused: one kernel per step instead of a loop over tensors (a single process; under
        # DDP/FSDP2 torch's default implementation, which knows DTensors)
        self.optimizer = torch.optim.AdamW(trainable, lr=opt.lr, weight_decay=opt.weight_decay,
                                           betas=(opt.beta1, opt.beta2), fused=not ctx.distributed or None)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda s: lr_lambda(
            s, warmup=opt.warmup_steps * mu, total=opt.max_steps * mu, schedule=opt.schedule,
            min_ratio=opt.min_lr_ratio))

    @property
    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    # -------------------------------------------------------------------------- the update

    def learn(self, batch: Batch, advantages: torch.Tensor, *, use_tis: bool) -> dict[str, float]:
        """μ optimizer steps on `batch` with the clipped surrogate (rlvr.objectives.grpo.policy_loss); the
        behaviour logprobs (the sampler's) weight tokens by truncated importance when `use_tis`."""
        cfg, alg = self.config, self.config.algorithm
        tensors = self._tensors(batch)
        # the denominator belongs to the whole batch, whatever part of it is run below
        normalizer = all_reduce_sum(grpo.loss_normalizer(alg.loss, self._loss_mask(tensors),
                                                         cfg.rollout.max_new_tokens), self.ctx)
        skipped = 0
        if self.skip_zero_advantage:
            batch, advantages, skipped = _without_zero_advantage_groups(batch, advantages)
        if skipped:  # rebuilt: fewer rows, and padded only as wide as the rows left need
            tensors = self._tensors(batch) if batch.examples else {}
        mask = self._loss_mask(tensors) if tensors else None
        micro = self.micro_batches(batch) if tensors else []
        old = self._old_logprobs(tensors, micro) if alg.mu > 1 and micro else None
        self.model.train()
        totals: dict[str, float] = {}
        for _ in range(alg.mu):
            self.optimizer.zero_grad(set_to_none=True)
            if not micro:  # a zero gradient, and still an optimizer step: Adam's moments move on as they would
                for p in self.policy.parameters():
                    if p.requires_grad:
                        p.grad = torch.zeros_like(p)
                _accumulate(totals, {"loss": 0.0, "tokens": 0.0})
            for idx in micro:
                logits = self._completion_logits(self.model, tensors, idx)
                logprobs, entropy = grpo.token_logprobs_and_entropy(logits, tensors["completion"][idx],
                                                                    cfg.rollout.temperature)
                del logits  # autograd keeps what backward needs; the rest can go before it runs
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
                m["entropy"] = grpo.masked_mean(entropy, mask[idx]).item()
                _accumulate(totals, m)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.optimizer.max_grad_norm)
            grad_norm = getattr(grad_norm, "full_tensor", lambda: grad_norm)()  # FSDP2: a DTensor
            totals["grad_norm"] = totals.get("grad_norm", 0.0) + float(grad_norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)  # no gradients held through generation
        return {**_averaged(totals, alg.mu), "groups_skipped": float(skipped)}

    def _loss_mask(self, tensors: dict[str, torch.Tensor]) -> torch.Tensor:
        mask = tensors["mask"]
        if self.config.reward.truncated == "mask":  # no gradient from cut-off completions (DAPO's overlong filter)
            mask = mask * (~tensors["truncated"]).float().unsqueeze(-1)
        return mask

    def micro_batches(self, batch: Batch) -> list[slice]:
        """Row slices of at most optimizer.micro_batch_size completions; whole groups when their
        prompt is shared (at least one group)."""
        n, size = batch.rewards.shape[1], self.config.optimizer.micro_batch_size
        if self.share_prompt:
            size = max(n, size // n * n)
        rows = len(batch.rollouts)
        return [slice(start, min(rows, start + size)) for start in range(0, rows, size)]

    def weights(self) -> dict[str, torch.Tensor]:
        """What the rollout engine must generate with: the full weights (LoRA merged into them)."""
        if self.config.model.lora_r:
            return merged_state_dict(unwrap_model(self.model))
        return full_state_dict(self.model, self.ctx)

    def probe(self) -> list[torch.Tensor]:
        """A strided sample of every trainable tensor, to tell whether a step moved the weights."""
        sample = []
        for p in self.policy.parameters():
            if p.requires_grad:
                flat = getattr(p, "to_local", lambda: p)().detach().flatten()  # FSDP2: this rank's shard
                sample.append(flat[:: max(1, flat.numel() // 64)].clone())
        return sample

    def moved_since(self, probe: list[torch.Tensor]) -> float:
        """The largest change of any probed weight since `probe()` was taken."""
        now = self.probe()
        return max((float((a - b).abs().max()) for a, b in zip(now, probe) if a.numel()), default=0.0)

    def rounded_away(self, probe: list[torch.Tensor], dtype: torch.dtype) -> float:
        """Of the probed weights that moved since `probe()`, the fraction that are still equal
        once both values are cast to `dtype`: the part of the update an engine holding its
        weights in `dtype` never sees (bfloat16 keeps 8 bits: a step of 1e-5 on a weight of 0.05
        vanishes)."""
        changed = lost = 0
        for now, before in zip(self.probe(), probe):
            moved = now != before
            changed += int(moved.sum())
            lost += int((moved & (now.to(dtype) == before.to(dtype))).sum())
        return lost / changed if changed else 0.0

    # -------------------------------------------------------------------------- tensors and logprobs

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
        n = batch.rewards.shape[1]
        prompts = [list(r.prompt_token_ids) for r in batch.rollouts[::n]]  # one per group, left-padded
        prompt_attention = torch.tensor([[0] * (P - len(p)) + [1] * len(p) for p in prompts])
        return {"input_ids": torch.tensor(rows), "attention_mask": attention,
                "position_ids": (attention.cumsum(-1) - 1).clamp(min=0), "completion": torch.tensor(comp),
                "mask": torch.tensor(mask), "behavior": torch.tensor(behavior),
                "truncated": torch.tensor([r.truncated for r in batch.rollouts]), "width": torch.tensor(C),
                "group_size": torch.tensor(n), "prompt_ids": torch.tensor([[pad] * (P - len(p)) + p for p in prompts]),
                "prompt_attention": prompt_attention}

    def _completion_logits(self, model: Any, t: dict[str, torch.Tensor], idx: slice) -> torch.Tensor:
        """[rows, C, V]: at position t, the logits that predict completion token t."""
        if self.share_prompt:
            return self._shared_prompt_logits(model, t, idx)
        C = int(t["width"])
        out = model(input_ids=t["input_ids"][idx].to(self.device), attention_mask=t["attention_mask"][idx].to(self.device),
                    position_ids=t["position_ids"][idx].to(self.device), logits_to_keep=C + 1, use_cache=False)
        return out.logits[:, :-1]

    def _shared_prompt_logits(self, model: Any, t: dict[str, torch.Tensor], idx: slice) -> torch.Tensor:
        """The same logits as one forward over [prompt | completion] rows, with each group's prompt
        run once: its keys/values, still in the autograd graph, are repeated for the group's n
        completions, so the prompt's share of the gradient is summed over them exactly as in the
        dense pass. Saves (n - 1) prompt passes per group: most of the compute when prompts are
        long (system prompts, few-shot) next to the completions."""
        n, C, dev = int(t["group_size"]), int(t["width"]), self.device
        groups = slice(idx.start // n, idx.stop // n)
        prompt_attention = t["prompt_attention"][groups]
        prompt = model(input_ids=t["prompt_ids"][groups].to(dev), attention_mask=prompt_attention.to(dev),
                       position_ids=(prompt_attention.cumsum(-1) - 1).clamp(min=0).to(dev),
                       use_cache=True, logits_to_keep=1)
        first = prompt.logits[:, -1:].repeat_interleave(n, dim=0)  # predicts each completion's first token
        if C == 1:
            return first
        cache = prompt.past_key_values
        cache.batch_repeat_interleave(n)
        lengths = prompt_attention.sum(-1, keepdim=True).repeat_interleave(n, dim=0)
        completion_attention = t["attention_mask"][idx][:, -C:-1]
        rest = model(input_ids=t["completion"][idx][:, :-1].to(dev),  # the last token predicts nothing we score
                     attention_mask=torch.cat([prompt_attention.repeat_interleave(n, dim=0), completion_attention], -1).to(dev),
                     position_ids=(lengths + torch.arange(C - 1)).to(dev), past_key_values=cache, use_cache=True)
        return torch.cat([first, rest.logits], dim=1)

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
        """The base model (or a full-weights checkpoint), with LoRA adapters when model.lora_r > 0
        (fresh, or the checkpoint's peft adapter)."""
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


def _without_zero_advantage_groups(batch: Batch, advantages: torch.Tensor) -> tuple[Batch, torch.Tensor, int]:
    """The batch without its groups whose every advantage is 0 (equal rewards, under grpo,
    dr_grpo or rloo advantages), the advantages that remain, and how many groups went."""
    groups, n = batch.rewards.shape
    per_group = advantages.reshape(groups, n, -1)
    keep = per_group.ne(0).flatten(1).any(1)
    if keep.all():
        return batch, advantages, 0
    kept = per_group[keep].reshape(-1, *advantages.shape[1:])
    return batch.select(keep), kept, int(groups - keep.sum())


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

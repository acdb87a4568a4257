"""The trainable model every algorithm shares: loading (full or LoRA), float32 master weights computed in
model.dtype, AdamW with warmup + cosine, completion logprobs (packed rows, the shared-prompt pass), the
reference model, `step(loss_fn, ...)`, and the probes that tell whether an update reached the weights."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from rlvr.config import TrainConfig
from rlvr.distributed import DistContext, full_state_dict, unwrap_model, wrap_model
from rlvr.errors import InputError
from rlvr.learner.allocator import keep_freed_memory
from rlvr.learner.lean_layers import make_lean
from rlvr.learner.lm_head import CHUNK_POSITIONS, head_is_linear, head_removed
from rlvr.learner.lora import merged_state_dict
from rlvr.learner.packing import pack, within_tokens
from rlvr.learner.passes import completion_outputs, packed_attention, packs
from rlvr.learner.precision import autocast, grad_scaler, resolve_dtypes
from rlvr.learner.protocol import LossFn, Packed
from rlvr.objectives.logprobs import chunked_token_logprobs_and_entropy, token_logprobs, token_logprobs_and_entropy
from rlvr.types import Rollout

__all__ = ["Policy", "lr_lambda", "pack"]


def lr_lambda(step: int, *, warmup: int, total: int, schedule: str, min_ratio: float) -> float:
    """Linear warmup over `warmup` optimizer steps, then cosine down to `min_ratio` (or constant)."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    if schedule == "constant" or total <= warmup:
        return 1.0
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


class Policy:
    """The model being trained, its optimizer and schedule, and the reference model when an algorithm asks
    for one. `module` is the model itself (with LoRA: the peft model); `wrapped` is what forward and
    backward run through (DDP/FSDP2 under torchrun, else `module` itself). Master weights are
    model.master_dtype (float32 by default); forward and backward run in model.dtype through autocast."""

    def __init__(
        self,
        config: TrainConfig,
        ctx: DistContext,
        device: torch.device,
        model_path: Path,
        checkpoint: Path | None = None,
        *,
        reference: bool = False,
        reference_model: str | None = None,
        optimizer_steps: int | None = None,
        head: str = "lm",
    ):
        self.config, self.ctx, self.device, self.model_path = config, ctx, device, model_path
        self.head = head  # "lm": a causal LM (logprobs); "score": a scalar head (values), rlvr.models.load_reward_model
        self.master_dtype, self.compute_dtype = resolve_dtypes(
            config.model.dtype, config.model.master_dtype, device.type
        )
        self.module, self.tokenizer = self._load(checkpoint)
        if ctx.distributed and config.distributed.strategy == "fsdp2" and config.model.lora_r:
            raise InputError(
                "distributed.strategy=fsdp2 with LoRA is not supported: use ddp (LoRA's trainable weights are small)"
            )
        self.sharded = ctx.distributed and config.distributed.strategy == "fsdp2"
        # layers given a lean backward (rlvr.learner.lean_layers); not under FSDP2, which gathers weights in its
        # own forward
        self.lean_layers = make_lean(self.module) if config.model.lean_activations and not self.sharded else {}
        # process-wide and one-way: freed tensors' memory stays in malloc's heap for the next ones
        # (rlvr.learner.allocator)
        self.keeps_freed_memory = config.model.keep_freed_memory and device.type == "cpu" and keep_freed_memory()
        self.wrapped = wrap_model(self.module, ctx, config.distributed.strategy)
        self._heads: dict[int, bool] = {}  # id(model) -> whether its logits are hidden @ head.weight.T
        # DDP/FSDP2 expect one forward per backward, and checkpointed layers keep no cache
        self.share_prompt = (
            config.optimizer.share_prompt and not ctx.distributed and not config.model.gradient_checkpointing
        )
        # a micro-batch's rows end to end in one sequence, no padding (rlvr.learner.passes), where row attention or
        # a varlen kernel covers every forward; token positions fed the model, and real tokens among them, since the
        # last step (its padding_fraction)
        self.packing = config.optimizer.packing and packs(self.module, config.model.gradient_checkpointing)
        self._fed = [0, 0]
        self.reference = self._load_reference(reference_model) if reference else None
        opt = config.optimizer
        trainable = [p for p in self.module.parameters() if p.requires_grad]
        # fused: one kernel per step (a single process; under DDP/FSDP2 the default, which knows DTensors)
        self.optimizer = torch.optim.AdamW(
            trainable,
            lr=opt.lr,
            weight_decay=opt.weight_decay,
            betas=(opt.beta1, opt.beta2),
            fused=not ctx.distributed or None,
        )
        per_step = optimizer_steps or 1
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer,
            lambda s: lr_lambda(
                s,
                warmup=opt.warmup_steps * per_step,
                total=opt.max_steps * per_step,
                schedule=opt.schedule,
                min_ratio=opt.min_lr_ratio,
            ),
        )
        self.scaler = grad_scaler(device, self.compute_dtype)

    @property
    def lr(self) -> float:
        return self.scheduler.get_last_lr()[0]

    @property
    def pad_id(self) -> int:
        return self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.tokenizer.eos_token_id

    def pack(self, rollouts: Sequence[Rollout], group_size: int) -> Packed:
        return pack(rollouts, group_size, self.pad_id)

    def micro_batches(self, t: Packed, *, whole_groups: bool = False) -> list[slice]:
        """Row slices of `t`: whole groups when their prompt is shared or the objective asks (a preference pair),
        else rows; packed in one process, as many as hold at most optimizer.micro_batch_tokens tokens (one at
        least), else optimizer.micro_batch_size rows. (Under torchrun every rank must run as many backwards as the
        others: a row count keeps them equal.)"""
        opt, rows, group = self.config.optimizer, len(t["input_ids"]), int(t["group_size"])
        shared = self._shares(group)
        unit = group if whole_groups or shared else 1
        if self.packing and opt.micro_batch_tokens and not self.ctx.distributed:
            return within_tokens(t, unit, opt.micro_batch_tokens, shared=shared)
        size = max(unit, opt.micro_batch_size // unit * unit)
        return [slice(start, min(rows, start + size)) for start in range(0, rows, size)]

    # -------------------------------------------------------------------------- logprobs

    def logprobs(
        self, t: Packed, idx: slice, temperature: float = 1.0, *, entropy: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Per-token logprobs [rows, C] of the completions in rows `idx` (and their entropy), with grad."""
        return self._token_logprobs(self.wrapped, t, idx, temperature, entropy)

    @torch.no_grad()
    def reference_logprobs(self, t: Packed, idx: slice, temperature: float = 1.0) -> torch.Tensor:
        """Logprobs under the reference: the model loaded as one (the initial policy, or another model such as
        a distillation teacher), else with LoRA the base model (adapters off)."""
        if self.reference is not None:
            return self._token_logprobs(self.reference, t, idx, temperature, False)[0]
        if not self.config.model.lora_r:
            raise RuntimeError("reference logprobs asked for, but no reference model was loaded")
        with unwrap_model(self.wrapped).disable_adapter():
            return self._token_logprobs(self.wrapped, t, idx, temperature, False)[0]

    def _token_logprobs(
        self, model: Any, t: Packed, idx: slice, temperature: float, entropy: bool
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """From the final hidden states and the LM head's weight in chunks of positions when the head is
        a plain linear map (rlvr.learner.lm_head), else from the model's dense [rows, C, V] logits."""
        tokens = t["completion"][idx].to(self.device)
        if self._linear_head(model):
            with autocast(self.device, self.master_dtype, self.compute_dtype), head_removed(model) as weight:
                hidden = self._completion_logits(model, t, idx)  # the head is the identity: [rows, C, H]
            # the head runs on real completion tokens only; padding positions get 0 (every objective masks them)
            real = t["mask"][idx].to(self.device) > 0
            picked, entropies = chunked_token_logprobs_and_entropy(
                hidden[real], weight.to(hidden.dtype), tokens[real], temperature, chunk_size=CHUNK_POSITIONS
            )
            logprobs = picked.new_zeros(tokens.shape).masked_scatter(real, picked)
            return logprobs, picked.new_zeros(tokens.shape).masked_scatter(real, entropies) if entropy else None
        with autocast(self.device, self.master_dtype, self.compute_dtype):
            logits = self._completion_logits(model, t, idx)
        if entropy:
            return token_logprobs_and_entropy(logits.float(), tokens, temperature)
        return token_logprobs(logits.float(), tokens, temperature), None

    def _linear_head(self, model: Any) -> bool:
        """Checked once per model; an FSDP2-sharded head is only whole inside its own forward: dense there."""
        if id(model) not in self._heads:
            self._heads[id(model)] = not self.sharded and head_is_linear(model)
        return self._heads[id(model)]

    def values(self, t: Packed, idx: slice) -> torch.Tensor:
        """A scalar head's output [rows] (float32, with grad) for rows `idx` of `t`: input_ids and an
        attention_mask padded on the right (rlvr.verifiers.reward_model.reward_inputs)."""
        with autocast(self.device, self.master_dtype, self.compute_dtype):
            out = self.wrapped(
                input_ids=t["input_ids"][idx].to(self.device),
                attention_mask=t["attention_mask"][idx].to(self.device),
                use_cache=False,
            )
        return out.logits[:, 0].float()

    @torch.no_grad()
    def frozen_logprobs(self, t: Packed, micro: list[slice], temperature: float = 1.0) -> torch.Tensor:
        """The current policy's logprobs of every row, without grad (the "old" policy of several μ steps)."""
        self.wrapped.eval()
        return torch.cat([self.logprobs(t, idx, temperature)[0] for idx in micro])

    # -------------------------------------------------------------------------- the update

    def step(self, micro: list[slice], loss_fn: LossFn | None) -> dict[str, float]:
        """One optimizer step: backward of `loss_fn` over every micro-batch (each loss already carries its
        share of the full-batch normalizer), gradient clipping, AdamW, the schedule. No micro-batches
        still steps, with zero gradients, so Adam's moments move on as after a full pass."""
        self.wrapped.train()
        self.optimizer.zero_grad(set_to_none=True)
        totals: dict[str, float] = {}
        if not micro:
            for p in self.module.parameters():
                if p.requires_grad:
                    p.grad = torch.zeros_like(p)
            _accumulate(totals, {"loss": 0.0, "tokens": 0.0})
        for idx in micro:
            loss, metrics = loss_fn(idx)
            (self.scaler.scale(loss) if self.scaler else loss).backward()
            _accumulate(totals, metrics)
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.wrapped.parameters(), self.config.optimizer.max_grad_norm)
        grad_norm = getattr(grad_norm, "full_tensor", lambda: grad_norm)()  # FSDP2: a DTensor
        before = self._update_probe()
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)  # no gradients held through generation
        (fed, real), self._fed = self._fed, [0, 0]
        return {
            **_averaged(totals),
            "grad_norm": float(grad_norm),
            "update_rounded_away": self._rounded(before),
            "padding_fraction": 1.0 - real / fed if fed else 0.0,  # of the token positions this step's forwards ran
        }

    def _update_probe(self) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """(tensor, strided sample of it, where that sample's gradient is large enough for AdamW to move it by
        about lr: |g| above Adam's eps; smaller ones ask for a step far under lr) per trainable tensor."""
        eps = self.optimizer.param_groups[0].get("eps", 1e-8)
        probe = []
        for p in self.module.parameters():
            if p.requires_grad and p.grad is not None:
                flat, grad = _local(p).detach().flatten(), _local(p.grad).detach().flatten()
                stride = max(1, flat.numel() // 64)
                probe.append((p, flat[::stride].clone(), grad[::stride].abs() > eps))
        return probe

    @staticmethod
    def _rounded(probe: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]) -> float:
        """Of the probed weights with a real gradient, the fraction the optimizer step left unchanged:
        the update rounded away by the master weights' precision (float32 keeps ~all of it)."""
        pushed = lost = 0
        for p, before, moved in probe:
            flat = _local(p).detach().flatten()
            now = flat[:: max(1, flat.numel() // 64)]
            pushed += int(moved.sum())
            lost += int((moved & (now == before)).sum())
        return lost / pushed if pushed else 0.0

    # -------------------------------------------------------------------------- weights

    def weights(self) -> dict[str, torch.Tensor]:
        """What a rollout engine must generate with: the full weights (LoRA merged into them)."""
        if self.config.model.lora_r:
            return merged_state_dict(unwrap_model(self.wrapped))
        return full_state_dict(self.wrapped, self.ctx)

    def probe(self) -> list[torch.Tensor]:
        """A strided sample of every trainable tensor, to tell whether a step moved the weights."""
        sample = []
        for p in self.module.parameters():
            if p.requires_grad:
                flat = _local(p).detach().flatten()  # FSDP2: this rank's shard
                sample.append(flat[:: max(1, flat.numel() // 64)].clone())
        return sample

    def moved_since(self, probe: list[torch.Tensor]) -> float:
        """The largest change of any probed weight since `probe()` was taken."""
        return max(
            (float((a - b).abs().max()) for a, b in zip(self.probe(), probe, strict=True) if a.numel()), default=0.0
        )

    def engine_lag(self, start: list[torch.Tensor], dtype: torch.dtype) -> float:
        """Of the probed weights' change since `start` (a `probe()`), the share an engine re-cast to `dtype` from
        these master weights does not show: cumulative, so an update too small to survive the cast on its own
        stops counting once the changes add up past the cast's rounding step."""
        moved = missed = 0.0
        for now, before in zip(self.probe(), start, strict=True):
            change = now.float() - before.float()
            seen = now.to(dtype).float() - before.to(dtype).float()
            moved += float(change.abs().sum())
            missed += float((change - seen).abs().sum())
        return min(1.0, missed / moved) if moved else 0.0  # 1: the copy shows nothing of it but rounding noise

    # -------------------------------------------------------------------------- forward passes

    def _shares(self, group_size: int) -> bool:
        return self.share_prompt and group_size > 1

    def _completion_logits(self, model: Any, t: Packed, idx: slice) -> torch.Tensor:
        """[rows, C, V]: at position t, the logits that predict completion token t (rlvr.learner.passes), the
        rows packed end to end or padded, with or without the shared-prompt pass."""
        shared = self._shares(int(t["group_size"]))
        out, fed, real = completion_outputs(model, t, idx, self.device, shared=shared, packed=self.packing)
        self._fed[0] += fed
        self._fed[1] += real
        return out

    # -------------------------------------------------------------------------- loading

    def _load(self, checkpoint: Path | None) -> tuple[Any, Any]:
        """The base model (or a full-weights checkpoint) in the master dtype, with LoRA adapters when
        model.lora_r > 0. The adapters are float32 (peft's default). On CUDA the frozen base is held in the
        compute dtype (nothing updates it, and it halves the memory); on CPU it stays in the master dtype,
        so final/ holds the base exactly as loaded."""
        from rlvr.models import load_policy, load_reward_model

        cfg = self.config.model
        lora_checkpoint = checkpoint is not None and (checkpoint / "adapter_config.json").exists()
        source = checkpoint if checkpoint is not None and not lora_checkpoint else self.model_path
        low_base = cfg.lora_r and self.device.type == "cuda"
        if cfg.quantization == "4bit":  # QLoRA: the frozen base in nf4 (stages.place refused a missing backend)
            from rlvr.learner.quantize import load_four_bit

            model, tokenizer = load_four_bit(source, compute_dtype=self.compute_dtype, device=self.device)
        else:
            # a score head reads padded rows (values()); the LM head's attention is the one packed rows need
            load = load_reward_model if self.head == "score" else load_policy
            packed = packed_attention(self.device.type, self.config.optimizer.packing)
            attention = {} if self.head == "score" else {"attention": packed}
            dtype = self.compute_dtype if low_base else self.master_dtype
            model, tokenizer = load(source, dtype=dtype, device=self.device, **attention)
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable()
        if cfg.lora_r:
            from peft import LoraConfig, PeftModel, get_peft_model

            if lora_checkpoint:
                model = PeftModel.from_pretrained(model, checkpoint, is_trainable=True)
            else:
                targets = cfg.lora_target if cfg.lora_target == "all-linear" else cfg.lora_target.split(",")
                model = get_peft_model(
                    model,
                    LoraConfig(
                        r=cfg.lora_r,
                        lora_alpha=cfg.lora_alpha or 2 * cfg.lora_r,
                        lora_dropout=cfg.lora_dropout,
                        target_modules=targets,
                        task_type="SEQ_CLS" if self.head == "score" else "CAUSAL_LM",  # SEQ_CLS: the head trains
                    ),
                )
            for p in model.parameters():
                if p.requires_grad:
                    p.data = p.data.float()
        return model, tokenizer

    def _load_reference(self, other: str | None) -> Any:
        """`other` (a teacher), or else the initial policy, frozen, in the master dtype; None with LoRA and no
        `other` (the base model with its adapters off is the reference)."""
        if self.config.model.lora_r and other is None:
            return None
        from rlvr.models import load_policy

        reference, _ = load_policy(
            other or self.model_path,
            dtype=self.master_dtype,
            device=self.device,
            attention=packed_attention(self.device.type, self.config.optimizer.packing),
        )
        return reference.eval().requires_grad_(False)


def _local(tensor: torch.Tensor) -> torch.Tensor:
    return getattr(tensor, "to_local", lambda: tensor)()


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


def _averaged(totals: dict[str, float]) -> dict[str, float]:
    weight = totals.pop("_weight", 0.0) or 1.0
    return {k: v if k in ("loss", "tokens", "ratio_max") else v / weight for k, v in totals.items()}

"""rlvr's GRPO loss against TRL's GRPOTrainer loss on identical inputs (grpo, dr_grpo, dapo; clip-higher,
GSPO sequence ratio, k3 KL, truncated importance weights): loss values, gradients, time per call.

    python benchmarks/grpo_loss_vs_trl.py

TRL's loss lives in `GRPOTrainer._compute_loss(model, inputs)`, which first runs the model; here it
runs on a stand-in trainer object whose `_get_per_token_logps_and_entropies` returns the same
per-token logprobs rlvr gets, so the two compute from the very same tensors. TRL computes its vLLM
importance ratio while generating, outside `_compute_loss`: both sides get the weights of
`rlvr.grpo.truncated_importance_weights` (TRL's "token_truncate" mode), so what is compared is how
the loss uses them. `trl_policy_loss` is importable (tests/test_grpo.py, benchmarks/grpo_vs_trl.py).
"""

from __future__ import annotations

import collections
import itertools
import time
from types import SimpleNamespace

import torch

from rlvr.grpo import group_advantages, policy_loss, truncated_importance_weights

LOSS_TYPES = ("grpo", "dr_grpo", "dapo")
SETTINGS = {  # name -> policy_loss options shared by both sides
    "ppo clip 0.2": dict(clip_eps_low=0.2, clip_eps_high=0.2),
    "clip-higher 0.28 + k3 KL 0.04": dict(clip_eps_low=0.2, clip_eps_high=0.28, beta=0.04),
    "GSPO sequence ratio": dict(clip_eps_low=3e-4, clip_eps_high=4e-4, ratio_level="sequence"),
    "TIS cap 2 (vLLM mismatch)": dict(clip_eps_low=0.2, clip_eps_high=0.28, tis_cap=2.0, tis=True),
}


def make_inputs(groups: int = 4, per_group: int = 4, length: int = 24, seed: int = 0) -> dict:
    """A batch like a real step's: variable completion lengths, ratios spread around 1 so that both
    clip bounds are hit, rewards in {0, 1} with one zero-variance group."""
    gen = torch.Generator().manual_seed(seed)
    batch = groups * per_group
    lengths = torch.randint(3, length + 1, (batch,), generator=gen)
    mask = (torch.arange(length) < lengths.unsqueeze(1)).float()
    logprobs = -torch.rand(batch, length, generator=gen) * 3
    rewards = (torch.rand(groups, per_group, generator=gen) > 0.5).float()
    rewards[0] = 1.0
    return dict(
        logprobs=logprobs,
        old_logprobs=logprobs + 0.25 * torch.randn(batch, length, generator=gen),
        behavior_logprobs=logprobs + 0.4 * torch.randn(batch, length, generator=gen),
        ref_logprobs=logprobs + 0.3 * torch.randn(batch, length, generator=gen),
        advantages=group_advantages(rewards, "grpo").reshape(-1),
        mask=mask,
        max_completion_length=length,
    )


def rlvr_policy_loss(inputs: dict, loss_type: str, settings: dict) -> torch.Tensor:
    options = {k: v for k, v in settings.items() if k != "tis"}
    loss, _ = policy_loss(
        inputs["logprobs"], inputs["advantages"], inputs["mask"],
        old_logprobs=inputs["old_logprobs"],
        behavior_logprobs=inputs["behavior_logprobs"] if settings.get("tis") else None,
        ref_logprobs=inputs["ref_logprobs"] if settings.get("beta") else None,
        loss_type=loss_type, kl_estimator="k3", max_completion_length=inputs["max_completion_length"], **options,
    )
    return loss


def trl_policy_loss(inputs: dict, loss_type: str, settings: dict) -> torch.Tensor:
    """TRL's `GRPOTrainer._compute_loss` on `inputs` (the keys of `make_inputs`), one process, no
    gradient accumulation."""
    from trl import GRPOTrainer

    logprobs, mask = inputs["logprobs"], inputs["mask"]
    batch, length = mask.shape
    tis = bool(settings.get("tis"))
    accelerator = SimpleNamespace(
        num_processes=1,
        gather=lambda x: x,
        gather_for_metrics=lambda x: x,
        reduce=lambda x, reduction="sum": x,
    )
    trainer = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logprobs, torch.zeros_like(logprobs), None),
        get_off_policy_mask=GRPOTrainer.get_off_policy_mask,
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level=settings.get("ratio_level", "token"),
        beta=settings.get("beta", 0.0),
        loss_type=loss_type,
        epsilon_low=settings["clip_eps_low"],
        epsilon_high=settings["clip_eps_high"],
        args=SimpleNamespace(delta=None, use_bias_correction_kl=False, steps_per_generation=1),
        use_vllm=tis,
        vllm_importance_sampling_correction=tis,
        model=SimpleNamespace(training=True),
        current_gradient_accumulation_steps=1,
        max_completion_length=inputs["max_completion_length"],
        accelerator=accelerator,
        aux_loss_enabled=False,
        _entropy_bonus_enabled=False,
        _metrics={"train": collections.defaultdict(list), "eval": collections.defaultdict(list)},
    )
    trl_inputs = {
        "prompt_ids": torch.zeros(batch, 1, dtype=torch.long),
        "prompt_mask": torch.ones(batch, 1, dtype=torch.long),
        "completion_ids": torch.zeros(batch, length, dtype=torch.long),
        "completion_mask": mask.long(),
        "advantages": inputs["advantages"],
        "old_per_token_logps": inputs["old_logprobs"],
        "ref_per_token_logps": inputs["ref_logprobs"],
        "num_items_in_batch": mask.sum(),
    }
    if tis:
        trl_inputs["importance_sampling_ratio"] = truncated_importance_weights(
            inputs["old_logprobs"], inputs["behavior_logprobs"], settings["tis_cap"]
        )
    return GRPOTrainer._compute_loss(trainer, None, trl_inputs)


def _loss_grad_time(fn, inputs: dict, loss_type: str, settings: dict, repeats: int = 20):
    logprobs = inputs["logprobs"].clone().requires_grad_(True)
    run_inputs = {**inputs, "logprobs": logprobs}
    loss = fn(run_inputs, loss_type, settings)
    (grad,) = torch.autograd.grad(loss, logprobs)
    start = time.perf_counter()
    for _ in range(repeats):
        fn(run_inputs, loss_type, settings)
    return loss.item(), grad, (time.perf_counter() - start) / repeats


def compare(seed: int = 0) -> list[dict]:
    """One row per (loss type, setting): both losses, |difference|, max |gradient difference|, µs/call."""
    inputs = make_inputs(seed=seed)
    rows = []
    for loss_type, (name, settings) in itertools.product(LOSS_TYPES, SETTINGS.items()):
        ours, our_grad, our_s = _loss_grad_time(rlvr_policy_loss, inputs, loss_type, settings)
        theirs, their_grad, their_s = _loss_grad_time(trl_policy_loss, inputs, loss_type, settings)
        rows.append(dict(
            loss_type=loss_type, setting=name, rlvr=ours, trl=theirs, abs_diff=abs(ours - theirs),
            grad_max_abs_diff=(our_grad - their_grad).abs().max().item(),
            rlvr_us=our_s * 1e6, trl_us=their_s * 1e6,
        ))
    return rows


def main() -> None:
    import trl
    from rich.console import Console
    from rich.table import Table

    torch.set_num_threads(1)
    rows = compare()
    table = Table(title=f"GRPO loss on identical inputs: rlvr vs TRL {trl.__version__} (16 sequences × 24 tokens)")
    for column in ("loss_type", "setting", "rlvr loss", "TRL loss", "|diff|", "max |grad diff|",
                   "rlvr µs/call", "TRL µs/call", "ratio"):
        table.add_column(column, justify="left" if column in ("loss_type", "setting") else "right")
    for row in rows:
        table.add_row(
            row["loss_type"], row["setting"], f"{row['rlvr']:.8f}", f"{row['trl']:.8f}", f"{row['abs_diff']:.1e}",
            f"{row['grad_max_abs_diff']:.1e}", f"{row['rlvr_us']:.0f}", f"{row['trl_us']:.0f}",
            f"{row['rlvr_us'] / row['trl_us']:.2f}",
        )
    Console(width=160).print(table)


if __name__ == "__main__":
    main()

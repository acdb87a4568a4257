"""The GRPO family's losses against TRL's on identical inputs, float64: GRPO, Dr. GRPO, DAPO, CISPO, SAPO
(TRL's GRPOTrainer), GMPO (trl.experimental.gmpo.GMPOTrainer) and on-policy distillation (TRL's GKD
generalized JSD at β = 1, the reverse KL, against the expectation of rlvr's sampled-token loss).

One provider for tables of loss-vs-TRL cases: `compare()` returns one row per case, each a dict with
objective, setting, rlvr, trl (the two losses), abs_diff and grad_max_abs_diff (the largest
|difference| of the gradients with respect to the same input). tests/objectives/test_objectives_grpo.py
asserts every row is within 1e-6; benchmarks/grpo_vs_trl.py prints them. Import it by bare name with
benchmarks/ on sys.path (as the benchmarks import each other): `from trl_grpo_losses import compare`.

TRL's policy losses live in `GRPOTrainer._compute_loss(model, inputs)` (GMPOTrainer's override), which
first runs the model: here they run on a stand-in trainer whose `_get_per_token_logps_and_entropies`
returns the same per-token logprobs rlvr gets. TRL computes its vLLM importance ratio while generating,
outside `_compute_loss`: both sides get `rlvr.objectives.grpo.truncated_importance_weights` (TRL's
"token_truncate"). Parameters that TRL writes differently: CISPO's cap is TRL's `epsilon_high` = 1 +
rlvr's `clip_eps_high`; GMPO's bounds are log-space on both sides (rlvr.objectives.grpo_family).
"""

from __future__ import annotations

import collections
import itertools
from types import SimpleNamespace

import torch

from rlvr.objectives.grpo import group_advantages, policy_loss, truncated_importance_weights
from rlvr.objectives.grpo_family import distill_advantages

__all__ = ["CASES", "compare", "make_inputs", "rlvr_policy_loss", "trl_policy_loss"]

TOLERANCE = 1e-6
KL = dict(beta=0.04)
#: (objective = rlvr's grpo.loss, setting name, policy_loss options shared by both sides)
CASES: list[tuple[str, str, dict]] = [
    *(
        (loss_type, name, settings)
        for loss_type, (name, settings) in itertools.product(
            ("grpo", "dr_grpo", "dapo"),
            {
                "ppo clip 0.2": dict(clip_eps_low=0.2, clip_eps_high=0.2),
                "clip-higher 0.28 + k3 KL 0.04": dict(clip_eps_low=0.2, clip_eps_high=0.28, **KL),
                "GSPO sequence ratio": dict(clip_eps_low=3e-4, clip_eps_high=4e-4, ratio_level="sequence"),
                "TIS cap 2 (vLLM mismatch)": dict(clip_eps_low=0.2, clip_eps_high=0.28, tis_cap=2.0, tis=True),
            }.items(),
        )
    ),
    ("cispo", "cap 1.28 (clip_eps_high 0.28)", dict(clip_eps_low=0.2, clip_eps_high=0.28)),
    ("cispo", "cap 5 (ScaleRL) + k3 KL 0.04", dict(clip_eps_low=0.2, clip_eps_high=4.0, **KL)),
    ("cispo", "cap 1.28 + TIS cap 2", dict(clip_eps_low=0.2, clip_eps_high=0.28, tis_cap=2.0, tis=True)),
    ("sapo", "tau+ 1, tau- 1.05", dict(clip_eps_low=0.2, clip_eps_high=0.28)),
    ("sapo", "tau+ 0.5, tau- 2 + k3 KL 0.04", dict(sapo_tau_pos=0.5, sapo_tau_neg=2.0, **KL)),
    ("sapo", "GSPO sequence ratio + TIS cap 2", dict(ratio_level="sequence", tis_cap=2.0, tis=True)),
    ("gmpo", "log clip 0.4 (paper)", dict(clip_eps_low=0.4, clip_eps_high=0.4)),
    ("gmpo", "log clip 0.2/0.28 + k3 KL 0.04", dict(clip_eps_low=0.2, clip_eps_high=0.28, **KL)),
]


def make_inputs(groups: int = 4, per_group: int = 4, length: int = 24, seed: int = 0) -> dict:
    """A batch like a real step's, in float64: variable completion lengths, ratios spread around 1 so that
    both clip bounds are hit, rewards in {0, 1} with one zero-variance group."""
    gen = torch.Generator().manual_seed(seed)
    batch = groups * per_group
    lengths = torch.randint(3, length + 1, (batch,), generator=gen)
    mask = (torch.arange(length) < lengths.unsqueeze(1)).double()
    logprobs = -torch.rand(batch, length, generator=gen, dtype=torch.float64) * 3

    def near(scale: float) -> torch.Tensor:
        return logprobs + scale * torch.randn(batch, length, generator=gen, dtype=torch.float64)

    rewards = (torch.rand(groups, per_group, generator=gen) > 0.5).float()
    rewards[0] = 1.0
    return dict(
        logprobs=logprobs,
        old_logprobs=near(0.25),
        behavior_logprobs=near(0.4),
        ref_logprobs=near(0.3),
        advantages=group_advantages(rewards, "grpo").reshape(-1).double(),
        mask=mask,
        max_completion_length=length,
    )


def rlvr_policy_loss(inputs: dict, loss_type: str, settings: dict) -> torch.Tensor:
    options = {k: v for k, v in settings.items() if k != "tis"}
    loss, _ = policy_loss(
        inputs["logprobs"],
        inputs["advantages"],
        inputs["mask"],
        old_logprobs=inputs["old_logprobs"],
        behavior_logprobs=inputs["behavior_logprobs"] if settings.get("tis") else None,
        ref_logprobs=inputs["ref_logprobs"] if settings.get("beta") else None,
        loss_type=loss_type,
        kl_estimator="k3",
        max_completion_length=inputs["max_completion_length"],
        **options,
    )
    return loss


def trl_policy_loss(inputs: dict, loss_type: str, settings: dict) -> torch.Tensor:
    """TRL's `_compute_loss` on `inputs` (the keys of `make_inputs`), one process, no gradient accumulation:
    GRPOTrainer's for its loss types, GMPOTrainer's for gmpo."""
    from trl import GRPOTrainer
    from trl.experimental.gmpo import GMPOTrainer

    logprobs, mask = inputs["logprobs"], inputs["mask"]
    batch, length = mask.shape
    tis = bool(settings.get("tis"))
    eps_high = settings.get("clip_eps_high", 0.28)
    accelerator = SimpleNamespace(
        num_processes=1, gather=lambda x: x, gather_for_metrics=lambda x: x, reduce=lambda x, reduction="sum": x
    )
    trainer = SimpleNamespace(
        _get_per_token_logps_and_entropies=lambda *a, **k: (logprobs, torch.zeros_like(logprobs), None),
        get_off_policy_mask=GRPOTrainer.get_off_policy_mask,
        top_entropy_quantile=1.0,
        off_policy_mask_threshold=None,
        importance_sampling_level=settings.get("ratio_level", "token"),
        beta=settings.get("beta", 0.0),
        loss_type=loss_type,
        epsilon_low=settings.get("clip_eps_low", 0.2),
        epsilon_high=1 + eps_high if loss_type == "cispo" else eps_high,  # TRL's CISPO cap is ScaleRL's ε_max
        args=SimpleNamespace(
            delta=None,
            use_bias_correction_kl=False,
            steps_per_generation=1,
            sapo_temperature_pos=settings.get("sapo_tau_pos", 1.0),
            sapo_temperature_neg=settings.get("sapo_tau_neg", 1.05),
        ),
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
    compute = GMPOTrainer._compute_loss if loss_type == "gmpo" else GRPOTrainer._compute_loss
    return compute(trainer, None, trl_inputs)


def _loss_and_grad(fn, inputs: dict, loss_type: str, settings: dict) -> tuple[float, torch.Tensor]:
    logprobs = inputs["logprobs"].clone().requires_grad_(True)
    loss = fn({**inputs, "logprobs": logprobs}, loss_type, settings)
    (grad,) = torch.autograd.grad(loss, logprobs)
    return loss.item(), grad


def distill_vs_gkd(positions: int = 6, vocab: int = 11, seed: int = 0) -> dict:
    """rlvr's on-policy distillation loss in expectation over the student's next token (every token of the
    vocabulary as a one-token completion, weighted by its student probability, through `policy_loss`
    with `distill_advantages`) against TRL's GKD `generalized_jsd_loss(β=1)`, the exact reverse
    KL(student || teacher) per position, batch mean; gradients with respect to the student's logits."""
    from trl.experimental.gkd import GKDTrainer

    gen = torch.Generator().manual_seed(seed)
    student = (2 * torch.randn(positions, 1, vocab, generator=gen, dtype=torch.float64)).requires_grad_(True)
    teacher = 2 * torch.randn(positions, 1, vocab, generator=gen, dtype=torch.float64)

    def ours(logits: torch.Tensor) -> torch.Tensor:
        student_lp = logits.log_softmax(-1).reshape(-1, 1)  # row p*V + v: token v at position p
        teacher_lp = teacher.log_softmax(-1).reshape(-1, 1)
        weight = student_lp.detach().exp()  # the probability that the student samples that token
        advantages = weight * distill_advantages(student_lp, teacher_lp)
        loss, _ = policy_loss(
            student_lp, advantages, torch.ones_like(student_lp), loss_type="dapo", normalizer=float(positions)
        )
        return loss

    rows = {}
    for side, fn in (("rlvr", ours), ("trl", lambda x: GKDTrainer.generalized_jsd_loss(x, teacher, beta=1.0))):
        loss = fn(student)
        (grad,) = torch.autograd.grad(loss, student)
        rows[side] = (loss.item(), grad)
    return _row("distill", "GKD on-policy term (reverse KL, β=1)", rows["rlvr"], rows["trl"])


def _row(objective: str, setting: str, ours: tuple[float, torch.Tensor], theirs: tuple[float, torch.Tensor]) -> dict:
    return dict(
        objective=objective,
        setting=setting,
        rlvr=ours[0],
        trl=theirs[0],
        abs_diff=abs(ours[0] - theirs[0]),
        grad_max_abs_diff=(ours[1] - theirs[1]).abs().max().item(),
    )


def compare(seed: int = 0) -> list[dict]:
    """One row per case of `CASES`, then distillation against GKD: both losses, |difference|, max |grad diff|."""
    inputs = make_inputs(seed=seed)
    rows = [
        _row(
            objective,
            name,
            _loss_and_grad(rlvr_policy_loss, inputs, objective, settings),
            _loss_and_grad(trl_policy_loss, inputs, objective, settings),
        )
        for objective, name, settings in CASES
    ]
    return [*rows, distill_vs_gkd(seed=seed)]


if __name__ == "__main__":
    table = compare()
    for row in table:
        print(
            f"{row['objective']:8} {row['setting']:40} rlvr {row['rlvr']:+.10f}  TRL {row['trl']:+.10f}  "
            f"|diff| {row['abs_diff']:.1e}  max |grad diff| {row['grad_max_abs_diff']:.1e}"
        )
    equal = sum(r["abs_diff"] <= TOLERANCE and r["grad_max_abs_diff"] <= TOLERANCE for r in table)
    print(f"GRPO family vs TRL: {equal}/{len(table)} cases equal within {TOLERANCE:g}")

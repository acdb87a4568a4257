"""On-policy distillation: the student samples as GRPO does, a teacher causal LM (distill.teacher, the same
tokenizer) scores every sampled token, and the loss is the per-token reverse KL to the teacher's logprobs
(rlvr.objectives.grpo_family.distill_advantages through GRPO's policy loss; prime-rl, TRL's GKD with λ = 1)."""

from __future__ import annotations

import torch

from rlvr.algorithms.base import DataPlan
from rlvr.algorithms.grpo import GRPO
from rlvr.config import TrainConfig
from rlvr.errors import InputError
from rlvr.learner.protocol import Learner, Packed
from rlvr.objectives import grpo
from rlvr.objectives.grpo_family import distill_advantages

__all__ = ["Distill", "check_same_tokenizer"]


class Distill(GRPO):
    """GRPO's sampling and learn path with the teacher as the reference model: the advantages are per token,
    log π_teacher - log π_student of each sampled token, and the rewards are only logged."""

    name = "distill"

    @classmethod
    def make_plan(cls, config: TrainConfig) -> DataPlan:
        """GRPO's plan, with the teacher loaded as the reference; refused unless it shares the student's tokenizer."""
        if not config.distill.teacher:
            raise InputError("--algorithm distill needs a teacher: --set distill.teacher=PATH (a causal LM folder)")
        teacher = check_same_tokenizer(config.distill.teacher, config.model.name)
        return DataPlan(
            trains_on="prompts",
            samples_online=True,
            needs_reference=True,
            reference_model=teacher,
            optimizer_steps=config.grpo.mu,
        )

    def token_advantages(
        self, policy: Learner, tensors: Packed, mask: torch.Tensor, advantages: torch.Tensor
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """A_t = log π_teacher(y_t) - log π_student(y_t), at the sampling temperature; `teacher_kl` is the
        batch's mean reverse-KL estimate per token (what the loss is, on policy)."""
        student, teacher = self._frozen_and_reference(policy, tensors, advantages.shape[0])
        token_advantages = distill_advantages(student, teacher)
        return token_advantages, {"teacher_kl": -grpo.masked_mean(token_advantages, mask).item()}


def check_same_tokenizer(teacher: str, student: str) -> str:
    """The teacher's resolved folder, after checking that its tokenizer maps every token as the student's does
    (the teacher scores the student's token ids); one InputError naming distill.teacher otherwise."""
    from rlvr.models import load_tokenizer, resolve_model

    teacher_path = resolve_model(teacher)
    ours, theirs = load_tokenizer(resolve_model(student)).get_vocab(), load_tokenizer(teacher_path).get_vocab()
    if ours != theirs:
        differ = len(set(ours.items()) ^ set(theirs.items()))
        raise InputError(
            f"distill.teacher={teacher}: its tokenizer is not the student's ({student}): "
            f"{len(theirs)} vs {len(ours)} tokens, {differ} (token, id) pairs differ; "
            "the teacher must share the student's tokenizer"
        )
    return str(teacher_path)

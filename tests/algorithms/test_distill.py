"""On-policy distillation through the one loop on tiny random models: the teacher is loaded as the reference,
the loss is the per-token reverse KL to it, and a teacher with another tokenizer is refused (exit 2)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.algorithms import create_algorithm
from rlvr.algorithms.base import DataPlan
from rlvr.errors import InputError
from rlvr.train.monitor import read_metrics
from rlvr.train.trainer import train
from tests.algorithms.test_algorithms import _config as algorithm_config


def _config(model: Path, out: Path, teacher: Path | None, **extra):
    """test_algorithms' tiny run, as distillation: 2 samples a prompt, a higher constant lr, 4 steps."""
    settings = {"rollout.n": 2, "optimizer.lr": 3e-3, "optimizer.max_steps": 4, "optimizer.schedule": "constant"}
    chosen = {**settings, "distill.teacher": None if teacher is None else str(teacher), **extra}
    return algorithm_config(model, out, "distill", **chosen)


@pytest.fixture(scope="module")
def other_tokenizer_model(tiny_model, tmp_path_factory) -> Path:
    """The tiny model with one token added to its tokenizer: same weights, another vocabulary."""
    from rlvr.models import load_tokenizer

    folder = tmp_path_factory.mktemp("other-tokenizer")
    shutil.copytree(tiny_model, folder, dirs_exist_ok=True)
    tokenizer = load_tokenizer(folder)
    tokenizer.add_tokens(["<not-in-the-student>"])
    tokenizer.save_pretrained(folder)
    return folder


def test_the_teacher_is_the_reference_model(tiny_model, tmp_path):
    plan = create_algorithm("distill", _config(tiny_model, tmp_path, tiny_model)).plan
    assert plan == DataPlan("prompts", samples_online=True, needs_reference=True, reference_model=str(tiny_model))


@pytest.mark.parametrize(
    "teacher, message", [(None, "needs a teacher: --set distill.teacher="), ("other", "is not the student's")]
)
def test_no_teacher_or_another_tokenizer_is_refused(tiny_model, other_tokenizer_model, tmp_path, teacher, message):
    config = _config(tiny_model, tmp_path, other_tokenizer_model if teacher else None)
    with pytest.raises(InputError, match=message):
        create_algorithm("distill", config)


@pytest.mark.slow  # a fresh interpreter importing torch: ~30 s on the loaded 2-core machine
def test_cli_refuses_a_teacher_with_another_tokenizer_with_exit_2(tiny_model, other_tokenizer_model, tmp_path):
    argv = [sys.executable, "-m", "rlvr", "train", "--algorithm", "distill", "--dry-run"]
    argv += ["--set", f"model.name={tiny_model}", "--set", f"distill.teacher={other_tokenizer_model}"]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if "distill.teacher" in line]
    assert len(lines) == 1 and "tokenizer" in lines[0], done.stderr[-2000:]


@pytest.mark.slow
def test_distill_through_the_loop_scores_with_the_teacher(tiny_model, tmp_path):
    from safetensors.torch import load_file

    from rlvr.testing import make_tiny_model

    # the student itself as teacher: every advantage is 0, so is the KL
    train(_config(tiny_model, tmp_path / "self", tiny_model, **{"optimizer.max_steps": 1}))
    assert read_metrics(tmp_path / "self")[0]["teacher_kl"] == pytest.approx(0.0, abs=1e-5)
    # another random model as teacher: a positive KL every step, and the student's weights move
    teacher = make_tiny_model(tmp_path / "teacher", seed=1)
    train(_config(tiny_model, tmp_path / "run", teacher, **{"optimizer.max_steps": 2}))
    assert all(r["teacher_kl"] > 0.5 for r in read_metrics(tmp_path / "run"))
    start, final = load_file(tiny_model / "model.safetensors"), load_file(tmp_path / "run/final/model.safetensors")
    assert max((final[k] - start[k]).abs().max().item() for k in final) > 1e-4


def test_sampled_reverse_kl_steps_bring_a_student_to_its_teacher():
    """The objective alone, on one categorical: each step samples 256 tokens from the student, takes
    policy_loss with distill_advantages, SGD on the logits. The exact reverse KL falls by 10x."""
    import torch

    from rlvr.objectives.grpo import policy_loss
    from rlvr.objectives.grpo_family import distill_advantages

    gen = torch.Generator().manual_seed(0)
    teacher = torch.tensor([2.0, 0.0, -1.0, 1.0, -2.0]).log_softmax(-1)
    logits = torch.zeros(5, requires_grad=True)

    def reverse_kl() -> float:
        student = logits.detach().log_softmax(-1)
        return float((student.exp() * (student - teacher)).sum())

    before = reverse_kl()
    for _ in range(60):
        tokens = torch.multinomial(logits.detach().softmax(-1), 256, replacement=True, generator=gen)
        student = logits.log_softmax(-1)[tokens].unsqueeze(-1)
        loss, _ = policy_loss(student, distill_advantages(student, teacher[tokens].unsqueeze(-1)), torch.ones(256, 1))
        (grad,) = torch.autograd.grad(loss, logits)
        with torch.no_grad():
            logits -= 1.0 * grad
    assert before > 0.5 and reverse_kl() < before / 10, (before, reverse_kl())

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
from rlvr.config import load_config
from rlvr.errors import InputError
from rlvr.train.monitor import read_metrics
from rlvr.train.trainer import train


def _config(model: Path, out: Path, teacher: Path | None, **extra):
    return load_config(
        None,
        {
            "algorithm": "distill",
            "model.name": str(model),
            "device": "cpu",
            "model.dtype": "float32",
            "rollout.engine": "hf",
            "data.dataset": "arith",
            "data.size": 32,
            "reward.workers": 0,
            "reward.audit": False,
            "rollout.n": 2,
            "rollout.prompts_per_step": 2,
            "rollout.max_new_tokens": 8,
            "rollout.temperature": 1.0,
            "optimizer.lr": 3e-3,
            "optimizer.max_steps": 4,
            "optimizer.warmup_steps": 0,
            "optimizer.schedule": "constant",
            "logging.output": str(out),
            "logging.progress": False,
            "checkpoint.every": 0,
            "eval.before_after": False,
            **({"distill.teacher": str(teacher)} if teacher else {}),
            **extra,
        },
    )


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


def test_cli_refuses_a_teacher_with_another_tokenizer_with_exit_2(tiny_model, other_tokenizer_model, tmp_path):
    argv = [sys.executable, "-m", "rlvr", "train", "--algorithm", "distill", "--dry-run"]
    argv += ["--set", f"model.name={tiny_model}", "--set", f"distill.teacher={other_tokenizer_model}"]
    done = subprocess.run(argv, capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    lines = [line for line in done.stderr.splitlines() if "distill.teacher" in line]
    assert len(lines) == 1 and "tokenizer" in lines[0], done.stderr[-2000:]


@pytest.mark.slow
def test_distill_lowers_the_reverse_kl_to_the_teacher(tiny_model, tmp_path):
    from rlvr.testing import make_tiny_model

    # the student itself as teacher: every advantage is 0, so is the KL
    train(_config(tiny_model, tmp_path / "self", tiny_model, **{"optimizer.max_steps": 1}))
    assert read_metrics(tmp_path / "self")[0]["teacher_kl"] == pytest.approx(0.0, abs=1e-5)
    # another random model as teacher: the reverse KL falls as the student learns it
    teacher = make_tiny_model(tmp_path / "teacher", seed=1)
    train(_config(tiny_model, tmp_path / "run", teacher))
    kls = [r["teacher_kl"] for r in read_metrics(tmp_path / "run")]
    assert kls[0] > 0.5 and kls[-1] < 0.7 * kls[0], kls

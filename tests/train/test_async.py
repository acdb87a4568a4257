"""rollout.async=1: step t+1 is sampled on another thread, with step t-1's weights, while step t learns; weights are
never pushed under a generation; checkpoints neither skip nor replay a row; refused where it cannot be right."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from rlvr.algorithms.base import Step
from rlvr.config import config_to_dict, dump_yaml, load_config
from rlvr.errors import EngineUnavailable, InputError
from rlvr.rollout.hf import HFEngine
from rlvr.train.checkpoint import STATE_FILE
from rlvr.train.monitor import StepTimer, read_metrics
from rlvr.train.offpolicy import StepsAhead, check_async
from tests.train.test_trainer import _config as trainer_config


def _config(model: Path, out: Path, **extra):
    """test_trainer's tiny run, three steps, every checkpoint kept."""
    return trainer_config(model, out, **{"optimizer.max_steps": 3, "checkpoint.keep_last": 10, **extra})


class OwnCopyEngine(HFEngine):
    """The hf engine on its own copy of the weights, declaring its sampled-token logprobs as the sampler's (what
    vllm does), and recording on which thread and with how many weight pushes behind it each generation ran."""

    sampler_logprobs = True

    def __init__(self, model: Path) -> None:
        super().__init__(model, dtype="float32")
        self.pushes, self.generating, self.generations = 0, False, []

    def generate(self, prompts, n=1, sampling=None):
        self.generations.append((threading.current_thread() is threading.main_thread(), self.pushes))
        self.generating = True
        try:
            return super().generate(prompts, n, sampling)
        finally:
            self.generating = False

    def sync_weights(self, state_dict):
        assert not self.generating, "weights pushed under a generation in flight"
        self.pushes += 1
        return super().sync_weights(state_dict)


def _run(tiny_model: Path, out: Path, async_: int) -> tuple[OwnCopyEngine, list[dict]]:
    from rlvr.train.trainer import Trainer

    engine = OwnCopyEngine(tiny_model)
    Trainer(_config(tiny_model, out, **{"rollout.async": async_}), engine=engine).train()
    return engine, read_metrics(out)


def _step_ids(out: Path) -> dict[int, list[str]]:
    ids: dict[int, list[str]] = {}
    for line in (out / "samples.jsonl").read_text().splitlines():
        row = json.loads(line)
        ids.setdefault(row["step"], []).append(row["id"])
    return ids


def _positions(out: Path) -> list[dict]:
    return [json.loads((c / STATE_FILE).read_text())["data"] for c in sorted((out / "checkpoints").glob("step_*"))]


def test_one_step_ahead_samples_with_the_previous_weights_and_keeps_the_data_order(tiny_model, tmp_path):
    ahead_engine, ahead = _run(tiny_model, tmp_path / "async", 1)
    plain_engine, plain = _run(tiny_model, tmp_path / "sync", 0)
    # step 1 is made on the loop's thread; steps 2 and 3 on the other, each one push behind the loop
    assert ahead_engine.generations == [(True, 0), (False, 0), (False, 1)]
    assert plain_engine.generations == [(True, 0), (True, 1), (True, 2)]
    assert [r["staleness"] for r in ahead] == [0, 1, 1] and [r["staleness"] for r in plain] == [0, 0, 0]
    assert ahead_engine.pushes == plain_engine.pushes == 3
    assert any(r.get("tis_weight_mean") is not None for r in ahead)  # the staleness corrected from sampler logprobs
    # the same prompts in the same steps, and each checkpoint's data position from before the batch made ahead
    assert _step_ids(tmp_path / "async") == _step_ids(tmp_path / "sync")
    assert _positions(tmp_path / "async") == _positions(tmp_path / "sync") and len(_positions(tmp_path / "sync")) == 3
    # step 1 sampled the same weights with the same seed in both runs
    first = [json.loads(line) for line in (tmp_path / "async" / "samples.jsonl").read_text().splitlines()][:4]
    again = [json.loads(line) for line in (tmp_path / "sync" / "samples.jsonl").read_text().splitlines()][:4]
    assert [r["completion"] for r in first] == [r["completion"] for r in again]


@pytest.mark.slow
def test_vllm_samples_one_step_ahead_on_another_thread(tiny_model, vllm_engine, tmp_path):
    from safetensors.torch import load_file

    from rlvr.train.trainer import Trainer

    # vllm samples rarely stop early: reward every character, so groups differ and steps learn
    verifier = "overlong:max_tokens=200,buffer=190,unit=chars"
    config = _config(
        tiny_model, tmp_path / "run", **{"rollout.engine": "vllm", "rollout.async": 1, "reward.verifier": verifier}
    )
    try:
        Trainer(config, engine=vllm_engine).train()
        records = read_metrics(tmp_path / "run")
        assert [r["staleness"] for r in records] == [0, 1, 1]
        assert any(r.get("tis_weight_mean") is not None for r in records)
        assert all(r["completion_tokens"] > 0 for r in records)
    finally:  # the session engine must serve the tiny model again
        vllm_engine.sync_weights(load_file(tiny_model / "model.safetensors"))


# ------------------------------------------------------------------------------ the maker of steps ahead, alone


def _maker(calls: list, fail: BaseException | None = None) -> StepsAhead:
    position = {"index": 0}

    def make(step: int, timer: StepTimer) -> Step:
        calls.append((step, threading.current_thread() is threading.main_thread()))
        position["index"] += 2  # what taking the step's rows does to the stream
        timer.add("generate", 1.5)
        if fail is not None:
            raise fail
        return Step(batch=f"batch {step}")

    return StepsAhead(make, lambda: dict(position))


def test_steps_ahead_hands_over_the_batch_its_timer_and_the_weights_version():
    calls: list = []
    maker = _maker(calls)
    assert maker.take(2) is None and maker.wait() == 0.0 and maker.data_position() == {"index": 0}
    maker.start(2, version=1)
    maker.wait()
    assert maker.data_position() == {"index": 0}  # a checkpoint now must not skip the rows step 2 took
    with pytest.raises(RuntimeError, match="still being made ahead"):
        maker.start(3, version=1)
    made, timer, version = maker.take(2)
    assert (made.batch, timer.seconds["generate"], version) == ("batch 2", 1.5, 1)
    assert calls == [(2, False)] and maker.data_position() == {"index": 2}
    maker.start(3, version=2)
    with pytest.raises(RuntimeError, match="for step 3, not step 4"):
        maker.take(4)
    maker.close()


def test_an_error_while_making_ahead_is_raised_on_the_loop_thread():
    maker = _maker([], fail=EngineUnavailable("server lost"))
    maker.start(2, version=1)
    with pytest.raises(EngineUnavailable, match="server lost"):
        maker.wait()
    maker.close()


def _engine(kind: str, own_copy: bool, logprobs: bool) -> SimpleNamespace:
    return SimpleNamespace(kind=kind, holds_weights=own_copy, sampler_logprobs=logprobs, can_sleep=False)


@pytest.mark.parametrize(
    "engine, plan, distributed, match",
    [
        (_engine("hf", False, False), True, False, "--engine hf does not"),  # the live policy
        (_engine("hf", True, False), True, False, "sampler's logprobs"),  # its own copy, no sampler logprobs
        (_engine("vllm", True, True), False, False, "does not sample"),
        (_engine("vllm", True, True), True, True, "not under torchrun"),
    ],
)
def test_async_is_refused_where_it_cannot_be_right(engine, plan, distributed, match):
    with pytest.raises(InputError, match=match):
        check_async("sft" if not plan else "grpo", plan, engine, distributed=distributed)


def test_async_is_accepted_with_an_engine_of_its_own():
    assert check_async("grpo", True, _engine("vllm", True, True)) is None


# ------------------------------------------------------------------------------ the key, as users write it


def test_the_key_is_rollout_async_everywhere_a_user_reads_or_writes_it(tmp_path):
    config = load_config(None, {"rollout.async": 1})
    assert config.rollout.async_ == 1 and config_to_dict(config)["rollout"]["async"] == 1
    assert "async: 1" in dump_yaml(config) and "async_" not in dump_yaml(config)
    (tmp_path / "run.yaml").write_text(dump_yaml(config))
    assert load_config(tmp_path / "run.yaml").rollout.async_ == 1  # a saved config reads back
    with pytest.raises(InputError, match=r"rollout.async must be 0 .* or 1 .*, got 2"):
        load_config(None, {"rollout.async": 2})
    with pytest.raises(InputError, match=r"unknown config key 'rollout\.asynch'"):
        load_config(None, {"rollout.asynch": 1})

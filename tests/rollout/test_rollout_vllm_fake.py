"""The vllm engine's own logic without vLLM or a GPU: sleep/wake on a fake `vllm.LLM` (which calls,
in which order, what a sleeping engine refuses), the KV-cache budget by hand, and the capabilities
every engine declares."""

from __future__ import annotations

import sys
import types
from types import SimpleNamespace

import pytest
import torch

from rlvr.errors import InputError
from rlvr.rollout import CAPABILITIES, SamplingConfig, capabilities, create_engine
from rlvr.rollout.base import engine_class
from rlvr.rollout.vllm.sizing import kv_budget, kv_cache_gib


class FakeLLM:
    """Records every call; greedy logprobs move with each weight reload, like real new weights."""

    def __init__(self, calls: list, **kwargs):
        self.calls, self.reloads = calls, 0
        # what the engine reads back as the dtype it generates in, as vLLM's engine reports it
        self.llm_engine = SimpleNamespace(model_config=SimpleNamespace(dtype=kwargs.get("dtype") or "bfloat16"))
        calls.append(("LLM", tuple(sorted(k for k in kwargs if k == "enable_sleep_mode"))))

    def generate(self, requests, params, use_tqdm=False):
        self.calls.append(("generate",))
        lp = -0.1 * (1 + self.reloads)
        step = [{7: SimpleNamespace(logprob=lp)}, {8: SimpleNamespace(logprob=lp)}]
        return [
            SimpleNamespace(
                outputs=[
                    SimpleNamespace(token_ids=[7, 8], logprobs=step, text="ab", finish_reason="length")
                    for _ in range(p.n)
                ]
            )
            for p in params
        ]

    def sleep(self, level=1):
        self.calls.append(("sleep", level))

    def wake_up(self, tags=None):
        self.calls.append(("wake_up", tags))

    def collective_rpc(self, method, kwargs=None):
        self.reloads += method == "reload_weights"
        self.calls.append((getattr(method, "__name__", method),))

    def reset_prefix_cache(self):
        self.calls.append(("reset_prefix_cache",))


@pytest.fixture
def fake_vllm(monkeypatch):
    """`import vllm` gives a module whose LLM is FakeLLM; `cuda` decides what torch reports."""
    calls: list = []
    module = types.ModuleType("vllm")
    module.LLM = lambda **kwargs: FakeLLM(calls, **kwargs)
    module.SamplingParams = SimpleNamespace
    monkeypatch.setitem(sys.modules, "vllm", module)

    def start(cuda: bool, **kwargs):
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        from rlvr.rollout.vllm.engine import VLLMEngine

        return VLLMEngine(kwargs.pop("model"), seed=0, **kwargs), calls

    return start


def after_start(calls: list) -> list:
    return calls[2:]  # LLM(...) and the start-up probe's generate


GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=2)


def one_step(engine, moved: bool) -> None:
    """What the loop does once an engine has generated: sleep, learn, wake, sync, generate."""
    engine.sleep()
    must_sync = engine.wake()
    if engine.holds_weights and (moved or must_sync):
        engine.sync_weights({"model.norm.weight": torch.ones(2)})
    engine.generate(["hi"], 1, GREEDY)


# level, moved, the vLLM calls of one step in order
STEPS = [
    (
        1,
        True,
        [
            ("sleep", 1),
            ("wake_up", None),
            ("reset_prefix_cache",),
            ("reload_weights",),
            ("reset_prefix_cache",),
            ("generate",),
            ("generate",),
        ],
    ),
    (1, False, [("sleep", 1), ("wake_up", None), ("reset_prefix_cache",), ("generate",)]),
    # level 2: weights wake empty, are loaded, and only then does the KV cache wake, even if nothing moved
    (
        2,
        False,
        [
            ("sleep", 2),
            ("wake_up", ["weights"]),
            ("reload_weights",),
            ("wake_up", ["kv_cache"]),
            ("reset_prefix_cache",),
            ("generate",),
            ("generate",),
        ],
    ),
]


@pytest.mark.parametrize("level, moved, expected", STEPS, ids=lambda v: str(v) if not isinstance(v, list) else "")
def test_a_step_sleeps_after_generate_and_wakes_and_syncs_before_the_next(
    fake_vllm, tiny_model, level, moved, expected
):
    engine, calls = fake_vllm(True, model=tiny_model, sleep_level=level)
    assert engine.can_sleep and calls[0] == ("LLM", ("enable_sleep_mode",))
    engine.generate(["hi"], 1, GREEDY)
    del calls[:]
    one_step(engine, moved)
    assert calls == expected


@pytest.mark.parametrize("level", [1, 2])
def test_a_sleeping_engine_refuses_to_generate_or_sync(fake_vllm, tiny_model, level):
    engine, calls = fake_vllm(True, model=tiny_model, sleep_level=level)
    engine.sleep()
    engine.sleep()  # a second sleep is a no-op
    assert after_start(calls) == [("sleep", level)]
    with pytest.raises(RuntimeError, match="call wake"):
        engine.generate(["hi"], 1, GREEDY)
    with pytest.raises(RuntimeError, match="call wake"):
        engine.sync_weights({"model.norm.weight": torch.ones(2)})
    assert engine.wake() is (level == 2)
    assert engine.wake() is (level == 2)  # a second wake changes nothing
    if level == 2:
        with pytest.raises(RuntimeError, match="call sync_weights first"):
            engine.generate(["hi"], 1, GREEDY)
        report = engine.sync_weights({"model.norm.weight": torch.ones(2)})
        assert report["changed"] is True  # the probe saw the reloaded weights
    assert len(engine.generate(["hi"], 2, GREEDY)) == 2


def test_on_cpu_sleep_drops_the_packed_weights_and_the_sync_repacks_them(fake_vllm, tiny_model):
    engine, calls = fake_vllm(False, model=tiny_model)
    assert engine.can_sleep is True and engine.sleep_level == 2
    assert calls[0] == ("LLM", ())  # vLLM-CPU has no sleep mode to enable
    engine.sleep()
    with pytest.raises(RuntimeError, match="call wake"):
        engine.generate(["hi"], 1, GREEDY)
    assert engine.wake() is True  # the weights must be pushed again, even if nothing moved
    with pytest.raises(RuntimeError, match="call sync_weights"):
        engine.generate(["hi"], 1, GREEDY)
    assert engine.sync_weights({"model.norm.weight": torch.ones(2)})["changed"] is True
    engine.generate(["hi"], 1, GREEDY)
    # no vLLM sleep/wake_up calls on CPU: the packed kernels and the KV cache's memory go and come back
    assert after_start(calls) == [
        ("drop_packed_weights",),
        ("reload_weights",),
        ("restore_kv_cache",),
        ("reset_prefix_cache",),
        ("generate",),
        ("generate",),
    ]


def test_on_cpu_steps_that_never_sync_sleep_again_without_dropping_twice(fake_vllm, tiny_model):
    """SFT steps: sleep, learn, wake, with the push left to the next eval."""
    engine, calls = fake_vllm(False, model=tiny_model)
    for _ in range(3):
        engine.sleep()
        assert engine.wake() is True
    engine.sync_weights({"model.norm.weight": torch.ones(2)})
    engine.generate(["hi"], 1, GREEDY)
    assert after_start(calls) == [
        ("drop_packed_weights",),
        ("reload_weights",),
        ("restore_kv_cache",),
        ("reset_prefix_cache",),
        ("generate",),
        ("generate",),
    ]


def test_on_cpu_level_0_keeps_everything_and_sleep_is_a_no_op(fake_vllm, tiny_model):
    engine, calls = fake_vllm(False, model=tiny_model, sleep_level=0)
    assert engine.can_sleep is False
    engine.sleep()
    assert engine.wake() is False
    engine.generate(["hi"], 1, GREEDY)
    assert after_start(calls) == [("generate",)]


@pytest.mark.parametrize("cuda, level, message", [(False, 1, "needs CUDA"), (True, 3, "must be one of 0, 1, 2")])
def test_bad_sleep_levels_are_input_errors(fake_vllm, tiny_model, cuda, level, message):
    with pytest.raises(InputError, match=message):
        fake_vllm(cuda, model=tiny_model, sleep_level=level)


# engine kind, given the live policy, what it declares
DECLARED = [
    ("hf", True, {"holds_weights": False, "sampler_logprobs": False, "can_sleep": False}),
    ("hf", False, {"holds_weights": True, "sampler_logprobs": False, "can_sleep": False}),
]


@pytest.mark.parametrize("kind, live, expected", DECLARED)
def test_hf_declares_its_capabilities(tiny_model, kind, live, expected):
    from rlvr.models import load_policy

    policy = load_policy(tiny_model)[0] if live else None
    engine = create_engine(kind, tiny_model, policy=policy)
    assert capabilities(engine) == expected
    engine.sleep()
    assert engine.wake() is False


def test_class_level_declarations_say_what_the_loop_needs_before_a_start(fake_vllm, tiny_model):
    # before an engine exists the loop reads the class: vllm keeps its own copy and its sampler's logprobs
    assert {name: getattr(engine_class("hf"), name) for name in CAPABILITIES} == {
        "holds_weights": False,
        "sampler_logprobs": False,
        "can_sleep": False,
    }
    from rlvr.rollout.vllm.engine import VLLMEngine

    assert (VLLMEngine.holds_weights, VLLMEngine.sampler_logprobs) == (True, True)
    engine, _ = fake_vllm(True, model=tiny_model)
    assert capabilities(engine) == {"holds_weights": True, "sampler_logprobs": True, "can_sleep": True}


def test_an_engine_that_declares_nothing_is_a_type_error():
    with pytest.raises(TypeError, match="does not declare holds_weights, sampler_logprobs, can_sleep"):
        capabilities(object())


# the tiny model: 2 layers x 1 KV head x head_dim 32, keys and values: 128 numbers per token
# (sequences, max_len, dtype, GiB without the floor) = 1.25 headroom x 128 x bytes x sequences x whole 128-token blocks
KV = [
    (32, 100, "bfloat16", 1.25 * 128 * 2 * 32 * 128 / 2**30),
    (32, 128, "bfloat16", 1.25 * 128 * 2 * 32 * 128 / 2**30),
    (32, 129, "bfloat16", 1.25 * 128 * 2 * 32 * 256 / 2**30),  # one token more: a second block
    (8, 1088, "float32", 1.25 * 128 * 4 * 8 * 1152 / 2**30),
]


@pytest.mark.parametrize("sequences, max_len, dtype, expected", KV)
def test_kv_cache_gib_counts_whole_blocks_by_hand(tiny_model, sequences, max_len, dtype, expected):
    assert kv_cache_gib(tiny_model, sequences, max_len, dtype=dtype, minimum=0.0) == pytest.approx(expected)
    assert kv_cache_gib(tiny_model, sequences, max_len, dtype=dtype) == pytest.approx(max(0.25, expected))


def test_kv_budget_is_the_longest_prompt_plus_max_new_tokens(tiny_model):
    from rlvr.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_model)
    prompts = ["hi", "a much longer prompt than the other one, with many more tokens in it", "ok"]
    longest = len(tokenizer(prompts[1], add_special_tokens=False)["input_ids"])
    max_len, gib = kv_budget(tiny_model, prompts, 16, 50, dtype="bfloat16", minimum=0.0)
    assert max_len == longest + 50
    assert gib == pytest.approx(kv_cache_gib(tiny_model, 16, longest + 50, dtype="bfloat16", minimum=0.0))
    with pytest.raises(InputError, match="needs the prompts"):
        kv_budget(tiny_model, [], 16, 50)


def test_weight_syncs_are_checked_first_and_then_periodically(fake_vllm, tiny_model):
    """The first verify_syncs syncs and every verify_every-th after them run the probe (with a fresh
    before-probe, so a sync that stopped working later is caught); the rest skip it."""
    engine, _calls = fake_vllm(False, model=tiny_model, verify_syncs=2, verify_every=4)
    reports = [engine.sync_weights({}) for _ in range(8)]
    checked = [r["sync"] for r in reports if r["changed"] is not None]
    assert checked == [1, 2, 4, 8]
    assert all(r["changed"] is True and r["probe_s"] >= 0 for r in reports if r["changed"] is not None)
    engine.llm.collective_rpc = lambda method, kwargs=None: None  # syncs from now on reach nothing
    late = [engine.sync_weights({}) for _ in range(4)]
    assert [r["sync"] for r in late if r["changed"] is False] == [12], "the periodic check catches it"


def test_a_periodic_check_after_a_cpu_sleep_takes_its_before_probe_while_the_weights_are_there(fake_vllm, tiny_model):
    """A training step sleeps before it syncs: a periodic check's fresh "before" probe is taken at sleep()."""
    engine, _calls = fake_vllm(False, model=tiny_model, verify_syncs=1, verify_every=3)
    reports = []
    for _ in range(6):
        engine.generate(["hi"], 1, GREEDY)
        engine.sleep()
        assert engine.wake() is True
        reports.append(engine.sync_weights({}))
    assert [r["sync"] for r in reports if r["changed"] is not None] == [1, 3, 6]
    assert all(r["changed"] is True for r in reports if r["changed"] is not None)


def test_sft_steps_on_a_sleeping_cpu_engine_wake_it_every_step_and_push_once_for_the_eval(
    fake_vllm, tiny_model, tmp_path
):
    """SFT never samples: each step sleeps and wakes the engine, and only the eval pushes the weights."""
    from rlvr.train.trainer import Trainer
    from tests.train.test_trainer import _config

    engine, calls = fake_vllm(False, model=tiny_model)
    config = _config(
        tiny_model,
        tmp_path / "run",
        **{
            "algorithm": "sft",
            "optimizer.max_steps": 3,
            "checkpoint.every": 0,
            "eval.before_after": True,
            "eval.limit": 2,
            "eval.split": "train",
        },
    )
    Trainer(config, engine=engine).train()
    names = [c[0] for c in after_start(calls)]
    assert names.count("drop_packed_weights") == 1 and names.count("reload_weights") == 1
    drop, reload = names.index("drop_packed_weights"), names.index("reload_weights")
    assert drop < reload < len(names) - 1 and names[-1] == "generate"  # the last eval samples the pushed weights
    assert engine._state == "awake"


def test_the_cpu_sleep_empties_the_kv_cache_and_gives_it_back_zeroed():
    """The worker-side functions on a stand-in worker: two layers sharing one KV tensor, one with its own."""
    from types import SimpleNamespace

    from rlvr.rollout.vllm.sleep import drop_packed_weights, restore_kv_cache

    shared, own = torch.full((2, 4, 8), float("nan")), torch.full((3, 8), 7.0)
    linear = SimpleNamespace(cpu_linear=lambda *a: None)
    worker = SimpleNamespace(
        model_runner=SimpleNamespace(
            model=SimpleNamespace(modules=lambda: [linear]), kv_caches=[shared, shared[1], own]
        )
    )
    assert drop_packed_weights(worker) == 1
    assert shared.untyped_storage().nbytes() == 0 and own.untyped_storage().nbytes() == 0
    assert restore_kv_cache(worker) == (2 * 4 * 8 + 3 * 8) * 4  # the shared storage once
    assert (
        shared.shape == (2, 4, 8) and torch.equal(shared, torch.zeros(2, 4, 8)) and torch.equal(own, torch.zeros(3, 8))
    )
    assert restore_kv_cache(worker) == 0  # nothing left to restore

"""The hf engine on a tiny random model: shapes, finish reasons, logprobs against a recompute,
explicit top-k, seeding, stop strings, live-policy generation; its decode loop against
transformers `generate`, finished rows leaving the batch, and the growing KV cache."""

from __future__ import annotations

import pytest
import torch

from rlvr.errors import InputError
from rlvr.rollout import SamplingConfig, create_engine, normalize_state_dict, resolve_kind
from rlvr.rollout.hf import HFEngine, _GrowingLayer
from rlvr.testing import reference_logprobs

QUESTIONS = ["What is 2+2?", "Say hi", "Tell me a story about a cat.", "x"]


def chat(tokenizer, questions=QUESTIONS) -> list[str]:
    return [
        tokenizer.apply_chat_template([{"role": "user", "content": q}], tokenize=False, add_generation_prompt=True)
        for q in questions
    ]


@pytest.fixture(scope="module")
def engine(tiny_model) -> HFEngine:
    return create_engine("hf", tiny_model, seed=0)


def check_rollouts(engine, prompts, rollouts, n, sampling) -> None:
    """The contract every engine keeps (also used by the vllm tests)."""
    assert len(rollouts) == len(prompts) * n
    assert [r.prompt_index for r in rollouts] == [i for i in range(len(prompts)) for _ in range(n)]
    eos = engine.tokenizer.eos_token_id
    for r in rollouts:
        expected_prompt = engine.tokenizer(prompts[r.prompt_index], add_special_tokens=False)
        assert list(r.prompt_token_ids) == expected_prompt["input_ids"]
        assert len(r.logprobs) == len(r.token_ids) >= 1
        assert all(lp <= 0.0 for lp in r.logprobs)
        assert eos not in r.token_ids[:-1]
        if r.finish_reason == "stop":
            assert r.token_ids[-1] == eos
        else:
            assert r.finish_reason == "length"
            assert len(r.token_ids) == sampling.max_new_tokens
            assert r.token_ids[-1] != eos
        if not sampling.stop:
            assert r.text == engine.tokenizer.decode(r.token_ids, skip_special_tokens=True)


SAMPLINGS = [
    SamplingConfig(temperature=1.0, max_new_tokens=24, seed=1),
    SamplingConfig(temperature=0.7, max_new_tokens=24, seed=2),
    SamplingConfig(temperature=0.0, max_new_tokens=24),
    SamplingConfig(temperature=1.3, top_k=20, max_new_tokens=12, seed=3),
    SamplingConfig(temperature=0.8, top_p=0.9, max_new_tokens=12, seed=4),
]


@pytest.mark.parametrize("sampling", SAMPLINGS, ids=lambda s: f"T{s.temperature}-k{s.top_k}-p{s.top_p}")
def test_rollouts_keep_the_contract_and_logprobs_match_a_recompute(engine, sampling):
    prompts = chat(engine.tokenizer, QUESTIONS[:2])
    n = 1 if sampling.greedy else 3
    rollouts = engine.generate(prompts, n, sampling)
    check_rollouts(engine, prompts, rollouts, n, sampling)
    for r in rollouts:
        expected = reference_logprobs(engine.model, r, sampling)
        torch.testing.assert_close(torch.tensor(r.logprobs), expected, atol=1e-4, rtol=1e-4)


def test_both_finish_reasons_occur(engine):
    sampling = SamplingConfig(temperature=0.7, max_new_tokens=24, seed=0)
    rollouts = engine.generate(chat(engine.tokenizer), 8, sampling)
    assert {r.finish_reason for r in rollouts} == {"stop", "length"}


def test_top_k_zero_means_off_so_hf_default_50_does_not_leak(engine):
    # the random model is nearly uniform over 49k tokens: unfiltered samples are rarely top-50
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=8, seed=5)
    (rollout,) = engine.generate(chat(engine.tokenizer, ["Say hi"]), 1, sampling)
    ids = torch.tensor([list(rollout.prompt_token_ids) + list(rollout.token_ids)])
    with torch.no_grad():
        logits = engine.model(ids).logits[0, len(rollout.prompt_token_ids) - 1 : -1]
    ranks = [(row > row[t]).sum().item() for row, t in zip(logits, rollout.token_ids, strict=True)]
    assert max(ranks) >= 50
    # and top_k=5 does filter
    top5 = SamplingConfig(temperature=1.0, top_k=5, max_new_tokens=8, seed=5)
    (rollout,) = engine.generate(chat(engine.tokenizer, ["Say hi"]), 1, top5)
    ids = torch.tensor([list(rollout.prompt_token_ids) + list(rollout.token_ids)])
    with torch.no_grad():
        logits = engine.model(ids).logits[0, len(rollout.prompt_token_ids) - 1 : -1]
    assert all((row > row[t]).sum().item() < 5 for row, t in zip(logits, rollout.token_ids, strict=True))


def test_seeds_reproduce_and_differ(engine, tiny_model):
    prompts = chat(engine.tokenizer)
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=12, seed=7)
    first = engine.generate(prompts, 2, sampling)
    again = engine.generate(prompts, 2, sampling)
    other = engine.generate(prompts, 2, SamplingConfig(temperature=1.0, max_new_tokens=12, seed=8))
    assert [r.token_ids for r in first] == [r.token_ids for r in again]
    assert [r.token_ids for r in first] != [r.token_ids for r in other]
    # samples of one prompt differ from each other
    assert first[0].token_ids != first[1].token_ids
    # unseeded calls follow the engine's seed: a second engine with the same seed repeats them
    twin = create_engine("hf", tiny_model, seed=0)
    fresh = create_engine("hf", tiny_model, seed=0)
    unseeded = SamplingConfig(temperature=1.0, max_new_tokens=12)
    a = [twin.generate(prompts, 1, unseeded) for _ in range(2)]
    b = [fresh.generate(prompts, 1, unseeded) for _ in range(2)]
    assert [[r.token_ids for r in x] for x in a] == [[r.token_ids for r in x] for x in b]
    assert [r.token_ids for r in a[0]] != [r.token_ids for r in a[1]]


def check_stop_strings(engine) -> None:
    """A stop string taken from an unstopped sample: the text ends before it, the tokens after the
    one completing it are gone, the finish reason is stop, and logprobs match the tokens kept."""
    prompts = chat(engine.tokenizer, ["Tell me a story about a cat."])
    free = SamplingConfig(temperature=0.7, max_new_tokens=24, seed=11)
    runs = engine.generate(prompts, 4, free)
    index, full = next((i, r) for i, r in enumerate(runs) if r.finish_reason == "length")
    word = engine.tokenizer.decode(full.token_ids[5:6])
    assert word.strip() and word in full.text
    stopped_config = SamplingConfig(temperature=0.7, max_new_tokens=24, seed=11, stop=(word,))
    stopped = engine.generate(prompts, 4, stopped_config)[index]
    assert stopped.finish_reason == "stop"
    assert stopped.text == full.text[: full.text.index(word)]
    assert stopped.token_ids == full.token_ids[: len(stopped.token_ids)]
    assert len(stopped.token_ids) <= 6 and len(stopped.logprobs) == len(stopped.token_ids)


def test_stop_strings_cut_the_text_and_report_stop(engine):
    check_stop_strings(engine)


def test_live_policy_is_what_generates(tiny_model):
    from rlvr.models import load_policy

    policy, _ = load_policy(tiny_model)
    engine = create_engine("hf", tiny_model, policy=policy)
    assert engine.model is policy
    prompts = chat(engine.tokenizer, ["Tell me a story about a cat."])
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=8)
    before = engine.generate(prompts, 1, greedy)[0]
    with torch.no_grad():
        for p in policy.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    after = engine.generate(prompts, 1, greedy)[0]
    assert before.logprobs != after.logprobs
    assert engine.sync_weights(policy.state_dict())["changed"] is None  # nothing to push
    policy.train()
    engine.generate(prompts, 1, greedy)
    assert policy.training, "generate must restore the policy's training mode"


def test_an_engine_with_its_own_copy_loads_synced_weights(tiny_model, caplog):
    engine = create_engine("hf", tiny_model)
    weights = {k: v.clone() for k, v in engine.model.state_dict().items()}
    assert engine.sync_weights(weights)["changed"] is False
    assert "CHANGED NOTHING" in caplog.text
    moved = {f"module.{k}": v + 0.01 for k, v in weights.items()}  # DDP prefix is stripped
    assert engine.sync_weights(moved)["changed"] is True
    key = "model.embed_tokens.weight"
    torch.testing.assert_close(engine.model.state_dict()[key], weights[key] + 0.01)


def test_state_dict_names_are_normalized_and_unmerged_lora_refused():
    t = torch.zeros(1)
    pairs = normalize_state_dict(
        {
            "base_model.model.model.layers.0.self_attn.q_proj.base_layer.weight": t,
            "module._orig_mod.lm_head.weight": t,
            "model.norm.weight": t,
        }
    )
    assert [name for name, _ in pairs] == [
        "model.layers.0.self_attn.q_proj.weight",
        "lm_head.weight",
        "model.norm.weight",
    ]
    with pytest.raises(ValueError, match="unmerged LoRA"):
        normalize_state_dict({"model.layers.0.q_proj.lora_A.default.weight": t})


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: SamplingConfig(temperature=-1), "temperature"),
        (lambda: SamplingConfig(top_p=0), "top_p"),
        (lambda: SamplingConfig(top_k=-1), "top_k"),
        (lambda: SamplingConfig(max_new_tokens=0), "max_new_tokens"),
        (lambda: resolve_kind("tgi"), "unknown engine 'tgi'"),
    ],
)
def test_bad_settings_are_input_errors(make, message):
    with pytest.raises(InputError, match=message):
        make()


def test_bad_generate_calls_are_input_errors(engine):
    with pytest.raises(InputError, match="samples per prompt"):
        engine.generate(["hi"], 0)
    with pytest.raises(InputError, match="max_model_len"):
        engine.generate(["hi " * 3000], 1)


@pytest.mark.parametrize("importable, expected", [(True, "vllm"), (False, "hf")])
def test_auto_picks_vllm_exactly_when_importable(monkeypatch, importable, expected):
    import rlvr.rollout.base as base

    monkeypatch.setattr(base, "vllm_available", lambda: importable)
    assert resolve_kind("auto") == expected
    assert resolve_kind("hf") == "hf"
    if importable:
        assert resolve_kind("vllm") == "vllm"
    else:
        with pytest.raises(InputError, match="engine 'vllm' needs vllm"):
            resolve_kind("vllm")


def test_auto_is_vllm_in_this_environment():
    from conftest import need
    from rlvr.rollout import vllm_available

    need("vllm", vllm_available(), "auto would fall back to hf")
    assert resolve_kind("auto") == "vllm"


def test_greedy_is_what_transformers_generate_gives(engine):
    """The decode loop computes what `model.generate` computes: alone, bit for bit (tokens and
    logprobs); batched (rows leave the batch as they end), the same tokens."""
    from transformers import GenerationConfig

    prompts = chat(engine.tokenizer, [*QUESTIONS, "Why is the sky blue?", "Count to ten."])
    config = GenerationConfig(
        do_sample=False,
        max_new_tokens=90,
        eos_token_id=sorted(engine.eos_ids),
        pad_token_id=engine.tokenizer.pad_token_id,
        top_k=None,
        top_p=None,
        temperature=None,
    )
    greedy = SamplingConfig(temperature=0.0, max_new_tokens=90)  # past the KV buffer's first size (prompt + 64)
    expected = []
    for prompt in prompts:
        ids = torch.tensor([engine.tokenizer(prompt, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            out = engine.model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                generation_config=config,
                output_scores=True,
                return_dict_in_generate=True,
            )
        tokens = out.sequences[0, ids.shape[1] :].tolist()
        logprobs = [torch.log_softmax(s[0].float(), -1)[t].item() for s, t in zip(out.scores, tokens, strict=True)]
        end = next((k + 1 for k, t in enumerate(tokens) if t in engine.eos_ids), len(tokens))
        expected.append((tokens[:end], logprobs[:end]))
        (alone,) = engine.generate([prompt], 1, greedy)
        assert (list(alone.token_ids), list(alone.logprobs)) == expected[-1]
    batched = engine.generate(prompts, 1, greedy)
    assert [list(r.token_ids) for r in batched] == [tokens for tokens, _ in expected]
    lengths = {len(r.token_ids) for r in batched}
    assert len(lengths) > 1 and max(lengths) == 90, "rows of different lengths, some past the first KV buffer"


def test_finished_rows_leave_the_batch(engine, monkeypatch):
    sizes = []
    forward = engine.model.forward

    def counting(*args, **kwargs):
        sizes.append(kwargs["input_ids"].shape[0])
        return forward(*args, **kwargs)

    monkeypatch.setattr(engine.model, "forward", counting)
    rollouts = engine.generate(chat(engine.tokenizer), 4, SamplingConfig(temperature=0.7, max_new_tokens=24, seed=0))
    lengths = [len(r.token_ids) for r in rollouts]
    assert min(lengths) < max(lengths) == 24
    # the prefill holds every row; decode call k only the rows that have more than k tokens
    assert sizes == [len(rollouts)] + [sum(n > k for n in lengths) for k in range(1, max(lengths))]


def test_a_sample_does_not_depend_on_the_rows_beside_it(tiny_model):
    prompts = chat(create_engine("hf", tiny_model).tokenizer)
    sampling = SamplingConfig(temperature=1.0, max_new_tokens=12, seed=9)
    together = create_engine("hf", tiny_model, batch_size=64).generate(prompts, 2, sampling)
    one_by_one = create_engine("hf", tiny_model, batch_size=1).generate(prompts, 2, sampling)
    assert [r.token_ids for r in together] == [r.token_ids for r in one_by_one]


def test_the_growing_kv_cache_equals_concatenation_and_reorders_rows():
    generator = torch.Generator().manual_seed(0)
    layer, keys, values = _GrowingLayer(), [], []
    for width in [5, 1, 1, 70, 1, 200, 1]:  # grows past the first buffer twice
        k, v = (torch.randn(3, 2, width, 4, generator=generator) for _ in range(2))
        keys.append(k)
        values.append(v)
        got_k, got_v = layer.update(k, v)
        torch.testing.assert_close(got_k, torch.cat(keys, dim=-2), rtol=0, atol=0)
        torch.testing.assert_close(got_v, torch.cat(values, dim=-2), rtol=0, atol=0)
    assert layer.get_seq_length() == 279
    layer.reorder_cache(torch.tensor([2, 0]))
    torch.testing.assert_close(layer.keys, torch.cat(keys, dim=-2)[[2, 0]], rtol=0, atol=0)
    k, v = (torch.randn(2, 2, 1, 4, generator=generator) for _ in range(2))
    got_k, _ = layer.update(k, v)
    torch.testing.assert_close(got_k, torch.cat([torch.cat(keys, dim=-2)[[2, 0]], k], dim=-2), rtol=0, atol=0)

"""Every algorithm through the one loop on a tiny random model (hf engine): SFT on files and worked
solutions, RFT keeping only correct completions, DPO and its preference family (KTO, ORPO, SimPO, CPO)
learning from verdicts online and from a preference file, and the before/after summary each writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from rlvr.algorithms import ALGORITHMS, create_algorithm
from rlvr.algorithms.base import DataPlan
from rlvr.algorithms.dpo import pair_completions
from rlvr.config import load_config
from rlvr.data.supervised import boxed_response, sft_examples
from rlvr.errors import InputError
from rlvr.train.alarms import WINDOW, AlarmState, check_alarms
from rlvr.train.monitor import read_metrics
from rlvr.train.trainer import train
from rlvr.types import Example, Rollout, Score, Status


def _config(model: Path, out: Path, algorithm: str, **extra):
    return load_config(
        None,
        {
            "algorithm": algorithm,
            "model.name": str(model),
            "device": "cpu",
            "model.dtype": "float32",
            "rollout.engine": "hf",
            "data.dataset": "arith",
            "data.size": 32,
            "reward.workers": 0,
            "reward.audit": False,
            "rollout.n": 4,
            "rollout.prompts_per_step": 2,
            "rollout.max_new_tokens": 8,
            "rollout.temperature": 1.0,
            "optimizer.lr": 1e-3,
            "optimizer.max_steps": 2,
            "optimizer.warmup_steps": 0,
            "logging.output": str(out),
            "logging.progress": False,
            "checkpoint.every": 0,
            "eval.before_after": False,
            "distill.teacher": str(model),  # read by --algorithm distill only
            **extra,
        },
    )


def _moved(model: Path, out: Path) -> float:
    start, final = load_file(model / "model.safetensors"), load_file(out / "final" / "model.safetensors")
    return max((final[k] - start[k]).abs().max().item() for k in final)


def _rollout(text: str, tokens: tuple[int, ...] = (5, 6)) -> Rollout:
    return Rollout(0, text, tokens, (-1.0,) * len(tokens), "stop", (1, 2))


# ------------------------------------------------------------------------------ pure pieces


@pytest.mark.parametrize(
    "rewards, texts, expected",
    [
        ([1.0, 0.0, 0.0, 1.0], ["a", "b", "c", "d"], ("a", "b")),  # first best, first worst
        ([0.0, 0.0, 0.0, 0.0], ["a", "b", "c", "d"], None),  # all tied: no pair
        ([1.0, 1.0, 1.0, 1.0], ["a", "b", "c", "d"], None),
        ([0.0, 1.0, 0.5, 0.0], ["a", "b", "c", "d"], ("b", "a")),
        ([1.0, 0.0], ["same", "same"], None),  # a "pair" of one text is no preference
    ],
)
def test_dpo_pairs_a_best_with_a_worst_completion_and_skips_ties(rewards, texts, expected):
    group = [
        (_rollout(t), Score(r, Status.CORRECT if r == 1 else Status.WRONG)) for r, t in zip(rewards, texts, strict=True)
    ]
    pair = pair_completions(group)
    assert (None if pair is None else (pair[0].text, pair[1].text)) == expected


@pytest.mark.parametrize(
    "source, metadata, answer, ends_with",
    [
        ("arith", {"expression": "12 + 30"}, "42", "We compute 12 + 30 = 42.\nThe final answer is \\boxed{42}."),
        (
            "gsm8k",
            {"solution": "She has 3*4=<<3*4=12>>12 eggs.\n#### 12"},
            "12",
            "She has 3*4=12 eggs.\nThe final answer is \\boxed{12}.",
        ),
        ("math", {"solution": "So $x=\\boxed{5}$."}, "5", "So $x=\\boxed{5}$."),
    ],
)
def test_worked_responses_end_in_the_templates_final_answer_form(source, metadata, answer, ends_with):
    example = Example("e/0", "q", answer, {"benchmark": source, **metadata})
    [row] = sft_examples([example])
    assert row.metadata["response"] == ends_with
    assert boxed_response("", "7") == "The final answer is \\boxed{7}."


def test_sft_file_formats_and_rejection_sampling_filter(tmp_path, tiny_model):
    from rlvr.models import load_tokenizer

    tokenizer = load_tokenizer(tiny_model)
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        "\n".join(
            json.dumps(r)
            for r in [
                {"prompt": "What is 2+2?", "completion": "4"},
                {"messages": [{"role": "user", "content": "Hi?"}, {"role": "assistant", "content": "Hello."}]},
            ]
        )
        + "\n"
    )
    plain, chat = sft_examples(None, path=str(rows), tokenizer=tokenizer)
    assert plain.metadata["response"] == "4" and "rendered_prompt" not in plain.metadata
    assert chat.metadata["response"] == "Hello." and "Hi?" in chat.metadata["rendered_prompt"]
    samples = tmp_path / "samples.jsonl"  # rlvr eval's samples.jsonl: rendered prompt, status
    samples.write_text(
        "\n".join(
            json.dumps({"id": f"p/{i}", "sample": 0, "prompt": "<rendered>", "completion": c, "status": s, "gold": "4"})
            for i, (c, s) in enumerate([("4", "correct"), ("5", "wrong"), ("four", "no_answer")])
        )
        + "\n"
    )
    [kept] = sft_examples(None, path=str(samples), tokenizer=tokenizer)
    assert kept.metadata == {"response": "4", "rendered_prompt": "<rendered>"} and kept.id == "p/0"
    assert len(sft_examples(None, path=str(samples), tokenizer=tokenizer, keep_status=None)) == 3
    with pytest.raises(InputError, match="no rows left"):
        sft_examples(None, path=str(samples), tokenizer=tokenizer, keep_status="hedged")
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "x"}) + "\n")
    with pytest.raises(InputError, match=r"bad.jsonl: row 1: an SFT row needs 'prompt' and 'completion'"):
        sft_examples(None, path=str(bad), tokenizer=tokenizer)


@pytest.mark.parametrize("key, algorithm", [("kept", "rft"), ("pairs", "dpo")])
def test_nothing_to_learn_alarm_names_the_algorithm_once_it_persists(key, algorithm):
    state = AlarmState()
    fired = [check_alarms({key: 0.0}, state) for _ in range(WINDOW)]
    assert algorithm in fired[-1]["nothing_to_learn"] and "nothing_to_learn" not in fired[-2]
    assert "nothing_to_learn" not in check_alarms({key: 3.0}, state)


def test_every_algorithm_is_in_the_table_and_plans_before_anything_is_built(tiny_model, tmp_path):
    import dataclasses

    for name in ALGORITHMS:
        algorithm = create_algorithm(name, _config(tiny_model, tmp_path, name))
        assert algorithm.name == name and isinstance(algorithm.plan, DataPlan)
        with pytest.raises(dataclasses.FrozenInstanceError):  # nothing changes the plan later
            algorithm.plan.samples_online = False  # type: ignore[misc]
    with pytest.raises(InputError, match="choose one of grpo, sft, rft, dpo, kto, orpo, simpo, cpo"):
        create_algorithm("ppo", None)


@pytest.mark.parametrize(
    "name, extra, plan",
    [
        ("grpo", {}, DataPlan("prompts", samples_online=True)),
        ("grpo", {"grpo.beta": 0.04, "grpo.mu": 2}, DataPlan("prompts", True, needs_reference=True, optimizer_steps=2)),
        ("rft", {}, DataPlan("prompts", samples_online=True)),
        ("sft", {}, DataPlan("responses", samples_online=False)),
        ("sft", {"data.dataset": "{rows}"}, DataPlan("responses", samples_online=False, reads_dataset=False)),
        ("dpo", {}, DataPlan("prompts", samples_online=True, needs_reference=True)),
        ("dpo", {"dpo.reference_free": True}, DataPlan("prompts", samples_online=True)),
        (
            "dpo",
            {"data.dataset": "{prefs}"},
            DataPlan("preferences", samples_online=False, reads_dataset=False, needs_reference=True),
        ),
        ("kto", {}, DataPlan("prompts", samples_online=True, needs_reference=True)),
        ("orpo", {}, DataPlan("prompts", samples_online=True)),
        ("simpo", {}, DataPlan("prompts", samples_online=True)),
        ("cpo", {"data.dataset": "{prefs}"}, DataPlan("preferences", samples_online=False, reads_dataset=False)),
    ],
)
def test_each_algorithm_plans_its_data_from_the_config_alone(tiny_model, tmp_path, name, extra, plan):
    """What sizes the engine and loads the policy is known from the config: which rows, whether they are
    sampled online (an SFT file or a preference file is not), a reference model, optimizer steps."""
    files = {"rows": tmp_path / "rows.jsonl", "prefs": tmp_path / "prefs.jsonl"}
    files["rows"].write_text(json.dumps({"prompt": "What is 1+1?", "completion": "2"}) + "\n")
    files["prefs"].write_text(json.dumps({"prompt": "What is 1+1?", "chosen": "2", "rejected": "3"}) + "\n")
    extra = {k: v.format(**files) if isinstance(v, str) else v for k, v in extra.items()}
    assert create_algorithm(name, _config(tiny_model, tmp_path, name, **extra)).plan == plan


# ------------------------------------------------------------------------------ through the loop


def test_sft_trains_on_worked_arith_answers_with_response_only_loss(tiny_model, tmp_path):
    metrics = train(_config(tiny_model, tmp_path / "sft", "sft", **{"optimizer.max_steps": 3}))
    records = read_metrics(tmp_path / "sft")
    assert [r["step"] for r in records] == [1, 2, 3]
    assert all(r["nll"] > 0 and r["tokens"] > 0 for r in records)
    assert records[-1]["nll"] < records[0]["nll"], "lr 1e-3 on the same kind of rows must lower the NLL"
    assert metrics["examples"] == 2 and _moved(tiny_model, tmp_path / "sft") > 1e-4


@pytest.mark.slow
def test_rft_keeps_only_correct_completions(tiny_model, tmp_path):
    # the tiny random model is never correct on arith: nothing is kept, and once that lasts WINDOW steps the
    # alarm says why; weights stay
    train(_config(tiny_model, tmp_path / "rft", "rft", **{"reward.verifier": "math", "optimizer.max_steps": WINDOW}))
    records = read_metrics(tmp_path / "rft")
    assert all(r["kept"] == 0 for r in records) and len(records) == WINDOW
    assert "nothing_to_learn" in records[-1]["alarms"] and all(
        "nothing_to_learn" not in r["alarms"] for r in records[:-1]
    )
    # a verifier that calls every unrepetitive text correct keeps distinct finished completions, at most
    # max_per_prompt each (truncated ones are never kept: they would teach the model not to stop)
    train(
        _config(
            tiny_model,
            tmp_path / "all",
            "rft",
            **{
                "reward.verifier": "repetition:n=8",
                "rft.max_per_prompt": 3,
                "rollout.n": 8,
                "rollout.max_new_tokens": 24,
                "optimizer.max_steps": 3,
            },
        )
    )
    records = read_metrics(tmp_path / "all")
    assert all(r["kept"] <= 2 * 3 for r in records) and sum(r["kept"] for r in records) > 0
    assert _moved(tiny_model, tmp_path / "all") > 1e-4


@pytest.mark.slow
def test_dpo_online_pairs_and_offline_file(tiny_model, tmp_path):
    verifier = "overlong:max_tokens=60,buffer=50,unit=chars"  # rewards vary with length: pairs exist
    train(
        _config(tiny_model, tmp_path / "online", "dpo", **{"reward.verifier": verifier, "rollout.max_new_tokens": 12})
    )
    online = read_metrics(tmp_path / "online")
    assert any(r["pairs"] > 0 for r in online) and all("dpo_margin" in r for r in online if r["pairs"])
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(
        "\n".join(
            json.dumps({"prompt": f"What is {i}+1?", "chosen": str(i + 1), "rejected": "no idea"}) for i in range(6)
        )
        + "\n"
    )
    train(_config(tiny_model, tmp_path / "offline", "dpo", **{"data.dataset": str(prefs), "optimizer.max_steps": 3}))
    offline = read_metrics(tmp_path / "offline")
    assert [r["pairs"] for r in offline] == [2, 2, 2]
    assert offline[-1]["dpo_margin"] > offline[0]["dpo_margin"], "DPO must widen the chosen-rejected margin"
    assert _moved(tiny_model, tmp_path / "offline") > 1e-4


#: algorithm -> the metric its objective logs that must grow on the offline file (chosen over rejected)
PREFERENCE_MARGINS = {
    "kto": "kto_margin",
    "orpo": "orpo_log_odds_ratio",
    "simpo": "simpo_margin",
    "cpo": "cpo_margin",
}


@pytest.mark.parametrize(
    "algorithm", [a if a == "orpo" else pytest.param(a, marks=pytest.mark.slow) for a in sorted(PREFERENCE_MARGINS)]
)
def test_preference_family_online_and_offline(tiny_model, tmp_path, algorithm):
    verifier = "overlong:max_tokens=60,buffer=50,unit=chars"  # rewards vary with length
    online_extra = {"reward.verifier": verifier, "rollout.max_new_tokens": 12, "kto.threshold": 0.5}
    train(_config(tiny_model, tmp_path / "online", algorithm, **online_extra))
    online = read_metrics(tmp_path / "online")
    count = "rows" if algorithm == "kto" else "pairs"
    assert any(r[count] > 0 for r in online) and all(PREFERENCE_MARGINS[algorithm] in r for r in online if r[count])
    if algorithm == "kto":  # every completion is labelled: 2 prompts x 4, whatever the ties
        assert [r["rows"] for r in online] == [8, 8] and all(0 <= r["desirable"] <= 8 for r in online)
    prefs = tmp_path / "prefs.jsonl"
    prefs.write_text(
        "\n".join(
            json.dumps({"prompt": f"What is {i}+1?", "chosen": str(i + 1), "rejected": "no idea"}) for i in range(6)
        )
        + "\n"
    )
    train(
        _config(tiny_model, tmp_path / "offline", algorithm, **{"data.dataset": str(prefs), "optimizer.max_steps": 3})
    )
    offline = read_metrics(tmp_path / "offline")
    margin = PREFERENCE_MARGINS[algorithm]
    assert offline[-1][margin] > offline[0][margin], f"{algorithm} must favour the chosen rows more: {offline}"
    assert _moved(tiny_model, tmp_path / "offline") > 1e-4


@pytest.mark.parametrize("algorithm", ["grpo", "sft"])
def test_summary_json_has_before_and_after_with_wilson_intervals(tiny_model, tmp_path, algorithm):
    out = tmp_path / algorithm
    train(
        _config(tiny_model, out, algorithm, **{"eval.before_after": True, "eval.limit": 6, "reward.verifier": "math"})
    )
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary) >= {"before", "after", "steps", "wall_s", "final"}
    assert summary["steps"] == 2 and summary["final"] == str(out / "final") and summary["wall_s"] > 0
    for block in (summary["before"], summary["after"]):
        assert block["n"] == 6 and 0 <= block["ci"][0] <= block["accuracy"] <= block["ci"][1] <= 1
    assert summary["before"]["ci"][1] > 0  # Wilson: a 0/6 still has a non-zero upper bound
    evals = read_metrics(out, "eval.jsonl")
    assert [r["step"] for r in evals] == [0, 2]


@pytest.mark.slow
@pytest.mark.parametrize("advantage, beta", [("reinforce_pp", 0.04), ("reinforce_pp_baseline", 0.0)])
def test_reinforce_pp_advantages_through_the_loop(tiny_model, tmp_path, advantage, beta):
    # per-token advantages made once the batch is packed, the KL (β > 0) measured for the reward. The tiny
    # model is never right (every reward 0) and at step 1 the policy is its reference (KL 0): every
    # whitened return is 0, so both groups are skipped and nothing moves
    extra = {"grpo.advantage": advantage, "grpo.beta": beta, "grpo.loss": "cispo", "optimizer.max_steps": 1}
    train(_config(tiny_model, tmp_path / advantage, "grpo", **{"reward.verifier": "math", **extra}))
    record = json.loads((tmp_path / advantage / "metrics.jsonl").read_text().splitlines()[0])
    assert record.get("kl") == (0.0 if beta else None)
    assert record["groups_skipped"] == 2 and record["reward_std"] == 0.0
    assert _moved(tiny_model, tmp_path / advantage) == 0.0

"""`--algorithm rm` through the one loop on the tiny random model (hf engine): a reward model trained on
a pair file and on verifier-labelled sampled pairs, its held-out pairwise accuracy in summary.json, its
final/ (full or LoRA) scoring as the `reward_model` verifier, and bad pair files refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from rlvr.algorithms import create_algorithm
from rlvr.algorithms.base import DataPlan
from rlvr.errors import InputError
from rlvr.train.monitor import read_metrics
from rlvr.train.trainer import train
from rlvr.types import Example
from rlvr.verifiers import build_verifier
from tests.algorithms.test_algorithms import _config

PAIRS = [
    {"prompt": f"What is {i} + {i}?", "chosen": f"The answer is {2 * i}.", "rejected": "I cannot say. " * 4}
    for i in range(20)
]


def _pair_file(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.mark.parametrize(
    "dataset, plan",
    [
        ("arith", DataPlan("prompts", samples_online=True, head="score")),
        ("{pairs}", DataPlan("preferences", False, reads_dataset=False, head="score", own_held_out=True)),
    ],
)
def test_the_plan_trains_a_score_head_the_engine_never_samples_from(tiny_model, tmp_path, dataset, plan):
    pairs = _pair_file(tmp_path / "pairs.jsonl", PAIRS)
    made = create_algorithm("rm", _config(tiny_model, tmp_path, "rm", **{"data.dataset": dataset.format(pairs=pairs)}))
    assert made.plan == plan and not made.plan.policy_generates


@pytest.mark.slow
@pytest.mark.parametrize("lora", [0, 4], ids=["full", "lora"])
def test_a_pair_file_trains_a_reward_model_whose_final_scores_as_the_reward_model_verifier(tiny_model, tmp_path, lora):
    pairs = _pair_file(tmp_path / "pairs.jsonl", [{**r, "margin": 0.5} for r in PAIRS])
    out = tmp_path / "rm"
    extra = {"data.dataset": str(pairs), "eval.before_after": True, "optimizer.max_steps": 6}
    train(_config(tiny_model, out, "rm", **{**extra, "model.lora_r": lora, "rollout.prompts_per_step": 6}))
    records = read_metrics(out)
    assert all(r["pairs"] == 6 and "rm_accuracy" in r and "rm_margin" in r for r in records)
    summary = json.loads((out / "summary.json").read_text())
    for block in (summary["before"], summary["after"]):  # every 10th of 20 rows is held out
        assert block["n"] == 2 and block["measure"].startswith("pairwise accuracy")
        assert 0 <= block["ci"][0] <= block["accuracy"] <= block["ci"][1] <= 1
    assert records[-1]["rm_margin"] > records[0]["rm_margin"], "lr 1e-3 on the same kind of pairs must separate them"
    # final/ (LoRA merged, head included) is a plain sequence-classification folder: the reward_model verifier
    # scores with it and ranks the held-out pairs as the trained model did
    verifier = build_verifier(f"reward_model:model={out / 'final'},device=cpu")
    held = [PAIRS[9], PAIRS[19]]
    examples = [Example(str(i), r["prompt"], None) for i, r in enumerate(held)]
    chosen = verifier.rewards([r["chosen"] for r in held], examples)
    rejected = verifier.rewards([r["rejected"] for r in held], examples)
    wins = sum(c > r for c, r in zip(chosen, rejected, strict=True))
    assert wins / 2 == summary["after"]["accuracy"] and wins > 0


@pytest.mark.slow
def test_online_pairs_are_sampled_from_the_base_and_labelled_by_the_verifier(tiny_model, tmp_path):
    verifier = "overlong:max_tokens=100,buffer=90,unit=chars"  # graded by length: pairs exist
    out = tmp_path / "online"
    extra = {"reward.verifier": verifier, "rollout.max_new_tokens": 12, "eval.before_after": True, "eval.limit": 8}
    train(_config(tiny_model, out, "rm", **{**extra, "rollout.n": 6}))
    records = read_metrics(out)
    assert any(r["pairs"] > 0 for r in records) and all("rm_accuracy" in r for r in records if r["pairs"])
    evals = read_metrics(out, "eval.jsonl")
    assert [r["step"] for r in evals] == [0, 2] and evals[0]["eval_n"] == evals[1]["eval_n"] > 0  # the same pairs
    final = json.loads((out / "final" / "config.json").read_text())
    assert final["architectures"] == ["LlamaForSequenceClassification"] and len(final["id2label"]) == 1  # num_labels=1


def _scored(texts_and_rewards: list[tuple[str, float]]):
    from rlvr.types import Rollout, Score, Status

    return [
        (Rollout(0, t, (1,), (0.0,), "stop"), Score(r, Status.CORRECT if r else Status.WRONG))
        for t, r in texts_and_rewards
    ]


def test_every_higher_reward_text_is_paired_with_every_lower_one():
    from rlvr.algorithms.rm import PAIRINGS

    group = _scored([("7", 1.0), ("8", 0.0), (" 7", 1.0), ("9", 0.0), ("6", 0.0), ("5", 1.0)])
    every = [(a.text, b.text) for a, b in PAIRINGS["all"](group)]
    assert every == [("7", "8"), ("7", "9"), ("7", "6"), ("5", "8"), ("5", "9"), ("5", "6")]  # " 7" is "7" again
    assert [(a.text, b.text) for a, b in PAIRINGS["one"](group)] == [("7", "8")]  # DPO's pair
    assert PAIRINGS["all"](_scored([("7", 1.0), ("8", 1.0)])) == [] == PAIRINGS["one"](_scored([("7", 1.0)]))


class SleepyEngine:
    """The hf engine on its own copy, with vllm's level-2 sleep: a wake discards the weights until a push."""

    def __init__(self, model: Path) -> None:
        from rlvr.rollout.hf import HFEngine

        self.inner, self.sleeps, self.lost = HFEngine(model, dtype="float32"), 0, False
        self.kind, self.holds_weights, self.sampler_logprobs, self.can_sleep = "hf", True, False, True
        self.tokenizer, self.max_model_len = self.inner.tokenizer, self.inner.max_model_len

    def sleep(self) -> None:
        self.sleeps += 1

    def wake(self) -> bool:
        self.lost = True
        return True

    def generate(self, prompts, n=1, sampling=None):
        assert not self.lost, "generate after a level-2 wake: the weights were discarded"
        return self.inner.generate(prompts, n, sampling)

    def sync_weights(self, state_dict):
        self.lost = False
        return self.inner.sync_weights(state_dict)

    def close(self) -> None:
        self.inner.close()


def test_an_engine_serving_the_untrained_base_is_never_put_to_sleep(tiny_model, tmp_path):
    from rlvr.train.trainer import Trainer

    engine = SleepyEngine(tiny_model)
    verifier = "overlong:max_tokens=100,buffer=90,unit=chars"
    config = _config(tiny_model, tmp_path / "rm", "rm", **{"reward.verifier": verifier, "rollout.max_new_tokens": 8})
    Trainer(config, engine=engine).train()  # rm's policy is a score model: nothing could push the base back
    assert engine.sleeps == 0 and [r["step"] for r in read_metrics(tmp_path / "rm")] == [1, 2]


@pytest.mark.parametrize(
    "rows, message",
    [
        (None, "no such file"),
        ([PAIRS[0], {"prompt": "p", "rejected": "r"}], "row 2: missing field 'chosen'"),
        ([{"prompt": "p", "chosen": "c"}], "row 1: missing field 'rejected'"),
    ],
    ids=["missing-file", "row-without-chosen", "row-without-rejected"],
)
def test_bad_pair_files_are_one_line_and_exit_2(tiny_model, tmp_path, rows, message):
    path = tmp_path / "pairs.jsonl"
    if rows is not None:
        _pair_file(path, rows)
    with pytest.raises(InputError, match=message):
        create_algorithm("rm", _config(tiny_model, tmp_path, "rm", **{"data.dataset": str(path)}))
    run = subprocess.run(
        [sys.executable, "-m", "rlvr", "train", "--algorithm", "rm", "--dataset", str(path), "--dry-run"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert run.returncode == 2 and message in run.stderr
    assert len([line for line in run.stderr.splitlines() if line.strip()]) == 1, run.stderr

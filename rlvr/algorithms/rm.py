"""Reward-model training: the base model with a scalar head (AutoModelForSequenceClassification,
num_labels=1) trained with the Bradley-Terry loss (rlvr.objectives.reward, TRL RewardTrainer's) on
preference pairs. Pairs are sampled online from the base model and labelled by the verifier (a
correct vs a wrong completion of the same prompt, DPO's pair_completions): the verifier's knowledge
becomes a model that scores where no gold exists. A file of prompt/chosen/rejected rows (TRL's
preference format, an optional `margin` column) trains offline instead. Sampled pairs: every higher- vs
lower-reward completion of a prompt (`rm.pairs=all`), or DPO's one. The held-out measure is
pairwise accuracy; `final/` is what `reward_model:model=DIR/final` scores with."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from rlvr.algorithms.base import Algorithm, DataPlan, Step, dedupe
from rlvr.algorithms.context import Timer, TrainContext
from rlvr.algorithms.dpo import pair_completions
from rlvr.config import TrainConfig
from rlvr.distributed import all_reduce_sum, shard_groups
from rlvr.errors import InputError
from rlvr.learner.protocol import Learner, Packed
from rlvr.objectives import reward
from rlvr.rollout.stats import rollout_metrics
from rlvr.types import Example, Rollout, Score
from rlvr.verifiers.reward_model import reward_inputs, reward_text

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

__all__ = ["PAIRINGS", "RM", "RewardBatch", "every_pair", "is_pair_file", "one_pair"]

#: what summary.json says the held-out accuracy counts
MEASURE = "pairwise accuracy: held-out pairs whose chosen completion the model scores above the rejected one"
#: the seed offset of the held-out pairs' sampling (fixed: a resumed run re-samples the same pairs)
HELD_OUT_SEED = 7_000_003


@dataclass
class RewardBatch:
    texts: list[str]  # chosen, rejected, chosen, rejected, ...: what the reward model reads (reward_text)
    margins: list[float] | None = None  # per pair (a file's `margin` column), else none


def is_pair_file(name: str | None) -> bool:
    """Whether --dataset names a file of preference rows: its first row has `chosen` or `rejected` (a row
    missing the other fields is then an error naming it, not a prompt file)."""
    if name is None or not Path(name).is_file():
        return False
    from rlvr.data.benchmarks import read_rows

    rows = read_rows(name)
    return bool(rows) and any(key in rows[0] for key in ("chosen", "rejected"))


def every_pair(group: list[tuple[Rollout, Score]]) -> list[tuple[Rollout, Rollout]]:
    """Every (chosen, rejected) of one prompt's scored completions: each distinct text paired with each distinct
    text of a lower reward. A group of n with k right answers gives k·(n-k) pairs where DPO's pairing gives one:
    the same sampling teaches the reward model several times as much."""
    distinct = dedupe(group, lambda item: item[0].text.strip())
    return [(a, b) for a, sa in distinct for b, sb in distinct if sa.reward > sb.reward]


def one_pair(group: list[tuple[Rollout, Score]]) -> list[tuple[Rollout, Rollout]]:
    """DPO's pairing: the first best- against the first worst-rewarded completion, or none."""
    pair = pair_completions(group)
    return [] if pair is None else [pair]


#: rm.pairs -> how a prompt's scored completions become (chosen, rejected) pairs
PAIRINGS = {"all": every_pair, "one": one_pair}


class _Untimed:
    def add(self, stage: str, seconds: float) -> None:
        pass


def _pack(tokenizer: PreTrainedTokenizerBase, texts: list[str], max_length: int) -> Packed:
    inputs = reward_inputs(tokenizer, texts, max_length)
    return {"input_ids": inputs["input_ids"], "attention_mask": inputs["attention_mask"]}


def _resolved(value: int | None, key: str) -> int:
    if value is None:  # the loop resolves "auto" sizes before any algorithm is built
        raise ValueError(f"{key} is still auto: resolve the config for a device first (rlvr.config.resolve_auto)")
    return value


def _pair_slices(rows: int, micro_batch_size: int) -> list[slice]:
    """Micro-batches of whole pairs (an even number of rows each)."""
    size = max(2, micro_batch_size // 2 * 2)
    return [slice(start, min(rows, start + size)) for start in range(0, rows, size)]


class RM(Algorithm[RewardBatch]):
    name = "rm"

    def __init__(self, config: TrainConfig) -> None:
        super().__init__(config)
        self._held_out_rows: list[Example] = []  # a pair file's held-out rows (training_examples splits them)
        self._held_out_texts: list[str] | None = None  # the held-out pairs, made once: before and after alike

    @classmethod
    def make_plan(cls, config: TrainConfig) -> DataPlan:
        """Online: prompts of the dataset sampled from the base model (never updated) and paired by the
        verifier. A pair file trains offline; its held-out pairs are its own (eval.dataset's when that
        is a pair file, else a share rm.held_out of its rows)."""
        from rlvr.data.specs import is_data_file

        name = config.data.dataset
        if is_data_file(name) and not Path(name).is_file():
            raise InputError(f"--dataset {name}: no such file")
        offline = is_pair_file(name)
        if offline:  # checked now (`--dry-run` too), not after the model loads
            from rlvr.data.supervised import preference_rows

            preference_rows(name)
        return DataPlan(
            trains_on="preferences" if offline else "prompts",
            samples_online=not offline,
            reads_dataset=not offline,
            head="score",
            own_held_out=offline,
        )

    def training_examples(self, rows: list[Example], tokenizer: PreTrainedTokenizerBase) -> list[Example]:
        from rlvr.data.supervised import preference_examples

        if self.plan.reads_dataset:
            return rows
        cfg = self.config
        examples = preference_examples(cfg.data.dataset, tokenizer)
        if not (cfg.eval.before_after or cfg.eval.every):
            return examples
        if is_pair_file(cfg.eval.dataset):
            self._held_out_rows = preference_examples(str(cfg.eval.dataset), tokenizer)[: cfg.eval.limit]
            return examples
        every = max(2, round(1 / cfg.rm.held_out))  # every k-th row is held out
        held = [e for i, e in enumerate(examples) if i % every == every - 1][: cfg.eval.limit]
        kept = {e.id for e in held}
        self._held_out_rows = held
        return [e for e in examples if e.id not in kept]

    def _file_batch(self, tokenizer: PreTrainedTokenizerBase, examples: list[Example]) -> RewardBatch:
        texts = [reward_text(tokenizer, e.prompt, e.metadata[key]) for e in examples for key in ("chosen", "rejected")]
        margins = [float(e.metadata.get("margin", 0.0)) for e in examples]
        return RewardBatch(texts, margins if any(margins) else None)

    def _sampled_pairs(self, context: TrainContext, examples: list[Example], collected: Any) -> list[str]:
        texts: list[str] = []
        for g, example in enumerate(collected.examples):
            group = collected.group(g)
            pairs = (
                every_pair(group) if self.config.rm.pairs == "all" else [p] if (p := pair_completions(group)) else []
            )
            for pair in pairs:
                texts.extend(reward_text(context.tokenizer, example.prompt, r.text) for r in pair)
        return texts

    def make_step(self, context: TrainContext, timer: Timer) -> Step:
        cfg = self.config
        per_step = _resolved(cfg.rollout.prompts_per_step, "rollout.prompts_per_step")
        examples = shard_groups(context.stream.take(per_step), context.ctx)
        if not self.plan.samples_online:
            return Step(self._file_batch(context.tokenizer, examples), {"pairs": float(len(examples))})
        collected = context.collect(examples, _resolved(cfg.rollout.n, "rollout.n"), context.sampling(0), timer)
        texts = self._sampled_pairs(context, examples, collected)
        metrics = {**rollout_metrics(collected.scores, collected.rollouts), "pairs": float(len(texts) // 2)}
        return Step(RewardBatch(texts), metrics, (collected.examples, collected.rollouts, collected.scores))

    def learn(self, policy: Learner, batch: RewardBatch) -> dict[str, float]:
        opts = self.config.rm
        if not batch.texts:
            return policy.step([], None)
        tensors = _pack(policy.tokenizer, batch.texts, opts.max_length)
        pairs = all_reduce_sum(torch.tensor(float(len(batch.texts) // 2)), policy.ctx)
        margins = None if batch.margins is None else torch.tensor(batch.margins)

        def loss_fn(idx: slice) -> tuple[torch.Tensor, dict[str, float]]:
            values = policy.values(tensors, idx)
            pair_idx = slice(idx.start // 2, idx.stop // 2)
            loss, m = reward.reward_loss(
                values[0::2],
                values[1::2],
                margin=None if margins is None else margins[pair_idx].to(values.device),
                center_rewards_coefficient=opts.center_rewards_coefficient,
                normalizer=pairs,
                loss_scale=policy.ctx.world_size,
            )
            return loss, {"loss": m["loss"], "tokens": m["pairs"]} | {
                f"rm_{k.replace('/', '_')}": v for k, v in m.items() if k not in ("loss", "pairs")
            }

        return policy.step(_pair_slices(len(batch.texts), self.config.optimizer.micro_batch_size), loss_fn)

    def evaluate(self, context: TrainContext, policy: Learner, held_out: list[Example]) -> dict[str, Any] | None:
        """Pairwise accuracy on held-out pairs: a pair file's own, or (online) pairs sampled from the base
        model on the held-out problems and labelled by the verifier, made once so before and after score
        the same pairs. Returns successes and n (the loop adds the interval)."""
        if self._held_out_texts is None:
            self._held_out_texts = self._held_out_pairs(context, held_out)
        texts = self._held_out_texts
        correct = 0.0
        if texts:
            tensors = _pack(policy.tokenizer, texts, self.config.rm.max_length)
            with torch.no_grad():
                values = torch.cat(
                    [
                        policy.values(tensors, idx)
                        for idx in _pair_slices(len(texts), self.config.optimizer.micro_batch_size)
                    ]
                )
            correct = float(reward.pair_accuracy(values[0::2], values[1::2]).sum())
        return {"successes": correct, "n": len(texts) // 2, "measure": MEASURE}

    def _held_out_pairs(self, context: TrainContext, held_out: list[Example]) -> list[str]:
        if not self.plan.samples_online:
            return self._file_batch(context.tokenizer, self._held_out_rows).texts
        sampling = dataclasses.replace(context.sampling(0), seed=self.config.seed + HELD_OUT_SEED)
        collected = context.collect(held_out, _resolved(self.config.rollout.n, "rollout.n"), sampling, _Untimed())
        return self._sampled_pairs(context, held_out, collected)

"""The transformers engine: batched `generate` with left padding and sampled-token logprobs."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import torch
from transformers import (
    GenerationConfig,
    LogitsProcessor,
    LogitsProcessorList,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from rlvr.errors import InputError
from rlvr.rollout.base import SamplingConfig, normalize_state_dict
from rlvr.types import Rollout

__all__ = ["HFEngine"]

log = logging.getLogger(__name__)


class _SampledLogprobs(LogitsProcessor):
    """Runs last, on the exact distribution tokens are drawn from, and keeps the log-probability
    of each sampled token. Holding one step's log-softmax (not every step's scores, which
    `output_scores` would keep: steps x batch x vocab floats) keeps memory flat."""

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []
        self._pending: torch.Tensor | None = None

    def _collect(self, sampled: torch.Tensor) -> None:
        if self._pending is not None:
            self.steps.append(self._pending.gather(1, sampled[:, None]).squeeze(1))
            self._pending = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._collect(input_ids[:, -1])
        self._pending = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, sequences: torch.Tensor) -> torch.Tensor:
        self._collect(sequences[:, -1])
        return torch.stack(self.steps, dim=1) if self.steps else sequences.new_zeros((0, 0))


def _sampling_processors(sampling: SamplingConfig) -> list[LogitsProcessor]:
    """Temperature, top-k, top-p exactly as asked. They are passed explicitly (and generate's
    own are switched off) so HF's default top_k=50 can never leak in, and so the logprob
    recorder can run after them."""
    if sampling.greedy:
        return []
    processors: list[LogitsProcessor] = []
    if sampling.temperature != 1.0:
        processors.append(TemperatureLogitsWarper(sampling.temperature))
    if sampling.top_k > 0:
        processors.append(TopKLogitsWarper(top_k=sampling.top_k))
    if sampling.top_p < 1.0:
        processors.append(TopPLogitsWarper(top_p=sampling.top_p))
    return processors


class HFEngine:
    """transformers `generate`, batched. With `policy=` it samples from that live module (the
    trainer's model), so `sync_weights` has nothing to do."""

    kind = "hf"

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        policy: Any = None,
        seed: int = 0,
        max_model_len: int | None = None,
        dtype: str | None = None,
        batch_size: int = 64,
        device: str = "cpu",
    ) -> None:
        from rlvr.models import context_length, load_policy, load_tokenizer

        self.model_path = Path(model_path)
        self.max_model_len = context_length(model_path, max_model_len)
        self.batch_size = batch_size
        self.live_policy = policy is not None
        if policy is None:
            self.model, self.tokenizer = load_policy(
                model_path, dtype=dtype or "float32", device=device
            )
        else:
            self.model, self.tokenizer = policy, load_tokenizer(model_path)
        self._rng = torch.Generator().manual_seed(seed)
        self.eos_ids = self._eos_ids()

    def _eos_ids(self) -> frozenset[int]:
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
        return frozenset(i for i in ids if i is not None)

    def _call_seed(self, sampling: SamplingConfig) -> int:
        if sampling.seed is not None:
            return sampling.seed
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self._rng))

    def generate(
        self, prompts: Sequence[str], n: int = 1, sampling: SamplingConfig | None = None
    ) -> list[Rollout]:
        sampling = sampling or SamplingConfig()
        if n < 1:
            raise InputError(f"samples per prompt must be >= 1, got {n}")
        encoded = [self.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
        for index, ids in enumerate(encoded):
            if len(ids) >= self.max_model_len:
                raise InputError(
                    f"prompt {index} has {len(ids)} tokens, max_model_len is {self.max_model_len}"
                )
        # longest first and grouped by length: less padding, and the first batch shows OOM early
        jobs = sorted(
            ((i, j) for i in range(len(prompts)) for j in range(n)),
            key=lambda job: -len(encoded[job[0]]),
        )
        results: dict[tuple[int, int], Rollout] = {}
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.random.fork_rng(devices=[]), torch.no_grad():
                torch.manual_seed(self._call_seed(sampling))
                for start in range(0, len(jobs), self.batch_size):
                    batch = jobs[start : start + self.batch_size]
                    rollouts = self._generate_batch([encoded[i] for i, _ in batch], sampling)
                    for (i, j), rollout in zip(batch, rollouts):
                        results[(i, j)] = Rollout(prompt_index=i, **rollout)
        finally:
            self.model.train(was_training)
        return [results[(i, j)] for i in range(len(prompts)) for j in range(n)]

    def _generate_batch(self, prompt_ids: list[list[int]], sampling: SamplingConfig) -> list[dict]:
        pad = self.tokenizer.pad_token_id
        width = max(len(ids) for ids in prompt_ids)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompt_ids])
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompt_ids])
        device = next(self.model.parameters()).device
        recorder = _SampledLogprobs()
        config = GenerationConfig(
            do_sample=not sampling.greedy,
            max_new_tokens=min(sampling.max_new_tokens, self.max_model_len - width),
            # neutral values: the real ones are the explicit processors below
            temperature=1.0,
            top_k=0,
            top_p=1.0,
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=pad,
            use_cache=True,
            stop_strings=list(sampling.stop) or None,
        )
        output = self.model.generate(
            input_ids=input_ids.to(device),
            attention_mask=attention.to(device),
            generation_config=config,
            logits_processor=LogitsProcessorList([*_sampling_processors(sampling), recorder]),
            tokenizer=self.tokenizer if sampling.stop else None,
        )
        sequences = output if isinstance(output, torch.Tensor) else output.sequences
        new_tokens = sequences[:, width:].cpu()
        logprobs = recorder.finish(sequences).cpu()
        return [
            self._finish(prompt, tokens.tolist(), row.tolist(), sampling)
            for prompt, tokens, row in zip(prompt_ids, new_tokens, logprobs)
        ]

    def _finish(
        self, prompt: list[int], tokens: list[int], logprobs: list[float], sampling: SamplingConfig
    ) -> dict:
        """Cut one row at its first EOS (kept, the learner needs it) or stop string (the text
        ends before it, the tokens after the one completing it); the rest is padding."""
        end = next((k + 1 for k, t in enumerate(tokens) if t in self.eos_ids), None)
        finish = "stop" if end is not None else "length"
        tokens = tokens[:end] if end is not None else tokens
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        if sampling.stop and any(s in text for s in sampling.stop):
            for k in range(1, len(tokens) + 1):
                partial = self.tokenizer.decode(tokens[:k], skip_special_tokens=True)
                hits = [partial.find(s) for s in sampling.stop if s in partial]
                if hits:
                    tokens, text, finish = tokens[:k], partial[: min(hits)], "stop"
                    break
        return dict(
            text=text,
            token_ids=tuple(tokens),
            logprobs=tuple(logprobs[: len(tokens)]),
            finish_reason=finish,
            prompt_token_ids=tuple(prompt),
        )

    def sync_weights(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        """With a live policy there is nothing to push: the engine samples from that module.
        An engine that loaded its own copy copies the weights in (names must all match)."""
        if self.live_policy:
            return {"engine": "hf", "synced": True, "changed": None, "tensors": 0, "seconds": 0.0}
        started = time.perf_counter()
        weights = dict(normalize_state_dict(state_dict))
        own = self.model.state_dict()
        unknown = sorted(set(weights) - set(own))
        if unknown:
            raise ValueError(f"sync_weights: {len(unknown)} names not in the model, e.g. {unknown[0]}")
        with torch.no_grad():
            changed = any(not torch.equal(own[k], v.to(own[k].dtype)) for k, v in weights.items())
            self.model.load_state_dict(weights, strict=False)
        if not changed:
            log.warning("WEIGHT SYNC CHANGED NOTHING: the hf engine got the weights it already had")
        return {"engine": "hf", "synced": True, "changed": changed, "tensors": len(weights),
                "seconds": time.perf_counter() - started}

    def close(self) -> None:
        self.model = None

    def __enter__(self) -> "HFEngine":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

"""The transformers engine: a batched decode loop on the model's forward, with sampled-token logprobs.

The loop is rlvr's own rather than `model.generate`, for speed on CPU (measured in
benchmarks/RESULTS.md, "hf engine decode loop"): a finished row leaves the batch at once instead of
being decoded until the longest row ends; the KV cache grows into a buffer that doubles, instead
of being copied whole by `torch.cat` at every step; the logprob of the sampled token comes from
the one log-softmax that sampling needs. Greedy decoding computes exactly what `generate` computes
(the same forward calls, inputs and argmax). Sampling draws each row's token with the row's own
generator, seeded from (call seed, prompt, sample), so a sample does not depend on which other
rows share its batch.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import DynamicCache, TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper
from transformers.cache_utils import DynamicLayer

from rlvr.errors import InputError
from rlvr.rollout.base import (
    SamplingConfig,
    TokenPrompt,
    cut_at_stop,
    encode_prompts,
    normalize_state_dict,
    prompt_budget,
)
from rlvr.types import Rollout

__all__ = ["HFEngine", "row_seed"]

log = logging.getLogger(__name__)


def _sampling_processors(sampling: SamplingConfig) -> list[Any]:
    """Temperature, top-k, top-p exactly as asked (top_k 0 / top_p 1: off), the transformers warpers
    that rlvr.testing.reference_logprobs also applies. Greedy: none (logprobs at temperature 1)."""
    if sampling.greedy:
        return []
    processors: list[Any] = []
    if sampling.temperature != 1.0:
        processors.append(TemperatureLogitsWarper(sampling.temperature))
    if sampling.top_k > 0:
        processors.append(TopKLogitsWarper(top_k=sampling.top_k))
    if sampling.top_p < 1.0:
        processors.append(TopPLogitsWarper(top_p=sampling.top_p))
    return processors


def row_seed(call_seed: int, prompt: int, sample: int) -> int:
    """The seed of one row's generator: a hash of (call seed, prompt index, sample index)."""
    digest = hashlib.blake2b(f"{call_seed}:{prompt}:{sample}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class _GrowingLayer(DynamicLayer):
    """A full-attention KV layer whose keys and values live in a buffer that doubles when full, so
    a decode step writes one token instead of copying the whole cache (DynamicLayer's torch.cat)."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        super().lazy_initialization(key_states, value_states)
        self.length = 0
        self._keys = self._values = None

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any, **kwargs: Any):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        end = self.length + key_states.shape[-2]
        if self._keys is None or end > self._keys.shape[-2]:
            capacity = 2 * end if self._keys is not None else end + 64
            self._keys, self._values = (
                self._grown(self._keys, key_states, capacity),
                self._grown(self._values, value_states, capacity),
            )
        self._keys[..., self.length : end, :] = key_states
        self._values[..., self.length : end, :] = value_states
        self.length = end
        self._refresh()
        return self.keys, self.values

    def _grown(self, old: torch.Tensor | None, states: torch.Tensor, capacity: int) -> torch.Tensor:
        buffer = states.new_empty((*states.shape[:-2], capacity, states.shape[-1]))
        if old is not None:
            buffer[..., : self.length, :] = old[..., : self.length, :]
        return buffer

    def _refresh(self) -> None:
        self.keys = self._keys[..., : self.length, :]
        self.values = self._values[..., : self.length, :]

    def get_seq_length(self) -> int:
        return self.length if self.is_initialized else 0

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        if self.is_initialized and self._keys is not None:
            self._keys = self._keys.index_select(0, beam_idx.to(self._keys.device))
            self._values = self._values.index_select(0, beam_idx.to(self._values.device))
            self._refresh()


class HFEngine:
    """Batched decoding with transformers models. With `policy=` it samples from that live module
    (the trainer's model), so `sync_weights` has nothing to do."""

    kind = "hf"
    holds_weights = False  # given the live policy; an engine that loaded its own copy says True
    sampler_logprobs = False  # logprobs come from the learner's own module and kernels: no TIS
    can_sleep = False

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
        self.holds_weights = not self.live_policy
        if policy is None:
            self.model, self.tokenizer = load_policy(model_path, dtype=dtype or "float32", device=device)
        else:
            self.model, self.tokenizer = policy, load_tokenizer(model_path)
        self._rng = torch.Generator().manual_seed(seed)
        self.eos_ids = self._eos_ids()
        # lm_head on the last position only, as generate does, where the model's forward takes it
        parameters = inspect.signature(self.model.forward).parameters
        takes = "logits_to_keep" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
        self._last_logits = {"logits_to_keep": 1} if takes else {}

    @property
    def dtype(self) -> str:
        """The dtype it generates in: its weights' (a live policy's master weights; no autocast here)."""
        return str(next(self.model.parameters()).dtype).removeprefix("torch.")

    def _eos_ids(self) -> frozenset[int]:
        ids = {self.tokenizer.eos_token_id}
        configured = getattr(self.model.generation_config, "eos_token_id", None)
        ids.update(configured if isinstance(configured, (list, tuple)) else [configured])
        return frozenset(i for i in ids if i is not None)

    def _call_seed(self, sampling: SamplingConfig) -> int:
        if sampling.seed is not None:
            return sampling.seed
        return int(torch.randint(0, 2**31 - 1, (1,), generator=self._rng))

    def sleep(self) -> None:
        """Nothing to release (can_sleep is False)."""

    def wake(self) -> bool:
        """Nothing to restore (can_sleep is False): the weights are where they were."""
        return False

    def generate(
        self, prompts: Sequence[str | TokenPrompt], n: int = 1, sampling: SamplingConfig | None = None
    ) -> list[Rollout]:
        sampling = sampling or SamplingConfig()
        if n < 1:
            raise InputError(f"samples per prompt must be >= 1, got {n}")
        encoded = encode_prompts(self.tokenizer, prompts, self.max_model_len)
        # each row's own limit: its budget, and the room its own prompt leaves in the context
        limits = [
            min(prompt_budget(p, sampling), self.max_model_len - len(ids))
            for p, ids in zip(prompts, encoded, strict=True)
        ]
        # longest first and grouped by length: less padding, and the first batch shows OOM early
        jobs = sorted(
            ((i, j) for i in range(len(prompts)) for j in range(n)),
            key=lambda job: -len(encoded[job[0]]),
        )
        call_seed = self._call_seed(sampling)
        results: dict[tuple[int, int], Rollout] = {}
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                for start in range(0, len(jobs), self.batch_size):
                    batch = jobs[start : start + self.batch_size]
                    seeds = [self._row_seed(prompts[i], call_seed, i, j) for i, j in batch]
                    rows = self._decode([encoded[i] for i, _ in batch], seeds, [limits[i] for i, _ in batch], sampling)
                    for (i, j), (tokens, logprobs) in zip(batch, rows, strict=True):
                        results[(i, j)] = Rollout(
                            prompt_index=i, **self._finish(encoded[i], tokens, logprobs, sampling)
                        )
        finally:
            self.model.train(was_training)
        return [results[(i, j)] for i in range(len(prompts)) for j in range(n)]

    @staticmethod
    def _row_seed(prompt: str | TokenPrompt, call_seed: int, i: int, j: int) -> int:
        """A prompt with its own seed samples the same wherever it sits in the batch."""
        if isinstance(prompt, TokenPrompt) and prompt.seed is not None:
            return row_seed(prompt.seed, 0, j)
        return row_seed(call_seed, i, j)

    def _cache(self) -> DynamicCache:
        cache = DynamicCache(config=self.model.config)
        # full-attention layers grow in place; other kinds (sliding window, linear) keep their own
        cache.layers = [_GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
        return cache

    def _decode(
        self, prompt_ids: list[list[int]], seeds: list[int], limits: list[int], sampling: SamplingConfig
    ) -> list[tuple[list[int], list[float]]]:
        """Decode one batch, left-padded like `generate`; a row leaves the batch when it ends
        (EOS, a stop string, or its limit of new tokens). Returns each row's tokens and logprobs."""
        device = next(self.model.parameters()).device
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        width = max(len(ids) for ids in prompt_ids)
        input_ids = torch.tensor([[pad] * (width - len(ids)) + ids for ids in prompt_ids], device=device)
        attention = torch.tensor([[0] * (width - len(ids)) + [1] * len(ids) for ids in prompt_ids], device=device)
        positions = (attention.cumsum(-1) - 1).masked_fill(attention == 0, 0)
        generators = [torch.Generator().manual_seed(seed) for seed in seeds]
        processors = _sampling_processors(sampling)
        stop_window = max((len(s) for s in sampling.stop), default=0) + 4
        tokens: list[list[int]] = [[] for _ in prompt_ids]
        logprobs: list[list[float]] = [[] for _ in prompt_ids]
        live = list(range(len(prompt_ids)))  # original row of each batch row
        cache = self._cache()
        logits = self._forward(input_ids, attention, positions, cache)
        while True:
            scores = logits
            for processor in processors:
                scores = processor(None, scores)
            logp = torch.log_softmax(scores, dim=-1)
            chosen = scores.argmax(-1) if sampling.greedy else _draw(logp, [generators[r] for r in live])
            picked = logp.gather(1, chosen[:, None]).squeeze(1)
            keep = []
            for b, (row, token, lp) in enumerate(zip(live, chosen.tolist(), picked.tolist(), strict=True)):
                tokens[row].append(token)
                logprobs[row].append(lp)
                if not self._ended(tokens[row], limits[row], sampling, stop_window):
                    keep.append(b)
            if not keep:
                return list(zip(tokens, logprobs, strict=True))
            if len(keep) < len(live):
                index = torch.tensor(keep, device=device)
                cache.reorder_cache(index)
                attention, positions, chosen = attention[index], positions[index], chosen[index]
                live = [live[b] for b in keep]
            attention = torch.cat([attention, attention.new_ones((len(live), 1))], dim=-1)
            positions = positions[:, -1:] + 1
            logits = self._forward(chosen[:, None], attention, positions, cache)

    def _forward(self, input_ids, attention, positions, cache) -> torch.Tensor:
        out = self.model(
            input_ids=input_ids,
            attention_mask=attention,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            **self._last_logits,
        )
        return out.logits[:, -1].to(dtype=torch.float32)

    def _ended(self, tokens: list[int], limit: int, sampling: SamplingConfig, stop_window: int) -> bool:
        if tokens[-1] in self.eos_ids or len(tokens) >= limit:
            return True
        if not sampling.stop:
            return False
        tail = self.tokenizer.decode(tokens[-stop_window:], skip_special_tokens=True)
        return any(s in tail for s in sampling.stop)

    def _finish(self, prompt: list[int], tokens: list[int], logprobs: list[float], sampling: SamplingConfig) -> dict:
        """Cut one row at its first EOS (kept, the learner needs it) or stop string (the text
        ends before it, the tokens after the one completing it)."""
        end = next((k + 1 for k, t in enumerate(tokens) if t in self.eos_ids), None)
        finish = "stop" if end is not None else "length"
        tokens = tokens[:end] if end is not None else tokens
        text = self.tokenizer.decode(tokens, skip_special_tokens=True)
        cut = cut_at_stop(self.tokenizer, tokens, sampling.stop)
        if cut is not None:
            (tokens, text), finish = cut, "stop"
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
        return {
            "engine": "hf",
            "synced": True,
            "changed": changed,
            "tensors": len(weights),
            "seconds": time.perf_counter() - started,
        }

    def close(self) -> None:
        self.model = None

    def __enter__(self) -> HFEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _draw(logp: torch.Tensor, generators: list[torch.Generator]) -> torch.Tensor:
    """One token per row from exp(logp) by inverting the row's CDF at a uniform draw from the row's
    own generator. Zero-probability tokens (filtered by top-k/top-p) are never drawn: their CDF
    step is flat, and searchsorted(right=True) returns the first index whose CDF exceeds the draw."""
    cdf = logp.exp().cumsum(-1)
    uniform = torch.cat([torch.rand(1, generator=g) for g in generators]).to(cdf.device)
    chosen = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None], right=True).squeeze(1)
    return chosen.clamp_(max=cdf.shape[-1] - 1)

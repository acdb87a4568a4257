"""A causal LM's output head taken out of its forward, so completion logprobs come from the final hidden
states in chunks (rlvr.objectives.logprobs.chunked_token_logprobs_and_entropy) and a micro-batch's
[rows, C, V] logits never exist at once: with a 49k vocabulary they dominate the learner's activations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from rlvr.distributed import unwrap_model

__all__ = ["CHUNK_POSITIONS", "head_is_linear", "head_removed"]

#: completion positions per LM-head chunk: 0.27x the dense logits' memory at the same fwd+bwd time
#: (benchmarks/chunked_logprobs.py, RESULTS); smaller chunks cost time in many small matmuls
CHUNK_POSITIONS = 512


def _identity(hidden: torch.Tensor) -> torch.Tensor:
    return hidden


def _head(model: nn.Module) -> Any:
    return unwrap_model(model).get_output_embeddings()


@contextmanager
def head_removed(model: nn.Module) -> Iterator[torch.Tensor]:
    """Inside, `model(...)` returns the final hidden states (after the last norm) where it returned logits:
    its output head is the identity. Yields the head's weight [V, H] (tied embeddings included); the
    caller's matmul with it keeps the gradient flowing to it as the head would."""
    head = _head(model)
    head.forward = _identity  # an instance attribute shadows nn.Linear.forward until it is deleted
    try:
        yield head.weight
    finally:
        del head.forward


@torch.no_grad()
def head_is_linear(model: nn.Module) -> bool:
    """Whether the model's logits are exactly `hidden @ head.weight.T`: a bias-free nn.Linear head and no
    logit soft-capping or scaling after it, checked by running both ways on a few tokens (an
    architecture that does anything else keeps the dense path)."""
    head, inner = _head(model), unwrap_model(model)
    if not isinstance(head, nn.Linear) or head.bias is not None:
        return False
    ids = torch.tensor([[1, 2, 3, 4, 5]], device=head.weight.device)
    training = inner.training
    inner.eval()
    try:
        dense = inner(input_ids=ids, use_cache=False).logits.float()
        with head_removed(inner) as weight:
            hidden = inner(input_ids=ids, use_cache=False).logits
        mine = (hidden @ weight.to(hidden.dtype).T).float()
    finally:
        inner.train(training)
    return dense.shape == mine.shape and torch.allclose(dense, mine, rtol=1e-3, atol=1e-3)

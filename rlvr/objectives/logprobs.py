"""Per-token log-probs and entropy of completions from logits (or, chunked, from hidden states and the LM
head without ever holding [rows, C, V]): pure tensor functions shared by every objective."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["chunked_token_logprobs_and_entropy", "entropy_from_logits", "token_logprobs", "token_logprobs_and_entropy"]


def token_logprobs(logits: Tensor, token_ids: Tensor, temperature: float = 1.0) -> Tensor:
    """log p(token) under softmax(logits / temperature), in float32: [..., V] × [...] -> [...].

    `logits[..., t, :]` must already be the logits that PREDICT `token_ids[..., t]` (i.e. shifted
    by one against the model output). Using the sampling temperature makes these comparable with
    the sampler's logprobs; temperature 1 logprobs of temperature-0.7 samples are a different
    distribution and bias both the ratio and the importance weights. (Top-k/top-p truncation is
    not modelled: with them on, the sampler's processed logprobs differ from these.)"""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    index = token_ids.long().unsqueeze(-1)
    rows = []
    # Row by row: float32 copies of [T, V] logits instead of the whole [B, T, V] batch at once.
    for row_logits, row_index in zip(
        logits.reshape(-1, *logits.shape[-2:]), index.reshape(-1, *index.shape[-2:]), strict=True
    ):
        scaled = row_logits.float() / temperature
        rows.append(scaled.gather(-1, row_index).squeeze(-1) - scaled.logsumexp(-1))
    return torch.stack(rows).reshape(token_ids.shape)


def token_logprobs_and_entropy(logits: Tensor, token_ids: Tensor, temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """`token_logprobs` (with gradient) and `entropy_from_logits` (without) in one pass over the
    logits: both need logsumexp of the scaled row, and on a 50k-150k vocabulary the passes over
    [T, V], not the arithmetic, are what a learn step spends outside the matmuls."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    index = token_ids.long().unsqueeze(-1)
    logprobs, entropies = [], []
    for row_logits, row_index in zip(
        logits.reshape(-1, *logits.shape[-2:]), index.reshape(-1, *index.shape[-2:]), strict=True
    ):
        scaled = row_logits.float() if temperature == 1.0 else row_logits.float() / temperature
        lse = scaled.logsumexp(-1)
        logprobs.append(scaled.gather(-1, row_index).squeeze(-1) - lse)
        with torch.no_grad():  # H = lse - sum(p * z); p * z is 0 * -inf = NaN where a logit is -inf: 0 there
            p = (scaled - lse.unsqueeze(-1)).exp_()
            entropies.append(lse - torch.nan_to_num_(p.mul_(scaled), nan=0.0).sum(-1))
    return torch.stack(logprobs).reshape(token_ids.shape), torch.stack(entropies).reshape(token_ids.shape)


class _ChunkedLogprobs(torch.autograd.Function):
    """log p(token) and entropy from hidden states and the LM head, N positions at a time: forward
    keeps only logsumexp per position, backward recomputes each chunk's logits. Peak extra memory
    is two [chunk, V] buffers instead of [N, V] logits plus their gradient; the buffers are reused
    from chunk to chunk (in place), so no pass allocates fresh [chunk, V] memory."""

    @staticmethod
    def forward(ctx, hidden, weight, token_ids, temperature, chunk_size):  # [N, H], [V, H], [N]
        compute = torch.promote_types(hidden.dtype, torch.float32)
        logprobs, entropy, lse_all = (hidden.new_empty(hidden.shape[0], dtype=compute) for _ in range(3))
        z = spare = None
        for part in _chunks(hidden.shape[0], chunk_size):
            z = _chunk_logits(hidden, weight, part, temperature, compute, z)
            spare = torch.empty_like(z) if spare is None else spare  # the first chunk is the longest
            e = spare[: z.shape[0]]
            # logsumexp by hand, so exp(z - max) is kept for the entropy: H = lse - sum(p * z), p = e / sum(e)
            top = z.amax(-1, keepdim=True)
            total = torch.sub(z, top, out=e).exp_().sum(-1)
            lse = top.squeeze(-1) + total.log()
            logprobs[part] = z.gather(-1, token_ids[part, None]).squeeze(-1) - lse
            # logits of a linear layer are finite, so no 0 * -inf here
            entropy[part] = lse - e.mul_(z).sum(-1) / total
            lse_all[part] = lse
        ctx.save_for_backward(hidden, weight, token_ids, lse_all)
        ctx.temperature, ctx.chunk_size = temperature, chunk_size
        ctx.mark_non_differentiable(entropy)
        return logprobs, entropy

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_logprobs, grad_entropy):
        hidden, weight, token_ids, lse_all = ctx.saved_tensors
        need_hidden, need_weight = ctx.needs_input_grad[:2]
        compute = lse_all.dtype
        grad_hidden = torch.empty_like(hidden) if need_hidden else None
        grad_weight, z = None, None
        for part in _chunks(hidden.shape[0], ctx.chunk_size):
            # d logp / d z = onehot(token) - softmax(z), and z = logits / temperature
            g = grad_logprobs[part].to(compute)
            z = _chunk_logits(hidden, weight, part, ctx.temperature, compute, z)
            grad_z = z.sub_(lse_all[part, None]).exp_()
            grad_z.mul_(-g[:, None]).scatter_add_(-1, token_ids[part, None], g[:, None])
            grad_logits = (grad_z if ctx.temperature == 1.0 else grad_z.div_(ctx.temperature)).to(weight.dtype)
            if need_hidden:
                grad_hidden[part] = grad_logits @ weight
            if need_weight:  # the first chunk's product is the sum so far; the rest add into it in place
                left, right = grad_logits.T.to(compute), hidden[part].to(compute)
                grad_weight = left @ right if grad_weight is None else grad_weight.addmm_(left, right)
        if need_weight and grad_weight is None:  # no positions at all
            grad_weight = torch.zeros(weight.shape, dtype=compute, device=weight.device)
        return grad_hidden, None if grad_weight is None else grad_weight.to(weight.dtype), None, None, None


def _chunks(total: int, size: int) -> list[slice]:
    return [slice(start, start + size) for start in range(0, total, size)]


def _chunk_logits(
    hidden: Tensor, weight: Tensor, part: slice, temperature: float, compute: torch.dtype, buffer: Tensor | None = None
) -> Tensor:
    """The scaled logits [chunk, V] of positions `part`, computed in the weights' dtype (as the LM
    head would) and cast to `compute` (float32, or float64 for float64 inputs), written into `buffer`
    when it has room (the last chunk may be shorter: a leading slice of it)."""
    rows = hidden[part].shape[0]
    if buffer is None or buffer.shape[0] < rows:
        buffer = torch.empty(rows, weight.shape[0], dtype=compute, device=hidden.device)
    out = buffer[:rows]
    if weight.dtype == compute and hidden.dtype == compute:
        torch.mm(hidden[part], weight.T, out=out)
    else:
        out.copy_(hidden[part] @ weight.T)
    return out if temperature == 1.0 else out.div_(temperature)


def chunked_token_logprobs_and_entropy(
    hidden: Tensor,
    weight: Tensor,
    token_ids: Tensor,
    temperature: float = 1.0,
    *,
    chunk_size: int = 512,
) -> tuple[Tensor, Tensor]:
    """`token_logprobs_and_entropy(hidden @ weight.T, token_ids, temperature)` without ever holding
    the [..., V] logits of the whole batch, in forward or backward: `chunk_size` positions of
    `hidden.reshape(-1, H)` at a time (a custom autograd Function; backward recomputes each
    chunk's logits, one more LM-head matmul). Same values and gradients as the dense path.

    - hidden [..., H]: the final hidden states (after the model's last norm); `hidden[..., t, :]`
      must be the state that PREDICTS `token_ids[..., t]` (shifted by one, as for logits).
    - weight [V, H]: the LM head's weight (tied embeddings included); gradients flow to both
      `hidden` and `weight` when they require them. An LM head with a bias or logit soft-capping
      is not covered.
    - returns logprobs (with gradient) and entropy (without), shaped like `token_ids`, in float32
      (float64 for float64 inputs)."""
    if temperature <= 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    if hidden.shape[:-1] != token_ids.shape or weight.dim() != 2 or weight.shape[1] != hidden.shape[-1]:
        raise ValueError(
            f"need hidden [..., H], token_ids [...] and weight [V, H]; got {tuple(hidden.shape)}, "
            f"{tuple(token_ids.shape)} and {tuple(weight.shape)}"
        )
    flat = hidden.reshape(-1, hidden.shape[-1])
    logprobs, entropy = _ChunkedLogprobs.apply(
        flat, weight, token_ids.reshape(-1).long(), float(temperature), int(chunk_size)
    )
    return logprobs.reshape(token_ids.shape), entropy.reshape(token_ids.shape)


def entropy_from_logits(logits: Tensor, temperature: float = 1.0) -> Tensor:
    """Entropy (nats) of softmax(logits / temperature) at each position: [..., V] -> [...].
    A metric (entropy collapse is an early sign of a policy that stopped exploring)."""
    flat = logits.reshape(-1, logits.shape[-1])
    chunks = [flat.new_zeros(0, dtype=torch.float32)]
    # In chunks of rows: a float32 [B*T, V] softmax of a 150k-token vocabulary would not fit.
    for chunk in flat.split(1024):
        logp = (chunk.float() / temperature).log_softmax(-1)
        # where(): a -inf logit (masked token) has p·log p = 0, not 0·(-inf) = NaN
        chunks.append(-torch.where(logp.isneginf(), 0.0, logp.exp() * logp).sum(-1))
    return torch.cat(chunks).reshape(logits.shape[:-1])

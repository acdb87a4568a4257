"""The learn pass's forward over one micro-batch of rows (rlvr.learner.packing.pack), four ways with one result.

- padded: the rows as pack lays them out, [rows, P + C] with left-padded prompts and right-padded completions;
- packed: every row's real tokens end to end in one sequence ([1, T], no padding at all), position ids
  restarting per row and each row's attention kept to itself: flash-attention's varlen kernel, which reads where
  each row starts from the position ids, or else rlvr.learner.row_attention, which attends each row on its own;
- either of them with the shared-prompt pass: each group's prompt runs once, and its keys/values (still in
  the autograd graph) serve the group's completions. Packed, the prompts of the micro-batch's groups are
  one sequence and their completions a second one that attends to its own group's prompt in the cache.

Each returns [rows, C, X] (X: the vocabulary, or the hidden size with the LM head removed), where position j
holds the output that predicts completion token j (0 past a row's end), and what it fed the model: how many
token positions and how many of them were real tokens, for the `padding_fraction` metric."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any

import torch

from rlvr.distributed import unwrap_model
from rlvr.learner.packing import EndToEnd, end_to_end
from rlvr.learner.protocol import Packed
from rlvr.learner.row_attention import row_layout, rows_attention

__all__ = ["ROWS", "VARLEN", "attention_kind", "completion_outputs", "packed_attention", "packs"]

#: attention implementations that rlvr.learner.row_attention stands in for on packed rows (same formula)
ROWS = ("sdpa", "eager")
#: attention implementations that find each row from the position ids (varlen kernels): no mask at all
VARLEN = ("flash_attention_2", "flash_attention_3")

#: what a pass returns: outputs [rows, C, X], token positions fed, real tokens among them
Result = tuple[torch.Tensor, int, int]


def packed_attention(device_type: str, packing: bool) -> str | None:
    """The attention to load the learner with: flash-attention 2 (its varlen kernel takes packed rows without a
    mask) on CUDA when packing and the flash_attn package is installed; else None, transformers' default (sdpa,
    for which packed rows go through rlvr.learner.row_attention)."""
    if packing and device_type == "cuda" and importlib.util.find_spec("flash_attn") is not None:
        return "flash_attention_2"
    return None


def attention_kind(model: Any) -> str:
    return str(getattr(unwrap_model(model).config, "_attn_implementation", None))


def packs(model: Any, recomputed: bool = False) -> bool:
    """Whether rows can be packed for this model's attention: one row_attention computes alike, or a varlen kernel.
    A layer `recomputed` in the backward (gradient checkpointing) runs outside row_attention's scope: only a varlen
    kernel packs there."""
    kind = attention_kind(model)
    return kind in VARLEN or (kind in ROWS and not recomputed)


def completion_outputs(
    model: Any, t: Packed, idx: slice, device: torch.device, *, shared: bool, packed: bool
) -> Result:
    """The outputs that predict each completion token of rows `idx`, by the pass the flags choose. A varlen
    kernel takes no mask, so packed rows there run their prompts per row (no shared-prompt pass)."""
    if packed and shared and attention_kind(model) in VARLEN:
        shared = False
    return PASSES[shared, packed](model, t, idx, device)


# ------------------------------------------------------------------------------ padded


def _padded(model: Any, t: Packed, idx: slice, dev: torch.device) -> Result:
    C = int(t["width"])
    ids, attention = t["input_ids"][idx], t["attention_mask"][idx]
    out = model(
        input_ids=ids.to(dev),
        attention_mask=attention.to(dev),
        position_ids=t["position_ids"][idx].to(dev),
        logits_to_keep=C + 1,
        use_cache=False,
    )
    return out.logits[:, :-1], ids.numel(), int(attention.sum())


def _padded_shared(model: Any, t: Packed, idx: slice, dev: torch.device) -> Result:
    """The same outputs as `_padded`, each group's (left-padded) prompt run once and its cache repeated for
    the group's n completions, so the prompt's share of the gradient is summed over them as in `_padded`."""
    n, C = int(t["group_size"]), int(t["width"])
    groups = slice(idx.start // n, idx.stop // n)
    prompt_ids, prompt_attention = t["prompt_ids"][groups], t["prompt_attention"][groups]
    prompt = model(
        input_ids=prompt_ids.to(dev),
        attention_mask=prompt_attention.to(dev),
        position_ids=(prompt_attention.cumsum(-1) - 1).clamp(min=0).to(dev),
        use_cache=True,
        logits_to_keep=1,
    )
    first = prompt.logits[:, -1:].repeat_interleave(n, dim=0)  # predicts each completion's first token
    fed, real = prompt_ids.numel(), int(prompt_attention.sum())
    if C == 1:
        return first, fed, real
    cache = prompt.past_key_values
    cache.batch_repeat_interleave(n)
    lengths = prompt_attention.sum(-1, keepdim=True).repeat_interleave(n, dim=0)
    completion_attention = t["attention_mask"][idx][:, -C:-1]
    rest = model(
        input_ids=t["completion"][idx][:, :-1].to(dev),  # the last token predicts nothing we score
        attention_mask=torch.cat([prompt_attention.repeat_interleave(n, dim=0), completion_attention], -1).to(dev),
        position_ids=(lengths + torch.arange(C - 1)).to(dev),
        past_key_values=cache,
        use_cache=True,
    )
    fed, real = fed + completion_attention.numel(), real + int(completion_attention.sum())
    return torch.cat([first, rest.logits], dim=1), fed, real


# ------------------------------------------------------------------------------ packed


def _placed(outputs: torch.Tensor, targets: torch.Tensor, rows: int, width: int) -> torch.Tensor:
    """outputs [N, X] placed at flat positions `targets` (row * width + j) of a zero [rows, width, X]."""
    placed = outputs.new_zeros(rows * width, outputs.shape[-1])
    return placed.index_copy(0, targets.to(outputs.device), outputs).view(rows, width, -1)


def _rows(t: Packed, idx: slice) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """Each row's real prompt and completion tokens."""
    C = int(t["width"])
    P = t["input_ids"].shape[1] - C
    prompts = [row[P - int(p) : P] for row, p in zip(t["input_ids"][idx], t["prompt_length"][idx], strict=True)]
    completions = [row[: int(c)] for row, c in zip(t["completion"][idx], t["length"][idx], strict=True)]
    return prompts, completions


def _forward(
    model: Any,
    seq: EndToEnd,
    dev: torch.device,
    prefixes: list[tuple[int, int]] | None = None,
    offset: int = 0,
    **kwargs: Any,
) -> Any:
    """One packed sequence through the model: its ids, its positions restarting per piece, each piece attending to
    itself and to its cached span `prefixes[i]` (rlvr.learner.row_attention.row_layout), or, under a varlen kernel,
    the pieces read from the positions (no cache there)."""
    ids, positions = seq.ids[None].to(dev), seq.positions[None].to(dev)
    if attention_kind(model) in VARLEN:
        return model(input_ids=ids, position_ids=positions, **kwargs)
    rows = row_layout(seq.lengths, prefixes, offset).to(dev)
    with rows_attention(model):
        return model(input_ids=ids, position_ids=positions, rows=rows, **kwargs)


def _packed(model: Any, t: Packed, idx: slice, dev: torch.device) -> Result:
    """Each row's prompt and completion (less its last token, which predicts nothing scored) end to end."""
    C = int(t["width"])
    prompts, completions = _rows(t, idx)
    live = [r for r, c in enumerate(completions) if len(c)]
    if not live:  # no completion token to predict at all: the padded pass's zeros-to-be, of the right width
        return _padded(model, t, idx, dev)
    seq = end_to_end([torch.cat([prompts[r], completions[r][:-1]]) for r in live], [0] * len(live))
    # completion token j of row r is predicted at its piece's position len(prompt) - 1 + j
    sources = torch.cat(
        [seq.starts[i] + len(prompts[r]) - 1 + torch.arange(len(completions[r])) for i, r in enumerate(live)]
    )
    targets = torch.cat([r * C + torch.arange(len(completions[r])) for r in live])
    out = _forward(model, seq, dev, logits_to_keep=sources.to(dev), use_cache=False)
    return _placed(out.logits[0], targets, len(completions), C), len(seq.ids), len(seq.ids)


def _packed_shared(model: Any, t: Packed, idx: slice, dev: torch.device) -> Result:
    """The groups' prompts end to end (each attending to itself), then every row's completion (less its last
    token) end to end, each attending to its group's prompt in the cache and to its own earlier tokens."""
    n, C = int(t["group_size"]), int(t["width"])
    groups = range(idx.start // n, idx.stop // n)
    P = t["prompt_ids"].shape[1]
    lengths = [int(t["prompt_attention"][g].sum()) for g in groups]
    prompts = end_to_end(
        [t["prompt_ids"][g, P - p :] for g, p in zip(groups, lengths, strict=True)],
        [0] * len(lengths),
    )
    last = prompts.starts + torch.tensor(lengths) - 1  # each group's last prompt token predicts its first tokens
    prompt = _forward(model, prompts, dev, logits_to_keep=last.to(dev), use_cache=True)
    _, completions = _rows(t, idx)
    group_of = [r // n for r in range(len(completions))]
    started = [r for r, c in enumerate(completions) if len(c)]
    outputs = [prompt.logits[0][torch.tensor([group_of[r] for r in started], dtype=torch.long).to(dev)]]
    targets = [torch.tensor([r * C for r in started], dtype=torch.long)]
    fed = len(prompts.ids)
    rest = [r for r in started if len(completions[r]) > 1]
    if rest:
        seq = end_to_end([completions[r][:-1] for r in rest], [lengths[group_of[r]] for r in rest])
        # each completion sees its group's prompt in the cache, all of it, and its own earlier tokens
        spans = [(int(prompts.starts[group_of[r]]), lengths[group_of[r]]) for r in rest]
        out = _forward(model, seq, dev, spans, len(prompts.ids), past_key_values=prompt.past_key_values, use_cache=True)
        outputs.append(out.logits[0])
        targets.append(torch.cat([r * C + 1 + torch.arange(len(completions[r]) - 1) for r in rest]))
        fed += len(seq.ids)
    return _placed(torch.cat(outputs), torch.cat(targets), len(completions), C), fed, fed


#: (shared prompt, packed) -> the pass
PASSES: dict[tuple[bool, bool], Callable[[Any, Packed, slice, torch.device], Result]] = {
    (False, False): _padded,
    (True, False): _padded_shared,
    (False, True): _packed,
    (True, True): _packed_shared,
}

"""LoRA for weight sync: the policy's weights under the base model's names, base + adapter merged, the copy an
engine that holds its own weights must generate with."""

from __future__ import annotations

from typing import Any

__all__ = ["merged_state_dict"]


def merged_state_dict(model: Any) -> dict[str, Any]:
    """The policy's weights under the base model's own names: as they are for a plain model; for a
    peft LoRA model, base + LoRA merged (what vLLM must generate with; a 4-bit base dequantized first),
    computed without touching the trainable adapter."""
    import torch

    if not hasattr(model, "peft_config"):
        return {k: v.detach() for k, v in model.state_dict().items()}
    from peft.tuners.lora import LoraLayer

    from rlvr.learner.quantize import dequantized

    with torch.no_grad():
        # a 4-bit base (QLoRA): its packed weight and quantization state leave, its dequantized weight comes in
        full = {_base_name(name): w for name, module in model.named_modules() if (w := dequantized(module)) is not None}
        packed = tuple(f"{m}.weight" for m in full)
        merged = {
            _base_name(name): tensor.detach()
            for name, tensor in model.state_dict().items()
            if "lora_" not in name
            and ".original_module." not in name  # a head peft trains whole: its copy
            and not _base_name(name).startswith(packed)
        }
        merged.update({f"{m}.weight": w for m, w in full.items()})
        for name, module in model.named_modules():
            if isinstance(module, LoraLayer) and module.active_adapters:
                weight = merged[_base_name(name) + ".weight"].clone()
                for adapter in module.active_adapters:
                    weight += module.get_delta_weight(adapter).to(weight.dtype)
                merged[_base_name(name) + ".weight"] = weight
    return merged


def _base_name(peft_name: str) -> str:
    return (
        peft_name.removeprefix("base_model.model.").replace(".base_layer", "").replace(".modules_to_save.default", "")
    )

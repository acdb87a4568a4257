"""QLoRA's frozen base: the model loaded 4-bit through bitsandbytes (nf4, double quantization, computing in
model.dtype), refused with one clear line where bitsandbytes has no 4-bit backend for the device."""

from __future__ import annotations

from typing import Any

from rlvr.errors import InputError

__all__ = ["dequantized", "four_bit_backend", "load_four_bit", "require_four_bit"]


def four_bit_backend(device: str) -> str | None:
    """Why bitsandbytes cannot run 4-bit layers on `device` here, or None when it can: its import, then one nf4
    quantize, dequantize and matmul on a small tensor (recent bitsandbytes runs them on CPU too)."""
    try:
        import bitsandbytes.functional as bnb_f
        import torch
    except ImportError as err:
        return f"bitsandbytes is not installed ({err}); pip install 'rlvr[qlora]'"
    try:
        weight = torch.randn(64, 64, device=device)
        packed, state = bnb_f.quantize_4bit(weight, quant_type="nf4", compress_statistics=True)
        restored = bnb_f.dequantize_4bit(packed, state)
        torch.ones(2, 64, device=device) @ restored.t()
    except (RuntimeError, NotImplementedError, AttributeError, ValueError) as err:
        return f"bitsandbytes {getattr(bnb_f, '__version__', '')} has no 4-bit backend for {device}: {err}"
    return None


def require_four_bit(device: str) -> None:
    """Refuse (exit 2) a 4-bit run where bitsandbytes cannot run one; never a silent full-precision fallback."""
    reason = four_bit_backend(device)
    if reason is not None:
        raise InputError(f"model.quantization=4bit: {reason}; use a CUDA GPU or drop model.quantization")


def load_four_bit(path: Any, *, compute_dtype: Any, device: Any) -> tuple[Any, Any]:
    """(model, tokenizer) as `rlvr.models.load_policy` gives them, with the model's linear layers in nf4 (double
    quantization) computing in `compute_dtype`, and the rest (embeddings, norms, the head) in `compute_dtype`."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    from rlvr.models import load_tokenizer, resolve_model

    folder = resolve_model(path)
    config = BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
    )
    model = AutoModelForCausalLM.from_pretrained(
        folder, quantization_config=config, dtype=compute_dtype, device_map={"": str(device)}
    )
    for module in model.modules():  # bitsandbytes' CPU inference layout (packed at an eval-mode forward) has no
        if hasattr(module, "support_avx512bf16_for_cpu"):  # backward: the learn pass would lose the input gradient
            module.support_avx512bf16_for_cpu = False
    tokenizer = load_tokenizer(folder)
    if model.generation_config is not None and model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def dequantized(module: Any) -> Any | None:
    """A bitsandbytes 4-bit linear layer's weight in full precision (its quantization state's dtype); None for
    any other module."""
    weight: Any = getattr(module, "weight", None)
    if getattr(weight, "quant_state", None) is None:
        return None
    import bitsandbytes.functional as bnb_f

    return bnb_f.dequantize_4bit(weight.data, weight.quant_state)

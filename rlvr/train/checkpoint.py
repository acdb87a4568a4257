"""Training checkpoints: weights via save_pretrained (a folder transformers and vLLM load as is, or a
peft adapter), plus optimizer, scheduler, RNG states and the data position, so a run resumes exactly."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

from rlvr.io import write_atomic

__all__ = ["latest_checkpoint", "load_training_state", "save_checkpoint", "save_final"]

STATE_FILE = "trainer_state.json"
TORCH_STATE_FILE = "training_state.pt"


def _rng_state() -> dict[str, Any]:
    import numpy as np
    import torch

    # numpy's global state, not a Generator: a checkpoint restores the state user code and libraries draw from
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}  # noqa: NPY002
    if torch.cuda.is_available():  # every visible device's generator (dropout, sampling on GPU)
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    import numpy as np
    import torch

    random.setstate(state["python"])
    np.random.set_state(state["numpy"])  # noqa: NPY002 - the global state others draw from, as saved above
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    directory: Path,
    *,
    model: Any,
    tokenizer: Any,
    optimizer: Any,
    scheduler: Any,
    state: dict[str, Any],
    keep_last: int = 2,
) -> Path:
    """Write DIR/checkpoints/step_<N>/ atomically (a temp folder renamed at the end), point
    DIR/checkpoints/latest at it, and delete all but the newest `keep_last`."""
    import torch

    root = Path(directory) / "checkpoints"
    target = root / f"step_{state['step']:06d}"
    tmp = root / f".tmp_step_{state['step']:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)  # a peft model writes its adapter
    tokenizer.save_pretrained(tmp)
    torch.save(
        {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(), "rng": _rng_state()},
        tmp / TORCH_STATE_FILE,
    )
    (tmp / STATE_FILE).write_text(json.dumps(state, indent=2, default=str) + "\n", encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    write_atomic(root / "latest", target.name + "\n")
    for old in sorted(root.glob("step_*"))[:-keep_last] if keep_last > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return target


def save_final(target: Path, model: Any, tokenizer: Any, *, state_dict: dict[str, Any] | None = None) -> Path:
    """Write a plain HF model folder at `target` (float32 master weights as trained) through a temporary
    folder renamed at the end: a killed run leaves the previous final/ or none, never half of one."""
    target = Path(target)
    tmp = target.with_name(f".tmp_{target.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    if state_dict is not None and getattr(model, "hf_quantizer", None) is not None:
        _save_plain(tmp, model, state_dict)  # a quantized base (QLoRA) would save its packed layers
    else:
        model.save_pretrained(
            tmp, safe_serialization=True, **({"state_dict": state_dict} if state_dict is not None else {})
        )
    tokenizer.save_pretrained(tmp)
    old = target.with_name(f".old_{target.name}")
    if target.exists():
        shutil.rmtree(old, ignore_errors=True)
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def _save_plain(folder: Path, model: Any, state_dict: dict[str, Any]) -> None:
    """`state_dict` (a quantized base's merged weights, dequantized) as a plain float32 HF folder: the model's
    config without its quantization, its generation config, the weights (tied ones as copies)."""
    import copy

    from safetensors.torch import save_file

    folder.mkdir(parents=True)
    config = copy.deepcopy(model.config)
    for key in ("quantization_config", "_pre_quantization_dtype"):
        config.__dict__.pop(key, None)
    config.save_pretrained(folder)
    if model.generation_config is not None:
        model.generation_config.save_pretrained(folder)
    weights = {k: (v.float() if v.is_floating_point() else v).detach().clone() for k, v in state_dict.items()}
    save_file({k: v.contiguous() for k, v in weights.items()}, str(folder / "model.safetensors"), {"format": "pt"})


def latest_checkpoint(directory: str | Path) -> Path | None:
    """The newest complete checkpoint of the run in `directory`, or None."""
    root = Path(directory) / "checkpoints"
    pointer = root / "latest"
    if pointer.exists():
        candidate = root / pointer.read_text(encoding="utf-8").strip()
        if (candidate / STATE_FILE).exists():
            return candidate
    done = [p for p in sorted(root.glob("step_*")) if (p / STATE_FILE).exists()]
    return done[-1] if done else None


def load_training_state(checkpoint: Path, *, optimizer: Any, scheduler: Any) -> dict[str, Any]:
    """Restore optimizer, scheduler and RNG states; return the trainer state (step, data position...)."""
    import torch

    saved = torch.load(checkpoint / TORCH_STATE_FILE, weights_only=False)
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    _set_rng_state(saved["rng"])
    return json.loads((checkpoint / STATE_FILE).read_text(encoding="utf-8"))

"""The vLLM engine's sleep levels, and on CPU what sleep does inside the worker: drop the linear layers' packed
weights and empty the KV cache's memory while the learner runs, then give the memory back at the next sync."""

from __future__ import annotations

from typing import Any

from rlvr.errors import InputError

__all__ = ["SLEEP_LEVELS", "drop_packed_weights", "kv_storages", "resolve_sleep_level", "restore_kv_cache"]

SLEEP_LEVELS = {
    0: "no sleep: sleep() and wake() do nothing",
    1: "weights offloaded to CPU memory, KV cache discarded; wake_up() restores both (CUDA)",
    2: "weights and KV cache discarded; wake_up(weights), then sync_weights loads weights and wakes the KV cache "
    "(CUDA); on CPU the linear layers' packed weights and the KV cache's memory are dropped, and sync_weights "
    "brings both back",
}


def resolve_sleep_level(level: int | None, on_cpu: bool) -> int:
    """None: 1 on CUDA (the weights survive in CPU memory), 2 on CPU (packed copies and KV memory are dropped)."""
    if level is None:
        return 2 if on_cpu else 1
    if level not in SLEEP_LEVELS:
        raise InputError(f"vllm sleep_level must be one of {', '.join(map(str, SLEEP_LEVELS))}, got {level}")
    if level == 1 and on_cpu:
        raise InputError("vllm sleep_level 1 needs CUDA (it offloads GPU memory to the CPU); on CPU use 2 or 0")
    return level


def released(*_: Any) -> Any:
    raise RuntimeError("this vllm engine's packed weights were dropped by sleep(): sync_weights must come first")


def drop_packed_weights(worker: Any) -> int:
    """Inside the vLLM-CPU worker: drop every layer's packed GEMM kernel (`cpu_linear`, which holds the
    oneDNN copy of the weights). reload_weights re-runs process_weights_after_loading, which packs new
    ones; a generate before that raises instead of computing with missing weights. The KV cache's memory
    goes too (`kv_storages`), until `restore_kv_cache`."""
    dropped = 0
    for module in worker.model_runner.model.modules():
        if callable(getattr(module, "cpu_linear", None)):
            module.cpu_linear = released
            dropped += 1
    worker.rlvr_kv_bytes = [(storage, storage.nbytes()) for storage in kv_storages(worker)]
    for storage, _ in worker.rlvr_kv_bytes:
        storage.resize_(0)
    return dropped


def kv_storages(worker: Any) -> list[Any]:
    """The distinct storages behind the worker's KV cache tensors (layers may share one). Emptied, every
    tensor and view of them stays bound where vLLM put it; resized back, they hold memory again, and its
    old contents do not matter: the prefix cache is reset after every sync."""
    storages = {}
    for tensor in getattr(worker.model_runner, "kv_caches", None) or []:
        storage = tensor.untyped_storage()
        storages.setdefault(storage.data_ptr(), storage)
    return list(storages.values())


def restore_kv_cache(worker: Any) -> int:
    """Inside the vLLM-CPU worker: give the KV cache emptied by `drop_packed_weights` its memory back,
    zeroed as vLLM allocates it (reused memory could hold NaN bit patterns in slots a kernel reads and
    masks). Returns the bytes restored."""
    import torch

    restored = 0
    for storage, nbytes in getattr(worker, "rlvr_kv_bytes", []):
        storage.resize_(nbytes)
        torch.empty(0, dtype=torch.uint8, device=storage.device).set_(storage).zero_()
        restored += nbytes
    worker.rlvr_kv_bytes = []
    return restored

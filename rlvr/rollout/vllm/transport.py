"""How the trainer's weights reach a vLLM server, through vLLM's own weight-reload path: a table of transports.

- file: the weights as one safetensors file in a folder the server reads at the same path, then
  `POST /collective_rpc` `reload_weights(weights_path=FOLDER)`. Server: `VLLM_SERVER_DEV_MODE=1`.
  Run here (CPU, loopback; tests/rollout/test_rollout_vllm_server.py).
- nccl: vLLM's NCCL weight-transfer engine, the trainer as rank 0 beside the server's workers:
  `/init_weight_transfer_engine` once, then per sync `/start_weight_update`, `/update_weights` while the
  trainer broadcasts, `/finish_weight_update`. Server: `VLLM_SERVER_DEV_MODE=1` and
  `--weight-transfer-config '{"backend": "nccl"}'`, GPUs on both sides. Written to vLLM 0.32's API and
  NOT RUN: this machine has no GPU.

Each is a class with `push(client, weights)`; `rlvr serve --transport NAME` starts a server that accepts it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from rlvr import names
from rlvr.errors import InputError
from rlvr.rollout.vllm.client import ServerClient

__all__ = ["TRANSPORTS", "FileTransport", "NcclTransport", "create_transport"]

_FILE = "model.safetensors"


class FileTransport:
    """One safetensors file in `folder` (a folder the server reads at the same path: on one machine any
    folder, across nodes a shared filesystem), written whole then renamed, and reloaded by the server."""

    name = "file"
    server_options: tuple[str, ...] = ()

    def __init__(self, folder: str | os.PathLike | None = None, **_: Any) -> None:
        self.folder = Path(folder) if folder else Path(tempfile.mkdtemp(prefix="rlvr-weights-"))
        self.folder.mkdir(parents=True, exist_ok=True)

    def push(self, client: ServerClient, weights: Sequence[tuple[str, Any]]) -> dict[str, Any]:
        from safetensors.torch import save_file

        tensors, seen = {}, set()
        for name, given in weights:  # every name, a tied one too (copied: safetensors refuses shared memory)
            tensor = given.detach().contiguous().cpu()
            tensors[name] = tensor.clone() if tensor.data_ptr() in seen else tensor
            seen.add(tensor.data_ptr())
        partial = self.folder / (_FILE + ".partial")  # not *.safetensors: the loader never sees half a file
        save_file(tensors, str(partial))
        partial.replace(self.folder / _FILE)
        client.post(
            "/collective_rpc",
            {"method": "reload_weights", "kwargs": {"weights_path": str(self.folder), "is_checkpoint_format": True}},
        )
        return {"transport": self.name, "bytes": sum(t.numel() * t.element_size() for t in tensors.values())}

    def close(self) -> None:
        """The folder is left for the next push or run (it holds one file, overwritten each sync)."""


class NcclTransport:
    """vLLM's NCCL weight-transfer engine: the trainer is rank 0 of a group with the server's workers and
    broadcasts every tensor at each sync. Set up on the first push. NOT RUN here (no GPU)."""

    name = "nccl"
    server_options = ("--weight-transfer-config", '{"backend": "nccl"}')

    def __init__(self, master_address: str | None = None, master_port: int = 29555, rank: int = 0, **_: Any) -> None:
        self.master_address = master_address or os.environ.get("MASTER_ADDR", "127.0.0.1")
        self.master_port = master_port + rank  # a group of its own per trainer rank and server
        self._engine: Any = None
        self._weights: Sequence[tuple[str, Any]] = ()

    def push(self, client: ServerClient, weights: Sequence[tuple[str, Any]]) -> dict[str, Any]:
        self._weights = [(name, tensor.cuda()) for name, tensor in weights]
        if self._engine is None:
            self._engine = self._start(client)
        self._engine.send_weights()
        return {"transport": self.name, "bytes": sum(t.numel() * t.element_size() for _, t in self._weights)}

    def _start(self, client: ServerClient) -> Any:
        from vllm.distributed.weight_transfer.base import ParamMeta, WeightSource
        from vllm.distributed.weight_transfer.clients import HTTPVLLMWeightSyncClient
        from vllm.distributed.weight_transfer.nccl_engine import NCCLTrainerInitInfo, NCCLTrainerWeightTransferEngine

        transport = self

        class _Latest(WeightSource):  # the last pushed weights, in a fixed order
            def metadata(self) -> list[Any]:
                return [ParamMeta(n, t.dtype, tuple(t.shape)) for n, t in transport._weights]

            def __iter__(self) -> Iterator[tuple[str, Any]]:
                return iter(transport._weights)

        servers = int(client.get("/get_world_size")["world_size"])
        info = NCCLTrainerInitInfo(self.master_address, self.master_port, 1 + servers, rank=0)
        sync = HTTPVLLMWeightSyncClient(client.url, timeout=client.timeout)
        return NCCLTrainerWeightTransferEngine.trainer_init(info, client=sync, source=_Latest())

    def close(self) -> None:
        if self._engine is not None:
            self._engine.shutdown()
            self._engine = None


#: transport name -> "module:class" (rollout.transport; `rlvr serve --transport`): the table of rlvr.names
TRANSPORTS = names.WEIGHT_TRANSPORTS


def create_transport(name: str, **options: Any) -> Any:
    if name not in TRANSPORTS:
        raise InputError(f"rollout.transport={name!r}: choose one of {', '.join(TRANSPORTS)}")
    return names.load(TRANSPORTS, name)(**options)

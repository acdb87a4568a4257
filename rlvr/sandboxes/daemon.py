"""The docker daemon connection the docker backend and the image builder share."""

from __future__ import annotations

import os

from rlvr.sandboxes.base import SandboxError

__all__ = ["connect"]


def connect(base_url: str | None = None):
    """A docker client that answered a ping, else SandboxError saying where it looked."""
    try:
        import docker
        import docker.errors
    except ImportError as err:
        raise SandboxError("the docker SDK is not installed (pip install docker)") from err
    where = base_url or os.environ.get("DOCKER_HOST") or "the default socket"
    try:
        client = docker.DockerClient(base_url=base_url) if base_url else docker.from_env()
        client.ping()
    # the SDK's own errors (no socket, bad protocol, API error); requests' connection errors are
    # OSError; a malformed DOCKER_HOST url is ValueError
    except (docker.errors.DockerException, OSError, ValueError) as err:
        raise SandboxError(f"docker daemon not reachable at {where}: {err}") from None
    return client

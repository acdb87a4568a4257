"""Build the docker sandbox image without a registry (debootstrap a minimal Debian with python3,
then `docker import`), or from a Dockerfile where a registry is reachable."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rlvr.sandboxes.base import SandboxError
from rlvr.sandboxes.daemon import connect

__all__ = ["DEFAULT_IMAGE", "apt_mirror", "build_image"]

DEFAULT_IMAGE = "rlvr-sandbox:latest"
#: the python3 package (not python3-minimal): solutions import hashlib, json, re, collections ...
PACKAGES = ("python3",)
#: what a sandbox never needs; dropping it keeps the image small, which matters with the vfs
#: storage driver (every container is a full copy of the image)
TRIM = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "var/cache/apt",
    "var/lib/apt/lists",
    "usr/share/lintian",
    "usr/share/zoneinfo",
)
CHANGES = [
    'LABEL rlvr.sandbox.image="1"',
    "USER 65534:65534",
    "WORKDIR /work",
    "ENV PATH=/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8",
    'CMD ["sleep", "infinity"]',
]
DOCKERFILE = """FROM python:3.11-slim
LABEL rlvr.sandbox.image="1"
RUN mkdir -p /work && chmod 1777 /work
USER 65534:65534
WORKDIR /work
CMD ["sleep", "infinity"]
"""


def apt_mirror(sources: Path = Path("/etc/apt")) -> str:
    """The Debian mirror apt already uses here (deb822 or one-line sources), else deb.debian.org."""
    files = [*sorted(sources.glob("sources.list.d/*.sources")), sources / "sources.list"]
    files += sorted(sources.glob("sources.list.d/*.list"))
    for path in files:
        try:
            text = path.read_text()
        except OSError:
            continue
        for m in re.finditer(r"^(?:URIs:\s*|deb\s+(?:\[[^\]]*\]\s*)?)(\S+)", text, re.MULTILINE):
            uri = m.group(1)
            if "security" not in uri and "/debian" in uri:
                return uri
    return "http://deb.debian.org/debian"


def build_image(
    tag: str = DEFAULT_IMAGE,
    *,
    method: str = "debootstrap",
    suite: str = "bookworm",
    mirror: str | None = None,
    client=None,
    log: Callable[[str], None] = print,
) -> dict:
    """Build the sandbox image and return {"tag", "id", "seconds", "size_mb"}.

    Raises SandboxError when docker or debootstrap is missing or a step fails."""
    client = client or connect()
    started = time.perf_counter()
    builders = {"debootstrap": _debootstrap, "dockerfile": _dockerfile}
    if method not in builders:
        raise SandboxError(f"unknown image build method {method!r} (known: {', '.join(builders)})")
    image = builders[method](client, tag, suite=suite, mirror=mirror or apt_mirror(), log=log)
    return {
        "tag": tag,
        "id": image.id,
        "seconds": round(time.perf_counter() - started, 1),
        "size_mb": round(image.attrs.get("Size", 0) / 2**20, 1),
    }


def _debootstrap(client, tag: str, *, suite: str, mirror: str, log: Callable[[str], None]):
    if shutil.which("debootstrap") is None:
        raise SandboxError("debootstrap is not installed (apt-get install debootstrap), or use --method dockerfile")
    if os.geteuid() != 0:
        raise SandboxError("debootstrap needs root")
    with tempfile.TemporaryDirectory(prefix="rlvr-image-") as tmp:
        root = Path(tmp) / "rootfs"
        cmd = ["debootstrap", "--variant=minbase", f"--include={','.join(PACKAGES)}", suite, str(root), mirror]
        log(f"$ {' '.join(cmd)}")
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            output = done.stderr.strip()[-2000:] or done.stdout.strip()[-2000:]
            raise SandboxError(f"debootstrap failed (exit {done.returncode}): {output}")
        for rel in TRIM:
            shutil.rmtree(root / rel, ignore_errors=True)
        (root / "work").mkdir(mode=0o1777, exist_ok=True)
        os.chmod(root / "work", 0o1777)
        log(f"importing {root} as {tag}")
        tar = subprocess.Popen(["tar", "-C", str(root), "--numeric-owner", "-cf", "-", "."], stdout=subprocess.PIPE)
        try:
            repository, _, version = tag.rpartition(":") if ":" in tag.split("/")[-1] else (tag, "", "latest")
            client.api.import_image_from_stream(tar.stdout, repository=repository, tag=version, changes=CHANGES)
        except Exception as err:
            raise SandboxError(f"docker import of {tag} failed: {err}") from err
        finally:
            tar.stdout.close()
            tar.wait()
    return client.images.get(tag)


def _dockerfile(client, tag: str, *, log: Callable[[str], None], **_: object):
    import io

    log(f"building {tag} from a Dockerfile (needs a reachable registry for python:3.11-slim)")
    try:
        image, _ = client.images.build(fileobj=io.BytesIO(DOCKERFILE.encode()), tag=tag, rm=True)
    except Exception as err:
        raise SandboxError(f"docker build of {tag} failed: {err}") from err
    return image

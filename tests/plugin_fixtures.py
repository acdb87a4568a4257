"""Plugin distributions really installed with pip, offline, each into its own folder for PYTHONPATH."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "rlvr-plugin-example"


def pip_install(source: Path, target: Path) -> None:
    """Install the distribution at `source` into `target`: offline, no build isolation (this environment's
    setuptools), no dependencies."""
    cmd = [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index"]
    cmd += ["--disable-pip-version-check", "-q", "--target", str(target), str(source)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr


def install_example(root: Path) -> Path:
    """The README's example plugin (a verifier and an environment), built from a copy so the build leaves
    nothing in the repository; the folder to put on PYTHONPATH."""
    source = root / "src" / "rlvr-plugin-example"
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    pip_install(source, root / "site-example")
    return root / "site-example"

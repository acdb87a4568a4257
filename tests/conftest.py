"""Shared test fixtures: where the reference data is, and skip-or-fail for optional backends."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def default_data_dir() -> Path:
    return Path(os.environ.get("RLVR_DATA_DIR") or REPO.parent / "shared" / "data")


# Tests read the shared reference data through the same env var users set.
os.environ.setdefault("RLVR_DATA_DIR", str(default_data_dir()))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = default_data_dir()
    if not (path / "gsm8k" / "test.jsonl").exists():
        pytest.fail(f"reference data not found at {path}: set RLVR_DATA_DIR")
    return path


def need(backend: str, available: bool, why: str = "") -> None:
    """Skip when a backend is missing, except where CI sets RLVR_REQUIRE_<BACKEND>=1: there a
    missing backend is a failure, so a green run cannot hide skipped docker/bwrap/vllm tests."""
    if available:
        return
    message = f"{backend} not available here" + (f": {why}" if why else "")
    if os.environ.get(f"RLVR_REQUIRE_{backend.upper()}") == "1":
        pytest.fail(message)
    pytest.skip(message)

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


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory) -> Path:
    """A tiny random Llama with SmolLM2's tokenizer (rlvr.testing.make_tiny_model), built once."""
    from rlvr.testing import make_tiny_model

    return make_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def vllm_engine(tiny_model):
    """THE vllm engine of the test session (start-up is slow; one in-process LLM is enough),
    serving `tiny_model` in float32. A test that syncs other weights into it must sync the
    tiny model's own weights back before it ends."""
    import importlib.util

    need("vllm", importlib.util.find_spec("vllm") is not None)
    from rlvr.rollout import create_engine

    engine = create_engine("vllm", tiny_model, dtype="float32", max_model_len=1024, seed=0)
    yield engine
    engine.close()

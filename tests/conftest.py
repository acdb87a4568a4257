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


#: the sandbox backends whose parametrized cases only the full suite runs: the inner loop (`-m "not slow"`) runs each
#: backend-parametrized case on bwrap, the real boundary that needs no daemon
FULL_SUITE_BACKENDS = ("docker", "local")


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `slow` (the full suite and CI still run them) the cases parametrized on docker or local and the tests
    that need a vLLM engine: what keeps `pytest -m "not slow"` within its 3-minute budget on 2 cores."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        ids = set(callspec.id.split("-")) if callspec is not None else set()
        if ids & set(FULL_SUITE_BACKENDS) or item.get_closest_marker("vllm"):
            item.add_marker(pytest.mark.slow)


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

    engine = create_engine("vllm", tiny_model, dtype="float32", max_model_len=1024, seed=0, disable_log_stats=False)
    yield engine
    engine.close()


@pytest.fixture(scope="module")
def vllm_server(tiny_model, tmp_path_factory):
    """A real `rlvr serve` (a stock vLLM OpenAI server, its own process group) on the loopback, serving
    `tiny_model` in float32: started once for the module that asks for it, stopped after it. Yields its url,
    process and log. Start-up is slow on CPU (minutes on a loaded machine)."""
    import importlib.util
    import signal
    import socket
    import subprocess
    import sys
    import time
    import urllib.request
    from types import SimpleNamespace

    need("vllm", importlib.util.find_spec("vllm") is not None)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = tmp_path_factory.mktemp("vllm-server") / "server.log"
    command = [sys.executable, "-m", "rlvr", "serve", "--model", str(tiny_model), "--port", str(port)]
    command += ["--dtype", "float32", "--max-model-len", "512", "--kv-cache-gib", "0.5"]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    url, deadline = f"http://127.0.0.1:{port}", time.monotonic() + 900
    try:
        while True:
            try:
                urllib.request.urlopen(url + "/v1/models", timeout=5).close()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"vllm server did not start (exit {process.poll()}):\n{log.read_text()[-3000:]}")
                time.sleep(2)
        yield SimpleNamespace(url=url, process=process, log=log)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

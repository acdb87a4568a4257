"""The vllm-server engine against a stub HTTP server (no vLLM, quick): the requests it builds, the Rollouts it makes
of the answers, the weight push, retries with backoff, and each failure's one clear error and exit code."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from rlvr.errors import EngineUnavailable, InputError
from rlvr.rollout import SamplingConfig, TokenPrompt, capabilities
from rlvr.rollout.vllm.client import ServerClient, ServerRefused
from rlvr.rollout.vllm.server import ServerEngine


class Stub:
    """A vLLM server's endpoints as rlvr uses them. `fail[path]` = statuses to answer before the real one;
    `restart()` forgets the weight version, as a restarted server does."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, Any]] = []
        self.fail: dict[str, list[int]] = {}
        self.version, self.reloads = "default", 0
        self.routes: dict[str, Callable[[Any], Any]] = {
            "GET /v1/models": lambda _: {"data": [{"id": "stub-model", "max_model_len": 64}]},
            "GET /weight_info": lambda _: {"weight_version": self.version},
            "POST /update_weight_version": self._set_version,
            "POST /reset_prefix_cache": lambda _: None,
            "POST /collective_rpc": self._rpc,
            "POST /v1/completions": self._complete,
        }

    def _set_version(self, body: dict) -> dict:
        self.version = body["new_version"]
        return {"success": True}

    def _rpc(self, body: dict) -> dict:
        self.reloads += body["method"] == "reload_weights"
        return {"results": [None]}

    def _complete(self, body: dict) -> dict:
        shift = 0.1 * self.reloads  # new weights move the logprobs, as real ones do
        length = min(body["max_tokens"], 3)
        choices = [
            {
                "index": j,
                "text": "abc",
                "token_ids": [100 + body["seed"] % 50 + j + k for k in range(length)],
                "logprobs": {"token_logprobs": [-0.5 - shift] * length},
                "finish_reason": "length",
                "stop_reason": None,
            }
            for j in reversed(range(body["n"]))  # out of order: the engine sorts by index
        ]
        return {"choices": choices}

    def restart(self) -> None:
        self.version = "default"

    def answer(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        self.requests.append((method, path, body))
        pending = self.fail.get(path) or []
        if pending:
            return pending.pop(0), {"error": {"message": "stub says no"}}
        route = self.routes.get(f"{method} {path.split('?')[0]}")
        return (404, {"detail": "Not Found"}) if route is None else (200, route(body))

    def sent(self, path: str) -> list[Any]:
        return [body for _, p, body in self.requests if p == path]


@pytest.fixture
def stub():
    state = Stub()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, method: str) -> None:
            size = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(size)) if size else None
            status, answer = state.answer(method, self.path, body)
            data = b"" if answer is None else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            self._reply("GET")

        def do_POST(self) -> None:
            self._reply("POST")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def engine(stub, tiny_model, tmp_path):
    return ServerEngine(tiny_model, url=stub.url, weights_dir=str(tmp_path / "w"), server_retries=2, backoff=0.01)


def test_it_declares_what_the_loop_needs(engine):
    assert capabilities(engine) == {"holds_weights": True, "sampler_logprobs": True, "can_sleep": False}
    assert engine.max_model_len == 64 and engine.served_model == "stub-model"


def test_requests_carry_token_ids_own_seeds_and_budgets_and_ask_for_sampled_tokens(engine, stub):
    ids = engine.tokenizer("Say hi", add_special_tokens=False)["input_ids"]
    sampling = SamplingConfig(temperature=0.7, top_p=0.9, top_k=5, max_new_tokens=10, seed=40, stop=("\n",))
    stub.requests.clear()
    rollouts = engine.generate(["Say hi", TokenPrompt((1, 2, 3), seed=9, max_new_tokens=2)], 2, sampling)
    bodies = stub.sent("/v1/completions")
    first, second = (next(b for b in bodies if b["seed"] == seed) for seed in (40, 9))
    assert first["prompt"] == ids and second["prompt"] == [1, 2, 3]
    assert (first["seed"], first["max_tokens"], second["seed"], second["max_tokens"]) == (40, 10, 9, 2)
    for body in (first, second):
        assert {k: body[k] for k in ("n", "temperature", "top_p", "top_k", "stop", "logprobs", "model")} == {
            "n": 2,
            "temperature": 0.7,
            "top_p": 0.9,
            "top_k": 5,
            "stop": ["\n"],
            "logprobs": 0,
            "model": "stub-model",
        }
        assert body["return_token_ids"] is True
    assert [r.prompt_index for r in rollouts] == [0, 0, 1, 1]
    assert rollouts[0].token_ids == (140, 141, 142) and rollouts[1].token_ids == (141, 142, 143)  # by choice index
    assert rollouts[0].prompt_token_ids == tuple(ids) and rollouts[2].prompt_token_ids == (1, 2, 3)
    assert rollouts[2].logprobs == (-0.5, -0.5) and rollouts[0].finish_reason == "length"


def test_a_stop_string_cuts_like_every_engine(engine, stub):
    ids = engine.tokenizer("Hello world. Bye", add_special_tokens=False)["input_ids"]
    stub.routes["POST /v1/completions"] = lambda body: {
        "choices": [
            {
                "index": 0,
                "text": "Hello world",
                "token_ids": ids,
                "logprobs": {"token_logprobs": [-1.0] * len(ids)},
                "finish_reason": "stop",
                "stop_reason": ".",
            }
        ]
    }
    (rollout,) = engine.generate(["x"], 1, SamplingConfig(max_new_tokens=8, seed=0, stop=(".",)))
    kept = engine.tokenizer.decode(list(rollout.token_ids))
    assert rollout.text == "Hello world" and kept.endswith(".") and "Bye" not in kept
    assert rollout.finish_reason == "stop" and len(rollout.logprobs) == len(rollout.token_ids)


def test_a_sync_writes_the_weights_reloads_them_and_checks_the_probe(engine, stub, tiny_model, tmp_path):
    weights = load_file(tiny_model / "model.safetensors")
    report = engine.sync_weights({f"module.{k}": v + 1 for k, v in weights.items()})  # a wrapper's prefix too
    on_disk = load_file(tmp_path / "w" / "model.safetensors")
    # the tied head is named too (vLLM's in-place reload leaves an unnamed tied head stale)
    assert set(on_disk) == {*weights, "lm_head.weight"} and "lm_head.weight" not in weights
    assert all(torch.equal(on_disk[k], weights[k] + 1) for k in weights)
    assert torch.equal(on_disk["lm_head.weight"], on_disk["model.embed_tokens.weight"])
    (rpc,) = stub.sent("/collective_rpc")
    assert rpc == {
        "method": "reload_weights",
        "kwargs": {"weights_path": str(tmp_path / "w"), "is_checkpoint_format": True},
    }
    order = [p for _, p, _ in stub.requests]
    assert order.index("/collective_rpc") < order.index("/reset_prefix_cache") < len(order) - 1
    assert report["changed"] is True and report["sync"] == 1 and report["transport"] == "file"
    assert stub.version == report["weight_version"] == engine.version and stub.version.endswith("-1")


def test_a_sync_that_moved_nothing_is_reported_unchanged(engine, stub, tiny_model, caplog):
    stub.routes["POST /collective_rpc"] = lambda body: {"results": [None]}  # the server ignores the push
    report = engine.sync_weights(load_file(tiny_model / "model.safetensors"))
    assert report["changed"] is False and "WEIGHT SYNC CHANGED NOTHING" in caplog.text


def test_transient_failures_are_retried_with_backoff_then_succeed(engine, stub):
    waits: list[float] = []
    engine.client.sleep = waits.append
    stub.fail["/v1/completions"] = [503, 502]
    (rollout,) = engine.generate(["x"], 1, SamplingConfig(max_new_tokens=2, seed=0))
    assert rollout.token_ids and waits == [0.01, 0.02]


def test_a_server_lost_mid_run_is_engine_unavailable_after_its_retries(engine, stub):
    waits: list[float] = []
    engine.client.sleep = waits.append
    stub.fail["/v1/completions"] = [503] * 3
    with pytest.raises(EngineUnavailable, match=r"did not answer POST /v1/completions: 3 tries.*HTTP 503") as err:
        engine.generate(["x"], 1, SamplingConfig(max_new_tokens=2, seed=0))
    assert err.value.exit_code == 1 and waits == [0.01, 0.02]


def test_a_restarted_server_is_refused_before_its_rollouts_or_a_sync_are_used(engine, stub, tiny_model):
    stub.restart()
    with pytest.raises(EngineUnavailable, match=r"serves weight version 'default'.*restarted"):
        engine.generate(["x"], 1, SamplingConfig(max_new_tokens=2, seed=0))
    with pytest.raises(EngineUnavailable, match="restarted"):
        engine.sync_weights(load_file(tiny_model / "model.safetensors"))
    assert not stub.sent("/collective_rpc")


def test_a_torchrun_rank_takes_its_own_server_of_the_list_and_its_own_folder(stub, tiny_model, tmp_path):
    engine = ServerEngine(tiny_model, url=f"http://127.0.0.1:9, {stub.url}", rank=3, weights_dir=str(tmp_path))
    assert engine.client.url == stub.url and engine.transport.folder == tmp_path / "rank-3"


def test_a_bad_request_is_not_retried(stub):
    client = ServerClient(stub.url, retries=3, sleep=lambda s: pytest.fail("retried a 400"))
    stub.fail["/v1/completions"] = [400]
    with pytest.raises(ServerRefused, match=r"refused POST /v1/completions \(400\): stub says no"):
        client.post("/v1/completions", {})


def test_no_server_at_start_is_one_input_error(tiny_model):
    with pytest.raises(InputError, match=r"no vLLM server answers at rollout.url=http://127.0.0.1:9.*rlvr serve"):
        ServerEngine(tiny_model, url="http://127.0.0.1:9", backoff=0.01)
    with pytest.raises(InputError, match=r"needs the server's address: --set rollout\.url"):
        ServerEngine(tiny_model)


def test_a_server_without_the_dev_endpoints_is_one_input_error(stub, tiny_model):
    del stub.routes["POST /update_weight_version"]
    with pytest.raises(InputError, match="no weight-reload endpoints: start it with VLLM_SERVER_DEV_MODE=1"):
        ServerEngine(tiny_model, url=stub.url)


def test_rlvr_serve_gives_the_server_what_the_engine_needs():
    from rlvr.cli.serve import server_command

    env, args = server_command("M", port=8011, max_model_len=512, kv_cache_gib=1.5, extra=("--max-num-seqs", "8"))
    line = " ".join(args)
    assert env == {"VLLM_SERVER_DEV_MODE": "1"} and f"--kv-cache-memory-bytes {3 * 2**29}" in line
    assert args[0] == "M" and "--port 8011" in line and "--max-model-len 512" in line
    assert "--logprobs-mode processed_logprobs" in line and "--dtype bfloat16" in line
    assert "--enforce-eager" in line and "--no-enable-chunked-prefill" in line and line.endswith("--max-num-seqs 8")
    _, gpu = server_command("M", port=1, transport="nccl", on_cpu=False)
    assert "--enforce-eager" not in gpu and gpu[-2:] == ["--weight-transfer-config", '{"backend": "nccl"}']


def test_rlvr_serve_dry_run_prints_the_vllm_serve_line(tiny_model):
    from click.testing import CliRunner

    from rlvr.cli import main

    result = CliRunner().invoke(main, ["serve", "--model", str(tiny_model), "--port", "8012", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert f"VLLM_SERVER_DEV_MODE=1 vllm serve {Path(tiny_model)} --host 127.0.0.1 --port 8012" in result.output


def test_rlvr_train_with_no_server_is_one_line_and_exit_2_before_the_policy_loads(tiny_model, tmp_path):
    from click.testing import CliRunner

    from rlvr.cli import main

    args = ["train", "--engine", "vllm-server", "--model", str(tiny_model), "--output", str(tmp_path / "run")]
    args += ["--set", "rollout.url=http://127.0.0.1:9", "--set", "reward.audit=false", "--set", "device=cpu"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert "no vLLM server answers at rollout.url=http://127.0.0.1:9" in line and "rlvr serve --model" in line

"""A JSON-over-HTTP client for a stock `vllm serve`: a timeout per request, retries with backoff, one clear error.

Only the standard library (urllib): the trainer that drives a server on another node needs no vLLM installed.
A refused connection, a timeout or a 5xx answer is retried `retries` times, waiting `backoff`, 2×, 4×, ...
seconds (at most `max_backoff`); then EngineUnavailable (exit 1). A 4xx answer is the request's fault and
is never retried: ServerRefused, with the server's own message.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rlvr.errors import EngineUnavailable, RlvrError

__all__ = ["ServerClient", "ServerRefused", "is_transient"]

log = logging.getLogger(__name__)


class ServerRefused(RlvrError):
    """The server answered 4xx: the request is wrong (or the endpoint missing); retrying cannot help."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


def is_transient(error: BaseException) -> bool:
    """Whether a failed request may succeed when tried again: no connection, a timeout, a 5xx answer."""
    if isinstance(error, urllib.error.HTTPError):
        return error.code >= 500
    return isinstance(error, (urllib.error.URLError, TimeoutError, ConnectionError))


@dataclass
class ServerClient:
    """Requests to one server at `url` (http://HOST:PORT, no trailing path)."""

    url: str
    timeout: float = 300.0  # seconds one request may take
    retries: int = 4  # tries after the first, for transient failures
    backoff: float = 1.0  # seconds before the first retry; doubles each time
    max_backoff: float = 30.0
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        self.url = self.url.rstrip("/")

    def get(self, path: str, *, retries: int | None = None) -> Any:
        return self.request("GET", path, None, retries=retries)

    def post(self, path: str, body: Any = None, *, retries: int | None = None) -> Any:
        return self.request("POST", path, {} if body is None else body, retries=retries)

    def request(self, method: str, path: str, body: Any, *, retries: int | None = None) -> Any:
        """The decoded JSON answer (None for an empty one), after up to `retries` retries."""
        tries = 1 + (self.retries if retries is None else retries)
        started, wait = time.monotonic(), self.backoff
        for attempt in range(1, tries + 1):
            try:
                return self._once(method, path, body)
            except (urllib.error.URLError, TimeoutError, ConnectionError) as err:
                if isinstance(err, urllib.error.HTTPError) and err.code < 500:
                    raise ServerRefused(
                        f"the vLLM server at {self.url} refused {method} {path} ({err.code}): {_detail(err)}", err.code
                    ) from None
                if attempt == tries:
                    raise EngineUnavailable(
                        f"the vLLM server at {self.url} did not answer {method} {path}: {tries} tries over "
                        f"{time.monotonic() - started:.0f} s, last: {_reason(err)}"
                    ) from None
                log.warning(
                    "vLLM server %s: %s %s failed (%s), retry %d/%d in %.1f s",
                    self.url,
                    method,
                    path,
                    _reason(err),
                    attempt,
                    tries - 1,
                    wait,
                )
                self.sleep(wait)
                wait = min(2 * wait, self.max_backoff)
        raise AssertionError("unreachable")

    def _once(self, method: str, path: str, body: Any) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            raw = response.read()
        return json.loads(raw) if raw.strip() else None


def _reason(err: BaseException) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {_detail(err)}"
    reason = getattr(err, "reason", None) or err
    return f"{type(reason).__name__}: {reason}" if isinstance(reason, BaseException) else str(reason)


def _detail(err: urllib.error.HTTPError) -> str:
    """The server's own message: vLLM answers {"error": {"message": ...}} or FastAPI's {"detail": ...}."""
    try:
        body = json.loads(err.read() or b"{}")
    except (ValueError, OSError):
        return err.reason or ""
    inner = body.get("error", body) if isinstance(body, dict) else body
    if isinstance(inner, dict):
        return str(inner.get("message") or inner.get("detail") or inner)
    return str(inner)

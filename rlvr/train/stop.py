"""Ctrl-C and SIGTERM end a run cleanly: the step in flight finishes, a checkpoint is saved, the run returns;
a second signal aborts at once."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any

__all__ = ["STOP_SIGNALS", "StopSignals"]

log = logging.getLogger("rlvr.train")

#: the signals that end a run cleanly: finish the step in flight, checkpoint, return
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class StopSignals:
    """While entered (on the main thread only: elsewhere Python cannot take signals), the first stop signal is
    recorded in `received` and logged with the step it finishes (`step()`); a second raises KeyboardInterrupt."""

    def __init__(self, step: Callable[[], int]) -> None:
        self.step = step
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is threading.main_thread():
            self._previous = {s: signal.signal(s, self._on_stop) for s in STOP_SIGNALS}
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous = {}

    def _on_stop(self, signum: int, frame: Any) -> None:
        if self.received is not None:  # a second signal: stop now
            raise KeyboardInterrupt
        self.received = signum
        name = signal.Signals(signum).name
        log.warning("%s: finishing step %d, then saving a checkpoint (send it again to abort)", name, self.step())

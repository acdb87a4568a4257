"""What runs inside a runner worker process: unpickle the verifier, warm it up, then score the
chunks the parent sends, one verdict message per item so the parent always knows which item is
running (and since when) to enforce its deadline."""

from __future__ import annotations

import multiprocessing.connection
import os
import pickle
import signal
import sys
import threading
import time
import traceback

from rlvr.types import Example, Score, Status
from rlvr.verifiers.base import Verifier

__all__ = ["error_score", "score_one", "worker_main"]


def error_score(err: BaseException) -> Score:
    """The score of a verifier that raised: status error, with the exception in details."""
    text = "".join(traceback.format_exception_only(type(err), err)).strip()
    frames = traceback.format_tb(err.__traceback__, limit=-5)
    return Score(0.0, Status.ERROR, {"error": text, "traceback": "".join(frames)})


def score_one(verifier: Verifier, completion: str, example: Example) -> Score:
    try:
        score = verifier.score(completion, example)
    except Exception as err:  # noqa: BLE001 - verifier code: any exception becomes an error verdict, never a silent 0
        return error_score(err)
    if not isinstance(score, Score):
        return Score(0.0, Status.ERROR, {"error": f"{verifier.name} returned {type(score).__name__}, not Score"})
    return score


def _die_with_parent(parent_pid: int, use_pdeathsig: bool) -> None:
    """A worker must not outlive the process that owns it, even while stuck in C code."""
    if use_pdeathsig and sys.platform == "linux":
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:  # backup for when the spawning thread was not the main one
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="rlvr-parent-watch").start()


def worker_main(conn: multiprocessing.connection.Connection, blob: bytes, parent_pid: int, pdeathsig: bool) -> None:
    # Own process group: killing the group on a timeout also ends anything the verifier started
    # (a sandboxed program); and Ctrl-C in the terminal reaches only the parent, which shuts down.
    os.setsid()
    _die_with_parent(parent_pid, pdeathsig)
    # stdout may be the parent's data stream (`rlvr verify` without --output): a verifier's
    # print() goes to stderr instead of corrupting it
    os.dup2(2, 1)
    try:
        verifier = pickle.loads(blob)
        getattr(verifier, "warmup", lambda: None)()  # before "ready": not on any item's clock
    except BaseException as err:  # noqa: BLE001 - any start-up failure (even SystemExit) is reported to the parent
        conn.send(("init_error", "".join(traceback.format_exception(err)).strip()))
        return
    conn.send(("ready", os.getpid()))
    while True:
        try:
            chunk = conn.recv()
        except (EOFError, OSError):
            return
        if chunk is None:
            return
        for index, completion, example in chunk:
            score = score_one(verifier, completion, example)
            try:
                conn.send((index, score))
            except (pickle.PicklingError, TypeError, AttributeError) as err:  # unpicklable details
                conn.send((index, error_score(err)))
            except OSError:  # the parent is gone
                return

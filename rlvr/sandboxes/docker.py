"""`docker`: containers with no network, memory/CPU/pids limits, a read-only root, a tmpfs work
dir, the program as uid 65534 without capabilities, no-new-privileges, and a supervisor on other
uids; a warm pool runs each program with `docker exec` in a fresh work dir, so a run does not pay a
container start."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import socket
import threading
import zlib
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

from docker.errors import DockerException, ImageNotFound

from rlvr.sandboxes.base import (
    PROPERTIES,
    SUPERVISOR_ARGS,
    ExecResult,
    ExecStatus,
    Limits,
    Sandbox,
    SandboxError,
    make_job,
    parse_report,
)
from rlvr.sandboxes.daemon import connect
from rlvr.sandboxes.image import DEFAULT_IMAGE

__all__ = ["DockerSandbox", "connect"]

LABEL = "rlvr.sandbox"
GRACE_S = 5.0  # past the program's deadline before we give up on the exec and kill the container
WORKDIR = "/work"
#: the supervisor is exec'd as root with CAP_SETUID/SETGID only (docker gives an exec effective
#: capabilities only in a container whose user is root: hence root's `sleep` holding the container
#: open, which the program cannot reach either), and at once splits its uids: real and saved
#: SUPERVISOR_IDS, effective the program's (see `supervisor.become`), so the program cannot signal it;
#: with no uid 0 left it holds no capability at all. The program runs as PROGRAM_IDS.
USER = "0:0"
SUPERVISOR_IDS, PROGRAM_IDS = (65533, 65533), (65534, 65534)
_ENV_CHUNK = 100_000  # one environment string may hold 128 KiB
#: what the docker SDK raises when the daemon refuses or fails a request (requests' connection
#: errors and timeouts are OSError)
_DOCKER_ERRORS = (DockerException, OSError)
#: a run that ended like this may have left the container in a bad state: start a new one
_RECYCLE = {ExecStatus.TIMEOUT, ExecStatus.MEMORY, ExecStatus.KILLED, ExecStatus.OUTPUT_LIMIT}


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass
class _Slot:
    container: Any
    runs: int = 0


@dataclass
class _Pool:
    idle: list[_Slot] = field(default_factory=list)
    starting: int = 0  # containers being started in the background for this pool


def _key(limits: Limits) -> tuple:
    """Containers are made for their limits: runs share a pool only when these agree."""
    return (limits.memory_mb, limits.cpus, limits.pids, limits.file_size_mb)


class DockerSandbox(Sandbox):
    """Claims every property: the container runtime enforces them (network none, pids/memory
    cgroups, read-only root), and split uids keep the supervisor out of the program's reach.
    `warm=True` keeps up to `pool_size` containers per set of limits running `sleep infinity` and
    recycles one after `max_runs` runs or any fault; `warm=False` starts a fresh container for
    every run (the slow baseline)."""

    name = "docker"
    claims = frozenset(PROPERTIES)  # every property a backend can promise

    def __init__(
        self,
        image: str = DEFAULT_IMAGE,
        *,
        warm: bool = True,
        pool_size: int = 2,
        max_runs: int = 100,
        base_url: str | None = None,
        python: str = "/usr/bin/python3",
    ):
        self.image, self.warm, self.pool_size, self.max_runs = image, warm, pool_size, max_runs
        self.python = python
        self.client = connect(base_url)
        try:
            self.client.images.get(image)
        except ImageNotFound:
            raise SandboxError(f"docker image {image!r} not found: build it with `rlvr sandbox build-image`") from None
        except _DOCKER_ERRORS as err:
            raise SandboxError(f"docker: cannot look up image {image!r} ({type(err).__name__}): {err}") from None
        self._lock = threading.Lock()
        self._pools: dict[tuple, _Pool] = {}
        # container upkeep (starting, removing: seconds each with vfs) must never delay a run's
        # exec, so the two get separate threads
        self._executor = ThreadPoolExecutor(max_workers=max(2, pool_size), thread_name_prefix="rlvr-docker-pool")
        self._execs = ThreadPoolExecutor(max_workers=64, thread_name_prefix="rlvr-docker-exec")
        self._closed = False
        self._remove_orphans()

    @classmethod
    def available(cls) -> tuple[bool, str]:
        try:
            client = connect()
        except SandboxError as err:
            return False, str(err)
        try:
            client.images.get(DEFAULT_IMAGE)
        except ImageNotFound:
            return False, f"image {DEFAULT_IMAGE} missing: build it with `rlvr sandbox build-image`"
        except _DOCKER_ERRORS as err:
            return False, f"docker: cannot look up image {DEFAULT_IMAGE} ({type(err).__name__}): {err}"
        finally:
            client.close()
        return True, ""

    # ------------------------------------------------------------------ containers

    def _config(self, limits: Limits) -> dict[str, Any]:
        memory = f"{limits.memory_mb + 64}m"  # + the supervisor; rlimits hold the program to memory_mb
        return dict(
            image=self.image,
            network_mode="none",
            user=USER,
            working_dir=WORKDIR,
            read_only=True,
            tmpfs={WORKDIR: f"rw,nosuid,nodev,size={limits.file_size_mb * 4}m,mode=1777"},
            mem_limit=memory,
            memswap_limit=memory,
            nano_cpus=int(limits.cpus * 1e9),
            pids_limit=limits.pids + 2,  # + sleep and the supervisor
            cap_drop=["ALL"],
            cap_add=["SETUID", "SETGID"],
            security_opt=["no-new-privileges"],
            ipc_mode="none",
            hostname="sandbox",
            labels={LABEL: "1", f"{LABEL}.owner": _owner()},
            environment={},
            stop_signal="SIGKILL",
            detach=True,
        )

    def _start(self, limits: Limits):
        try:
            container = self.client.containers.create(command=["sleep", "infinity"], **self._config(limits))
            container.start()
        except Exception as err:
            raise SandboxError(f"docker: cannot start a sandbox container: {err}") from err
        return container

    def _remove(self, container) -> None:
        # already gone (daemon restarted, killed): nothing left to release
        with contextlib.suppress(*_DOCKER_ERRORS):
            container.remove(force=True)

    def _remove_orphans(self) -> None:
        """Containers left by rlvr processes on this host that no longer exist (killed workers)."""
        host = socket.gethostname()
        try:
            found = self.client.containers.list(all=True, filters={"label": LABEL})
        except _DOCKER_ERRORS:  # housekeeping: never what stops a sandbox from starting
            return
        for container in found:
            owner_host, _, pid = container.labels.get(f"{LABEL}.owner", "").rpartition(":")
            if owner_host == host and pid.isdigit() and not _alive(int(pid)):
                self._remove(container)

    def _acquire(self, limits: Limits) -> tuple[_Slot, bool]:
        """A container for one run, and whether it came from the pool (else started just now)."""
        with self._lock:
            if self._closed:
                raise SandboxError("docker sandbox is closed")
            pool = self._pools.setdefault(_key(limits), _Pool())
            if pool.idle:
                return pool.idle.pop(), True
        return _Slot(self._start(limits)), False

    def _release(self, slot: _Slot, limits: Limits, *, keep: bool) -> None:
        with self._lock:
            pool = self._pools.setdefault(_key(limits), _Pool())
            if keep and not self._closed and slot.runs < self.max_runs and len(pool.idle) < self.pool_size:
                pool.idle.append(slot)
                return
            closed = self._closed
        # removing (and starting the replacement) happens off the caller's clock
        self._background(self._remove, slot.container)
        if not closed:
            self._background(self._replenish, limits)

    def _background(self, fn, *args) -> None:
        try:
            self._executor.submit(fn, *args)
        except RuntimeError:  # executor shut down (closing): do it now
            fn(*args)

    def _replenish(self, limits: Limits) -> None:
        with self._lock:
            pool = self._pools.setdefault(_key(limits), _Pool())
            if self._closed or len(pool.idle) + pool.starting >= self.pool_size:
                return
            pool.starting += 1
        try:
            slot = _Slot(self._start(limits))
        except SandboxError:
            return  # the next run starts one itself and reports the failure
        finally:
            with self._lock:
                pool.starting -= 1
        with self._lock:
            if not self._closed and len(pool.idle) < self.pool_size:
                pool.idle.append(slot)
                return
        self._remove(slot.container)

    def prestart(self, limits: Limits | None = None, count: int | None = None) -> None:
        """Start `count` (default: pool_size) of the pool's containers now, else the first runs
        each start one on their own clock (seconds with the vfs storage driver)."""
        limits = limits or Limits()
        wanted = self.pool_size if count is None else min(count, self.pool_size)
        for future in [self._executor.submit(self._replenish, limits) for _ in range(wanted)]:
            future.result()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            slots = [s for pool in self._pools.values() for s in pool.idle]
            self._pools.clear()
        for slot in slots:
            self._remove(slot.container)
        self._executor.shutdown(wait=False)
        self._execs.shutdown(wait=False)

    def __del__(self) -> None:
        # a finaliser must never raise, and at interpreter exit any exception type can come (module globals
        # already gone), so the catch is broad and spelled out rather than through contextlib
        try:  # noqa: SIM105 - contextlib may already be torn down at interpreter exit
            self.close()
        except Exception:  # noqa: BLE001 - see above: a finaliser never raises, whatever the type
            pass

    def __getstate__(self):  # containers belong to the process that started them
        raise TypeError("DockerSandbox cannot be pickled; create one in each process")

    # ------------------------------------------------------------------ runs

    def _job(self, program: str, stdin: str, limits: Limits) -> dict[str, Any]:
        job = make_job(
            program,
            stdin,
            limits,
            workdir=f"{WORKDIR}/run",
            python=self.python,
            rlimit_nproc=False,
            kill_all=True,
            cgroup_oom=True,
            supervisor_ids=SUPERVISOR_IDS,
            program_ids=PROGRAM_IDS,
        )
        job["wipe"] = [WORKDIR, "/dev/shm"]  # nothing of this run is left for the next one
        return job

    def _env(self, job: dict[str, Any]) -> dict[str, str]:
        blob = base64.b64encode(zlib.compress(json.dumps(job).encode())).decode()
        if len(blob) > 15 * _ENV_CHUNK:
            raise ValueError(f"program and stdin too large for the docker sandbox ({len(blob)} bytes encoded)")
        return {
            f"RLVR_JOB_{i:03d}": blob[i * _ENV_CHUNK : (i + 1) * _ENV_CHUNK] for i in range(len(blob) // _ENV_CHUNK + 1)
        }

    def _run(self, program: str, stdin: str, limits: Limits) -> ExecResult:
        job = self._job(program, stdin, limits)
        return self._run_warm(job, limits) if self.warm else self._run_fresh(job, limits)

    def _run_warm(self, job: dict[str, Any], limits: Limits) -> ExecResult:
        slot, exec_id = self._exec_in_pool(job, limits)
        keep = False
        try:
            future = self._execs.submit(self.client.api.exec_start, exec_id, demux=True)
            try:
                stdout, stderr = future.result(timeout=limits.timeout_s + GRACE_S)
            except FutureTimeout:
                raise SandboxError(
                    f"docker exec gave no report {GRACE_S:g} s past the program's deadline "
                    f"(container {slot.container.short_id} removed)"
                ) from None
            except Exception as err:
                raise SandboxError(f"docker exec failed: {err}") from err
            slot.runs += 1
            result = self._report(stdout or b"", stderr or b"", job, slot.container)
            keep = result.status not in _RECYCLE
            return result
        finally:
            self._release(slot, limits, keep=keep)

    def _exec_in_pool(self, job: dict[str, Any], limits: Limits) -> tuple[_Slot, str]:
        """A container with this run's exec created in it. An idle pool container may have died
        since its last run (killed, daemon restarted): it is dropped and a new one started."""
        cmd, env = [self.python, *SUPERVISOR_ARGS], self._env(job)
        while True:
            slot, pooled = self._acquire(limits)
            try:
                return slot, self.client.api.exec_create(
                    slot.container.id, cmd, environment=env, user=USER, workdir=WORKDIR
                )["Id"]
            except Exception as err:
                self._background(self._remove, slot.container)
                if not pooled:
                    raise SandboxError(f"docker exec failed: {err}") from err

    def _run_fresh(self, job: dict[str, Any], limits: Limits) -> ExecResult:
        try:
            container = self.client.containers.create(
                command=[self.python, *SUPERVISOR_ARGS], **{**self._config(limits), "environment": self._env(job)}
            )
        except Exception as err:
            raise SandboxError(f"docker: cannot create a sandbox container: {err}") from err
        try:
            container.start()
            try:
                container.wait(timeout=limits.timeout_s + GRACE_S)
            except _DOCKER_ERRORS as err:  # requests' ReadTimeout, or the daemon gone
                raise SandboxError(
                    f"docker container gave no report {GRACE_S:g} s past the program's deadline ({type(err).__name__})"
                ) from None
            stdout = container.logs(stdout=True, stderr=False)
            stderr = container.logs(stdout=False, stderr=True)
            return self._report(stdout, stderr, job, container)
        except SandboxError:
            raise
        except Exception as err:
            raise SandboxError(f"docker run failed: {err}") from err
        finally:
            self._remove(container)

    def _report(self, stdout: bytes, stderr: bytes, job: dict[str, Any], container) -> ExecResult:
        try:
            return parse_report(stdout, job, what="docker sandbox")
        except SandboxError as err:
            raise SandboxError(
                f"{err}; stderr: {stderr.decode('utf-8', 'replace')[-1500:]!r} (container {container.short_id})"
            ) from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True

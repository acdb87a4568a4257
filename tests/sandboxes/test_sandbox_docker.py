"""The docker backend's own promises: its failures are SandboxError (never a result), the warm
pool leaves nothing of one run for the next, recycles containers, survives a dead one, and
removes what it started; a fresh container per run gives the same results."""

from __future__ import annotations

import pickle
import time

import pytest

from rlvr.sandboxes import ExecStatus, Limits, SandboxError
from sandbox_fixtures import open_sandbox

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def box():
    sandbox = open_sandbox("docker", pool_size=2, max_runs=3)
    yield sandbox
    sandbox.close()


def idle_ids(box) -> set[str]:
    return {slot.container.id for pool in box._pools.values() for slot in pool.idle}


def test_missing_image_is_sandbox_error(box):
    from rlvr.sandboxes.docker import DockerSandbox

    with pytest.raises(SandboxError, match="rlvr sandbox build-image"):
        DockerSandbox(image="rlvr-no-such-image:never")


@pytest.mark.parametrize("backend", ["docker", "auto"])
def test_daemon_down_is_sandbox_error(monkeypatch, backend):
    from rlvr.sandboxes import get_sandbox
    from rlvr.sandboxes.docker import DockerSandbox

    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    ok, why = DockerSandbox.available()
    assert not ok and "not reachable" in why
    if backend == "docker":
        with pytest.raises(SandboxError, match="not reachable"):
            get_sandbox(backend)
    else:  # auto falls back to the next backend instead
        with get_sandbox(backend) as fallback:
            assert fallback.name in ("bwrap", "local")


def test_nothing_of_a_run_is_left_for_the_next():
    plant = (
        "import os, subprocess\n"
        "for d in ('/work', '/dev/shm', os.getcwd()):\n"
        "    try:\n        open(os.path.join(d, 'left.txt'), 'w').write('x')\n"
        "    except OSError:\n        pass  # not writable at all: fine too\n"
        "os.mkdir('/work/leftdir')\n"
        "subprocess.Popen(['sleep', '600'], start_new_session=True)\n"
    )
    look = (
        "import os, subprocess\n"
        "print(sorted(os.listdir('/work')), sorted(os.listdir('/dev/shm') if os.path.isdir('/dev/shm') else []), "
        "sorted(os.listdir('.')))\n"
        "print([p for p in os.listdir('/proc') if p.isdigit() and "
        "open(f'/proc/{p}/cmdline').read() == 'sleep\\x00600\\x00'])\n"
    )
    with open_sandbox("docker", pool_size=1) as box:
        box.run("pass")
        before = idle_ids(box)
        assert box.run(plant).status is ExecStatus.OK
        seen = box.run(look)
        assert seen.status is ExecStatus.OK, seen
        assert idle_ids(box) == before, "the runs did not share one warm container"
    lines = seen.stdout.splitlines()
    assert lines[0] == "['run'] [] ['main.py']", seen.stdout  # only this run's own program
    assert lines[1] == "[]", seen.stdout


def test_recycled_after_max_runs_and_after_a_fault(box):
    box.run("pass")
    first = next(iter(idle_ids(box)))
    for _ in range(4):  # max_runs=3: the container that ran them is dropped
        box.run("pass")
    assert first not in idle_ids(box)
    before = idle_ids(box)
    result = box.run("while True: pass", limits=Limits(timeout_s=0.5))
    assert result.status is ExecStatus.TIMEOUT
    assert len(before - idle_ids(box)) == 1, "the container of a timed-out run must not be reused"


def test_dead_idle_container_is_replaced(box):
    box.prestart()
    for container_id in idle_ids(box):
        box.client.containers.get(container_id).kill()
    result = box.run("print('alive')")
    assert (result.status, result.stdout) == (ExecStatus.OK, "alive\n")


def test_fresh_container_per_run_gives_the_same_results():
    fresh = open_sandbox("docker", warm=False)
    try:
        result = fresh.run("import sys\nprint(sys.stdin.read()[::-1])\nraise SystemExit(3)", stdin="abc")
    finally:
        fresh.close()
    assert (result.status, result.exit_code, result.stdout) == (ExecStatus.RUNTIME_ERROR, 3, "cba\n")


def test_close_removes_its_containers():
    sandbox = open_sandbox("docker", pool_size=2)
    sandbox.prestart()
    sandbox.run("pass")
    client, started = sandbox.client, idle_ids(sandbox)
    assert len(started) == 2
    sandbox.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # removing a container can take a moment with vfs
        left = {c.id for c in client.containers.list(all=True)} & started
        if not left:
            break
        time.sleep(0.5)
    assert not left
    with pytest.raises(SandboxError, match="closed"):
        sandbox.run("pass")


def test_not_picklable(box):
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(box)


def test_job_does_not_leak_through_proc(box):
    """The job (with the report nonce) travels in the supervisor's environment: the program, same
    uid, must not read it back from /proc."""
    program = (
        "import os\nfound = []\nfor p in os.listdir('/proc'):\n"
        "    if p.isdigit():\n        try:\n            found.append(open(f'/proc/{p}/environ', 'rb').read())\n"
        "        except OSError:\n            pass\nprint(any(b'RLVR_JOB' in e for e in found))\n"
    )
    result = box.run(program)
    assert (result.status, result.stdout) == (ExecStatus.OK, "False\n"), result

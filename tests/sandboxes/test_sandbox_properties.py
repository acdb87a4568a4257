"""Each containment property, on every backend that claims it; `local` shows it does not hold
what it does not claim (strict xfail), except the fork bomb, which is not run on the host."""

from __future__ import annotations

import secrets
import socket
import stat
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import pytest

from rlvr.sandboxes import ExecStatus, Limits
from sandbox_fixtures import BACKENDS, open_sandbox, processes_with

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module", params=BACKENDS)
def box(request):
    sandbox = open_sandbox(request.param)
    yield sandbox
    sandbox.close()


def expect_claim(box, prop: str, check) -> None:
    """Run check(); for an unclaimed property it must FAIL (else the claims table is stale)."""
    if prop in box.claims:
        check()
        return
    try:
        check()
    except AssertionError:
        pytest.xfail(f"{box.name} does not claim {prop}, and indeed it does not hold")
    pytest.fail(f"{box.name} does not claim {prop} but it held: update its claims")


def _host_ip() -> str | None:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.connect(("10.255.255.255", 1))  # no packet is sent: this only picks the outgoing address
        ip = s.getsockname()[0]
        return None if ip.startswith("127.") else ip
    except OSError:
        return None
    finally:
        s.close()


@pytest.fixture
def listener():
    """A TCP server on all host addresses that counts connections."""
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 0))
    server.listen(16)
    server.settimeout(0.2)
    hits = []
    stop = threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            hits.append(1)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], hits
    stop.set()
    thread.join()
    server.close()


def test_no_network(box, listener):
    port, hits = listener
    targets = [t for t in ("127.0.0.1", _host_ip()) if t]
    program = textwrap.dedent(f"""
        import socket
        for host in {targets!r}:
            try:
                socket.create_connection((host, {port}), timeout=1).close()
                print("CONNECTED", host)
            except OSError as err:
                print("blocked", host, err)
    """)
    result = box.run(program, limits=Limits(timeout_s=10))

    def check():
        assert result.status is ExecStatus.OK, result
        assert "CONNECTED" not in result.stdout and not hits, result.stdout

    expect_claim(box, "no_network", check)


@pytest.fixture
def planted():
    """A world-readable secret in a world-readable host dir, outside any sandbox."""
    folder = Path(tempfile.mkdtemp(prefix="rlvr-planted-"))
    folder.chmod(0o755)
    secret = secrets.token_hex(16)
    path = folder / "secret.txt"
    path.write_text(secret)
    path.chmod(0o644)
    yield path, secret
    path.unlink()
    folder.rmdir()


def test_cannot_read_planted_file(box, planted):
    path, secret = planted
    program = f"try:\n    print(open({str(path)!r}).read())\nexcept OSError as err:\n    print('blocked', err)\n"
    result = box.run(program)

    def check():
        assert result.status is ExecStatus.OK, result
        assert secret not in result.stdout
        assert "blocked" in result.stdout

    expect_claim(box, "no_host_files", check)


def test_cannot_write_outside_work_dir(box):
    outside = Path(tempfile.mkdtemp(prefix="rlvr-outside-"))
    outside.chmod(0o777 | stat.S_ISVTX)  # anyone may write here: only the sandbox can stop it
    targets = ["/", "/tmp", "/etc", "/usr", "/var/tmp", "/dev/shm", "/root", str(outside)]
    program = textwrap.dedent(f"""
        import os
        for folder in {targets!r}:
            try:
                with open(os.path.join(folder, "escaped.txt"), "w") as f:
                    f.write("x")
                print("WROTE", folder)
            except OSError as err:
                print("blocked", folder, type(err).__name__)
        with open("inside.txt", "w") as f:  # the work dir itself is writable
            f.write("ok")
        print("INSIDE", open("inside.txt").read())
    """)
    try:
        result = box.run(program)
        escaped = list(outside.iterdir())
    finally:
        for p in outside.iterdir():
            p.unlink()
        outside.rmdir()

    def check():
        assert result.status is ExecStatus.OK, result
        assert "INSIDE ok" in result.stdout
        assert "WROTE" not in result.stdout, result.stdout
        assert not escaped

    expect_claim(box, "work_dir_only", check)


def test_fork_bomb_contained(box):
    if "pids_limited" not in box.claims:
        pytest.skip(f"{box.name} does not claim pids_limited; a fork bomb is not run on the host")
    marker = "forkbomb" + secrets.token_hex(6)
    counted = textwrap.dedent(f"""
        import os, sys
        n = 0
        for _ in range(2000):
            try:
                if os.fork() == 0:
                    os.execv(sys.executable, [sys.executable, "-c", "import time; time.sleep(60)  # {marker}"])
                n += 1
            except OSError:
                break
        print("forked", n)
    """)
    limits = Limits(timeout_s=10, pids=32)
    result = box.run(counted, limits=limits)
    assert result.status is ExecStatus.OK, result
    assert int(result.stdout.split()[-1]) < limits.pids
    assert processes_with(marker) == []
    classic = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    started = time.monotonic()
    result = box.run(classic, limits=Limits(timeout_s=2, pids=32))
    assert result.status is ExecStatus.TIMEOUT, result
    assert time.monotonic() - started < 2 + 3
    assert box.run("print('still fine')").stdout.strip() == "still fine"


@pytest.mark.parametrize(
    "program",
    [
        "x = bytearray(8 * 1024**3)",
        "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024**2))",
        "s = 'x' * (2 * 1024**3)",
    ],
    ids=["one-big", "growing", "string"],
)
def test_memory_bomb(box, program):
    expect_claim(box, "memory_limited", lambda: None)
    result = box.run(program, limits=Limits(timeout_s=10, memory_mb=256))
    assert result.status is ExecStatus.MEMORY, result
    assert box.run("print(sum(range(10)))").stdout.strip() == "45"


@pytest.mark.parametrize(
    "program",
    [
        "while True:\n    pass",
        "import time\ntime.sleep(3600)",
        "import os, time\nif os.fork() == 0:\n    os.setsid()\nwhile True: time.sleep(1)",
    ],
    ids=["busy", "sleep", "setsid"],
)
def test_infinite_loop_times_out(box, program):
    limit, margin = 1.5, 1.5
    box.run("pass")  # a warm container ready (docker): the margin is for the run, not a container start
    started = time.monotonic()
    result = box.run(program, limits=Limits(timeout_s=limit))
    elapsed = time.monotonic() - started
    assert result.status is ExecStatus.TIMEOUT, result
    assert limit <= elapsed < limit + margin, elapsed
    assert result.duration_s >= limit


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
def test_output_flood_truncated(box, stream):
    cap = 10_000
    box.run("pass")
    program = f"import sys\nwhile True:\n    sys.{stream}.write('x' * 4096)\n"
    started = time.monotonic()
    result = box.run(program, limits=Limits(timeout_s=10, max_output_bytes=cap))
    assert result.status is ExecStatus.OUTPUT_LIMIT, result
    assert result.truncated
    assert len(getattr(result, stream)) == cap
    assert time.monotonic() - started < 5  # cut when it passed the cap, not at the deadline


def test_output_below_cap_is_whole(box):
    result = box.run("print('y' * 9999)", limits=Limits(max_output_bytes=10_000))
    assert result.status is ExecStatus.OK and not result.truncated
    assert result.stdout == "y" * 9999 + "\n"


def test_host_env_not_visible(box, monkeypatch):
    secret = secrets.token_hex(12)
    monkeypatch.setenv("RLVR_TEST_SECRET", secret)
    result = box.run("import os\nprint(sorted(os.environ.items()))")
    assert result.status is ExecStatus.OK, result
    assert secret not in result.stdout
    assert "RLVR_JOB" not in result.stdout  # the supervisor's own job is removed too
    assert "RLVR_TEST_SECRET" not in result.stdout


def test_no_process_survives(box):
    marker = "survivor" + secrets.token_hex(6)
    program = textwrap.dedent(f"""
        import os, subprocess, sys
        sleeper = [sys.executable, "-c", "import time; time.sleep(60)  # {marker}"]
        subprocess.Popen(sleeper)  # a plain background child
        subprocess.Popen(sleeper, start_new_session=True)  # its own session
        if os.fork() == 0:  # a double-forked daemon, re-parented away from the program
            os.setsid()
            if os.fork() == 0:
                os.execv(sys.executable, sleeper)
            os._exit(0)
        print("left them running")
    """)
    result = box.run(program, limits=Limits(timeout_s=5))
    assert result.status is ExecStatus.OK, result
    deadline = time.monotonic() + 2.0  # SIGKILL is delivered at once; allow the reaping to finish
    while processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    expect_claim(box, "no_survivors", lambda: None)
    assert processes_with(marker) == []


def test_unprivileged(box):
    if box.name == "local":
        pytest.skip("local runs as the calling user")
    program = (
        "import os\nstatus = open('/proc/self/status').read()\n"
        "print(os.getuid(), [l.split()[1] for l in status.splitlines() if l.startswith('CapEff')][0])"
    )
    result = box.run(program)
    uid, caps = result.stdout.split()
    assert uid != "0" and int(caps, 16) == 0, result.stdout


@pytest.mark.parametrize("stdin", ["", "hello\nworld\n", "z" * 300_000])
def test_stdin_reaches_program(box, stdin):
    result = box.run(
        "import sys\ndata = sys.stdin.read()\nprint(len(data), data[:5])", stdin=stdin, limits=Limits(timeout_s=10)
    )
    assert result.status is ExecStatus.OK, result
    assert result.stdout.split()[0] == str(len(stdin))


@pytest.mark.parametrize(
    "program,status,code",
    [
        ("print('hi')", ExecStatus.OK, 0),
        ("raise ValueError('boom')", ExecStatus.RUNTIME_ERROR, 1),
        ("import sys\nsys.exit(7)", ExecStatus.RUNTIME_ERROR, 7),
        ("def f(:\n  pass", ExecStatus.RUNTIME_ERROR, 1),
        ("import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)", ExecStatus.KILLED, -11),
    ],
)
def test_exit_statuses(box, program, status, code):
    result = box.run(program)
    assert (result.status, result.exit_code) == (status, code), result

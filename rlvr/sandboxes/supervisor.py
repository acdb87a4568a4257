"""Supervisor of one run (stdlib only; `python3 -I -S -c` of this file's text): starts the program
with rlimits, where the program cannot signal it (another uid, or outside its PID namespace), feeds
stdin, caps output, enforces the deadline, kills every process the run left, and prints
`<nonce> <json report>`."""

import contextlib
import json
import os
import resource
import selectors
import shutil
import signal
import subprocess
import sys
import time


def load_job():
    parts = sorted(k for k in os.environ if k.startswith("RLVR_JOB_"))
    if parts:  # docker exec: the job comes in environment variables, removed before the program runs
        import base64
        import zlib

        blob = "".join(os.environ.pop(k) for k in parts)
        return json.loads(zlib.decompress(base64.b64decode(blob)))
    return json.loads(sys.stdin.buffer.read())


def prctl(option, value):
    # no ctypes in a minimal image, no libc to load, or a libc without prctl: lose only the hardening, not the run
    with contextlib.suppress(ImportError, OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36


def rlimits(job):
    """(resource, prlimit flag, value) for each limit the program gets."""
    mb = 2**20
    cpu = int(job["timeout_s"]) + 2  # backstop only: the wall deadline comes first
    settings = [
        (resource.RLIMIT_CPU, "cpu", cpu),
        (resource.RLIMIT_CORE, "core", 0),
        (resource.RLIMIT_FSIZE, "fsize", job["file_size_mb"] * mb),
    ]
    if job.get("memory_mb"):
        settings.append((resource.RLIMIT_AS, "as", job["memory_mb"] * mb))
    if job.get("nproc"):
        settings.append((resource.RLIMIT_NPROC, "nproc", job["nproc"]))
    return settings


def limiter(job):
    def apply():
        for kind, _, value in rlimits(job):
            resource.setrlimit(kind, (value, value))

    return apply


def become(job):
    """Split uids (docker, started as root with CAP_SETUID/SETGID only): real and saved ids the
    supervisor's own, effective ids the program's. The supervisor can still signal the program
    (its effective uid matches the program's) and the program cannot signal, stop, ptrace or
    prlimit the supervisor (none of its ids match the supervisor's real or saved uid). With no
    uid 0 left the kernel clears every capability."""
    own, program = job.get("supervisor_ids"), job.get("program_ids")
    if not own:
        return
    os.setgroups([])
    os.setresgid(own[1], program[1], own[1])
    os.setresuid(own[0], program[0], own[0])
    if os.getresuid() != (own[0], program[0], own[0]):
        raise RuntimeError(f"supervisor: could not split uids, got {os.getresuid()!r}")


def start_direct(job, popen):
    """The program runs here, in a fresh work dir, as the program uid (if split)."""
    work = job["workdir"]
    os.makedirs(work, mode=0o700, exist_ok=True)
    with open(os.path.join(work, "main.py"), "w", encoding="utf-8") as f:
        f.write(job["program"])
    ids = job.get("program_ids")
    proc = popen(
        [job["python"], "main.py"],
        cwd=work,
        env=job["env"],
        preexec_fn=limiter(job),
        **({"user": ids[0], "group": ids[1]} if ids else {}),
    )

    def finish(code, reason, stderr):
        shutil.rmtree(work, ignore_errors=True)
        return code

    return proc, finish


def start_wrapped(job, popen):
    """The program runs in a wrapper (bwrap, in its own PID namespace, where this process does not
    exist for it): the wrapper gets the program's text on a pipe ({program_fd}, copied into its
    work dir), the rlimits through prlimit (so they bind the program, not the wrapper), and says on
    {status_fd} (bwrap's --json-status-fd) how the program ended."""
    program_r, program_w = os.pipe()
    status_r, status_w = os.pipe()
    fds = {"{program_fd}": str(program_r), "{status_fd}": str(status_w)}
    limits = [f"--{flag}={int(value)}:{int(value)}" for _, flag, value in rlimits(job)]
    argv = [fds.get(arg, arg) for arg in job["wrapper"]] + [job["prlimit"], *limits, "--", job["python"], "main.py"]
    try:
        proc = popen(argv, env={"PATH": "/usr/bin:/bin"}, pass_fds=(program_r, status_w))
    finally:
        os.close(program_r)
        os.close(status_w)
    try:
        with open(program_w, "wb", closefd=True) as f:
            f.write(job["program"].encode("utf-8"))
    except BrokenPipeError:
        pass  # the wrapper did not start: finish() says so

    def finish(code, reason, stderr):
        os.set_blocking(status_r, False)
        text = b""
        while True:
            try:
                chunk = os.read(status_r, 65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            text += chunk
        os.close(status_r)
        ended = [json.loads(line) for line in text.splitlines() if b'"exit-code"' in line]
        if not ended:
            if reason:
                return code  # we stopped it (deadline, output cap): its own status never came
            raise RuntimeError(
                f"supervisor: {argv[0]} ended (code {code}) without running the program to its end; "
                f"its stderr ended with: {stderr[-1500:]!r}"
            )
        code = ended[-1]["exit-code"]
        base = job["signal_base"]  # a shell-style wrapper reports death by signal n as base + n
        if code > base and (code - base) in signal.valid_signals():
            code = base - code
        return code

    return proc, finish


LAUNCH = {"direct": start_direct, "wrapped": start_wrapped}


def children():
    found = set()
    try:
        for tid in os.listdir("/proc/self/task"):
            with open(f"/proc/self/task/{tid}/children") as f:
                found.update(int(p) for p in f.read().split())
    except OSError:
        pass
    return found


def kill_everything(proc, kill_all):
    """The program's group, anything it re-parented to us (we are a subreaper), and in a PID
    namespace everything but init and ourselves; then reap until no child is left."""
    for _ in range(50):
        with contextlib.suppress(OSError):
            os.killpg(proc.pid, signal.SIGKILL)
        if kill_all:
            with contextlib.suppress(OSError):
                os.kill(-1, signal.SIGKILL)
        if proc.returncode is None:
            # reap the program itself first, so its exit status is ours to report
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1.0)
        left = children()
        for pid in left:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                break
        if not children():
            return
        time.sleep(0.01)


def oom_kills():
    try:
        with open("/sys/fs/cgroup/memory.events") as f:  # cgroup v2
            return int(dict(line.split() for line in f)["oom_kill"])
    except (OSError, KeyError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/memory/memory.oom_control") as f:  # cgroup v1
            return int(dict(line.split() for line in f).get("oom_kill", 0))
    except (OSError, ValueError):
        return 0


def main():
    job = load_job()
    become(job)
    prctl(PR_SET_DUMPABLE, 0)  # nobody else can open our fds via /proc to forge a report
    prctl(PR_SET_CHILD_SUBREAPER, 1)  # daemons the program starts are re-parented to us, then killed
    oom_before = oom_kills() if job["cgroup_oom"] else 0
    cap = job["max_output_bytes"]

    def popen(argv, **opts):
        return subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
            close_fds=True,
            **opts,
        )

    started = time.monotonic()
    proc, finish = LAUNCH[job.get("launch", "direct")](job, popen)
    deadline = started + job["timeout_s"]
    out = {proc.stdout: bytearray(), proc.stderr: bytearray()}
    pending = job["stdin"].encode("utf-8")
    sel = selectors.DefaultSelector()
    for stream in out:
        os.set_blocking(stream.fileno(), False)
        sel.register(stream, selectors.EVENT_READ)
    if pending:
        os.set_blocking(proc.stdin.fileno(), False)
        sel.register(proc.stdin, selectors.EVENT_WRITE)
    else:
        proc.stdin.close()
    reason, truncated, drain_until = None, False, None
    while sel.get_map() and reason is None:
        now = time.monotonic()
        if now >= deadline:
            reason = "timeout"
            break
        if drain_until is None and proc.poll() is not None:
            drain_until = now + 0.2  # program exited: a leftover child holding the pipe gets no wait
        if drain_until is not None and now >= drain_until:
            break
        for key, _ in sel.select(min(0.05, deadline - now)):
            stream = key.fileobj
            if stream is proc.stdin:
                try:
                    sent = os.write(stream.fileno(), pending[:65536])
                    pending = pending[sent:]
                except (BrokenPipeError, BlockingIOError) as err:
                    pending = b"" if isinstance(err, BrokenPipeError) else pending
                if not pending:
                    sel.unregister(stream)
                    stream.close()
                continue
            try:
                chunk = os.read(stream.fileno(), 65536)
            except BlockingIOError:
                continue
            if not chunk:
                sel.unregister(stream)
                continue
            buf = out[stream]
            room = cap - len(buf)
            buf += chunk[:room]
            if len(chunk) > room:  # more than the limit: keep the first `cap` bytes, stop the run
                truncated, reason = True, "output_limit"
    if reason is None:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            reason = "timeout"
    duration = time.monotonic() - started
    kill_everything(proc, job["kill_all"])
    stderr = bytes(out[proc.stderr])
    code = finish(proc.wait(), reason, stderr)
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    status = classify(
        reason, code, stderr, usage.ru_utime + usage.ru_stime, job, job["cgroup_oom"] and oom_kills() > oom_before
    )
    report = {
        "status": status,
        "exit_code": code,
        "duration_s": duration,
        "truncated": truncated,
        "stdout": bytes(out[proc.stdout]).decode("utf-8", "replace"),
        "stderr": stderr.decode("utf-8", "replace"),
    }
    for parent in job.get("wipe", ()):  # a reused container: leave nothing for the next run
        for name in os.listdir(parent) if os.path.isdir(parent) else ():
            path = os.path.join(parent, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    os.unlink(path)
    sys.stdout.write("\n{} {}\n".format(job["nonce"], json.dumps(report)))
    sys.stdout.flush()


def classify(reason, code, stderr, cpu_s, job, oom_killed):
    if reason:
        return reason
    if code == 0:
        return "ok"
    if oom_killed:
        return "memory"
    if code < 0:
        if -code == signal.SIGXCPU or cpu_s >= int(job["timeout_s"]) + 2:
            return "timeout"
        return "killed"
    last = stderr.rstrip().rsplit(b"\n", 1)[-1]
    if last.startswith(b"MemoryError"):
        return "memory"
    return "runtime_error"


if __name__ == "__main__":
    main()

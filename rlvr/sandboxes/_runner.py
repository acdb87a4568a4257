"""Supervisor that runs inside the sandbox (stdlib only; `python3 -I -c` of this file's text):
writes the program to a fresh work dir, starts it with rlimits, feeds stdin, caps output, enforces
the deadline, kills every process the run left, and prints `<nonce> <json report>`."""

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
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)
    except Exception:  # no ctypes in a minimal image: lose only the hardening, not the run
        pass


PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER = 4, 36


def limiter(job):
    def apply():
        mb = 2**20
        cpu = int(job["timeout_s"]) + 2  # backstop only: the wall deadline below comes first
        settings = [(resource.RLIMIT_CPU, cpu), (resource.RLIMIT_CORE, 0),
                    (resource.RLIMIT_FSIZE, job["file_size_mb"] * mb)]
        if job.get("memory_mb"):
            settings.append((resource.RLIMIT_AS, job["memory_mb"] * mb))
        if job.get("nproc"):
            settings.append((resource.RLIMIT_NPROC, job["nproc"]))
        for kind, value in settings:
            resource.setrlimit(kind, (value, value))
    return apply


def children():
    found = set()
    try:
        for tid in os.listdir("/proc/self/task"):
            with open("/proc/self/task/%s/children" % tid) as f:
                found.update(int(p) for p in f.read().split())
    except OSError:
        pass
    return found


def kill_everything(proc, kill_all):
    """The program's group, anything it re-parented to us (we are a subreaper), and in a PID
    namespace everything but init and ourselves; then reap until no child is left."""
    for _ in range(50):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
        if kill_all:
            try:
                os.kill(-1, signal.SIGKILL)
            except OSError:
                pass
        if proc.returncode is None:
            try:  # reap the program itself first, so its exit status is ours to report
                proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                pass
        left = children()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
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
    prctl(PR_SET_DUMPABLE, 0)  # the program (same uid) cannot open our fds via /proc to forge a report
    prctl(PR_SET_CHILD_SUBREAPER, 1)  # daemons the program starts are re-parented to us, then killed
    work = job["workdir"]
    os.makedirs(work, mode=0o700, exist_ok=True)
    with open(os.path.join(work, "main.py"), "w", encoding="utf-8") as f:
        f.write(job["program"])
    oom_before = oom_kills() if job["cgroup_oom"] else 0
    cap = job["max_output_bytes"]
    started = time.monotonic()
    proc = subprocess.Popen([job["python"], "main.py"], cwd=work, env=job["env"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=limiter(job),
                            start_new_session=True, close_fds=True)
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
    code = proc.wait()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    stderr = bytes(out[proc.stderr])
    status = classify(reason, code, stderr, usage.ru_utime + usage.ru_stime, job,
                      job["cgroup_oom"] and oom_kills() > oom_before)
    report = {"status": status, "exit_code": code, "duration_s": duration, "truncated": truncated,
              "stdout": bytes(out[proc.stdout]).decode("utf-8", "replace"), "stderr": stderr.decode("utf-8", "replace")}
    shutil.rmtree(work, ignore_errors=True)
    for parent in job.get("wipe", ()):  # a reused container: leave nothing for the next run
        for name in os.listdir(parent) if os.path.isdir(parent) else ():
            path = os.path.join(parent, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path, ignore_errors=True)
            else:
                try:
                    os.unlink(path)
                except OSError:
                    pass
    sys.stdout.write("\n%s %s\n" % (job["nonce"], json.dumps(report)))
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

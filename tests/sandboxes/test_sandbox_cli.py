"""`rlvr sandbox check` and `rlvr sandbox run` as other tools call them: JSON out, exit code 0
whatever the program did, 1 when the sandbox itself failed, 2 for bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import REPO
from sandbox_fixtures import BACKENDS, open_sandbox, use_repo_dockerd

pytestmark = pytest.mark.timeout(300)


def rlvr(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    use_repo_dockerd()
    return subprocess.run(
        [sys.executable, "-m", "rlvr", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env={**os.environ, **(env or {})},
        check=False,
    )


CASES = {  # each docker call starts a container (seconds with vfs): docker gets the option cases only
    "ok": ("print(6 * 7)", [], "ok", "42\n"),
    "exit3": ("raise SystemExit(3)", [], "runtime_error", ""),
    "timeout": ("while True:\n    pass", ["--timeout", "1"], "timeout", ""),
    "memory": ("x = bytearray(400 * 1024**2)", ["--memory", "128"], "memory", ""),
}


@pytest.mark.parametrize(
    "backend,program,options,status,stdout",
    [
        pytest.param(backend, *case, id=f"{backend}-{name}")
        for backend in BACKENDS
        for name, case in CASES.items()
        if backend != "docker" or name in ("timeout", "memory")
    ],
)
def test_run_prints_exec_result_json(tmp_path, backend, program, options, status, stdout):
    open_sandbox(backend).close()  # skip (or fail in CI) where the backend is missing
    path = tmp_path / "prog.py"
    path.write_text(program)
    done = rlvr("sandbox", "run", "--backend", backend, *options, str(path))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert (result["status"], result["stdout"], result["backend"]) == (status, stdout, backend), result
    assert set(result) >= {"exit_code", "stderr", "duration_s", "truncated", "overhead_s"}


def test_run_passes_stdin(tmp_path):
    (tmp_path / "p.py").write_text("import sys\nprint(sys.stdin.read().upper())")
    (tmp_path / "in.txt").write_text("abc")
    done = rlvr("sandbox", "run", "-b", "local", "--stdin", str(tmp_path / "in.txt"), str(tmp_path / "p.py"))
    assert json.loads(done.stdout)["stdout"] == "ABC\n"


@pytest.mark.parametrize(
    "args,message",
    [
        (["sandbox", "run", "-b", "local", "/nonexistent/prog.py"], "error: FILE /nonexistent/prog.py: no such file"),
        (["sandbox", "run", "-b", "local", "--timeout", "0", "x.py"], "--timeout"),
        (["sandbox", "run", "-b", "nope", "x.py"], "--backend"),
    ],
)
def test_bad_input_exits_2(args, message):
    done = rlvr(*args)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_broken_sandbox_exits_1_without_a_result(tmp_path):
    (tmp_path / "p.py").write_text("print(1)")
    done = rlvr(
        "sandbox", "run", "-b", "docker", str(tmp_path / "p.py"), env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"}
    )
    assert done.returncode == 1 and done.stdout == ""
    assert "sandbox failed" in done.stderr and "not reachable" in done.stderr


def test_check_reports_each_backend():
    from rlvr.sandboxes.base import _backend_class

    done = rlvr("sandbox", "check", "--json")
    assert done.returncode == 0, done.stderr
    found = {row["backend"]: row for row in map(json.loads, done.stdout.splitlines())}
    assert set(found) == set(BACKENDS)
    assert found["local"]["available"] and "no_network" not in found["local"]["claims"]
    for backend in BACKENDS:
        ok, why = _backend_class(backend).available()
        assert found[backend]["available"] == ok and found[backend]["why"] == why
    down = rlvr("sandbox", "check", "--json", env={"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
    docker = next(row for row in map(json.loads, down.stdout.splitlines()) if row["backend"] == "docker")
    assert not docker["available"] and "not reachable" in docker["why"]


def test_check_table_says_local_is_no_boundary():
    done = rlvr("sandbox", "check")
    assert done.returncode == 0 and "not a security boundary" in done.stdout


def sandbox_imports(root) -> dict[str, set[str]]:
    """module -> the rlvr.sandboxes modules it imports anywhere (also inside functions)."""
    import ast

    graph = {}
    for path in sorted((root / "rlvr" / "sandboxes").glob("*.py")):
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else []
            )
            found.update(n.split(".")[2] for n in names if n.startswith("rlvr.sandboxes."))
        graph[path.stem] = found - {path.stem}
    return graph


def test_sandbox_modules_import_no_circle():
    """docker imports image (the default tag) and daemon; nothing imports docker back."""
    graph = sandbox_imports(REPO)
    assert "image" in graph["docker"] and "daemon" in graph["image"]  # the walk sees the edges

    def reaches(start, goal, seen=()):
        return any(n == goal or (n not in seen and reaches(n, goal, (*seen, n))) for n in graph.get(start, ()))

    assert [m for m in graph if reaches(m, m)] == []

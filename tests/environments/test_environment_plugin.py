"""The README's example plugin, really pip-installed, adds the environment `calculator`: found by entry
point, built from env options, and driving `rlvr eval --env calculator` like the built-in python tool."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plugin_fixtures import REPO, install_example


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_example(tmp_path_factory.mktemp("plugin"))


def _python(code: str, site: Path, cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]), "COLUMNS": "200"}
    command = [sys.executable, "-c", textwrap.dedent(code), *args] if code else [sys.executable, "-m", "rlvr", *args]
    return subprocess.run(command, capture_output=True, text=True, env=env, cwd=cwd, timeout=300, check=False)


CALLS = """
import json, sys
from rlvr.environments import Environment, build_environment
from rlvr.environments.registry import default_registry

entry = {e.name: e for e in default_registry().entries()}["calculator"]
env = build_environment("calculator", max_turns=3)
rows = []
for turn in sys.argv[1:]:
    state = env.reset()
    call = env.parse_call(state, turn)
    obs = env.execute([(state, call)])[0] if call is not None else None
    rows.append(None if obs is None else [obs.text, obs.status.value])
out = {"source": entry.source, "is_env": isinstance(env, Environment), "turns": env.max_turns, "rows": rows}
print(json.dumps(out))
"""

TURNS = [
    ("So 12*(3+4) is <calc>12*(3+4)</calc>", [" = 84\n", "ok"]),
    ("<calc>7/0</calc>", [" error: division by zero\n", "error"]),
    ("<calc>__import__('os').getcwd()</calc>", None),  # not arithmetic: checked below by status only
    ("no call in this turn", None),
]


def test_the_example_environment_is_found_by_entry_point_and_never_raises(site: Path, tmp_path: Path) -> None:
    done = _python(CALLS, site, tmp_path, *(t for t, _ in TURNS))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["source"] == "plugin rlvr-plugin-example 0.1.0" and out["is_env"] and out["turns"] == 3
    rows = out["rows"]
    assert rows[0] == TURNS[0][1] and rows[1] == TURNS[1][1]
    assert rows[2][1] == "error" and "not arithmetic" in rows[2][0]
    assert rows[3] is None


@pytest.mark.slow
def test_rlvr_eval_runs_with_the_plugin_environment(site: Path, tiny_model: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    args = ["eval", "--model", str(tiny_model), "--benchmark", "arith", "--limit", "4", "--engine", "hf"]
    args += ["--env", "calculator", "--max-new-tokens", "16", "--output", str(out)]
    done = _python("", site, tmp_path, *args)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(next(out.rglob("summary.json")).read_text())
    assert "tools" in json.dumps(summary) or "tool" in json.dumps(summary), summary

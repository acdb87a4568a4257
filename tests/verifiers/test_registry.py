"""The verifier registry: spec syntax, weighted sums, and real plugin distributions installed with
pip (the README's example, a broken one, and one whose names clash)."""

from __future__ import annotations

import json
import os
import pickle
import re
import shlex
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plugin_fixtures import install_example, pip_install
from rlvr.types import Example, Score, Status
from rlvr.verifiers import Verifier, Weighted, build_verifier, parse_spec
from rlvr.verifiers.format import ThinkFormat
from rlvr.verifiers.registry import Registry, UnknownVerifier, VerifierOptionError

REPO = Path(__file__).resolve().parents[2]
EX = Example("1", "2+2?", "4")


@pytest.mark.parametrize(
    "spec, terms",
    [
        ("math", [(1.0, "math", {})]),
        ("math+0.1*think_format", [(1.0, "math", {}), (0.1, "think_format", {})]),
        (" math + 0.1 * think_format ", [(1.0, "math", {}), (0.1, "think_format", {})]),
        ("code:partial=true", [(1.0, "code", {"partial": True})]),
        (
            "overlong:max_tokens=512,buffer=64,unit=chars",
            [(1.0, "overlong", {"max_tokens": 512, "buffer": 64, "unit": "chars"})],
        ),
        ("2*math+1e-1*boxed_format", [(2.0, "math", {}), (0.1, "boxed_format", {})]),
        ("-0.5*repetition:max_penalty=0.5", [(-0.5, "repetition", {"max_penalty": 0.5})]),
        ("my_plugin.v2", [(1.0, "my_plugin.v2", {})]),
    ],
)
def test_parse_spec(spec: str, terms: list) -> None:
    assert parse_spec(spec) == terms


@pytest.mark.parametrize(
    "spec, message",
    [
        ("", "empty"),
        ("+", "empty term"),
        ("math+", "empty term"),
        ("math++think_format", "empty term"),
        ("0.1*", "cannot parse"),
        ("0.1**math", "cannot parse"),
        ("1.2.3*math", "bad weight"),
        ("math:partial", "not key=value"),
        ("9math", "cannot parse"),
    ],
)
def test_parse_spec_rejects(spec: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_spec(spec)


def test_build_single_and_weighted() -> None:
    assert isinstance(build_verifier("think_format"), ThinkFormat)
    weighted = build_verifier("boxed_format+0.1*think_format")
    assert isinstance(weighted, Weighted) and weighted.name == "boxed_format+0.1*think_format"
    score = weighted.score("<think>add</think> \\boxed{4}", EX)
    assert score.reward == pytest.approx(1.1) and score.status == Status.CORRECT
    assert score.details["components"]["think_format"] == {
        "weight": 0.1,
        "reward": 1.0,
        "status": "correct",
        "details": {"reason": "ok", "think_chars": 3, "answer_chars": 9},
    }
    assert pickle.loads(pickle.dumps(weighted)).score("<think>add</think> \\boxed{4}", EX) == score


def test_unknown_verifier_and_bad_options_are_named() -> None:
    with pytest.raises(UnknownVerifier, match=r"unknown verifier 'nope' \(known: .*think_format"):
        build_verifier("math+nope")
    with pytest.raises(VerifierOptionError, match=r"'overlong'.*max_token.*options it takes: max_tokens, buffer, unit"):
        build_verifier("overlong:max_token=3")
    with pytest.raises(VerifierOptionError, match="options it takes: none"):
        build_verifier("boxed_format:strict=true")


class Fixed(Verifier):
    def __init__(self, name: str, score: Score):
        self.name, self._score = name, score

    def score(self, completion: str, example: Example) -> Score:
        return self._score


@pytest.mark.parametrize(
    "statuses, combined",
    [
        (["correct", "wrong"], "correct"),  # the first part's status is the combined one
        (["wrong", "correct"], "wrong"),
        (["no_answer", "correct"], "no_answer"),
        (["correct", "timeout"], "timeout"),  # a failed part is never hidden
        (["correct", "error"], "error"),
        (["hedged", "error", "timeout"], "error"),
    ],
)
def test_weighted_status(statuses: list[str], combined: str) -> None:
    parts = tuple((1.0, Fixed(f"v{i}", Score(float(s == "correct"), Status(s)))) for i, s in enumerate(statuses))
    score = Weighted(parts).score("", EX)
    assert score.status == Status(combined)
    assert [c["status"] for c in score.details["components"].values()] == statuses


def test_weighted_keeps_both_parts_with_the_same_name() -> None:
    verifier = build_verifier("overlong:max_tokens=4,buffer=2+overlong:max_tokens=100,buffer=10")
    score = verifier.score("one two three four five", EX)
    assert list(score.details["components"]) == ["overlong", "overlong#2"]
    assert score.reward == -1.0


def _write_module(root: Path, name: str, source: str) -> None:
    (root / f"{name}.py").write_text(textwrap.dedent(source))


def test_builtin_collection_rules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    _write_module(
        tmp_path,
        "rlvr_test_builtins",
        """
        from rlvr.types import Score, Status
        from rlvr.verifiers import Verifier, register
        from rlvr.verifiers.format import ThinkFormat

        @register("first")
        @register("first")  # twice: harmless
        class First(Verifier):
            '''The first one.'''
            def score(self, completion, example):
                return Score(1.0, Status.CORRECT)

        @register("second")
        class Second(First):
            '''A registered subclass gets its own name.'''

        class Unregistered(First):
            '''Inherits First's tag but is not registered itself.'''
    """,
    )
    _write_module(tmp_path, "rlvr_test_broken_builtin", "raise RuntimeError('half-written module')\n")
    registry = Registry(
        ["rlvr_test_builtins", "rlvr_test_builtins", "rlvr_test_broken_builtin", "rlvr_test_missing"], group="rlvr.none"
    )
    builtins = registry.builtins()
    assert sorted(builtins) == ["first", "rlvr_test_broken_builtin", "second"]  # ThinkFormat was imported, not defined
    assert builtins["first"].description == "The first one."
    assert registry.create("first").name == "first" and registry.create("second").name == "second"
    broken = builtins["rlvr_test_broken_builtin"]
    assert broken.broken and broken.error == "RuntimeError: half-written module"
    with pytest.raises(UnknownVerifier, match="failed to import: rlvr_test_broken_builtin"):
        registry.create("think_format")


# ---------------------------------------------------------------- real plugin distributions

BROKEN_PYPROJECT = """
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "rlvr-plugin-broken"
version = "0.0.1"

[project.entry-points."rlvr.verifiers"]
broken_example = "rlvr_plugin_broken.needs_missing_lib:Verifier"
think_format = "rlvr_plugin_broken:FakeThink"
contains_keyword = "rlvr_plugin_broken:Impostor"

[tool.setuptools]
packages = ["rlvr_plugin_broken"]
"""

BROKEN_INIT = '''
"""Entry points that go wrong on purpose."""
from rlvr.types import Score, Status
from rlvr.verifiers import Verifier


class FakeThink(Verifier):
    """Claims the built-in think_format name."""
    def score(self, completion, example):
        return Score(1.0, Status.CORRECT)


class Impostor(FakeThink):
    """Claims the example plugin's name."""
'''


@pytest.fixture(scope="module")
def plugin_paths(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The README's example plugin and a broken/clashing one, each really pip-installed into its
    own folder (the example first on the path, so it wins the contains_keyword clash)."""
    root = tmp_path_factory.mktemp("plugins")
    broken = root / "src" / "rlvr-plugin-broken"
    (broken / "rlvr_plugin_broken").mkdir(parents=True)
    (broken / "pyproject.toml").write_text(BROKEN_PYPROJECT)
    (broken / "rlvr_plugin_broken" / "__init__.py").write_text(BROKEN_INIT)
    (broken / "rlvr_plugin_broken" / "needs_missing_lib.py").write_text("import rlvr_no_such_library_xyz\n")
    paths = [install_example(root), root / "site-broken"]
    pip_install(broken, paths[1])
    return paths


def _rlvr(args: list[str], paths: list[Path], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*map(str, paths), str(REPO)]), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "rlvr", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_plugin_is_listed_with_its_distribution(plugin_paths: list[Path], tmp_path: Path) -> None:
    done = _rlvr(["verifiers", "list", "--json"], plugin_paths[:1], tmp_path)
    assert done.returncode == 0, done.stderr
    entries = {e["name"]: e for e in map(json.loads, done.stdout.splitlines())}
    assert entries["contains_keyword"] == {
        "name": "contains_keyword",
        "source": "plugin rlvr-plugin-example 0.1.0",
        "description": "1 if the answer (text after </think>, if any) contains the gold keyword as a whole word.",
        "broken": False,
        "error": None,
        "clash": None,
        "shadowed": False,
    }
    assert entries["math"]["source"] == "built-in"
    table = _rlvr(["verifiers", "list"], plugin_paths[:1], tmp_path)
    assert table.returncode == 0 and "contains_keyword" in table.stdout and "rlvr-plugin-example" in table.stdout


def test_broken_and_clashing_plugins_are_shown_without_breaking_anything(
    plugin_paths: list[Path], tmp_path: Path
) -> None:
    done = _rlvr(["verifiers", "list", "--json"], plugin_paths, tmp_path)
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    by = {(r["name"], r["source"]): r for r in rows}
    broken = by[("broken_example", "plugin rlvr-plugin-broken 0.0.1")]
    assert broken["broken"] and broken["error"] == "ModuleNotFoundError: No module named 'rlvr_no_such_library_xyz'"
    builtin_think = by[("think_format", "built-in")]
    fake_think = by[("think_format", "plugin rlvr-plugin-broken 0.0.1")]
    assert not builtin_think["shadowed"] and "also claimed by plugin rlvr-plugin-broken 0.0.1" in builtin_think["clash"]
    assert fake_think["shadowed"] and "name taken by built-in" in fake_think["clash"]
    example = by[("contains_keyword", "plugin rlvr-plugin-example 0.1.0")]
    impostor = by[("contains_keyword", "plugin rlvr-plugin-broken 0.0.1")]
    assert not example["shadowed"] and example["clash"] and impostor["shadowed"]
    table = _rlvr(["verifiers", "list"], plugin_paths, tmp_path)
    assert table.returncode == 0 and "broken: ModuleNotFoundError" in table.stdout and "clash:" in table.stdout
    # the winners are what the names build; the broken one fails with its own error, exit code 2
    rows_file = tmp_path / "rows.jsonl"
    rows_file.write_text(json.dumps({"completion": "<think>x</think> it is Mars", "answer": "Mars"}) + "\n")
    ok = _rlvr(
        ["verify", "-v", "think_format+contains_keyword", "-i", str(rows_file), "--workers", "0"],
        plugin_paths,
        tmp_path,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout.splitlines()[0])["reward"] == 2.0
    bad = _rlvr(["verify", "-v", "broken_example", "-i", str(rows_file)], plugin_paths, tmp_path)
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        (
            "error: --verifier 'broken_example': verifier 'broken_example' (plugin rlvr-plugin-broken 0.0.1) "
            "failed to load: ModuleNotFoundError: No module named 'rlvr_no_such_library_xyz'"
        )
    ]


def _readme_walkthrough() -> tuple[str, str]:
    """The rows and the `rlvr verify` command of the README's plugin walkthrough."""
    readme = (REPO / "README.md").read_text()
    section = readme.split("<!-- SECTION:verifiers -->", 1)[1].split("<!-- /SECTION:verifiers -->", 1)[0]
    assert "pip install ./examples/rlvr-plugin-example" in section
    assert "rlvr verifiers list" in section
    rows = re.search(r"```jsonl\n(.*?)^\s*```", section, re.DOTALL | re.MULTILINE)
    command = re.search(r"^\s*(rlvr verify --verifier contains_keyword.*)$", section, re.MULTILINE)
    assert rows and command, "the README walkthrough lost its rows.jsonl block or its rlvr verify line"
    return textwrap.dedent(rows.group(1)), command.group(1)


def test_readme_walkthrough_runs_as_written(plugin_paths: list[Path], tmp_path: Path) -> None:
    rows, command = _readme_walkthrough()
    (tmp_path / "rows.jsonl").write_text(rows)
    args = shlex.split(command)[1:]
    done = _rlvr(args, plugin_paths[:1], tmp_path)
    assert done.returncode == 0, done.stderr
    scored = [json.loads(line) for line in (tmp_path / "scored.jsonl").read_text().splitlines()]
    assert [(r["reward"], r["status"]) for r in scored] == [(1.0, "correct"), (0.0, "wrong"), (0.0, "error")]
    assert "ValueError" in scored[2]["details"]["error"]  # a row without a gold is counted, not a silent 0
    assert "mean reward" in done.stdout and "verdicts/s" in done.stdout


def test_plugin_in_process_and_in_worker_processes(plugin_paths: list[Path], monkeypatch: pytest.MonkeyPatch) -> None:
    from rlvr.verifiers.runner import score_all

    monkeypatch.syspath_prepend(str(plugin_paths[0]))
    verifier = Registry().create("contains_keyword", case_sensitive=True)
    items = [Example("a", "p", "Mars"), Example("b", "p", "Mars")]
    completions = ["It is Mars.", "it is mars"]
    assert [verifier.score(c, e).reward for c, e in zip(completions, items, strict=True)] == [1.0, 0.0]
    # spawned workers get this sys.path, so they unpickle the plugin class too
    scores, stats = score_all(verifier, completions, items, workers=1)
    assert [s.reward for s in scores] == [1.0, 0.0] and stats.counts["correct"] == 1

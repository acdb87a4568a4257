"""The environment contract and registry: built-in and plugin lookup, broken plugins, bad options,
the python env's call parsing, and its backend choice (auto never picks local)."""

from __future__ import annotations

import logging

import pytest

from rlvr.environments import Call, CallStatus, Environment, Observation, build_environment, register_environment
from rlvr.environments.python import PythonEnvironment, choose_backend
from rlvr.environments.registry import EnvironmentOptionError, EnvironmentRegistry, UnknownEnvironment
from rlvr.errors import InputError


@register_environment("calculator")
class Calculator:
    """Evaluate `calc: EXPR` lines (a plugin's environment)."""

    name = "calculator"
    stop = ("=",)

    def __init__(self, max_turns: int = 2):
        self.max_turns = max_turns

    def reset(self, task=None):
        return []

    def parse_call(self, state, text):
        return Call(text.rpartition("calc:")[2].rstrip("=")) if text.endswith("=") else None

    def execute(self, calls):
        return [Observation(str(sum(int(x) for x in call.content.split("+"))), CallStatus.OK) for _, call in calls]

    def close(self):
        pass


class _EntryPoint:
    """What importlib.metadata gives the registry: a name, a value, and load()."""

    def __init__(self, name, load):
        self.name, self.value, self.dist, self._load = name, f"tests:{name}", None, load

    def load(self):
        return self._load()


def _broken():
    raise ImportError("the plugin's dependency is missing")


@pytest.fixture
def registry(monkeypatch) -> EnvironmentRegistry:
    reg = EnvironmentRegistry()
    points = [
        _EntryPoint("calculator", lambda: Calculator),
        _EntryPoint("broken", _broken),
        _EntryPoint("not_an_env", lambda: dict),
    ]
    monkeypatch.setattr(reg, "_entry_points", lambda: points)
    return reg


def test_python_is_built_in_and_plugins_come_by_entry_point(registry):
    names = {e.name: e for e in registry.entries()}
    assert names["python"].source == "built-in" and names["python"].factory is PythonEnvironment
    assert names["calculator"].source.startswith("plugin") and names["broken"].broken
    calc = build_environment("calculator", registry, max_turns=3)
    assert isinstance(calc, Environment) and calc.max_turns == 3
    state = calc.reset()
    assert calc.execute([(state, calc.parse_call(state, "so calc: 2+40="))])[0].text == "42"


@pytest.mark.parametrize(
    "name, options, error, message",
    [
        ("nope", {}, UnknownEnvironment, r"unknown environment 'nope' \(known: .*calculator.*python"),
        ("broken", {}, UnknownEnvironment, r"environment 'broken' .* failed to load: ImportError: the plugin's dep"),
        ("calculator", {"turns": 3}, EnvironmentOptionError, r"environment 'calculator'.*options it takes: max_turns"),
        ("not_an_env", {}, TypeError, r"did not build an rlvr Environment \(dict lacks name"),
        ("python", {"max_turns": 0, "backend": "local"}, InputError, r"env.max_turns must be a number >= 1, got 0"),
        ("python", {"timeout": -1, "backend": "local"}, InputError, r"env.timeout must be a number >= 0.01"),
        ("python", {"backend": "chroot"}, InputError, r"env.backend 'chroot' is unknown"),
    ],
)
def test_bad_names_and_options_are_one_clear_error(registry, name, options, error, message):
    with pytest.raises(error, match=message):
        build_environment(name, registry, **options)


@pytest.mark.parametrize(
    "text, call",
    [
        ("no call here", None),
        ("```python\nprint(1)\n```\n```output", Call("print(1)", "")),
        ("```python\nprint(1)\n```\n```output\n", Call("print(1)", "\n")),  # the stop token ran past the stop
        ("```python3\nx = 2\nprint(x)\n```\n```output", Call("x = 2\nprint(x)", "")),
        ("```python\nold()\n```\n```python\nnew()\n```\n```output", Call("new()", "")),  # the last cell before it
        ("```python\nunclosed()\n```output", Call("unclosed()", "")),
        ("just ```output", Call("", "")),  # asks for output of nothing: an invalid call, not silence
        ("```python\nprint(1)\n```", None),  # the block alone is no call: the model did not open ```output
    ],
)
def test_python_parses_the_call_its_turn_ends_in(text, call):
    env = PythonEnvironment(backend="local")
    assert env.parse_call(env.reset(), text) == call


def _availability(table):
    return lambda name: type("Backend", (), {"available": classmethod(lambda cls: table[name])})


@pytest.mark.parametrize(
    "table, backend, chosen",
    [
        ({"docker": (True, ""), "bwrap": (True, ""), "local": (True, "")}, "auto", "docker"),
        ({"docker": (False, "daemon down"), "bwrap": (True, ""), "local": (True, "")}, "auto", "bwrap"),
        ({"docker": (False, "daemon down"), "bwrap": (False, "not installed"), "local": (True, "")}, "auto", None),
        ({"docker": (False, "daemon down"), "bwrap": (False, "not installed"), "local": (True, "")}, "bwrap", None),
        ({"docker": (False, "daemon down"), "bwrap": (False, "not installed"), "local": (True, "")}, "local", "local"),
    ],
)
def test_auto_picks_docker_then_bwrap_and_never_local(monkeypatch, caplog, table, backend, chosen):
    monkeypatch.setattr("rlvr.environments.python._backend_class", _availability(table))
    if chosen is None:
        with pytest.raises(InputError) as info:
            choose_backend(backend)
        assert info.value.exit_code == 2 and "\n" not in str(info.value)
        assert ("daemon down" in str(info.value)) == (backend == "auto") and "not installed" in str(info.value)
        return
    with caplog.at_level(logging.WARNING):
        assert choose_backend(backend) == chosen
    assert ("NOT a security boundary" in caplog.text) == (chosen == "local")

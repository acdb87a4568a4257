"""Find environments by name: built-ins tagged with `@register_environment`, plugins by entry point.

Plugins declare the `rlvr.environments` entry point; the lookup rules (built-ins win a clash, a broken
plugin is listed as broken, options are checked against the factory) are the verifier registry's."""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Any, cast

from rlvr import names
from rlvr.environments.base import Environment
from rlvr.errors import InputError
from rlvr.verifiers.registry import Registry, VerifierOptionError
from rlvr.verifiers.registry import _check_options as _check_verifier_options

__all__ = [
    "BUILTIN_MODULES",
    "ENTRY_POINT_GROUP",
    "EnvironmentRegistry",
    "UnknownEnvironment",
    "build_environment",
    "default_registry",
    "environment_from_config",
    "register_environment",
]

ENTRY_POINT_GROUP = "rlvr.environments"
#: modules whose `@register_environment`-tagged classes are the built-in environments
BUILTIN_MODULES = ("rlvr.environments.python",)
_TAG = "__rlvr_environment__"


def register_environment(name: str, *, description: str | None = None) -> Callable[[type], type]:
    """Tag an environment class (or factory) as the environment `name`. It only tags: the registry
    collects tagged objects from BUILTIN_MODULES, so importing twice changes nothing."""

    def tag(factory: type) -> type:
        summary = description or ((factory.__doc__ or "").strip().splitlines() or [""])[0]
        setattr(factory, _TAG, (name, summary))
        return factory

    return tag


class UnknownEnvironment(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class EnvironmentOptionError(ValueError):
    """An option the environment does not take (`python:turns=3`)."""


class EnvironmentRegistry(Registry):
    """Built-ins on first use, plugins only when asked for by name (or all when listing)."""

    # the base class is typed for verifiers (unknown: type[UnknownVerifier], create -> Verifier); a generic
    # Registry[T] in rlvr/verifiers/registry.py would let these two lines go without their ignores
    what = "environment"
    tag = _TAG
    unknown = UnknownEnvironment  # type: ignore[assignment]

    def __init__(self, builtin_modules=BUILTIN_MODULES, group: str = ENTRY_POINT_GROUP):
        super().__init__(builtin_modules, group)

    def create(self, name: str, **options: Any) -> Environment:  # type: ignore[override]
        factory = cast("Callable[..., Environment] | None", self.entry(name).factory)
        assert factory is not None
        _check_options(name, factory, options)
        env = factory(**options)
        missing = [
            a for a in ("name", "max_turns", "stop", "reset", "parse_call", "execute", "close") if not hasattr(env, a)
        ]
        if missing:
            raise TypeError(
                f"environment {name!r} did not build an rlvr Environment "
                f"({type(env).__name__} lacks {', '.join(missing)})"
            )
        return env


def _check_options(name: str, factory: Callable[..., Any], options: dict[str, Any]) -> None:
    try:
        _check_verifier_options(name, factory, options)
    except VerifierOptionError as err:
        raise EnvironmentOptionError(str(err).replace("verifier", "environment", 1)) from None


@cache
def default_registry() -> EnvironmentRegistry:
    return EnvironmentRegistry()


def build_environment(name: str, registry: EnvironmentRegistry | None = None, **options: Any) -> Environment:
    """The environment `name` built with `options` (e.g. max_turns=4, backend="bwrap")."""
    return (registry or default_registry()).create(name, **options)


#: environments that take the sandbox options env.timeout, env.memory, env.max_output_chars, env.backend
SANDBOXED = ("python",)


def environment_from_config(env: Any) -> Environment | None:
    """The environment an `EnvConfig` (rlvr.config) names, or None for the single-turn path (env.name
    None or "none"). Every environment gets env.max_turns; the sandboxed ones the sandbox options too.
    An unknown name or option, or no sandbox to run in, is one InputError naming the option."""
    if env.name is None or env.name == names.NO_ENV:
        return None
    options: dict[str, Any] = {"max_turns": env.max_turns}
    if env.name in SANDBOXED:
        options.update(
            timeout=env.timeout, memory=env.memory, max_output_chars=env.max_output_chars, backend=env.backend
        )
    try:
        return build_environment(env.name, **options)
    except UnknownEnvironment as err:
        raise InputError(f"--env {env.name!r}: {err}") from None
    except (ValueError, TypeError) as err:
        raise InputError(f"env {env.name!r}: {err}") from None

"""Find verifiers by name: built-ins tagged with `@register`, plugins by entry point, and the
`math+0.1*think_format` spec syntax that builds weighted combinations."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import traceback
from dataclasses import dataclass
from functools import cache
from typing import Any, Callable, Iterable

from rlvr.verifiers.base import Verifier, Weighted

ENTRY_POINT_GROUP = "rlvr.verifiers"
#: modules whose `@register`-tagged classes are the built-in verifiers
BUILTIN_MODULES = (
    "rlvr.verifiers.math",
    "rlvr.verifiers.format",
    "rlvr.verifiers.code",
)
_TAG = "__rlvr_verifier__"


def register(name: str, *, description: str | None = None) -> Callable[[type], type]:
    """Tag a Verifier subclass (or factory) as the verifier `name`.

    It only tags: the registry collects tagged objects from BUILTIN_MODULES, so importing a
    module twice or decorating twice is harmless and no global state changes on import."""

    def tag(factory: type) -> type:
        summary = description or ((factory.__doc__ or "").strip().splitlines() or [""])[0]
        setattr(factory, _TAG, (name, summary))
        if isinstance(factory, type) and issubclass(factory, Verifier) and not factory.name:
            factory.name = name
        return factory

    return tag


@dataclass(frozen=True)
class Entry:
    name: str
    source: str  # "built-in" or "plugin <distribution> <version>"
    description: str
    factory: Callable[..., Verifier] | None  # None when the plugin failed to load
    error: str | None = None
    clash: str | None = None  # set when another source also claims this name


class UnknownVerifier(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class Registry:
    """Built-ins are collected on first use; plugins are loaded only when asked for by name
    (or all of them when listing), so one broken plugin never breaks anything else."""

    def __init__(self, builtin_modules: Iterable[str] = BUILTIN_MODULES, group: str = ENTRY_POINT_GROUP):
        self._builtin_modules = tuple(builtin_modules)
        self._group = group
        self._builtins: dict[str, Entry] | None = None

    def builtins(self) -> dict[str, Entry]:
        if self._builtins is None:
            found: dict[str, Entry] = {}
            for module_name in self._builtin_modules:
                try:
                    module = importlib.import_module(module_name)
                except ModuleNotFoundError as err:
                    if err.name == module_name:  # not written yet / optional: skip quietly
                        continue
                    raise
                for obj in vars(module).values():
                    tag = getattr(obj, _TAG, None)
                    if tag and getattr(obj, "__module__", None) == module_name:
                        name, description = tag
                        found[name] = Entry(name, "built-in", description, obj)
            self._builtins = found
        return self._builtins

    def _entry_points(self) -> list[importlib.metadata.EntryPoint]:
        return list(importlib.metadata.entry_points(group=self._group))

    def _load_plugin(self, ep: importlib.metadata.EntryPoint) -> Entry:
        dist = getattr(ep, "dist", None)
        source = f"plugin {dist.name} {dist.version}" if dist else f"plugin {ep.value}"
        try:
            factory = ep.load()
        except Exception as err:  # a broken plugin is shown as broken, never fatal
            last = traceback.format_exception_only(type(err), err)[-1].strip()
            return Entry(ep.name, source, "", None, error=last)
        tag = getattr(factory, _TAG, None)
        description = tag[1] if tag else (factory.__doc__ or "").strip().split("\n")[0]
        return Entry(ep.name, source, description, factory)

    def entries(self) -> list[Entry]:
        """Every verifier, plugins loaded, with broken ones and clashes marked."""
        builtins = self.builtins()
        out = dict(builtins)
        for ep in self._entry_points():
            entry = self._load_plugin(ep)
            if entry.name in out:
                first = out[entry.name]
                clash = f"also provided by {entry.source}; {first.source} wins"
                out[entry.name] = Entry(**{**first.__dict__, "clash": clash})
                if first.source == "built-in":
                    continue
            out.setdefault(entry.name, entry)
        return sorted(out.values(), key=lambda e: e.name)

    def entry(self, name: str) -> Entry:
        builtins = self.builtins()
        if name in builtins:
            return builtins[name]
        matches = [ep for ep in self._entry_points() if ep.name == name]
        if not matches:
            known = ", ".join(sorted({*builtins, *(ep.name for ep in self._entry_points())}))
            raise UnknownVerifier(f"unknown verifier {name!r} (known: {known})")
        entry = self._load_plugin(matches[0])
        if entry.factory is None:
            raise UnknownVerifier(f"verifier {name!r} ({entry.source}) failed to load: {entry.error}")
        return entry

    def create(self, name: str, **options: Any) -> Verifier:
        verifier = self.entry(name).factory(**options)
        if not isinstance(verifier, Verifier):
            raise TypeError(f"verifier {name!r} did not build a rlvr Verifier (got {type(verifier).__name__})")
        return verifier


@cache
def default_registry() -> Registry:
    return Registry()


_TERM = re.compile(r"^\s*(?:(?P<weight>[0-9.eE+-]+)\s*\*\s*)?(?P<name>[A-Za-z_][\w.-]*)(?::(?P<opts>.*))?\s*$")


def parse_spec(spec: str) -> list[tuple[float, str, dict[str, Any]]]:
    """`math+0.1*think_format` → [(1.0, "math", {}), (0.1, "think_format", {})].

    Options follow a colon as comma-separated key=value: `code:partial=true`."""
    terms = []
    for raw in _split_terms(spec):
        m = _TERM.match(raw)
        if not m:
            raise ValueError(f"cannot parse verifier term {raw!r} in {spec!r} (expected [WEIGHT*]NAME[:key=value,...])")
        opts: dict[str, Any] = {}
        for pair in filter(None, (m["opts"] or "").split(",")):
            key, eq, value = pair.partition("=")
            if not eq:
                raise ValueError(f"verifier option {pair!r} in {spec!r} is not key=value")
            opts[key.strip()] = _coerce(value.strip())
        terms.append((float(m["weight"]) if m["weight"] else 1.0, m["name"], opts))
    if not terms:
        raise ValueError("empty verifier spec")
    return terms


def _split_terms(spec: str) -> list[str]:
    # '+' separates terms, except inside a number's exponent (1e+3)
    return [t for t in re.split(r"(?<![eE])\+", spec) if t.strip()]


def _coerce(value: str) -> Any:
    lowered = value.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def build_verifier(spec: str, registry: Registry | None = None) -> Verifier:
    """Build the verifier a spec names; a single unweighted term is returned as itself."""
    registry = registry or default_registry()
    terms = parse_spec(spec)
    built = [(w, registry.create(name, **opts)) for w, name, opts in terms]
    if len(built) == 1 and built[0][0] == 1.0:
        return built[0][1]
    return Weighted(tuple(built))

"""Find verifiers by name: built-ins tagged with `@register`, plugins by entry point, and the
`math+0.1*think_format` spec syntax that builds weighted combinations."""

from __future__ import annotations

import contextlib
import importlib
import inspect
import re
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from rlvr.verifiers.base import Verifier, Weighted

ENTRY_POINT_GROUP = "rlvr.verifiers"
#: modules whose `@register`-tagged classes are the built-in verifiers
BUILTIN_MODULES = (
    "rlvr.verifiers.math.verifier",
    "rlvr.verifiers.math.reference",
    "rlvr.verifiers.format",
    "rlvr.verifiers.code",
    "rlvr.verifiers.reward_model",
    "rlvr.verifiers.reasoning_gym",
    "rlvr.verifiers.judge",
)
_TAG = "__rlvr_verifier__"


def register(name: str, *, description: str | None = None) -> Callable[[type], type]:
    """Tag a Verifier subclass (or factory) as the verifier `name`.

    It only tags: the registry collects tagged objects from BUILTIN_MODULES, so importing a
    module twice or decorating twice is harmless and no global state changes on import."""

    def tag(factory: type) -> type:
        summary = description or ((factory.__doc__ or "").strip().splitlines() or [""])[0]
        setattr(factory, _TAG, (name, summary))
        # a subclass of another registered verifier inherits its `name`: give it its own
        if isinstance(factory, type) and issubclass(factory, Verifier) and not factory.__dict__.get("name"):
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
    shadowed: bool = False  # True for the losing side of a clash: `name` builds the other one

    @property
    def broken(self) -> bool:
        return self.factory is None


class UnknownVerifier(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


class Registry:
    """Built-ins are collected on first use; plugins are loaded only when asked for by name
    (or all of them when listing), so one broken plugin never breaks anything else. A subclass
    serves another kind of plugin (rlvr.environments) by setting the class attributes below."""

    what = "verifier"  # the kind of plugin, in messages
    tag = _TAG  # the attribute `register` sets
    unknown = UnknownVerifier  # raised for a name nobody provides

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
                    if err.name == module_name:  # optional / not written yet: skip quietly
                        continue
                    found[module_name] = Entry(module_name, "built-in", "", None, error=_last_line(err))
                    continue
                except Exception as err:  # noqa: BLE001 - any exception importing a built-in module: shown as broken by `rlvr verifiers list`, like a plugin
                    found[module_name] = Entry(module_name, "built-in", "", None, error=_last_line(err))
                    continue
                for obj in vars(module).values():
                    tag = _own_tag(obj, self.tag)
                    if tag and getattr(obj, "__module__", None) == module_name:
                        name, description = tag
                        found[name] = Entry(name, "built-in", description, obj)
            self._builtins = found
        return self._builtins

    def _entry_points(self) -> list[Any]:
        import importlib.metadata  # only when a plugin is looked up: workers unpickling a built-in never pay for it

        return list(importlib.metadata.entry_points(group=self._group))

    def _load_plugin(self, ep: Any) -> Entry:
        dist = getattr(ep, "dist", None)
        source = f"plugin {dist.name} {dist.version}" if dist else f"plugin {ep.value}"
        try:
            factory = ep.load()
        except (Exception, SystemExit) as err:  # noqa: BLE001 - third-party code at import can raise anything (even SystemExit): a broken plugin is listed as broken, never fatal
            return Entry(ep.name, source, "", None, error=_last_line(err))
        tag = _own_tag(factory, self.tag)
        description = tag[1] if tag else ((factory.__doc__ or "").strip().splitlines() or [""])[0]
        return Entry(ep.name, source, description, factory)

    def entries(self) -> list[Entry]:
        """Every verifier, plugins loaded, broken ones marked, and for a name claimed twice both
        sides with `clash` set: built-ins win over plugins, then the first plugin found wins."""
        claims: dict[str, list[Entry]] = {}
        for entry in self.builtins().values():
            claims.setdefault(entry.name, []).append(entry)
        for ep in self._entry_points():
            entry = self._load_plugin(ep)
            claims.setdefault(entry.name, []).append(entry)
        out = []
        for found in claims.values():
            if len(found) == 1:
                out.append(found[0])
                continue
            winner, losers = found[0], found[1:]
            others = "; ".join(e.source for e in losers)
            out.append(replace(winner, clash=f"also claimed by {others}; this one is used"))
            out.extend(
                replace(e, clash=f"name taken by {winner.source}; this one is ignored", shadowed=True) for e in losers
            )
        return sorted(out, key=lambda e: (e.name, e.shadowed))

    def entry(self, name: str) -> Entry:
        builtins = self.builtins()
        if name in builtins and not builtins[name].broken:
            return builtins[name]
        matches = [ep for ep in self._entry_points() if ep.name == name]
        if not matches:
            usable = [n for n, e in builtins.items() if not e.broken]
            known = ", ".join(sorted({*usable, *(ep.name for ep in self._entry_points())}))
            broken = [f"{e.name} ({e.error})" for e in builtins.values() if e.broken]
            hint = f"; built-in modules that failed to import: {', '.join(broken)}" if broken else ""
            raise self.unknown(f"unknown {self.what} {name!r} (known: {known}){hint}")
        entry = self._load_plugin(matches[0])
        if entry.factory is None:
            raise self.unknown(f"{self.what} {name!r} ({entry.source}) failed to load: {entry.error}")
        return entry

    def create(self, name: str, **options: Any) -> Verifier:
        factory = self.entry(name).factory
        assert factory is not None
        _check_options(name, factory, options)
        verifier = factory(**options)
        if not isinstance(verifier, Verifier):
            raise TypeError(f"verifier {name!r} did not build a rlvr Verifier (got {type(verifier).__name__})")
        if verifier.name != name:  # e.g. a plugin subclassing a built-in: called what the user typed
            with contextlib.suppress(AttributeError, TypeError):  # a read-only name property: keep the verifier's own
                object.__setattr__(verifier, "name", name)
        return verifier


class VerifierOptionError(ValueError):
    """An option the verifier does not take (`overlong:max_token=10`)."""


def _check_options(name: str, factory: Callable[..., Verifier], options: dict[str, Any]) -> None:
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # builtins / C callables: let the call itself complain
        return
    try:
        signature.bind(**options)
    except TypeError as err:
        takes = [p for p in signature.parameters if p not in ("self", "args", "kwargs")]
        raise VerifierOptionError(
            f"verifier {name!r}: {err} (options it takes: {', '.join(takes) or 'none'})"
        ) from None


def _own_tag(obj: Any, tag: str = _TAG) -> tuple[str, str] | None:
    """The @register tag set on obj itself, not one a subclass inherited from a registered base."""
    if isinstance(obj, type):
        return obj.__dict__.get(tag)
    return getattr(obj, tag, None)


def _last_line(err: BaseException) -> str:
    return traceback.format_exception_only(type(err), err)[-1].strip()


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
        try:
            weight = float(m["weight"]) if m["weight"] else 1.0
        except ValueError:
            raise ValueError(f"bad weight {m['weight']!r} in verifier spec {spec!r}") from None
        terms.append((weight, m["name"], opts))
    if not terms:
        raise ValueError("empty verifier spec")
    return terms


def _split_terms(spec: str) -> list[str]:
    # '+' separates terms, except inside a number's exponent (1e+3)
    if not spec.strip():
        return []
    terms = re.split(r"(?<![eE])\+", spec)
    if not all(t.strip() for t in terms):  # 'math+' is more likely a lost term than a style
        raise ValueError(f"empty term in verifier spec {spec!r}")
    return terms


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

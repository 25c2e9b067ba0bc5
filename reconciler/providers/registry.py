"""Which destination types exist: the built-in ones, and those installed packages provide.

A destination type is a ``DestinationSettings`` subclass (see ``settings.py``), found by the
manifest's ``type``. Built-in types are named here as ``module:attribute`` references, exactly the
form of an entry point, and resolved the same way; other packages add types through the entry-point
group ``vectorops.destinations`` (SPEC §7), the entry point's name being the ``type``:

    [project.entry-points."vectorops.destinations"]
    memory-demo = "vectorops_memory_demo:MemoryDemoSettings"

Built-in types win over a plug-in of the same name. Plug-ins are looked up only when a manifest
names a type that is not built in, so a manifest that uses LanceDB never scans installed packages.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from functools import cache
from importlib.metadata import entry_points

from reconciler.providers.settings import DestinationSettings

ENTRY_POINT_GROUP = "vectorops.destinations"

#: type -> "module:attribute" of its settings model, resolved like an entry point
BUILTIN: dict[str, str] = {
    "lancedb": "reconciler.providers.lancedb:LanceDBSettings",
    "pinecone": "reconciler.providers.pinecone:PineconeSettings",
    "qdrant": "reconciler.providers.qdrant:QdrantSettings",
    "pgvector": "reconciler.providers.pgvector:PgvectorSettings",
}
#: first-party types that ship in an extra or a companion package: what to install for each
KNOWN_PACKAGES: dict[str, str] = {
}


class RegistryError(Exception):
    """A plug-in is installed but broken: its entry point does not load or names the wrong thing."""


@dataclass(frozen=True)
class Unknown:
    """A ``type`` nothing installed provides, with the sentence that says what to do."""

    type: str
    hint: str


def _load(reference: str, where: str) -> type[DestinationSettings]:
    module_name, _, attribute = reference.partition(":")
    try:
        obj = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise RegistryError(f"{where}: '{reference}' cannot be loaded ({exc.__class__.__name__}: {exc})") from None
    if not (isinstance(obj, type) and issubclass(obj, DestinationSettings)):
        raise RegistryError(f"{where}: '{reference}' is not a reconciler.providers.settings.DestinationSettings subclass")
    return obj


@cache
def builtin_types() -> tuple[type[DestinationSettings], ...]:
    """The settings models of the built-in types, in a fixed order (the JSON Schema's)."""
    return tuple(_load(ref, f"built-in destination type '{name}'") for name, ref in BUILTIN.items())


@cache
def _plugins() -> dict[str, tuple[str, str]]:
    """Installed plug-ins: type -> (entry point value, providing distribution)."""
    found: dict[str, tuple[str, str]] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name in BUILTIN or ep.name in found:
            continue
        dist = ep.dist.name if ep.dist is not None else "an installed package"
        found[ep.name] = (ep.value, dist)
    return found


@cache
def plugin_type(name: str) -> type[DestinationSettings] | None:
    """The settings model an installed package registers under ``name``, or None.

    Raises ``RegistryError`` (naming the package) when the plug-in is installed but broken."""
    entry = _plugins().get(name)
    if entry is None:
        return None
    value, dist = entry
    where = f"destination type '{name}' from package '{dist}'"
    model = _load(value, where)
    if model.type_name() != name:
        raise RegistryError(f"{where}: its settings declare type '{model.type_name()}', not '{name}'")
    return model


def resolve(names: list[str]) -> tuple[tuple[type[DestinationSettings], ...], list[Unknown]]:
    """The settings models a manifest using these ``type`` names needs (every built-in type plus
    the plug-ins named), and the names nothing installed provides."""
    models = list(builtin_types())
    unknown: list[Unknown] = []
    for name in dict.fromkeys(names):
        if name in BUILTIN:
            continue
        model = plugin_type(name)
        if model is None:
            unknown.append(Unknown(name, install_hint(name)))
        elif model not in models:
            models.append(model)
    return tuple(models), unknown


def install_hint(name: str) -> str:
    """What to install (or fix) for a ``type`` that nothing installed provides."""
    available = sorted({*BUILTIN, *_plugins()})
    if name in KNOWN_PACKAGES:
        return f"Destination type '{name}' is not installed: pip install '{KNOWN_PACKAGES[name]}'."
    close = difflib.get_close_matches(name, available, n=1)
    guess = f" Did you mean '{close[0]}'?" if close else ""
    return (
        f"No installed package provides destination type '{name}'.{guess} Installed types: {', '.join(available)}. "
        f"A destination from another package needs that package installed (it registers '{name}' in the "
        f"entry-point group {ENTRY_POINT_GROUP})."
    )


def all_types() -> tuple[type[DestinationSettings], ...]:
    """Every type available here: built in, then each installed plug-in that loads."""
    models = list(builtin_types())
    for name in sorted(_plugins()):
        try:
            model = plugin_type(name)
        except RegistryError:
            continue
        if model is not None:
            models.append(model)
    return tuple(models)


def clear_cache() -> None:
    """Forget what was discovered (tests that install a plug-in into the running interpreter)."""
    _plugins.cache_clear()
    plugin_type.cache_clear()


__all__ = [
    "BUILTIN",
    "ENTRY_POINT_GROUP",
    "KNOWN_PACKAGES",
    "RegistryError",
    "Unknown",
    "all_types",
    "builtin_types",
    "clear_cache",
    "install_hint",
    "plugin_type",
    "resolve",
]

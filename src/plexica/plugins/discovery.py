"""Finding plugins: built-ins, the ``plexica.plugins`` entry points, and settings.

Discovery happens when the host is built, never at import time, so importing ``plexica`` never
runs plugin code.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Iterable, Sequence
from importlib.metadata import entry_points
from typing import Literal

import attrs

from plexica.plugins.builtin import builtin_plugins
from plexica_sdk.errors import PluginLoadError

__all__ = ["ENTRY_POINT_GROUP", "PluginSource", "discover", "load_object"]

ENTRY_POINT_GROUP = "plexica.plugins"


@attrs.frozen
class PluginSource:
    """A plugin object and where it came from (for error messages and ``plugins list``)."""

    obj: object
    origin: str
    mode: Literal["builtin", "embedded", "remote"] = "embedded"


def _instantiate(obj: object) -> object:
    # A class is instantiated without arguments; modules and instances are plugins as they are.
    return obj() if inspect.isclass(obj) else obj


def _describe(obj: object) -> str:
    # A class or module names itself; an instance is named by its class.
    return str(obj.__name__) if inspect.isclass(obj) or inspect.ismodule(obj) else type(obj).__name__


def load_object(path: str) -> object:
    """Import ``"package.module:attribute"`` (or a bare module path) and return the plugin object.

    Raises:
        PluginLoadError: the path is malformed or cannot be imported.
    """
    module_name, _, attribute = path.partition(":")
    if not module_name:
        raise PluginLoadError(path, "expected 'module:attribute'")
    try:
        obj: object = importlib.import_module(module_name)
        for part in filter(None, attribute.split(".")):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise PluginLoadError(path, f"cannot import: {exc}") from exc
    return _instantiate(obj)


def discover(
    *,
    paths: Sequence[str] = (),
    objects: Iterable[object] = (),
    builtins: Iterable[object] = (),
    use_entry_points: bool = True,
    disabled: Sequence[str] = (),
) -> list[PluginSource]:
    """Collect plugin objects in a stable order: built-ins, entry points, paths, then objects.

    ``builtins`` are host-provided plugins chosen by settings (e.g. Keycloak realm management):
    registered as built-in, so they are never installed or uninstalled per tenant.
    """
    sources = [PluginSource(plugin, f"builtin:{name}", "builtin") for name, plugin in builtin_plugins()]
    sources.extend(PluginSource(plugin, f"builtin:{type(plugin).__name__}", "builtin") for plugin in builtins)
    if use_entry_points:
        for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name):
            if ep.name in disabled:
                continue
            try:
                loaded = ep.load()
            except Exception as exc:
                raise PluginLoadError(ep.name, f"entry point {ep.value!r} failed to import: {exc}") from exc
            sources.append(PluginSource(_instantiate(loaded), f"entry-point:{ep.name}"))
    sources.extend(PluginSource(load_object(path), f"settings:{path}") for path in paths)
    sources.extend(PluginSource(_instantiate(obj), f"object:{_describe(obj)}") for obj in objects)
    return sources

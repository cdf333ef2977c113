"""Small building blocks for plugin tests: a plugin that only describes itself, and managers."""

from __future__ import annotations

from typing import Any

import pluggy

from plexica.plugins.discovery import discover
from plexica.plugins.manager import PluginManager
from plexica_sdk import hookspecs
from plexica_sdk.markers import PROJECT_NAME, hookimpl
from plexica_sdk.types import PluginManifest, TenantContext

TENANT = TenantContext(tenant_id="t-1", slug="acme", schema="tenant_acme")


class ManifestPlugin:
    """A plugin that only describes itself; tests subclass it to add hook implementations."""

    def __init__(self, name: str = "notes", version: str = "1.0.0", **manifest: Any) -> None:
        self.manifest = PluginManifest(name=name, version=version, **manifest)

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return self.manifest


def manager_of(*plugins: object, hook_timeout: float = 10.0) -> PluginManager:
    """A plugin manager holding the built-ins and ``plugins``, without entry points."""
    return PluginManager(discover(objects=plugins, use_entry_points=False), hook_timeout=hook_timeout)


def pluggy_with(*plugins: tuple[str, object]) -> pluggy.PluginManager:
    """A bare pluggy manager with the SDK's hookspecs and ``(name, plugin)`` pairs registered in order."""
    pm = pluggy.PluginManager(PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    for name, plugin in plugins:
        pm.register(plugin, name=name)
    return pm

"""Plugin discovery, validation, registration and safe hook calls."""

from __future__ import annotations

from plexica.plugins.calls import HookResults
from plexica.plugins.discovery import ENTRY_POINT_GROUP, PluginSource, discover, load_object
from plexica.plugins.manager import LoadedPlugin, PluginManager

__all__ = [
    "ENTRY_POINT_GROUP",
    "HookResults",
    "LoadedPlugin",
    "PluginManager",
    "PluginSource",
    "discover",
    "load_object",
]

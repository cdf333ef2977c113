"""Plexica: a host for multi-tenant SaaS platforms built from plugins."""

from __future__ import annotations

from typing import Any

from plexica.app import create_app
from plexica.platform import Platform
from plexica.settings import Settings, load_settings
from plexica_sdk.errors import PlexicaError, SettingsError

__all__ = ["Platform", "PlexicaError", "Settings", "SettingsError", "create_app", "load_settings"]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import version

        return version("plexica")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

"""The core's own defaults, registered as plugins like any other."""

from __future__ import annotations

from plexica.plugins.builtin.core import CorePlugin

__all__ = ["CorePlugin", "builtin_plugins"]


def builtin_plugins() -> list[tuple[str, object]]:
    """The built-in plugins, in registration order."""
    return [("core", CorePlugin())]

"""The pluggy markers of the ``plexica`` project."""

from __future__ import annotations

import pluggy

__all__ = ["PROJECT_NAME", "hookimpl", "hookspec"]

PROJECT_NAME = "plexica"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
#: Mark a plugin's function or method as the implementation of a hook of the same name.
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

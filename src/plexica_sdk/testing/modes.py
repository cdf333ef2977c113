"""How the plugin under test runs beside the test host: the ``plugin_mode`` registry.

A mode turns the author's plugin object into what the host loads. ``embedded`` hands the object
over as it is; ``remote`` serves the plugin's class from its own process over loopback HTTP
(:mod:`plexica_sdk.testing.remote`) and the host loads it through ``[[plugins.remote]]``. Which
modes a test runs in is chosen by the pytest plugin (``--plexica-plugin-mode``,
``plexica_plugin_modes``), so the same test files run in both without changing a line.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Final

__all__ = [
    "KNOWN_PLUGIN_MODES",
    "PluginModeStarter",
    "available_plugin_modes",
    "plugin_mode_starter",
    "register_plugin_mode",
]

#: Starts the plugin in one mode and yields the object the host loads in its place.
PluginModeStarter = Callable[[object], AbstractAsyncContextManager[object]]

#: Every mode the kit knows about, available in this version or not (so a typo is told apart).
KNOWN_PLUGIN_MODES: Final = ("embedded", "remote")

_modes: dict[str, PluginModeStarter] = {}


@contextlib.asynccontextmanager
async def _embedded(plugin: object) -> AsyncIterator[object]:
    yield plugin


def register_plugin_mode(name: str, starter: PluginModeStarter) -> None:
    """Offer ``name`` as a ``plugin_mode``; registering a name again replaces its starter.

    Args:
        name: the mode's name, as given to ``--plexica-plugin-mode``.
        starter: an async context manager factory: given the plugin object, it yields what the
            host loads, and tears the plugin down on exit.
    """
    _modes[name] = starter


def available_plugin_modes() -> tuple[str, ...]:
    """The modes offered in this version, in registration order."""
    return tuple(_modes)


def plugin_mode_starter(name: str) -> PluginModeStarter:
    """The starter of mode ``name``.

    Raises:
        LookupError: the mode is not available; the message says which ones are.
    """
    try:
        return _modes[name]
    except KeyError:
        available = ", ".join(available_plugin_modes())
        if name in KNOWN_PLUGIN_MODES:
            reason = f"plugin mode {name!r} is not available in this version of Plexica"
        else:
            reason = f"unknown plugin mode {name!r}"
        raise LookupError(f"{reason} (available: {available})") from None


def _remote(plugin: object) -> AbstractAsyncContextManager[object]:
    from plexica_sdk.testing.remote import serve_remotely  # subprocess and sockets, only when asked for

    return serve_remotely(plugin)


register_plugin_mode("embedded", _embedded)
register_plugin_mode("remote", _remote)

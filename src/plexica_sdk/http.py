"""Helpers for plugin route handlers; framework-neutral (reads the ASGI scope only)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from plexica_sdk.errors import PlexicaError
from plexica_sdk.protocols import Host

__all__ = ["HOST_SCOPE_KEY", "WORKSPACE_HEADER", "host"]

#: Where the host puts the plugin's :class:`Host` handle in the ASGI scope.
HOST_SCOPE_KEY = "plexica.host"
WORKSPACE_HEADER = "X-Workspace-ID"


class _HasScope(Protocol):
    @property
    def scope(self) -> Mapping[str, Any]: ...


def host(request: _HasScope) -> Host:
    """Return the plugin's host handle for this request (a Starlette ``Request`` or any scope holder).

    Raises:
        PlexicaError: the route is not served by a Plexica host.
    """
    handle = request.scope.get(HOST_SCOPE_KEY)
    if handle is None:
        raise PlexicaError("this route is not mounted by a Plexica host")
    return handle  # type: ignore[no-any-return]

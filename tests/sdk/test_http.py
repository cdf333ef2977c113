"""``plexica_sdk.http.host``: finds the plugin's host handle in any ASGI scope holder."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from plexica_sdk import http
from plexica_sdk.errors import PlexicaError


class ScopeHolder:
    """Anything with a ``scope``, like a Starlette ``Request``."""

    def __init__(self, scope: Mapping[str, Any]) -> None:
        self.scope = scope


def test_host_returns_the_handle_the_host_put_in_the_scope() -> None:
    handle = object()
    assert http.host(ScopeHolder({"type": "http", http.HOST_SCOPE_KEY: handle})) is handle


def test_host_raises_for_a_route_not_mounted_by_a_plexica_host() -> None:
    with pytest.raises(PlexicaError, match="not mounted by a Plexica host"):
        http.host(ScopeHolder({"type": "http"}))


def test_scope_key_and_workspace_header_are_stable() -> None:
    assert http.HOST_SCOPE_KEY == "plexica.host"
    assert http.WORKSPACE_HEADER == "X-Workspace-ID"

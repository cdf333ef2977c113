"""Fixtures for end-to-end tests: a real host app with the notes plugin, and two tenants.

The host comes from the plugin-author kit (``plexica_sdk.testing.host``), so the project's own
end-to-end tests and every plugin's tests run the same host; these fixtures only keep the
project's older call shape (``host.token(tenant, ...)``) and leave the event spy out.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import attrs
import httpx2
import pytest
from plexica_plugin_notes import NotesPlugin
from starlette.applications import Starlette

from plexica.platform import Platform
from plexica.settings import Settings
from plexica_sdk.testing.host import RunningHost, build_settings, start_host


@attrs.define
class Host:
    """A running host: the app, its platform, and an HTTP client talking to it in-process."""

    running: RunningHost

    @property
    def app(self) -> Starlette:
        return self.running.app

    @property
    def client(self) -> httpx2.AsyncClient:
        return self.running.client

    @property
    def platform(self) -> Platform:
        return self.running.platform

    def token(self, tenant: str, user: str = "alice", roles: Iterable[str] = ("member",), **kwargs: Any) -> str:
        return self.running.token_for(user, roles, tenant, **kwargs)

    def admin_token(self) -> str:
        return self.running.admin_token()

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        return build_settings(tmp_path / "data", {}, **overrides)

    return make


@pytest.fixture
def make_host(make_settings: Callable[..., Settings]) -> Callable[..., contextlib.AbstractAsyncContextManager[Host]]:
    @contextlib.asynccontextmanager
    async def make(plugins: Iterable[object] = (), **overrides: Any) -> AsyncIterator[Host]:
        settings = make_settings(**overrides)
        async with start_host([NotesPlugin(), *plugins], settings, ["notes"], record_events=False) as running:
            yield Host(running)

    return make


@pytest.fixture
async def host(make_host: Callable[..., contextlib.AbstractAsyncContextManager[Host]]) -> AsyncIterator[Host]:
    async with make_host() as running:
        for slug in ("acme", "globex"):
            await running.platform.tenants.provision(slug)
        yield running

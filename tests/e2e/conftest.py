"""Fixtures for end-to-end tests: a real host app with the notes plugin, and two tenants."""

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

from plexica import create_app, load_settings
from plexica.platform import Platform
from plexica.settings import Settings


@attrs.define
class Host:
    """A running host: the app, its platform, and an HTTP client talking to it in-process."""

    app: Starlette
    client: httpx2.AsyncClient

    @property
    def platform(self) -> Platform:
        return self.app.state.platform  # type: ignore[no-any-return]

    def token(self, tenant: str, user: str = "alice", roles: Iterable[str] = ("member",), **kwargs: Any) -> str:
        issuer = self.platform.dev_issuer
        assert issuer is not None
        return issuer.mint(realm=f"tenant-{tenant}", subject=user, username=user, roles=list(roles), **kwargs)

    def admin_token(self) -> str:
        issuer = self.platform.dev_issuer
        assert issuer is not None
        return issuer.mint(realm="plexica-platform", subject="root", roles=["super_admin"])

    @staticmethod
    def auth(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def make_settings(tmp_path: Path) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        overrides.setdefault("data_dir", str(tmp_path / "data"))
        overrides.setdefault("load_entry_points", False)
        overrides.setdefault("environment", "test")
        return load_settings(environ={}, **overrides)

    return make


@pytest.fixture
def make_host(make_settings: Callable[..., Settings]) -> Callable[..., contextlib.AbstractAsyncContextManager[Host]]:
    @contextlib.asynccontextmanager
    async def make(plugins: Iterable[object] = (), **overrides: Any) -> AsyncIterator[Host]:
        app = create_app(make_settings(**overrides), plugins=[NotesPlugin(), *plugins])
        async with app.router.lifespan_context(app):
            transport = httpx2.ASGITransport(app=app)
            async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
                yield Host(app, client)

    return make


@pytest.fixture
async def host(make_host: Callable[..., contextlib.AbstractAsyncContextManager[Host]]) -> AsyncIterator[Host]:
    async with make_host() as running:
        for slug in ("acme", "globex"):
            await running.platform.tenants.provision(slug)
        yield running

"""The host mounted under a prefix inside another Starlette or FastAPI app."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx2
import pytest
from fastapi import FastAPI
from plexica_plugin_notes import NotesPlugin
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from plexica import create_app
from plexica.settings import Settings

pytestmark = pytest.mark.anyio


def _starlette_outer(inner: Starlette) -> Any:
    async def home(request: Any) -> PlainTextResponse:
        return PlainTextResponse("outer")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with inner.router.lifespan_context(inner):
            yield

    return Starlette(routes=[Route("/", home), Mount("/platform", app=inner)], lifespan=lifespan)


def _fastapi_outer(inner: Starlette) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with inner.router.lifespan_context(inner):
            yield

    outer = FastAPI(lifespan=lifespan)

    @outer.get("/")
    async def home() -> str:
        return "outer"

    outer.mount("/platform", inner)
    return outer


@pytest.mark.parametrize("make_outer", [_starlette_outer, _fastapi_outer], ids=["starlette", "fastapi"])
async def test_mounted_host_serves_core_and_plugin_routes(
    make_settings: Callable[..., Settings], make_outer: Callable[[Starlette], Any]
) -> None:
    inner = create_app(make_settings(), plugins=[NotesPlugin()])
    outer = make_outer(inner)
    async with outer.router.lifespan_context(outer):
        platform = inner.state.platform
        await platform.tenants.provision("acme")
        token = platform.dev_issuer.mint(realm="tenant-acme", subject="alice", roles=["notes-editor"])
        headers = {"Authorization": f"Bearer {token}"}
        async with httpx2.AsyncClient(transport=httpx2.ASGITransport(app=outer), base_url="http://outer") as client:
            assert (await client.get("/")).status_code == 200
            assert (await client.get("/platform/health")).json()["status"] == "ok"
            created = await client.post("/platform/api/plugins/notes/notes", json={"title": "mounted"}, headers=headers)
            assert created.status_code == 201, created.text
            me = await client.get("/platform/api/core/v1/me", headers=headers)
            assert me.json()["tenant"] == "acme"
            missing = await client.get("/platform/api/plugins/notes/nope", headers=headers)
            assert missing.status_code == 404
            assert missing.headers["content-type"].startswith("application/problem+json")

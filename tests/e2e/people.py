"""Support for the people and workspace end-to-end tests: an event recorder, a workspace-scoped
plugin, and a small client speaking the core API as one user or another."""

from __future__ import annotations

import asyncio
import textwrap
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import sqlalchemy as sa
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

import plexica_sdk
from plexica_sdk import Event, Host, PluginManifest, Subscription, hookimpl
from plexica_sdk.workspaces import scope_to_workspace, workspace_id
from tests.e2e.conftest import Host as RunningHost

API = "/api/core/v1"


@attrs.define(eq=False)
class EventRecorder:
    """A plugin that records every ``core.*`` event it receives."""

    events: list[Event] = attrs.Factory(list)

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="recorder", version="1.0.0", description="records core events")

    @hookimpl
    def plexica_subscriptions(self) -> Sequence[Subscription]:
        return [Subscription(event_type="core.*", handler=self.record)]

    async def record(self, event: Event, host: Host) -> None:
        self.events.append(event)

    def of(self, event_type: str) -> list[Event]:
        return [event for event in self.events if event.type == event_type]


tasks = sa.Table(
    "ws_tasks",
    sa.MetaData(),
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("workspace_id", sa.String(36), nullable=False, index=True),
    sa.Column("title", sa.String(200), nullable=False),
)

_MIGRATION = '''
"""Create ws_tasks.

Revision ID: wstasks_0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "wstasks_0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "ws_tasks",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("workspace_id", sa.String(36), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
    )


def downgrade():
    op.drop_table("ws_tasks")
'''


async def _list_tasks(request: Request) -> JSONResponse:
    host = plexica_sdk.host(request)
    async with host.session() as session:
        rows = (await session.execute(scope_to_workspace(sa.select(tasks), tasks.c.workspace_id, host))).all()
    return JSONResponse({"items": [{"id": r.id, "title": r.title, "workspace_id": r.workspace_id} for r in rows]})


async def _create_task(request: Request) -> JSONResponse:
    host = plexica_sdk.host(request)
    values = {"id": str(uuid.uuid4()), "workspace_id": workspace_id(host), "title": (await request.json())["title"]}
    async with host.session() as session:
        await session.execute(tasks.insert().values(**values))
    return JSONResponse(values, status_code=201)


@attrs.define(eq=False)
class WorkspaceTasksPlugin:
    """A plugin keeping per-workspace rows, scoped with the SDK helper (and nothing else)."""

    directory: Path

    def __attrs_post_init__(self) -> None:
        versions = self.directory / "versions"
        versions.mkdir(parents=True, exist_ok=True)
        (versions / "0001_ws_tasks.py").write_text(textwrap.dedent(_MIGRATION))

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="wstasks", version="1.0.0", description="per-workspace tasks")

    @hookimpl
    def plexica_tenant_migrations(self) -> str:
        return str(self.directory)

    @hookimpl
    def plexica_routes(self) -> Sequence[Any]:
        return [Route("/tasks", _list_tasks, methods=["GET"]), Route("/tasks", _create_task, methods=["POST"])]


@attrs.define
class People:
    """The core API as seen by the users of a running host."""

    host: RunningHost
    recorder: EventRecorder

    def headers(
        self, user: str, *, tenant: str = "acme", roles: Sequence[str] = ("member",), workspace: str | None = None
    ) -> dict[str, str]:
        headers = self.host.auth(self.host.token(tenant, user=user, roles=list(roles)))
        if workspace is not None:
            headers["X-Workspace-ID"] = workspace
        return headers

    async def enrol(self, *users: str, tenant: str = "acme") -> None:
        """Make each user's first request, which creates their profile."""
        for user in users:
            response = await self.host.client.get(f"{API}/me", headers=self.headers(user, tenant=tenant))
            assert response.status_code == 200, response.text

    async def call(
        self, method: str, path: str, user: str, *, roles: Sequence[str] = ("member",), **kwargs: Any
    ) -> Any:
        headers = {**self.headers(user, roles=roles, tenant=kwargs.pop("tenant", "acme")), **kwargs.pop("headers", {})}
        return await self.host.client.request(method, f"{API}{path}", headers=headers, **kwargs)

    async def create(self, user: str, name: str, **body: Any) -> dict[str, Any]:
        response = await self.call("POST", "/workspaces", user, json={"name": name, **body})
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    async def add(self, admin: str, workspace: str, user: str, role: str = "member") -> None:
        response = await self.call(
            "POST", f"/workspaces/{workspace}/members", admin, json={"user_id": user, "role": role}
        )
        assert response.status_code == 201, response.text

    async def settle(self) -> None:
        """Wait until every event written reached the recorder: the outbox relay published it, the bus delivered it."""
        await self.host.platform.relay.drain(timeout=10)
        join = getattr(self.host.platform.bus, "join", None)
        if join is not None:
            await asyncio.wait_for(join(), timeout=10)


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert "Traceback" not in response.text
    if field is not None:
        assert body["errors"][0]["field"] == field, body
    return body

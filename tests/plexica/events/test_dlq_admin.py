"""Dead-letter administration: the super-admin API (in-process bus) and ``plexica events dlq`` (Kafka)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import httpx2
import pytest

from plexica import create_app, load_settings
from plexica.cli.main import main
from plexica.events import KafkaEventBus, encode
from plexica.events.dlq import DeadLetter
from plexica.platform import Platform
from plexica_sdk import EventTypeDef, Host, PluginManifest, Subscription, hookimpl
from plexica_sdk.types import Event, TenantContext
from tests.plexica.events.conftest import IDEMPOTENCE, StaticDelivery, unique

pytestmark = pytest.mark.anyio


@attrs.define(eq=False)
class FlakyPlugin:
    """A worker that fails while ``failing`` is set; two attempts, then the dead-letter queue."""

    failing: bool = True
    handled: list[str] = attrs.Factory(list)

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="flaky", version="1.0.0", event_types=[EventTypeDef(type="flaky.job.queued")])

    @hookimpl
    def plexica_subscriptions(self) -> list[Subscription]:
        return [Subscription(event_type="flaky.job.queued", handler=self.handle, name="worker", max_attempts=2)]

    async def handle(self, event: Event, host: Host) -> None:
        if self.failing:
            raise RuntimeError("boom")
        self.handled.append(event.id)


@attrs.define
class Admin:
    platform: Platform
    client: httpx2.AsyncClient
    ctx: TenantContext

    def headers(self, *, super_admin: bool = True) -> dict[str, str]:
        issuer = self.platform.dev_issuer
        assert issuer is not None
        if super_admin:
            token = issuer.mint(realm="plexica-platform", subject="root", roles=["super_admin"])
        else:
            token = issuer.mint(realm="tenant-acme", subject="alice", roles=["tenant_admin"])
        return {"Authorization": f"Bearer {token}"}

    async def fail_one(self) -> Event:
        event = await self.platform.publish("flaky", "flaky.job.queued", {"job": 1}, self.ctx)
        await self.platform.bus.join()  # type: ignore[attr-defined]  # MemoryEventBus
        return event


@pytest.fixture
async def admin(tmp_path: Path) -> AsyncIterator[tuple[Admin, FlakyPlugin]]:
    plugin = FlakyPlugin()
    settings = load_settings(
        environ={},
        data_dir=str(tmp_path / "data"),
        load_entry_points=False,
        environment="test",
        events={"retry_backoff_seconds": 0.01},
    )
    app = create_app(settings, plugins=[plugin])
    async with app.router.lifespan_context(app):
        platform: Platform = app.state.platform
        tenant = await platform.tenants.provision("acme")
        ctx = TenantContext(tenant_id=tenant.id, slug=tenant.slug, schema=tenant.schema)
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield Admin(platform, client, ctx), plugin


DLQ = "/api/core/v1/events/dlq"


async def test_super_admins_list_show_and_replay_a_dead_letter(admin: tuple[Admin, FlakyPlugin]) -> None:
    api, plugin = admin
    event = await api.fail_one()
    listed = (await api.client.get(DLQ, headers=api.headers())).json()["items"]
    assert [(i["event_id"], i["plugin"], i["subscription"], i["attempts"]) for i in listed] == [
        (event.id, "flaky", "worker", 2)
    ]
    assert listed[0]["error"] == "RuntimeError: boom"
    letter_id = listed[0]["id"]

    shown = (await api.client.get(f"{DLQ}/{letter_id}", headers=api.headers())).json()
    assert shown["event"]["id"] == event.id and shown["event"]["data"] == {"job": 1}
    assert shown["topic"] == "acme.flaky.job.queued" and shown["tenant_id"] == api.ctx.tenant_id
    assert ["ce_id", event.id] in shown["headers"]

    plugin.failing = False
    response = await api.client.post(f"{DLQ}/{letter_id}/replay", headers=api.headers())
    assert response.status_code == 204
    await api.platform.bus.join()  # type: ignore[attr-defined]
    assert plugin.handled == [event.id]  # the same event id
    assert (await api.client.get(DLQ, headers=api.headers())).json()["items"] == []


async def test_super_admins_dismiss_a_dead_letter(admin: tuple[Admin, FlakyPlugin]) -> None:
    api, plugin = admin
    await api.fail_one()
    [item] = (await api.client.get(DLQ, headers=api.headers())).json()["items"]
    response = await api.client.post(f"{DLQ}/{item['id']}/dismiss", headers=api.headers())
    assert response.status_code == 204
    assert (await api.client.get(DLQ, headers=api.headers())).json()["items"] == []
    assert (await api.client.get(f"{DLQ}/{item['id']}", headers=api.headers())).status_code == 404
    assert (await api.client.post(f"{DLQ}/{item['id']}/replay", headers=api.headers())).status_code == 404
    assert plugin.handled == []


@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", DLQ), ("GET", f"{DLQ}/x"), ("POST", f"{DLQ}/x/replay"), ("POST", f"{DLQ}/x/dismiss")],
    ids=["list", "show", "replay", "dismiss"],
)
async def test_the_dead_letter_api_is_for_super_admins_only(
    admin: tuple[Admin, FlakyPlugin], method: str, path: str
) -> None:
    api, _ = admin
    assert (await api.client.request(method, path)).status_code == 401
    assert (await api.client.request(method, path, headers=api.headers(super_admin=False))).status_code == 403


async def test_a_bad_limit_is_refused(admin: tuple[Admin, FlakyPlugin]) -> None:
    api, _ = admin
    for limit in ("0", "abc", "100000"):
        response = await api.client.get(DLQ, params={"limit": limit}, headers=api.headers())
        assert response.status_code == 422


# ------------------------------------------------------------------ the CLI, on Kafka


def write_settings(path: Path, events: dict[str, Any]) -> Path:
    lines = ["[events]", *(f"{key} = {json.dumps(value)}" for key, value in events.items())]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def cli(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    capsys.readouterr()
    main(list(args))
    return capsys.readouterr().out


def letter_for(tenant: TenantContext, plugin: str) -> DeadLetter:
    event = Event(type=f"{plugin}.job.queued", source=f"/plugins/{plugin}", tenantid=tenant.tenant_id, data={"a": 1})
    return DeadLetter(
        event=event,
        topic=f"{tenant.slug}.{event.type}",
        partition=0,
        offset=7,
        key="k",
        headers=tuple(encode(event)[1]),
        error="RuntimeError: boom",
        attempts=3,
        plugin=plugin,
        subscription="worker",
    )


@pytest.mark.kafka
def test_the_cli_lists_shows_replays_and_dismisses_dead_letters_on_kafka(
    kafka_bootstrap: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events: dict[str, Any] = {
        "backend": "kafka",
        "bootstrap_servers": kafka_bootstrap,
        "replication_factor": 1,
        "enable_idempotence": IDEMPOTENCE,
        "dead_letter_topic": unique("dlq-"),
    }
    path = write_settings(tmp_path / "plexica.toml", events)
    delivery = StaticDelivery()
    tenant = delivery.add_tenant()
    plugin = unique("p")
    first, second = letter_for(tenant, plugin), letter_for(tenant, plugin)

    async def put() -> None:
        settings = load_settings(path, environ={})
        async with KafkaEventBus(settings.events, delivery, consume=False) as bus:
            for letter in (first, second):
                await bus._dead_letter(letter)

    asyncio.run(put())
    listed = json.loads(cli(capsys, "--settings", str(path), "events", "dlq", "list", "--json"))
    assert {item["id"] for item in listed} == {first.id, second.id}
    shown = json.loads(cli(capsys, "--settings", str(path), "events", "dlq", "show", first.id))
    assert (shown["event"]["id"], shown["offset"], shown["error"]) == (first.event.id, 7, "RuntimeError: boom")
    assert "replayed" in cli(capsys, "--settings", str(path), "events", "dlq", "replay", first.id)
    assert "dismissed" in cli(capsys, "--settings", str(path), "events", "dlq", "dismiss", second.id, "--yes")
    table = cli(capsys, "--settings", str(path), "events", "dlq", "list")
    assert first.id not in table and second.id not in table


def test_the_cli_points_to_the_api_for_the_in_process_bus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_settings(tmp_path / "plexica.toml", {"backend": "memory"})
    with pytest.raises(SystemExit) as exit_info:
        main(["--settings", str(path), "events", "dlq", "list"])
    assert exit_info.value.code == 1
    assert "GET /api/core/v1/events/dlq" in capsys.readouterr().err

"""FakeHost: handlers run against it as against the host, with publishes, checks and data in memory."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import AsyncIterator

import httpx2
import pytest
from plexica_plugin_notes import NotesPlugin
from plexica_plugin_notes.models import metadata
from plexica_plugin_notes.routes import routes

from plexica_sdk import (
    Cache,
    Event,
    EventError,
    Host,
    PermissionDeniedError,
    PluginContractError,
    PluginObjects,
    ValidationError,
)
from plexica_sdk.testing import FakeHost, ProvisionedTenant, RunningHost

pytestmark = pytest.mark.anyio


@pytest.fixture
def plexica_plugins() -> list[object]:
    """The embedded host the fake is compared with runs the notes plugin."""
    return [NotesPlugin()]


@pytest.fixture
async def fake() -> AsyncIterator[FakeHost]:
    host = FakeHost(NotesPlugin().plexica_manifest(), roles=["notes-editor"], metadata=metadata)
    yield host
    await host.aclose()


def client_for(fake: FakeHost) -> httpx2.AsyncClient:
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=fake.app(routes)), base_url="http://fake")


async def test_fake_host_implements_the_host_protocols(fake: FakeHost) -> None:
    assert isinstance(fake, Host)
    assert isinstance(fake.cache, Cache)
    assert isinstance(fake.objects, PluginObjects)


async def test_handler_runs_against_fake_host_and_its_publish_is_recorded(fake: FakeHost) -> None:
    async with client_for(fake) as client:
        created = await client.post("/notes", json={"title": "t"})
        listed = await client.get("/notes")
    assert created.status_code == 201
    assert [item["title"] for item in listed.json()["items"]] == ["t"]
    assert [(e.type, e.data["title"], e.userid) for e in fake.published] == [("notes.note.created", "t", "alice")]
    assert fake.checks == ["notes:note:write", "notes:note:read"]


async def test_permission_the_roles_do_not_grant_is_refused() -> None:
    fake = FakeHost(NotesPlugin().plexica_manifest(), roles=["member"], metadata=metadata)
    async with client_for(fake) as client:
        with pytest.raises(PermissionDeniedError):
            await client.post("/notes", json={"title": "t"})
    await fake.aclose()


NOTE = {"id": "n1", "title": "t", "author_id": "alice"}
#: A plugin's publishing mistakes, each refused by the embedded host and by FakeHost alike.
BAD_PUBLISHES = [
    pytest.param("notes.note.deleted", {}, PluginContractError, id="undeclared-type"),
    pytest.param("notes.note.created", {"id": "1"}, PluginContractError, id="missing-required"),
    pytest.param("notes.note.created", {**NOTE, "title": 3}, PluginContractError, id="wrong-type"),
    pytest.param("notes.note.created", [NOTE], PluginContractError, id="not-an-object"),
    pytest.param("core.tenant.created", {"tenant_id": "x"}, PluginContractError, id="core-type"),
    pytest.param("notes.note.created", {**NOTE, "at": dt.datetime.now(dt.UTC)}, EventError, id="not-json"),
    pytest.param("notes.note.created", {**NOTE, "score": float("nan")}, EventError, id="nan"),
]


def _described(exc: BaseException) -> tuple[object, ...]:
    """The error's class, message (an encoding error names the event's id: masked) and attributes."""
    message = re.sub(r"^event \S+ cannot be encoded", "event <id> cannot be encoded", str(exc))
    return type(exc), message, getattr(exc, "plugin", None), getattr(exc, "event_type", None)


@pytest.mark.parametrize(("event_type", "data", "expected"), BAD_PUBLISHES)
async def test_publish_refuses_what_the_embedded_host_refuses_with_the_same_error(
    fake: FakeHost,
    plexica_host: RunningHost,
    tenant: ProvisionedTenant,
    event_type: str,
    data: object,
    expected: type[EventError],
) -> None:
    embedded = plexica_host.platform.host_for("notes", tenant.context)
    with pytest.raises(EventError) as by_host:
        await embedded.publish(event_type, data)
    with pytest.raises(EventError) as by_fake:
        await fake.publish(event_type, data)

    assert type(by_host.value) is expected
    assert _described(by_fake.value) == _described(by_host.value)
    assert fake.published == []


async def test_mark_processed_is_true_once_per_event(fake: FakeHost) -> None:
    event = Event(type="core.tenant.created", source="/core")
    assert [await fake.mark_processed(event, session=None) for _ in range(2)] == [True, False]


async def test_config_fills_schema_defaults_under_the_given_values() -> None:
    manifest = NotesPlugin().plexica_manifest()
    assert await FakeHost(manifest).config() == {"max_notes": 1000}
    assert await FakeHost(manifest, config={"max_notes": 3}).config() == {"max_notes": 3}


async def test_cache_keeps_values_until_their_ttl() -> None:
    now = [0.0]
    fake = FakeHost()
    fake._cache = type(fake.cache)(clock=lambda: now[0])
    await fake.cache.set("k", b"v", ttl=10)
    assert await fake.cache.incr("n", 2, ttl=5) == 2
    now[0] = 6
    assert (await fake.cache.get("k"), await fake.cache.get("n")) == (b"v", None)
    now[0] = 11
    assert await fake.cache.get("k") is None


async def test_objects_store_list_and_refuse_unsafe_keys() -> None:
    fake = FakeHost()
    await fake.objects.put("docs/a.txt", b"a", content_type="text/plain")
    assert [info.key for info in await fake.objects.list("docs/")] == ["docs/a.txt"]
    assert (await fake.objects.head("docs/a.txt")).content_type == "text/plain"
    with pytest.raises(ValidationError):
        await fake.objects.put("../escape", b"x")


async def test_session_without_metadata_says_what_to_pass() -> None:
    with pytest.raises(ValidationError, match="metadata"):
        async with FakeHost().session():
            pass

"""FakeHost: handlers run against it as against the host, with publishes, checks and data in memory."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx2
import pytest
from plexica_plugin_notes import NotesPlugin
from plexica_plugin_notes.models import metadata
from plexica_plugin_notes.routes import routes

from plexica_sdk import Cache, Event, EventError, Host, PermissionDeniedError, PluginObjects, ValidationError
from plexica_sdk.testing import FakeHost

pytestmark = pytest.mark.anyio


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


@pytest.mark.parametrize(
    ("event_type", "data"),
    [("notes.note.deleted", {}), ("notes.note.created", {"id": "1"})],
    ids=["undeclared-type", "payload-fails-schema"],
)
async def test_publish_checks_the_manifest_like_the_host(fake: FakeHost, event_type: str, data: object) -> None:
    with pytest.raises(EventError):
        await fake.publish(event_type, data)
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

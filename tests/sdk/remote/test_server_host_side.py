"""The plugin server's endpoints for the host side: contributions, the migrations bundle, and event delivery."""

from __future__ import annotations

import itertools
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx2
import pytest
from joserfc.jwk import OKPKey

from plexica_sdk import Event, Host, PluginManifest, Subscription, context, hookimpl
from plexica_sdk.converter import unstructure
from plexica_sdk.errors import AuthenticationError, NotFoundError, PluginCallError
from plexica_sdk.remote import CONTEXT_HEADER, ContextVerifier, create_app, decode_problem
from plexica_sdk.remote.host import HostConnection
from plexica_sdk.remote.wire import bundle_digest
from tests.sdk.remote.tokens import TENANT, claims, jwks_of, new_key, sign

pytestmark = pytest.mark.anyio

SEEN: list[tuple[str, str, str | None]] = []


async def on_created(event: Event, host: Host) -> None:
    SEEN.append((event.id, context.current().slug, getattr(host, "plugin", None)))


class Subscriber:
    def __init__(self, migrations: Path) -> None:
        self.migrations = migrations

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(name="echo", version="2.0.0")

    @hookimpl
    def plexica_subscriptions(self, plugins: Sequence[str]) -> Sequence[Subscription]:
        found = [Subscription(event_type="core.tenant.created", handler=on_created, max_attempts=4)]
        return found + [
            Subscription(event_type=f"{name}.*", handler=on_created, name=f"all-{name}") for name in plugins
        ]

    @hookimpl
    def plexica_tenant_migrations(self) -> str:
        return str(self.migrations)


@pytest.fixture
def key() -> OKPKey:
    return new_key()


@pytest.fixture
def migrations(tmp_path: Path) -> Path:
    (tmp_path / "versions" / "__pycache__").mkdir(parents=True)
    (tmp_path / "versions" / "0001_first.py").write_text("revision = '0001'\n")
    (tmp_path / "versions" / "__pycache__" / "x.pyc").write_bytes(b"\0")
    return tmp_path


def client_for(key: OKPKey, migrations: Path, host: HostConnection | None) -> httpx2.AsyncClient:
    async def jwks() -> Mapping[str, Any]:
        return jwks_of(key)

    factory = host.host_for if host is not None else None
    app = create_app(Subscriber(migrations), verifier=ContextVerifier("echo", jwks), host_factory=factory)
    return httpx2.AsyncClient(transport=httpx2.ASGITransport(app=app), base_url="http://echo")


@pytest.fixture
async def client(key: OKPKey, migrations: Path) -> AsyncIterator[httpx2.AsyncClient]:
    connection = HostConnection("http://127.0.0.1:9")  # the real remote handle; the handler never calls it
    try:
        async with client_for(key, migrations, connection) as client:
            yield client
    finally:
        await connection.aclose()


_jti = itertools.count()


def token(key: OKPKey, **changes: Any) -> dict[str, str]:
    payload = claims(audience="echo", jti=f"e-{next(_jti)}", issued_at=time.time(), **changes)
    return {CONTEXT_HEADER: sign(key, payload)}


def event_body(subscription: str, tenantid: str | None = TENANT.tenant_id, **extra: Any) -> dict[str, Any]:
    event = Event(type="core.tenant.created", source="/plugins/core", data={"slug": "acme"}, tenantid=tenantid)
    return {"subscription": subscription, "event": unstructure(event), **extra}


def raised(response: httpx2.Response) -> Exception:
    return decode_problem(response.status_code, response.json(), plugin="echo")


async def test_contributions_and_migrations_need_no_token(client: httpx2.AsyncClient, migrations: Path) -> None:
    document = (await client.get("/.plexica/contributions", params={"plugins": "notes,billing"})).json()
    assert document["plugin"] == "echo" and document["version"] == "2.0.0" and document["routes"] is False
    assert document["subscriptions_use_plugins"] is True
    assert [entry["name"] for entry in document["subscriptions"]] == ["on_created", "all-notes", "all-billing"]
    assert document["subscriptions"][0] == {
        "event_type": "core.tenant.created",
        "name": "on_created",
        "max_attempts": 4,
    }
    bundle = (await client.get("/.plexica/migrations")).json()
    assert bundle["files"] == {"versions/0001_first.py": "revision = '0001'\n"}  # no __pycache__
    assert bundle["sha256"] == bundle_digest(bundle["files"]) == document["migrations"]["sha256"]
    refused = await client.get("/.plexica/contributions", params={"plugins": "Not A Name"})
    assert refused.status_code == 422


async def test_an_event_runs_its_handler_in_the_tokens_tenant_with_the_host_handle(
    client: httpx2.AsyncClient, key: OKPKey
) -> None:
    SEEN.clear()
    body = event_body("on_created")
    delivered = await client.post("/.plexica/events", json=body, headers=token(key))
    assert delivered.status_code == 204, delivered.text
    [(event_id, slug, plugin)] = SEEN
    assert (event_id, slug, plugin) == (body["event"]["id"], "acme", "echo")
    # A subscription that exists only for the host's plugin list is found by that list.
    late = await client.post(
        "/.plexica/events", json=event_body("all-billing", plugins=["billing"]), headers=token(key)
    )
    assert late.status_code == 204 and len(SEEN) == 2


async def test_an_event_is_refused_without_a_token_for_another_tenant_or_an_unknown_subscription(
    client: httpx2.AsyncClient, key: OKPKey
) -> None:
    unsigned = await client.post("/.plexica/events", json=event_body("on_created"))
    assert unsigned.status_code == 401
    other_tenant = await client.post("/.plexica/events", json=event_body("on_created", "t-2"), headers=token(key))
    assert other_tenant.status_code == 401 and isinstance(raised(other_tenant), AuthenticationError)
    unknown = await client.post("/.plexica/events", json=event_body("nope"), headers=token(key))
    assert unknown.status_code == 404 and isinstance(raised(unknown), NotFoundError)


async def test_without_a_host_factory_a_handler_cannot_run(key: OKPKey, migrations: Path) -> None:
    async with client_for(key, migrations, None) as client:
        response = await client.post("/.plexica/events", json=event_body("on_created"), headers=token(key))
    error = raised(response)
    assert isinstance(error, PluginCallError) and error.hook == "subscription on_created"


async def test_a_batch_runs_each_handler_and_answers_one_result_each(client: httpx2.AsyncClient, key: OKPKey) -> None:
    SEEN.clear()
    deliveries = [event_body("on_created", trace_id=f"{n:032x}") for n in range(3)]
    answer = await client.post("/.plexica/events/batch", json={"deliveries": deliveries}, headers=token(key))
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"results": [None, None, None], "protocol": 1}
    assert sorted(event_id for event_id, _, _ in SEEN) == sorted(body["event"]["id"] for body in deliveries)
    document = (await client.get("/.plexica/contributions")).json()
    assert document["event_batches"] is True


async def test_a_batch_with_anything_wrong_is_refused_whole_before_any_handler_runs(
    client: httpx2.AsyncClient, key: OKPKey
) -> None:
    SEEN.clear()
    path = "/.plexica/events/batch"
    good = event_body("on_created")
    unsigned = await client.post(path, json={"deliveries": [good]})
    assert unsigned.status_code == 401
    other_tenant = await client.post(
        path, json={"deliveries": [good, event_body("on_created", "t-2")]}, headers=token(key)
    )
    assert other_tenant.status_code == 401 and isinstance(raised(other_tenant), AuthenticationError)
    unknown = await client.post(path, json={"deliveries": [good, event_body("nope")]}, headers=token(key))
    assert unknown.status_code == 404 and isinstance(raised(unknown), NotFoundError)
    too_many = await client.post(path, json={"deliveries": [good] * 65}, headers=token(key))
    assert too_many.status_code == 422 and raised(too_many).field == "deliveries"  # type: ignore[attr-defined]
    empty = await client.post(path, json={"deliveries": []}, headers=token(key))
    assert empty.status_code == 422
    shapeless = await client.post(path, json={"deliveries": [good, {"event": good["event"]}]}, headers=token(key))
    assert shapeless.status_code == 422 and raised(shapeless).field == "deliveries[1].subscription"  # type: ignore[attr-defined]
    bad_trace = await client.post(path, json={"deliveries": [{**good, "trace_id": 7}]}, headers=token(key))
    assert bad_trace.status_code == 422
    assert SEEN == []

"""Event-bus test fixtures: a real small ``Delivery``, and buses over both backends."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

import attrs
import pytest

from plexica.events import EventBus, EventTypeRegistry, MemoryEventBus, source_for
from plexica.settings import EventSettings
from plexica_sdk.errors import TenantContextMissingError
from plexica_sdk.protocols import Cache, PluginObjects
from plexica_sdk.types import Decision, Event, EventTypeDef, TenantContext

#: Consumer timeouts that make Tansu rebalance quickly (see services-recipe.md).
FAST_CONSUMER: dict[str, Any] = {"session_timeout_ms": 2000, "heartbeat_interval_ms": 300, "metadata_max_age_ms": 1000}
#: Tansu does not support aiokafka's idempotent producer; a real Apache Kafka broker
#: (``scripts/services.sh up kafka-real``, which sets ``TEST_KAFKA_IDEMPOTENCE=1``) runs with it on.
IDEMPOTENCE: bool = os.environ.get("TEST_KAFKA_IDEMPOTENCE") == "1"


def unique(prefix: str) -> str:
    """A name no other test uses: tenants, plugins and topics stay apart on the shared broker."""
    return f"{prefix}{uuid.uuid4().hex[:10]}"


class StubHost:
    """The host handle handlers receive: enough to see which plugin and tenant it acts for."""

    def __init__(self, plugin: str, ctx: TenantContext | None) -> None:
        self._plugin = plugin
        self._ctx = ctx

    @property
    def plugin(self) -> str:
        return self._plugin

    @property
    def tenant(self) -> TenantContext:
        if self._ctx is None:
            raise TenantContextMissingError("host.tenant")
        return self._ctx

    def session(self) -> AbstractAsyncContextManager[Any]:
        raise NotImplementedError

    async def publish(self, event_type: str, data: Any, *, subject: str | None = None, session: Any = None) -> Event:
        raise NotImplementedError

    async def mark_processed(self, event: Event, *, session: Any) -> bool:
        raise NotImplementedError

    async def authorize(self, permission: str, resource: Mapping[str, Any] | None = None) -> Decision:
        raise NotImplementedError

    async def require(self, permission: str, resource: Mapping[str, Any] | None = None) -> None:
        raise NotImplementedError

    @property
    def cache(self) -> Cache:
        raise NotImplementedError

    @property
    def objects(self) -> PluginObjects:
        raise NotImplementedError

    async def config(self) -> Mapping[str, Any]:
        raise NotImplementedError


class StaticDelivery:
    """A ``Delivery`` over an in-memory tenant table; records which activity checks it answered."""

    def __init__(self) -> None:
        self.tenants: dict[str, TenantContext] = {}
        self.disabled: set[tuple[str, str]] = set()
        self.checked: list[tuple[str, str]] = []
        self.fail_once: set[str] = set()  # event ids whose next lookup fails, as a flaky tenant directory would

    def add_tenant(self, slug: str | None = None) -> TenantContext:
        slug = slug or unique("t")
        ctx = TenantContext(tenant_id=str(uuid.uuid4()), slug=slug, schema=f"tenant_{slug.replace('-', '_')}")
        self.tenants[ctx.tenant_id] = ctx
        return ctx

    async def context_for(self, event: Event) -> TenantContext | None:
        if event.id in self.fail_once:
            self.fail_once.discard(event.id)
            raise ConnectionError("tenant directory unavailable")
        return None if event.tenantid is None else self.tenants.get(event.tenantid)

    async def is_active(self, plugin: str, tenant_slug: str) -> bool:
        self.checked.append((plugin, tenant_slug))
        return (plugin, tenant_slug) not in self.disabled

    def host_for(self, plugin: str, ctx: TenantContext | None) -> StubHost:
        return StubHost(plugin, ctx)


@attrs.define
class Seen:
    """What one handler call observed."""

    event: Event
    context: TenantContext | None
    host_tenant: str | None


def event_for(plugin: str, ctx: TenantContext | None, kind: str = "note.created", **fields: Any) -> Event:
    """An event of ``plugin`` for the tenant ``ctx`` (``None``: a global event)."""
    return Event(
        type=f"{plugin}.{kind}",
        source=source_for(plugin),
        tenantid=None if ctx is None else ctx.tenant_id,
        **fields,
    )


async def eventually(check: Callable[[], bool], timeout: float = 20.0, what: str = "condition") -> None:
    """Poll ``check`` until it holds; fail the test after ``timeout`` seconds."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.02)


class MakeBus(Protocol):
    def __call__(
        self, *, plugin_types: Mapping[str, list[EventTypeDef]] | None = None, **settings: Any
    ) -> EventBus: ...


@pytest.fixture
def delivery() -> StaticDelivery:
    return StaticDelivery()


@pytest.fixture(params=["memory", pytest.param("kafka", marks=pytest.mark.kafka)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def make_bus(backend: str, delivery: StaticDelivery, request: pytest.FixtureRequest) -> AsyncIterator[MakeBus]:
    """Build (not start) buses of the test's backend; stops every one at teardown.

    Each Kafka bus gets its own dead-letter topic so tests never see each other's dead letters.
    """
    buses: list[EventBus] = []
    dead_letter_topic = unique("dlq-")
    base: dict[str, Any] = {"retry_backoff_seconds": 0.01, "dead_letter_topic": dead_letter_topic}
    if backend == "kafka":
        bootstrap = request.getfixturevalue("kafka_bootstrap")
        base |= {"backend": "kafka", "bootstrap_servers": bootstrap, "replication_factor": 1}
        base |= {"enable_idempotence": IDEMPOTENCE}

    def make(*, plugin_types: Mapping[str, list[EventTypeDef]] | None = None, **settings: Any) -> EventBus:
        registry = EventTypeRegistry()
        for plugin, definitions in (plugin_types or {}).items():
            registry.register_all(plugin, definitions)
        config = EventSettings(**(base | settings))
        bus: EventBus
        if backend == "kafka":
            from plexica.events import KafkaEventBus, KafkaOptions

            bus = KafkaEventBus(config, delivery, registry=registry, options=KafkaOptions(**FAST_CONSUMER))
        else:
            bus = MemoryEventBus(config, delivery, registry=registry)
        buses.append(bus)
        return bus

    yield make
    for bus in reversed(buses):
        await bus.stop()

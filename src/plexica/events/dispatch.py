"""What both buses share: routing a publish to its topic, and running a subscription's handler.

``Router`` validates, picks the topic and key, and encodes, before anything is sent. ``Dispatcher``
takes one received record for one plugin: it finds the tenant (dropping events for unknown
tenants or whose topic names another tenant), skips plugins the tenant has not enabled, and runs
each matching handler in the tenant's context with a timeout, retries and backoff, returning the
dead letters of those that kept failing. The buses only move records and commit offsets.
"""

from __future__ import annotations

import abc
import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import Self

import attrs

from plexica.events.bus import Delivery
from plexica.events.dlq import REPLAY_PLUGIN, REPLAY_SUBSCRIPTION, DeadLetter, describe_error
from plexica.events.envelope import Headers, encode, publisher_of
from plexica.events.registry import EventTypeRegistry
from plexica.events.topics import Topics, check_subscription_type, type_matches
from plexica.observability.logging import plugin_scope
from plexica.observability.tracing import handler_span
from plexica.settings import EventSettings
from plexica_sdk.context import tenant_context, use
from plexica_sdk.errors import BackendUnavailableError, EventError
from plexica_sdk.protocols import Host
from plexica_sdk.types import PLUGIN_NAME_RE, Event, Subscription, TenantContext

__all__ = ["BusBase", "Dispatcher", "Inbound", "Outbound", "Router", "Sleep"]

log = logging.getLogger(__name__)

Sleep = Callable[[float], Awaitable[None]]


#: A validated, encoded event and where it goes: ``(topic, key, value, headers)``. A plain tuple,
#: not a NamedTuple: building and unpacking one per event shows on the publish path.
Outbound = tuple[str, str | None, bytes | None, list[tuple[str, bytes]]]


@attrs.frozen
class Inbound:
    """A received event and the record it came in (partition and offset are ``None`` in memory)."""

    topic: str
    event: Event
    key: str | None
    headers: Headers
    partition: int | None = None
    offset: int | None = None


class Router:
    """Turns events into :class:`Outbound` records: validation, topic, key, encoding."""

    def __init__(self, topics: Topics, registry: EventTypeRegistry, delivery: Delivery) -> None:
        self._topics = topics
        self._registry = registry
        self._delivery = delivery

    async def route(
        self, events: Sequence[Event], keys: Sequence[str | None] | None = None, *, validate: bool = True
    ) -> list[Outbound]:
        """Check and encode every event, so a bad one stops the batch before anything is sent.

        Raises:
            EventError: a bad event (see ``EventBus.publish``), an unknown tenant, or ``keys`` of the wrong length.
        """
        if keys is not None and len(keys) != len(events):
            raise EventError(f"{len(keys)} keys for {len(events)} events")
        slugs: dict[str, str] = {}
        current = tenant_context.get()
        if current is not None:  # the usual case: publishing from a request or handler of that tenant
            slugs[current.tenant_id] = current.slug
        routed: list[Outbound] = []
        topics = self._topics
        for index, event in enumerate(events):
            if validate:
                plugin = publisher_of(event)
                if plugin is None:
                    raise EventError(
                        f"event source {event.source[:100]!r} is not '/plugins/{{plugin}}'", event_type=event.type
                    )
                self._registry.validate(plugin, event.type, event.data)
            if event.tenantid is None:
                topic = topics.topic_for(event.type, global_event=True)
            elif not topics.needs_slug:
                topic = topics.topic_for(event.type)
            else:
                slug = slugs.get(event.tenantid) or await self._slug(event, slugs)
                topic = topics.topic_for(event.type, slug)
            key = keys[index] if keys is not None else None
            value, headers = encode(event)
            routed.append((topic, key if key is not None else topics.default_key(event), value, headers))
        return routed

    async def _slug(self, event: Event, slugs: dict[str, str]) -> str:
        ctx = await self._delivery.context_for(event)
        if ctx is None or ctx.tenant_id != event.tenantid:
            raise EventError(f"event {event.id} is for unknown tenant {event.tenantid!r}", event_type=event.type)
        slugs[ctx.tenant_id] = ctx.slug
        return ctx.slug


class Dispatcher:
    """Runs plugins' handlers for received events. One per bus; holds the subscriptions."""

    def __init__(
        self, settings: EventSettings, delivery: Delivery, topics: Topics, *, sleep: Sleep = asyncio.sleep
    ) -> None:
        self._settings = settings
        self._delivery = delivery
        self._topics = topics
        self._sleep = sleep
        self._subscriptions: dict[str, list[Subscription]] = {}

    @property
    def plugins(self) -> list[str]:
        """Plugins with at least one subscription: one consumer group each."""
        return list(self._subscriptions)

    def subscriptions(self, plugin: str) -> list[Subscription]:
        return list(self._subscriptions.get(plugin, ()))

    def add(self, plugin: str, subscription: Subscription) -> None:
        """Record a subscription.

        Raises:
            EventError: invalid plugin name or type pattern, or a second subscription of that name.
        """
        check_subscription_type(subscription.event_type)
        if not PLUGIN_NAME_RE.match(plugin):
            raise EventError(f"invalid plugin name {plugin[:80]!r}", event_type=subscription.event_type)
        existing = self._subscriptions.setdefault(plugin, [])
        if any(s.name == subscription.name for s in existing):
            raise EventError(f"plugin {plugin!r} already has a subscription named {subscription.name!r}")
        existing.append(subscription)

    def wants(self, plugin: str, event_type: str) -> bool:
        """Whether any of ``plugin``'s subscriptions covers ``event_type``."""
        return any(type_matches(s.event_type, event_type) for s in self._subscriptions.get(plugin, ()))

    def _matching(self, plugin: str, msg: Inbound) -> list[Subscription]:
        subs = [s for s in self._subscriptions.get(plugin, ()) if type_matches(s.event_type, msg.event.type)]
        if subs:
            replay_plugin = replay_subscription = None
            for name, raw in msg.headers:  # a plain loop: this runs for every event and plugin
                if name == REPLAY_PLUGIN:
                    replay_plugin = raw.decode(errors="replace")
                elif name == REPLAY_SUBSCRIPTION:
                    replay_subscription = raw.decode(errors="replace")
            if replay_plugin is not None:
                return [s for s in subs if s.name == replay_subscription] if replay_plugin == plugin else []
        return subs

    async def deliver(self, plugin: str, msg: Inbound) -> list[DeadLetter]:
        """Run ``plugin``'s handlers for ``msg`` and return the dead letters of those that kept failing.

        Exceptions from ``Delivery`` propagate: the caller must not count the event as handled.
        """
        subs = self._matching(plugin, msg)
        if not subs:
            return []
        event = msg.event
        parsed = self._topics.parse(msg.topic)
        ctx: TenantContext | None = None
        if not parsed.is_global:
            ctx = await self._delivery.context_for(event)
            if ctx is None:
                log.warning(
                    "dropped event %s (%s) on %s: unknown tenant %r", event.id, event.type, msg.topic, event.tenantid
                )
                return []
            if (parsed.tenant_slug is not None and parsed.tenant_slug != ctx.slug) or ctx.tenant_id != event.tenantid:
                log.warning(
                    "dropped event %s (%s): topic %s does not belong to its tenant %r",
                    event.id,
                    event.type,
                    msg.topic,
                    ctx.slug,
                )
                return []
            if not await self._delivery.is_active(plugin, ctx.slug):
                return []
        host = self._delivery.host_for(plugin, ctx)
        letters: list[DeadLetter] = []
        for sub in subs:
            letter = await self._run(plugin, sub, msg, ctx, host)
            if letter is not None:
                letters.append(letter)
        return letters

    async def _run(
        self, plugin: str, sub: Subscription, msg: Inbound, ctx: TenantContext | None, host: Host
    ) -> DeadLetter | None:
        attempts = sub.max_attempts or self._settings.max_attempts
        error = ""
        for attempt in range(attempts):
            try:
                await self._call(plugin, sub, msg, ctx, host)
            except Exception as exc:  # a plugin's failure must not stop the consumer
                error = describe_error(exc)
                log.warning(
                    "handler %s of %s failed on event %s (attempt %d/%d): %s",
                    sub.name,
                    plugin,
                    msg.event.id,
                    attempt + 1,
                    attempts,
                    error,
                )
                if attempt + 1 < attempts:
                    await self._sleep(self._settings.retry_backoff_seconds * 2**attempt)
            else:
                return None
        log.error("event %s dead-lettered after %d attempts of %s.%s", msg.event.id, attempts, plugin, sub.name)
        return DeadLetter(
            event=msg.event,
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
            key=msg.key,
            headers=msg.headers,
            error=error,
            attempts=attempts,
            plugin=plugin,
            subscription=sub.name,
        )

    async def _call(self, plugin: str, sub: Subscription, msg: Inbound, ctx: TenantContext | None, host: Host) -> None:
        event = msg.event
        seconds = self._settings.handler_timeout_seconds
        scope: AbstractContextManager[object] = use(ctx) if ctx is not None else nullcontext()
        deadline = asyncio.timeout(seconds)
        # Inside the tenant context, so the span carries the tenant; the plugin names its log lines.
        with scope, plugin_scope(plugin), handler_span(plugin, sub.name, event, msg.topic, msg.headers):
            try:
                async with deadline:
                    result = sub.handler(event, host)
                    if inspect.isawaitable(result):
                        await result
            except TimeoutError as exc:
                if deadline.expired():
                    raise TimeoutError(f"handler did not finish within {seconds:g}s") from exc
                raise


class BusBase(abc.ABC):
    """State and plumbing both buses share: the registry, topics, router, dispatcher and lifecycle flags."""

    def __init__(
        self,
        settings: EventSettings,
        delivery: Delivery,
        *,
        registry: EventTypeRegistry | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._settings = settings
        self._delivery = delivery
        self._registry = registry if registry is not None else EventTypeRegistry()
        self._topics = Topics(settings.topology, settings.dead_letter_topic)
        self._router = Router(self._topics, self._registry, delivery)
        self._dispatcher = Dispatcher(settings, delivery, self._topics, sleep=sleep)
        self._sleep = sleep
        self._started = False
        self._closed = False

    @property
    def registry(self) -> EventTypeRegistry:
        """The declared event types that ``publish`` validates against."""
        return self._registry

    @property
    def topics(self) -> Topics:
        """The topic layout."""
        return self._topics

    def subscribe(self, plugin: str, subscription: Subscription) -> None:
        """See ``EventBus.subscribe``."""
        if self._started:
            raise EventError("subscribe before the event bus starts", event_type=subscription.event_type)
        self._dispatcher.add(plugin, subscription)

    def _check_open(self) -> None:
        if not self._started or self._closed:
            state = "stopped" if self._closed else "not started"
            raise BackendUnavailableError("event bus", state)

    async def publish(self, event: Event, *, key: str | None = None) -> None:
        """See ``EventBus.publish``."""
        await self.publish_many((event,), keys=(key,))

    @abc.abstractmethod
    async def publish_many(
        self, events: Sequence[Event], *, keys: Sequence[str | None] | None = None, validate: bool = True
    ) -> None: ...

    @abc.abstractmethod
    async def start(self) -> None: ...

    @abc.abstractmethod
    async def stop(self) -> None: ...

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

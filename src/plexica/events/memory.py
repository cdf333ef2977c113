"""The in-process event bus: the embedded default, with the Kafka bus's semantics.

Each plugin is a "consumer group" with its own queue. Events with the same topic and key run one
after another; different keys run concurrently, up to ``concurrency`` per plugin. Handlers get
their own decoded copy of each event, exactly as from Kafka, and retries, dead letters and replay
behave the same. Two differences: nothing survives the process (use Kafka where events must), and
an event the host's ``Delivery`` fails on is logged and dropped, as there is no broker to fetch it
from again.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Iterable, Sequence
from typing import final

import attrs

from plexica.events.bus import Delivery
from plexica.events.dispatch import BusBase, Inbound, Sleep
from plexica.events.dlq import REPLAY_PLUGIN, REPLAY_SUBSCRIPTION, DeadLetter
from plexica.events.envelope import decode, encode
from plexica.events.registry import EventTypeRegistry
from plexica.observability.tracing import fresh_context
from plexica.settings import EventSettings
from plexica_sdk.errors import BackendUnavailableError, NotFoundError
from plexica_sdk.types import Event

__all__ = ["MemoryEventBus"]

log = logging.getLogger(__name__)


@attrs.define
class _Lane:
    """One plugin's queue, the keys it is working on (with what waits behind each), and its concurrency limit."""

    queue: asyncio.Queue[Inbound | None]
    limit: asyncio.Semaphore
    busy: dict[object, deque[Inbound]] = attrs.Factory(dict)


@final
class MemoryEventBus(BusBase):
    """An :class:`~plexica.events.bus.EventBus` inside the process.

    Args:
        settings: retries, backoff, handler timeout and topic layout.
        delivery: the host's answers about tenants and plugins.
        registry: the declared event types (a new, empty one by default).
        concurrency: handlers running at once per plugin.
        sleep: waits between retries (tests pass a fake).
    """

    def __init__(
        self,
        settings: EventSettings,
        delivery: Delivery,
        *,
        registry: EventTypeRegistry | None = None,
        concurrency: int = 64,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        super().__init__(settings, delivery, registry=registry, sleep=sleep)
        self._concurrency = concurrency
        self._lanes: dict[str, _Lane] = {}
        self._letters: dict[str, DeadLetter] = {}
        self._pending = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self._runner: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start one worker per subscribed plugin."""
        if self._closed:
            raise BackendUnavailableError("event bus", "stopped")
        if self._started:
            return
        self._lanes = {
            plugin: _Lane(asyncio.Queue(), asyncio.Semaphore(self._concurrency)) for plugin in self._dispatcher.plugins
        }
        self._started = True
        # A fresh context: handlers must not inherit whatever tenant context the caller had.
        self._runner = asyncio.create_task(self._run(), name="plexica-events", context=fresh_context())

    async def stop(self) -> None:
        """Let queued and in-flight events finish (including what their handlers publish), then stop."""
        if self._closed or not self._started:
            self._closed = True
            return
        await self.join()
        self._closed = True
        for lane in self._lanes.values():
            lane.queue.put_nowait(None)
        if self._runner is not None:
            await self._runner

    async def ensure_topics(self, topics: Iterable[str]) -> None:
        """See ``EventBus.ensure_topics``: in memory there is nothing to create."""

    async def join(self) -> None:
        """Wait until every published event has been handled or dead-lettered (tests use this)."""
        while self._pending:
            await self._idle.wait()

    async def publish_many(
        self, events: Sequence[Event], *, keys: Sequence[str | None] | None = None, validate: bool = True
    ) -> None:
        """See ``EventBus.publish_many``; returns once the events are queued."""
        self._check_open()
        routed = await self._router.route(events, keys, validate=validate)
        for event, (topic, key, value, headers) in zip(events, routed, strict=True):
            self._fan_out(topic, event.type, key, value, tuple(headers))

    def _fan_out(
        self,
        topic: str,
        event_type: str,
        key: str | None,
        value: bytes | None,
        headers: tuple[tuple[str, bytes], ...],
        only: str | None = None,
    ) -> None:
        for plugin, lane in self._lanes.items():
            if (only is None or plugin == only) and self._dispatcher.wants(plugin, event_type):
                # Each plugin decodes its own copy, as each Kafka consumer group would.
                lane.queue.put_nowait(Inbound(topic, decode(value, headers), key, headers))
                self._pending += 1
                self._idle.clear()

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as tasks:
            for plugin, lane in self._lanes.items():
                tasks.create_task(self._run_lane(tasks, plugin, lane), name=f"plexica-events-{plugin}")

    async def _run_lane(self, tasks: asyncio.TaskGroup, plugin: str, lane: _Lane) -> None:
        while (msg := await lane.queue.get()) is not None:
            slot: object = (msg.topic, msg.key) if msg.key is not None else object()
            waiting = lane.busy.get(slot)
            if waiting is not None:
                waiting.append(msg)
            else:
                lane.busy[slot] = deque()
                tasks.create_task(
                    self._run_key(plugin, lane, slot, msg), name=f"plexica-events-{plugin}", context=fresh_context()
                )

    async def _run_key(self, plugin: str, lane: _Lane, slot: object, msg: Inbound) -> None:
        while True:
            async with lane.limit:
                await self._handle(plugin, msg)
            waiting = lane.busy[slot]
            if not waiting:
                del lane.busy[slot]
                return
            msg = waiting.popleft()

    async def _handle(self, plugin: str, msg: Inbound) -> None:
        try:
            for letter in await self._dispatcher.deliver(plugin, msg):
                self._letters[letter.id] = letter
        except Exception:  # Delivery failed; there is no broker to redeliver from
            log.exception("event %s for plugin %s could not be delivered", msg.event.id, plugin)
        finally:
            self._pending -= 1
            if not self._pending:
                self._idle.set()

    async def dlq_list(self, limit: int = 100) -> list[DeadLetter]:
        """See ``EventBus.dlq_list``."""
        return list(self._letters.values())[:limit]

    async def dlq_get(self, id: str) -> DeadLetter:
        """See ``EventBus.dlq_get``."""
        try:
            return self._letters[id]
        except KeyError:
            raise NotFoundError(f"no dead letter {id[:64]!r}", resource="dead letter") from None

    async def dlq_replay(self, id: str) -> None:
        """See ``EventBus.dlq_replay``."""
        letter = await self.dlq_get(id)
        self._check_open()
        value, headers = encode(letter.event)
        headers += [(REPLAY_PLUGIN, letter.plugin.encode()), (REPLAY_SUBSCRIPTION, letter.subscription.encode())]
        self._fan_out(letter.topic, letter.event.type, letter.key, value, tuple(headers), only=letter.plugin)
        del self._letters[id]

    async def dlq_dismiss(self, id: str) -> None:
        """See ``EventBus.dlq_dismiss``."""
        await self.dlq_get(id)
        del self._letters[id]

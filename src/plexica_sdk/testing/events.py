"""The event spy: a small plugin loaded beside the plugin under test that records every delivery.

It subscribes like any consumer (``core.*`` and each tested plugin's ``{name}.*``), so what it
records is what the bus really delivered, in the tenant context the delivery ran in, whichever
backend (in-process or Kafka) carries the events.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Final, final

import attrs

from plexica_sdk import context
from plexica_sdk.markers import hookimpl
from plexica_sdk.protocols import Host
from plexica_sdk.types import Event, PluginManifest, Subscription

__all__ = ["RECORDER_PLUGIN", "Delivery", "EventLog", "EventRecorder"]

#: The recorder's plugin name; it shows in the test host's plugin list.
RECORDER_PLUGIN: Final = "plexica-test-events"


@attrs.frozen
class Delivery:
    """One event as a consumer received it, with the slug of the tenant it was delivered in."""

    event: Event
    tenant: str | None


@final
class EventLog(Sequence[Event]):
    """The events delivered so far, in arrival order (what the ``published_events`` fixture is)."""

    def __init__(self) -> None:
        self.deliveries: list[Delivery] = []
        self._changed = asyncio.Condition()

    def __len__(self) -> int:
        return len(self.deliveries)

    def __getitem__(self, index: int) -> Event:  # type: ignore[override]
        return self.deliveries[index].event

    def __iter__(self) -> Iterator[Event]:
        return (delivery.event for delivery in self.deliveries)

    def of(self, event_type: str) -> list[Event]:
        """The events of one type."""
        return [event for event in self if event.type == event_type]

    def delivered_in(self, tenant_slug: str) -> list[Event]:
        """The events delivered in tenant ``tenant_slug``'s context (what its consumers saw)."""
        return [d.event for d in self.deliveries if d.tenant == tenant_slug]

    def clear(self) -> None:
        """Forget what was recorded, e.g. the ``core.*`` events of setting tenants up."""
        self.deliveries.clear()

    async def record(self, delivery: Delivery) -> None:
        async with self._changed:
            self.deliveries.append(delivery)
            self._changed.notify_all()

    async def wait_for(
        self,
        event_type: str,
        *,
        timeout: float = 5.0,
        tenant: str | None = None,
        where: Callable[[Event], bool] | None = None,
        after: int = 0,
    ) -> Event:
        """Wait for a delivery of ``event_type`` (in ``tenant``, matching ``where``) and return it.

        Args:
            event_type: the exact type.
            timeout: seconds to wait.
            tenant: only deliveries in this tenant (slug).
            where: only events for which this returns true.
            after: ignore the first ``after`` deliveries (pass ``len(log)`` taken before acting).

        Raises:
            TimeoutError: nothing matching arrived in time; the message lists what did.
        """
        deadline = time.monotonic() + timeout

        def found() -> Event | None:
            for delivery in self.deliveries[after:]:
                event = delivery.event
                if event.type != event_type or (tenant is not None and delivery.tenant != tenant):
                    continue
                if where is None or where(event):
                    return event
            return None

        async with self._changed:
            while (event := found()) is None:
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = sorted({f"{d.event.type}@{d.tenant}" for d in self.deliveries})
                    raise TimeoutError(f"no {event_type!r} event{_in(tenant)} within {timeout}s; delivered: {seen}")
                try:
                    await asyncio.wait_for(self._changed.wait(), left)
                except TimeoutError:
                    continue
        return event


def _in(tenant: str | None) -> str:
    return "" if tenant is None else f" in tenant {tenant!r}"


@attrs.define(eq=False)
class EventRecorder:
    """The spy plugin: records every delivery of ``patterns`` into ``log``."""

    log: EventLog
    patterns: tuple[str, ...] = ("core.*",)

    @classmethod
    def for_plugins(cls, log: EventLog, names: Iterable[str]) -> EventRecorder:
        """A recorder of the core events and every event of the named plugins."""
        return cls(log, ("core.*", *(f"{name}.*" for name in names)))

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(
            name=RECORDER_PLUGIN, version="1.0.0", description="records every delivered event (plexica_sdk.testing)"
        )

    @hookimpl
    def plexica_subscriptions(self) -> Sequence[Subscription]:
        return [Subscription(event_type=p, handler=self._record, name=f"record:{p}") for p in self.patterns]

    async def _record(self, event: Event, host: Host) -> None:
        ctx = context.get()
        await self.log.record(Delivery(event, ctx.slug if ctx is not None else None))

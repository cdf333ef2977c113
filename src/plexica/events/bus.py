"""The event bus interfaces: ``EventBus``, which the host uses, and ``Delivery``, which the host provides.

The bus moves events and runs handlers; it knows nothing about tenants or plugin installs. What it
needs from the host (a tenant's context, whether a plugin is enabled for it, a plugin's host
handle) it asks through ``Delivery``, so the same bus serves the embedded and the fleet setups.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Protocol, Self, runtime_checkable

from plexica_sdk.protocols import Host
from plexica_sdk.types import Event, Subscription, TenantContext

if TYPE_CHECKING:
    from plexica.events.dlq import DeadLetter
    from plexica.events.registry import EventTypeRegistry
    from plexica.events.topics import Topics

__all__ = ["Delivery", "EventBus"]


@runtime_checkable
class Delivery(Protocol):
    """What the bus asks the host about each event. Called for every delivery: answer from a cache.

    Events on ``global.*`` topics belong to no tenant: ``context_for`` and ``is_active`` are not
    called for them, their handlers run without a tenant context, and ``host_for`` gets ``None``.
    """

    async def context_for(self, event: Event) -> TenantContext | None:
        """The tenant context to run handlers of ``event`` in (from ``event.tenantid``).

        ``None`` means the tenant is unknown or deleted: the event is dropped and logged. The bus
        also calls this at publish time, outside a matching tenant context, to find the slug that
        names a per-tenant topic.
        """
        ...

    async def is_active(self, plugin: str, tenant_slug: str) -> bool:
        """Whether ``plugin`` is installed and enabled for the tenant; if not, its handlers are skipped."""
        ...

    def host_for(self, plugin: str, ctx: TenantContext | None) -> Host:
        """The host handle ``plugin``'s handlers receive, acting in ``ctx``."""
        ...


@runtime_checkable
class EventBus(Protocol):
    """Publishes events and delivers them to plugin subscriptions, at least once, with a dead-letter queue.

    Delivery guarantees (both implementations): each plugin is one consumer group and sees every
    event of its subscribed types once per successful run; events with the same key are handled
    in order; a handler is retried with exponential backoff and then dead-lettered. Use it as an
    async context manager, or call :meth:`start` and :meth:`stop`.
    """

    @property
    def registry(self) -> EventTypeRegistry:
        """The declared event types that :meth:`publish` validates against."""
        ...

    @property
    def topics(self) -> Topics:
        """The topic layout."""
        ...

    async def publish(self, event: Event, *, key: str | None = None) -> None:
        """Validate and publish one event; returns once the broker has it (``acks=all``).

        ``event.source`` must be ``/plugins/{plugin}`` (see ``envelope.source_for``): that plugin
        must own ``event.type``. ``key`` orders events; by default the subject (per-tenant
        topics) or the tenant id (shared topics).

        Raises:
            EventError: unknown type, another plugin's type, a payload failing its schema, or data
                that is not JSON. Nothing is sent.
            BackendUnavailableError: the bus is not running or the broker did not take the event.
        """
        ...

    async def publish_many(
        self,
        events: Sequence[Event],
        *,
        keys: Sequence[str | None] | None = None,
        validate: bool = True,
    ) -> None:
        """Publish a batch in one go: every event is checked before any is sent.

        The outbox relay passes already-validated, already-built events with ``validate=False``
        (their ids and times are kept, so a retried batch produces the same events).

        Raises:
            EventError: as :meth:`publish`, for the first bad event; nothing is sent.
            BackendUnavailableError: as :meth:`publish`; some events may have been sent.
        """
        ...

    async def ensure_topics(self, topics: Iterable[str]) -> None:
        """Create ``topics`` if they do not exist (a no-op in memory); publishing creates them too.

        Raises:
            BackendUnavailableError: the broker refused or did not answer.
        """
        ...

    def subscribe(self, plugin: str, subscription: Subscription) -> None:
        """Deliver events matching ``subscription.event_type`` to ``plugin``'s handler. Call before :meth:`start`.

        Raises:
            EventError: the bus is already started, the type pattern is invalid, or ``plugin``
                already has a subscription of that name.
        """
        ...

    async def start(self) -> None:
        """Connect and start consuming.

        Raises:
            BackendUnavailableError: the broker did not answer.
        """
        ...

    async def stop(self) -> None:
        """Stop consuming, let in-flight events finish (and commit them), then disconnect."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...

    async def dlq_list(self, limit: int = 100) -> list[DeadLetter]:
        """Up to ``limit`` dead letters not yet replayed or dismissed, oldest first."""
        ...

    async def dlq_get(self, id: str) -> DeadLetter:
        """One dead letter.

        Raises:
            NotFoundError: no such dead letter (or it was replayed or dismissed).
        """
        ...

    async def dlq_replay(self, id: str) -> None:
        """Re-publish a dead letter's event (same id) to its original topic, for the failed subscription only,
        and remove it from the queue.

        Raises:
            NotFoundError: no such dead letter.
            BackendUnavailableError: the bus is not running or the broker did not take the event.
        """
        ...

    async def dlq_dismiss(self, id: str) -> None:
        """Remove a dead letter without replaying it.

        Raises:
            NotFoundError: no such dead letter.
        """
        ...

"""Events: CloudEvents on tenant topics, delivered to plugin subscriptions at least once.

``create_event_bus`` builds the in-process bus or the Kafka bus from ``EventSettings``; the host
supplies a ``Delivery`` and registers the event types plugins declare on ``bus.registry``.
``Outbox`` and ``OutboxRelay`` publish events written inside tenant transactions (see ``docs/events.md``).
``KafkaEventBus`` and ``KafkaOptions`` import aiokafka, so they load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plexica.events.bus import Delivery, EventBus
from plexica.events.delivery import DeliveryCache
from plexica.events.dlq import DeadLetter
from plexica.events.envelope import MalformedEventError, decode, encode, source_for
from plexica.events.factory import create_event_bus
from plexica.events.memory import MemoryEventBus
from plexica.events.outbox import Outbox, OutboxRelay, mark_processed
from plexica.events.registry import EventTypeRegistry
from plexica.events.topics import Topics

if TYPE_CHECKING:
    from plexica.events.kafka import KafkaEventBus, KafkaOptions

__all__ = [
    "DeadLetter",
    "Delivery",
    "DeliveryCache",
    "EventBus",
    "EventTypeRegistry",
    "KafkaEventBus",
    "KafkaOptions",
    "MalformedEventError",
    "MemoryEventBus",
    "Outbox",
    "OutboxRelay",
    "Topics",
    "create_event_bus",
    "decode",
    "encode",
    "mark_processed",
    "source_for",
]

_LAZY = frozenset({"KafkaEventBus", "KafkaOptions"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from plexica.events import kafka

        return getattr(kafka, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

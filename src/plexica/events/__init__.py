"""Events: CloudEvents on tenant topics, delivered to plugin subscriptions at least once.

``create_event_bus`` builds the in-process bus or the Kafka bus from ``EventSettings``; the host
supplies a ``Delivery`` and registers the event types plugins declare on ``bus.registry``.
``KafkaEventBus`` and ``KafkaOptions`` import aiokafka, so they load on first access.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from plexica.events.bus import Delivery, EventBus
from plexica.events.dlq import DeadLetter
from plexica.events.envelope import MalformedEventError, decode, encode, source_for
from plexica.events.factory import create_event_bus
from plexica.events.memory import MemoryEventBus
from plexica.events.registry import EventTypeRegistry
from plexica.events.topics import Topics

if TYPE_CHECKING:
    from plexica.events.kafka import KafkaEventBus, KafkaOptions

__all__ = [
    "DeadLetter",
    "Delivery",
    "EventBus",
    "EventTypeRegistry",
    "KafkaEventBus",
    "KafkaOptions",
    "MalformedEventError",
    "MemoryEventBus",
    "Topics",
    "create_event_bus",
    "decode",
    "encode",
    "source_for",
]

_LAZY = frozenset({"KafkaEventBus", "KafkaOptions"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from plexica.events import kafka

        return getattr(kafka, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

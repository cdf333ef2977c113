"""``create_event_bus``: the bus the settings ask for."""

from __future__ import annotations

from plexica.events.bus import Delivery, EventBus
from plexica.events.memory import MemoryEventBus
from plexica.events.registry import EventTypeRegistry
from plexica.settings import EventSettings, KafkaSettings

__all__ = ["create_event_bus"]


def create_event_bus(
    settings: EventSettings,
    delivery: Delivery,
    *,
    registry: EventTypeRegistry | None = None,
    kafka_options: KafkaSettings | None = None,
) -> EventBus:
    """Build the in-process bus (``backend="memory"``) or the Kafka bus (``backend="kafka"``), not yet started.

    Raises:
        MissingDependencyError: the Kafka backend is asked for without aiokafka (``plexica[kafka]``).
        SettingsError: the Kafka backend is asked for without ``bootstrap_servers``.
    """
    if settings.backend == "kafka":
        from plexica.events.kafka import KafkaEventBus  # imports aiokafka: only when asked for

        return KafkaEventBus(settings, delivery, registry=registry, options=kafka_options)
    return MemoryEventBus(settings, delivery, registry=registry)

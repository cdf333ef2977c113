"""``create_event_bus`` and the package façade."""

from __future__ import annotations

import pytest

import plexica.events
from plexica.events import EventBus, KafkaEventBus, MemoryEventBus, create_event_bus
from plexica.settings import EventSettings
from plexica_sdk.errors import SettingsError
from tests.plexica.events.conftest import StaticDelivery


def test_memory_is_the_default(delivery: StaticDelivery) -> None:
    bus = create_event_bus(EventSettings(), delivery)

    assert isinstance(bus, MemoryEventBus)
    assert isinstance(bus, EventBus)


def test_kafka_backend(delivery: StaticDelivery) -> None:
    bus = create_event_bus(EventSettings(backend="kafka", bootstrap_servers="127.0.0.1:9092"), delivery)

    assert isinstance(bus, KafkaEventBus)
    assert bus.topics.dead_letter == "dead-letter-queue"


def test_kafka_backend_needs_bootstrap_servers(delivery: StaticDelivery) -> None:
    with pytest.raises(SettingsError, match="bootstrap_servers"):
        create_event_bus(EventSettings(backend="kafka"), delivery)


def test_facade_is_sorted_and_complete() -> None:
    assert plexica.events.__all__ == sorted(plexica.events.__all__)
    for name in plexica.events.__all__:
        assert getattr(plexica.events, name) is not None
    with pytest.raises(AttributeError):
        _ = plexica.events.NoSuchThing

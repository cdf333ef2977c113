"""Declared event types: ownership, duplicates, and payload schemas."""

from __future__ import annotations

import pytest

from plexica.events import EventTypeRegistry
from plexica_sdk.errors import EventError
from plexica_sdk.types import EventTypeDef

SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "tags": {"type": "array", "items": {"type": "string"}}},
    "required": ["title"],
}


@pytest.fixture
def registry() -> EventTypeRegistry:
    registry = EventTypeRegistry()
    registry.register("notes", EventTypeDef(type="notes.note.created", schema=SCHEMA, version=2))
    registry.register("notes", EventTypeDef(type="notes.note.deleted"))
    return registry


def test_valid_payload_passes_and_returns_the_definition(registry: EventTypeRegistry) -> None:
    definition = registry.validate("notes", "notes.note.created", {"title": "Hi", "tags": ["a"]})

    assert definition.version == 2
    assert registry.validate("notes", "notes.note.deleted", None).schema is None
    assert "notes.note.created" in registry
    assert registry.get("notes.note.archived") is None


@pytest.mark.parametrize(
    ("plugin", "event_type", "data", "message"),
    [
        ("notes", "notes.note.archived", {}, "unknown event type"),
        ("crm", "notes.note.created", {"title": "x"}, "'crm' may not publish 'notes.note.created'"),
        ("notes", "notes.note.created", {}, r"at data: required=\['title'\]"),
        ("notes", "notes.note.created", {"title": "x", "tags": ["ok", 7]}, r"at data.tags\[1\]: type='string'"),
    ],
    ids=["unknown", "other-plugins-type", "missing-field", "wrong-nested-type"],
)
def test_validate_refuses(
    registry: EventTypeRegistry, plugin: str, event_type: str, data: object, message: str
) -> None:
    with pytest.raises(EventError, match=message) as caught:
        registry.validate(plugin, event_type, data)
    assert caught.value.event_type == event_type


def test_schema_errors_do_not_echo_the_payload(registry: EventTypeRegistry) -> None:
    with pytest.raises(EventError) as caught:
        registry.validate("notes", "notes.note.created", {"title": "x", "tags": [{"email": "jane@example.com"}]})
    assert "jane@example.com" not in str(caught.value)


@pytest.mark.parametrize(
    ("plugin", "definition", "message"),
    [
        ("crm", EventTypeDef(type="notes.note.created"), "only declare event types under 'crm.'"),
        ("notes", EventTypeDef(type="notes.note.created", schema={"type": "object"}), "already registered"),
        (
            "notes",
            EventTypeDef(type="notes.note.moved", schema={"type": 12}),
            "schema of 'notes.note.moved' is invalid",
        ),
        ("global", EventTypeDef(type="global.tenant.created"), "reserved"),
        ("notes", EventTypeDef(type="notes.bad"), "invalid event type"),
    ],
    ids=["foreign-prefix", "redefined", "bad-schema", "reserved-plugin", "bad-name"],
)
def test_register_refuses(registry: EventTypeRegistry, plugin: str, definition: EventTypeDef, message: str) -> None:
    with pytest.raises(EventError, match=message):
        registry.register(plugin, definition)


def test_same_definition_twice_is_a_no_op_and_unregister_forgets(registry: EventTypeRegistry) -> None:
    registry.register("notes", EventTypeDef(type="notes.note.deleted"))
    registry.register_all("crm", [EventTypeDef(type="crm.deal.won")])

    registry.unregister("notes")

    assert "notes.note.created" not in registry
    assert "crm.deal.won" in registry

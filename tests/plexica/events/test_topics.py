"""Topic naming for both layouts, consumer patterns, and parsing topics back."""

from __future__ import annotations

import re

import pytest

from plexica.events import Topics
from plexica.events.topics import ParsedTopic, type_matches
from plexica_sdk.errors import EventError
from plexica_sdk.types import Event


def test_per_tenant_topics() -> None:
    topics = Topics("per_tenant")

    assert topics.topic_for("notes.note.created", "acme") == "acme.notes.note.created"
    assert topics.topic_for("core.plugin.installed", global_event=True) == "global.core.plugin.installed"
    assert topics.parse("acme.notes.note.created") == ParsedTopic("acme", "notes.note.created", False)
    assert topics.parse("global.core.plugin.installed") == ParsedTopic(None, "core.plugin.installed", True)
    with pytest.raises(EventError, match="tenant slug is needed"):
        topics.topic_for("notes.note.created")


def test_shared_topics_are_keyed_by_tenant_id() -> None:
    topics = Topics("shared")
    event = Event(type="notes.note.created", source="/plugins/notes", tenantid="t-1", subject="n-1")

    assert topics.topic_for("notes.note.created", "acme") == "notes.note.created"
    assert topics.default_key(event) == "t-1"
    assert topics.parse("notes.note.created") == ParsedTopic(None, "notes.note.created", False)
    assert topics.parse("global.notes.note.created").is_global


def test_per_tenant_key_defaults_to_the_subject() -> None:
    event = Event(type="notes.note.created", source="/plugins/notes", tenantid="t-1", subject="n-1")

    assert Topics("per_tenant").default_key(event) == "n-1"


@pytest.mark.parametrize("topic", ["dead-letter-queue", "acme.notes", "dead-letter-queue.dismissed"])
def test_parse_refuses_non_event_topics(topic: str) -> None:
    with pytest.raises(EventError, match="not an event topic"):
        Topics("per_tenant").parse(topic)


@pytest.mark.parametrize(
    ("topology", "topic", "expected"),
    [
        ("per_tenant", "acme.notes.note.created", True),
        ("per_tenant", "globex-2.notes.note.deleted", True),
        ("per_tenant", "global.notes.note.created", True),
        ("per_tenant", "acme.crm.deal.won", True),
        ("per_tenant", "acme.crm.deal.lost", False),
        ("per_tenant", "acme.notesx.note.created", False),
        ("per_tenant", "notes.note.created", False),
        ("per_tenant", "dead-letter-queue", False),
        ("shared", "notes.note.created", True),
        ("shared", "global.notes.note.created", True),
        ("shared", "crm.deal.won", True),
        ("shared", "acme.notes.note.created", False),
    ],
)
def test_consumer_pattern(topology: str, topic: str, expected: bool) -> None:
    pattern = Topics(topology).pattern(["notes.*", "crm.deal.won"])  # type: ignore[arg-type]

    assert bool(re.match(pattern, topic)) is expected


@pytest.mark.parametrize("bad", ["*", "notes", "Notes.*", "notes.note.*.x"])
def test_pattern_refuses_bad_subscription_types(bad: str) -> None:
    with pytest.raises(EventError):
        Topics().pattern([bad])


def test_pattern_needs_a_subscription() -> None:
    with pytest.raises(EventError, match="at least one"):
        Topics().pattern([])


def test_type_matches() -> None:
    assert type_matches("notes.*", "notes.note.created")
    assert type_matches("notes.note.*", "notes.note.created")
    assert not type_matches("notes.*", "notesx.note.created")
    assert type_matches("notes.note.created", "notes.note.created")
    assert not type_matches("notes.note.created", "notes.note.deleted")

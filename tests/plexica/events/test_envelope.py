"""The CloudEvents envelope: binary-mode round trip, type names, and malformed records."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from plexica.events import MalformedEventError, decode, encode, source_for
from plexica.events.envelope import check_event_type, owner_of, publisher_of
from plexica_sdk.errors import EventError
from plexica_sdk.types import Event

text = st.text(alphabet=st.characters(codec="utf-8"), max_size=40)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
events = st.builds(
    Event,
    type=st.from_regex(r"\A[a-z][a-z0-9-]{1,10}(\.[a-z][a-z0-9-]{0,8}){2,3}\Z"),
    source=text.filter(bool),
    data=json_values,
    id=text.filter(bool),
    time=st.datetimes(timezones=offsets),
    subject=st.none() | text,
    tenantid=st.none() | text,
    workspaceid=st.none() | text,
    userid=st.none() | text,
    traceid=st.none() | text,
    schemaversion=st.integers(min_value=1, max_value=1000),
)


@given(events)
def test_encode_then_decode_gives_the_same_event(event: Event) -> None:
    value, headers = encode(event)

    assert decode(value, headers) == event


def test_encoding_is_compact_json_and_ce_headers() -> None:
    event = Event(type="notes.note.created", source=source_for("notes"), data={"a": [1, 2]}, tenantid="t1")

    value, headers = encode(event)

    assert value == b'{"a":[1,2]}'
    names = [name for name, _ in headers]
    assert names[:7] == [
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_specversion",
        "ce_time",
        "ce_schemaversion",
        "content-type",
    ]
    assert dict(headers)["ce_tenantid"] == b"t1"
    assert "ce_subject" not in names  # absent attributes are not written


def test_naive_time_is_taken_as_utc() -> None:
    event = Event(type="notes.note.created", source="/plugins/notes", time=dt.datetime(2024, 5, 1, 12, 0))

    decoded = decode(*encode(event))

    assert decoded.time == dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    ("data", "content_type"),
    [({"when": dt.date(2024, 1, 1)}, "application/json"), (float("inf"), "application/json"), ("x", "text/plain")],
    ids=["not-json", "infinity", "not-a-json-content-type"],
)
def test_unencodable_event_raises_event_error(data: Any, content_type: str) -> None:
    event = Event(type="notes.note.created", source="/plugins/notes", data=data, datacontenttype=content_type)

    with pytest.raises(EventError) as caught:
        encode(event)
    assert caught.value.event_type == "notes.note.created"


def test_circular_data_raises_event_error() -> None:
    data: dict[str, Any] = {}
    data["self"] = data

    with pytest.raises(EventError, match="cannot be encoded"):
        encode(Event(type="notes.note.created", source="/plugins/notes", data=data))


def _good() -> tuple[bytes, list[tuple[str, bytes]]]:
    return encode(Event(type="notes.note.created", source="/plugins/notes", data={"n": 1}))


def _without(name: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    value, headers = _good()
    return value, [(k, v) for k, v in headers if k != name]


def _replace(name: str, raw: bytes) -> tuple[bytes, list[tuple[str, bytes]]]:
    value, headers = _good()
    return value, [(k, raw if k == name else v) for k, v in headers]


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        (_without("ce_id"), "missing header ce_id"),
        (_without("ce_type"), "missing header ce_type"),
        (_replace("ce_specversion", b"0.3"), "unsupported specversion"),
        (_replace("ce_time", b"yesterday"), "ValueError"),
        (_replace("ce_schemaversion", b"two"), "ValueError"),
        (_replace("ce_source", b"\xff\xfe"), "UnicodeDecodeError"),
        (_replace("content-type", b"application/xml"), "unsupported content-type"),
        ((b"{not json", _good()[1]), "JSONDecodeError"),
    ],
    ids=["no-id", "no-type", "old-specversion", "bad-time", "bad-schemaversion", "bad-utf8", "xml", "bad-json"],
)
def test_malformed_record_raises_typed_error(record: tuple[bytes, list[tuple[str, bytes]]], reason: str) -> None:
    with pytest.raises(MalformedEventError, match=reason):
        decode(*record)


def test_decode_ignores_foreign_headers_and_reads_empty_value_as_no_data() -> None:
    _, headers = _good()

    event = decode(None, [*headers, ("traceparent", b"00-abc"), ("x-null", None)])  # type: ignore[list-item]

    assert event.data is None
    assert json.loads(encode(event)[0]) is None


@pytest.mark.parametrize(
    "name", ["core.tenant.created", "notes.note.created", "my-crm.deal.stage.changed", "ab.c1.d-e"]
)
def test_valid_event_type_names(name: str) -> None:
    assert check_event_type(name) == name


@pytest.mark.parametrize(
    "name",
    ["notes.created", "Notes.note.created", "notes.note_item.created", "notes..created", "n.note.created", "x" * 200],
    ids=["two-segments", "uppercase", "underscore", "empty-segment", "one-letter-plugin", "too-long"],
)
def test_invalid_event_type_names_are_refused(name: str) -> None:
    with pytest.raises(EventError, match="invalid event type"):
        check_event_type(name)


def test_owner_and_publisher() -> None:
    assert owner_of("core.tenant.created") == "core"
    assert publisher_of(Event(type="a.b.c", source=source_for("notes"))) == "notes"
    assert publisher_of(Event(type="a.b.c", source="https://example.com/notes")) is None
    assert publisher_of(Event(type="a.b.c", source="/plugins/notes/extra")) is None

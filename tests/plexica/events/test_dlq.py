"""Dead-letter records: what goes on the DLQ topic and back."""

from __future__ import annotations

import pytest

from plexica.events import DeadLetter, MalformedEventError, encode, source_for
from plexica.events.dlq import describe_error, from_record, to_record
from plexica_sdk.types import Event


def letter(**overrides: object) -> DeadLetter:
    event = Event(type="notes.note.created", source=source_for("notes"), data={"n": 1}, tenantid="t1")
    fields: dict[str, object] = {
        "event": event,
        "topic": "acme.notes.note.created",
        "partition": 2,
        "offset": 41,
        "key": "n-1",
        "headers": (*encode(event)[1], ("traceparent", b"00-1")),
        "error": "RuntimeError: nope",
        "attempts": 3,
        "plugin": "search",
        "subscription": "index",
    }
    return DeadLetter(**(fields | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize("overrides", [{}, {"partition": None, "offset": None, "key": None}], ids=["kafka", "memory"])
def test_record_round_trip(overrides: dict[str, object]) -> None:
    original = letter(**overrides)

    key, value, headers = to_record(original)

    assert key == original.id.encode()
    assert from_record(value, headers) == original


def test_tombstone_is_a_dismissal_and_junk_is_malformed() -> None:
    assert from_record(None, [("dlq_dismissed", b"1")]) is None
    _, value, headers = to_record(letter())
    with pytest.raises(MalformedEventError, match="dlq_attempts"):
        from_record(value, [(k, v) for k, v in headers if k != "dlq_attempts"])
    with pytest.raises(MalformedEventError, match="bad dead letter"):
        from_record(value, [(k, b"many" if k == "dlq_attempts" else v) for k, v in headers])


def test_describe_error_names_the_type_and_truncates() -> None:
    assert describe_error(KeyError("sku")) == "KeyError: 'sku'"
    assert len(describe_error(ValueError("x" * 5000))) == 2000

"""Opaque keyset cursors and page sizes."""

from __future__ import annotations

import pytest

from plexica.identity.paging import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor, parse_limit
from plexica_sdk.errors import ValidationError


def test_a_cursor_round_trips_its_key() -> None:
    cursor = encode_cursor("Sales — EMEA", "4f1c")
    assert "=" not in cursor
    assert decode_cursor(cursor, 2) == ["Sales — EMEA", "4f1c"]


@pytest.mark.parametrize(
    "cursor",
    ["%%%", encode_cursor("only-one"), "e30", "x" * 5000, encode_cursor("a", "b")[:-3] + "!!!"],
    ids=["not-base64", "wrong-arity", "not-a-list", "too-long", "garbled"],
)
def test_a_foreign_cursor_is_a_422_on_the_cursor(cursor: str) -> None:
    with pytest.raises(ValidationError) as error:
        decode_cursor(cursor, 2)
    assert error.value.field == "cursor"


@pytest.mark.parametrize(("raw", "limit"), [(None, DEFAULT_LIMIT), ("", DEFAULT_LIMIT), ("1", 1), ("200", MAX_LIMIT)])
def test_limits_in_range_are_taken(raw: str | None, limit: int) -> None:
    assert parse_limit(raw) == limit


@pytest.mark.parametrize("raw", ["0", "201", "-1", "ten", "1.5"])
def test_limits_out_of_range_are_refused(raw: str) -> None:
    with pytest.raises(ValidationError) as error:
        parse_limit(raw)
    assert error.value.field == "limit"

"""``plexica_sdk.json_body`` and ``query_int``: the safe way to read input is the short way."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from typing import Any

import attrs
import pytest

from plexica_sdk import PayloadTooLargeError, UnsupportedMediaTypeError, ValidationError, json_body, query_int
from plexica_sdk.http import MAX_BODY_SCOPE_KEY, parse_json

pytestmark = pytest.mark.anyio


@attrs.frozen(kw_only=True)
class Tag:
    label: str


@attrs.frozen(kw_only=True)
class NoteInput:
    title: str = attrs.field(validator=attrs.validators.max_len(20))
    tags: tuple[Tag, ...] = ()


class FakeRequest:
    """Just what the helpers read: headers, a scope, a body stream in chunks, query parameters."""

    def __init__(
        self,
        *chunks: bytes,
        headers: Mapping[str, str] | None = None,
        scope: Mapping[str, Any] | None = None,
        query: Mapping[str, str] | None = None,
    ) -> None:
        self.chunks = chunks
        self.read = 0
        self.headers = dict(headers or {})
        self.scope = dict(scope or {})
        self.query_params = dict(query or {})

    async def stream(self) -> AsyncIterator[bytes]:
        for chunk in self.chunks:
            self.read += 1
            yield chunk


async def test_a_body_is_structured_into_the_class() -> None:
    note = await json_body(FakeRequest(b'{"title": "hi", "tags": [{"label": "a"}]}'), NoteInput)
    assert note == NoteInput(title="hi", tags=(Tag(label="a"),))


async def test_without_a_class_the_parsed_json_is_returned_and_an_empty_body_is_an_object() -> None:
    assert await json_body(FakeRequest(b"[1, 2]")) == [1, 2]
    assert await json_body(FakeRequest()) == {}


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        (b'{"title": 5}', "title"),
        (b'{"title": "hi", "tags": [{"label": 1}]}', "tags"),
        (b'{"title": "hi", "colour": "red"}', None),
        (b'{"title": "' + b"x" * 21 + b'"}', None),
    ],
    ids=["wrong-type", "nested-wrong-type", "unknown-field", "validator"],
)
async def test_data_that_does_not_fit_is_a_validation_error_naming_the_path(raw: bytes, field: str | None) -> None:
    with pytest.raises(ValidationError) as caught:
        await json_body(FakeRequest(raw), NoteInput)
    if field is not None:
        assert any(field in problem for problem in caught.value.problems), caught.value.problems


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"[" * 10_000 + b"]" * 10_000, "nests deeper than 64"),
        (b'{"a":' * 100 + b"1" + b"}" * 100, "nests deeper than 64"),
        (b'{"title": "\\ud800"}', "body.title: text must not contain a lone surrogate"),
        (b'{"title": "a\\u0000"}', "body.title: text must not contain NUL"),
        (b'{"tags": [{"a\\u0000": 1}]}', "body.tags[0] (a key): text must not contain NUL"),
        (b'{"n": 123456789012345678901234}', "body.n: the integer is out of the 64-bit range"),
        (b'{"n": NaN}', "not valid JSON"),
        (b'{"n": 1' + b"0" * 5000 + b"}", "not valid JSON"),
        (b'{"title": "\xed\xa0\x80"}', "not UTF-8"),
        (b"{", "not valid JSON"),
    ],
    ids=[
        "deep-array",
        "deep-object",
        "surrogate",
        "nul",
        "nul-key",
        "huge-int",
        "nan",
        "5000-digits",
        "raw-surrogate",
        "truncated",
    ],
)
def test_unsafe_json_is_refused_before_it_can_fail_later(raw: bytes, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        parse_json(raw)


@pytest.mark.parametrize(
    "raw",
    [b'["[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["]', b'"\\ud83d\\ude00"', b'"\\\\u0000"'],
    ids=["brackets-in-a-string", "surrogate-pair", "escaped-backslash"],
)
def test_safe_json_that_looks_suspicious_is_accepted(raw: bytes) -> None:
    parse_json(raw)


async def test_a_body_over_the_limit_stops_reading_at_the_limit() -> None:
    request = FakeRequest(*[b"x" * 100] * 50)
    with pytest.raises(PayloadTooLargeError) as caught:
        await json_body(request, max_bytes=1_000)
    assert caught.value.limit == 1_000
    assert request.read == 11  # the 11th chunk crossed the limit; the other 39 were never read


async def test_a_declared_length_over_the_limit_reads_nothing() -> None:
    request = FakeRequest(b"{}", headers={"content-length": "5000"})
    with pytest.raises(PayloadTooLargeError):
        await json_body(request, max_bytes=1_000)
    assert request.read == 0


async def test_the_hosts_limit_for_the_route_is_the_default() -> None:
    with pytest.raises(PayloadTooLargeError):
        await json_body(FakeRequest(b'{"title": "long enough"}', scope={MAX_BODY_SCOPE_KEY: 10}))


@pytest.mark.parametrize(
    "content_type", ["application/json", "application/json; charset=utf-8", "application/merge-patch+json"]
)
async def test_json_media_types_are_read(content_type: str) -> None:
    assert await json_body(FakeRequest(b"{}", headers={"content-type": content_type})) == {}


async def test_another_media_type_is_unsupported() -> None:
    with pytest.raises(UnsupportedMediaTypeError):
        await json_body(FakeRequest(b"title=x", headers={"content-type": "application/x-www-form-urlencoded"}))


@pytest.mark.parametrize(("raw", "expected"), [(None, 50), ("", 50), ("7", 7), ("200", 200), ("1", 1)])
def test_query_int_reads_whole_numbers_in_range(raw: str | None, expected: int) -> None:
    query = {} if raw is None else {"limit": raw}
    assert query_int(FakeRequest(query=query), "limit", default=50, minimum=1, maximum=200) == expected


@pytest.mark.parametrize("raw", ["abc", "0", "201", "-5", "1.5", "1e3", "\u00b2", "\u0661", "9" * 30, " 5"])
def test_query_int_refuses_anything_else_naming_the_parameter(raw: str) -> None:
    with pytest.raises(ValidationError) as caught:
        query_int(FakeRequest(query={"limit": raw}), "limit", default=50, minimum=1, maximum=200)
    assert caught.value.field == "limit"

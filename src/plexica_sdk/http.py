"""Helpers for plugin route handlers; framework-neutral (they read the ASGI scope, headers and stream only).

``json_body`` and ``query_int`` make the safe way the short way: every input they refuse is a
typed error the host answers as a 4xx problem (422 naming the field, 413, 415), never a 500.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import AsyncIterator, Mapping
from itertools import accumulate, repeat
from typing import Any, Final, Protocol, TypeVar, overload

from plexica_sdk.converter import structure
from plexica_sdk.errors import PayloadTooLargeError, PlexicaError, UnsupportedMediaTypeError, ValidationError
from plexica_sdk.protocols import Host

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "DEFAULT_MAX_DEPTH",
    "HOST_SCOPE_KEY",
    "MAX_BODY_SCOPE_KEY",
    "WORKSPACE_HEADER",
    "host",
    "json_body",
    "parse_json",
    "query_int",
]

T = TypeVar("T")

#: Where the host puts the plugin's :class:`Host` handle in the ASGI scope.
HOST_SCOPE_KEY = "plexica.host"
#: Where the host puts the body limit of the plugin's routes; :func:`json_body` defaults to it.
MAX_BODY_SCOPE_KEY = "plexica.max_body_bytes"
WORKSPACE_HEADER = "X-Workspace-ID"

#: 1 MiB: the host's default cap for plugin request bodies as well (``[http] max_body_bytes``).
DEFAULT_MAX_BODY_BYTES: Final = 1_048_576
#: Nesting deeper than this is refused before ``json.loads`` recurses (a 20 KB body can nest 10,000 deep).
DEFAULT_MAX_DEPTH: Final = 64

# Integers PostgreSQL's BIGINT holds: larger ones would fail in the database, not here.
_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**63 - 1
_STRING_RE: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKET_RE: Final = re.compile(r"[^\[\]{}]+")
_SURROGATE_RE: Final = re.compile("[\ud800-\udfff]")
# Only these spellings can yield a NUL, a lone surrogate or a huge integer: without one, no walk.
_SUSPECT_RE: Final = re.compile(r"\\u0000|\\u[dD][89a-fA-F]|[0-9]{19}")
_DEPTH_STEP: Final = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")
_INT_RE: Final = re.compile(r"[+-]?[0-9]{1,19}")
_JSON_TYPE_RE: Final = re.compile(r"^application/(?:[a-z0-9.+-]+\+)?json$")


class _HasScope(Protocol):
    @property
    def scope(self) -> Mapping[str, Any]: ...


class _HasBody(Protocol):
    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def scope(self) -> Mapping[str, Any]: ...

    def stream(self) -> AsyncIterator[bytes]: ...


class _HasQuery(Protocol):
    @property
    def query_params(self) -> Mapping[str, str]: ...


def host(request: _HasScope) -> Host:
    """Return the plugin's host handle for this request (a Starlette ``Request`` or any scope holder).

    Raises:
        PlexicaError: the route is not served by a Plexica host.
    """
    handle = request.scope.get(HOST_SCOPE_KEY)
    if handle is None:
        raise PlexicaError("this route is not mounted by a Plexica host")
    return handle  # type: ignore[no-any-return]


@overload
async def json_body(
    request: _HasBody, type_: type[T], *, max_bytes: int | None = ..., max_depth: int = ...
) -> T: ...  # pragma: no cover


@overload
async def json_body(
    request: _HasBody, type_: None = None, *, max_bytes: int | None = ..., max_depth: int = ...
) -> Any: ...  # pragma: no cover


async def json_body(
    request: _HasBody,
    type_: type[T] | None = None,
    *,
    max_bytes: int | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> T | Any:
    """Read the request's JSON body, safely, and structure it into ``type_`` with the SDK's converter.

    The body is read as it streams and refused as soon as it passes ``max_bytes``. An empty body
    reads as ``{}``. It consumes the body: call it once per request.

    Args:
        request: a Starlette ``Request`` (anything with ``scope``, ``headers`` and an async ``stream()``).
        type_: an attrs class (or any type the converter structures); ``None`` returns the parsed JSON.
        max_bytes: the largest body accepted; default: the host's limit for the route (1 MiB unless
            ``[http] max_body_bytes`` or the plugin's manifest says otherwise).
        max_depth: the deepest nesting of arrays and objects accepted.

    Raises:
        PayloadTooLargeError: the body is larger than ``max_bytes`` (413).
        UnsupportedMediaTypeError: a ``Content-Type`` is sent and is not JSON (415).
        ValidationError: not UTF-8 JSON, too deep, a text holding NUL or a lone surrogate, an
            integer beyond 64 bits, or data that does not fit ``type_`` (422; ``problems`` names
            each field path).
    """
    if max_bytes is None:
        max_bytes = int(request.scope.get(MAX_BODY_SCOPE_KEY, DEFAULT_MAX_BODY_BYTES))
    content_type = request.headers.get("content-type")
    if content_type is not None:
        media_type = content_type.split(";", 1)[0].strip().lower()
        if media_type and not _JSON_TYPE_RE.match(media_type):
            raise UnsupportedMediaTypeError(content_type)
    declared = request.headers.get("content-length")
    if declared is not None and declared.isascii() and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLargeError(max_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLargeError(max_bytes)
        chunks.append(chunk)
    data = parse_json(b"".join(chunks) or b"{}", max_depth=max_depth)
    return data if type_ is None else structure(data, type_)


def parse_json(raw: bytes, *, max_depth: int = DEFAULT_MAX_DEPTH) -> Any:
    """Parse UTF-8 JSON that is safe to store: bounded depth, no NUL, no lone surrogates, no NaN.

    PostgreSQL refuses NUL in text and JSONB, and a lone surrogate cannot be encoded as UTF-8: both
    would fail far from the caller's input, so they are refused here with the field's path.

    Raises:
        ValidationError: as :func:`json_body` (422).
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValidationError("the body is not UTF-8", field="body") from None
    if _too_deep(text, max_depth):
        raise ValidationError(f"the body nests deeper than {max_depth} levels", field="body")
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError):
        raise ValidationError("the body is not valid JSON", field="body") from None
    if _SUSPECT_RE.search(text):
        _check_values(data)
    return data


def query_int(
    request: _HasQuery, name: str, *, default: int, minimum: int | None = None, maximum: int | None = None
) -> int:
    """An integer query parameter: ``default`` when absent or empty, else a 422 unless in range.

    Raises:
        ValidationError: not a whole number, or outside ``minimum``..``maximum`` (``field`` is ``name``).
    """
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    if not _INT_RE.fullmatch(raw):
        raise ValidationError(f"{name} must be a whole number", field=name)
    value = int(raw)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        low = "" if minimum is None else f" from {minimum}"
        high = "" if maximum is None else f" to {maximum}"
        raise ValidationError(f"{name} must be a whole number{low}{high}", field=name)
    return value


def _too_deep(text: str, max_depth: int) -> bool:
    """Whether brackets outside strings nest deeper than ``max_depth``, without recursing."""
    if text.count("[") + text.count("{") <= max_depth:
        return False  # the common case: too few brackets to nest that deep
    # Opening brackets step +1, closing ones -1; the running sum's maximum is the depth (all in C).
    steps = _NOT_BRACKET_RE.sub("", _STRING_RE.sub("", text)).encode("ascii").translate(_DEPTH_STEP)
    return max(accumulate(map(operator.sub, steps, repeat(1))), default=0) > max_depth


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _check_values(data: Any) -> None:
    """Walk the parsed value (iteratively) and refuse text or numbers storage would choke on."""
    stack: list[tuple[str, Any]] = [("body", data)]
    while stack:
        path, value = stack.pop()
        if isinstance(value, str):
            _check_text(path, value)
        elif isinstance(value, bool):
            continue
        elif isinstance(value, int):
            if not _INT_MIN <= value <= _INT_MAX:
                raise ValidationError(f"{path}: the integer is out of the 64-bit range", field=path)
        elif isinstance(value, dict):
            for key, item in value.items():
                _check_text(f"{path} (a key)", key)
                stack.append((f"{path}.{key[:64]}", item))
        elif isinstance(value, list):
            stack.extend((f"{path}[{index}]", item) for index, item in enumerate(value))


def _check_text(path: str, value: str) -> None:
    if "\x00" in value:
        raise ValidationError(f"{path}: text must not contain NUL (\\u0000)", field=path)
    if not value.isascii() and _SURROGATE_RE.search(value):
        raise ValidationError(f"{path}: text must not contain a lone surrogate (\\ud800-\\udfff)", field=path)

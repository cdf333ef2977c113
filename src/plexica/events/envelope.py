"""The CloudEvents envelope in Kafka binary mode: attributes as ``ce_*`` headers, ``data`` as JSON.

Binary mode keeps the payload bytes untouched by the envelope, so consumers that only need the
type or tenant read headers without parsing the body. Encoding is on the publish hot path: it is
kept to one ``json.dumps`` and a flat header list.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable, Iterable
from typing import Any, Final

from plexica_sdk.errors import EventError
from plexica_sdk.types import Event

__all__ = [
    "CONTENT_TYPE",
    "EVENT_TYPE_RE",
    "Headers",
    "MalformedEventError",
    "check_event_type",
    "decode",
    "encode",
    "owner_of",
    "publisher_of",
    "source_for",
]

#: Kafka record headers as aiokafka hands them over.
Headers = tuple[tuple[str, bytes], ...]

CONTENT_TYPE: Final = "application/json"
#: ``{plugin}.{entity}.{verb}[...]``. No underscores: Kafka treats ``.`` and ``_`` in topic names as
#: colliding (metric names), so ``a.b_c`` and ``a.b.c`` could not both exist.
EVENT_TYPE_RE: Final = re.compile(r"^[a-z][a-z0-9-]{1,62}(\.[a-z][a-z0-9-]*){2,}$")
_MAX_TYPE_LENGTH: Final = 150  # leaves room for a 50-character tenant slug in a 249-character topic
_SOURCE_PREFIX: Final = "/plugins/"


def _not_json(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The C encoder, built once: ``json.dumps`` with options builds a Python encoder (and a
# circular-reference table) per call, which costs as much as encoding a 1 KB payload. Without that
# table a circular structure fails with RecursionError instead.
_make_c_encoder: Callable[..., Any] | None = getattr(json.encoder, "c_make_encoder", None)
_c_encoder = (
    None
    if _make_c_encoder is None  # interpreters without the C accelerator
    else _make_c_encoder(None, _not_json, json.encoder.encode_basestring, None, ":", ",", False, False, False)
)
_py_encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _dumps(data: Any) -> str:
    if _c_encoder is None:  # pragma: no cover
        return _py_encoder.encode(data)
    return "".join(_c_encoder(data, 0))


_JSON_TYPES: Final = frozenset({CONTENT_TYPE, "application/cloudevents+json"})

_REQUIRED = ("ce_id", "ce_source", "ce_type", "ce_specversion")


class MalformedEventError(EventError):
    """A Kafka record is not a valid Plexica CloudEvent (missing header, bad time, bad JSON)."""

    def __init__(self, reason: str, *, event_type: str | None = None) -> None:
        super().__init__(f"malformed event: {reason}", event_type=event_type)
        self.reason = reason


def check_event_type(event_type: str) -> str:
    """Return ``event_type`` if it is a valid ``{plugin}.{entity}.{verb}`` name.

    Raises:
        EventError: the name has fewer than three segments, uppercase letters or other characters.
    """
    if len(event_type) > _MAX_TYPE_LENGTH or not EVENT_TYPE_RE.match(event_type):
        raise EventError(
            f"invalid event type {event_type[:80]!r}: use '{{plugin}}.{{entity}}.{{verb}}', lowercase "
            "letters, digits and dashes",
            event_type=event_type,
        )
    return event_type


def owner_of(event_type: str) -> str:
    """The plugin that owns ``event_type``: its first segment (``core`` for the host's own)."""
    return event_type.split(".", 1)[0]


def source_for(plugin: str) -> str:
    """The CloudEvents ``source`` of events published by ``plugin`` (``/plugins/{plugin}``)."""
    return _SOURCE_PREFIX + plugin


def publisher_of(event: Event) -> str | None:
    """The plugin named by ``event.source``, or ``None`` when the source does not follow the convention."""
    if event.source.startswith(_SOURCE_PREFIX):
        plugin = event.source[len(_SOURCE_PREFIX) :]
        if plugin and "/" not in plugin:
            return plugin
    return None


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip()
    return media == CONTENT_TYPE or media.endswith("+json")


def encode(event: Event) -> tuple[bytes, list[tuple[str, bytes]]]:
    """Encode ``event`` as a Kafka value and binary-mode headers.

    Raises:
        EventError: ``data`` is not JSON-serializable (or holds NaN), the content type is not JSON, or
            an attribute is not encodable text.
    """
    if event.datacontenttype not in _JSON_TYPES and not _is_json(event.datacontenttype):
        raise EventError(f"unsupported datacontenttype {event.datacontenttype!r}", event_type=event.type)
    try:
        value = _dumps(event.data).encode()
        time = event.time if event.time.tzinfo is not None else event.time.replace(tzinfo=dt.UTC)
        headers = [
            ("ce_id", event.id.encode()),
            ("ce_source", event.source.encode()),
            ("ce_type", event.type.encode()),
            ("ce_specversion", event.specversion.encode()),
            ("ce_time", time.isoformat().encode()),
            ("ce_schemaversion", str(event.schemaversion).encode()),
            ("content-type", event.datacontenttype.encode()),
        ]
        # Spelled out rather than looped over: this runs for every event published.
        if event.subject is not None:
            headers.append(("ce_subject", event.subject.encode()))
        if event.tenantid is not None:
            headers.append(("ce_tenantid", event.tenantid.encode()))
        if event.workspaceid is not None:
            headers.append(("ce_workspaceid", event.workspaceid.encode()))
        if event.userid is not None:
            headers.append(("ce_userid", event.userid.encode()))
        if event.traceid is not None:
            headers.append(("ce_traceid", event.traceid.encode()))
        if event.traceparent is not None:
            headers.append(("ce_traceparent", event.traceparent.encode()))
    except (TypeError, ValueError, RecursionError) as exc:  # UnicodeEncodeError is a ValueError
        raise EventError(f"event {event.id} cannot be encoded: {exc}", event_type=event.type) from exc
    return value, headers


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode()


def decode(value: bytes | None, headers: Iterable[tuple[str, bytes]]) -> Event:
    """Decode a Kafka record written by :func:`encode` back into an :class:`Event`.

    Unknown headers are ignored, so other tools may add their own.

    Raises:
        MalformedEventError: a required header is missing, an attribute is not valid text, the time or
            schema version does not parse, or the value is not JSON.
    """
    found = dict(headers)  # this runs for every event consumed: keep it flat
    get = found.get
    event_type: str | None = None
    try:
        event_type = _text(get("ce_type"))
        if any(get(name) is None for name in _REQUIRED):
            missing = ", ".join(name for name in _REQUIRED if get(name) is None)
            raise MalformedEventError(f"missing header {missing}", event_type=event_type)
        specversion = found["ce_specversion"].decode()
        if specversion != "1.0":
            raise MalformedEventError(f"unsupported specversion {specversion[:20]!r}", event_type=event_type)
        content_type = _text(get("content-type")) or CONTENT_TYPE
        if content_type not in _JSON_TYPES and not _is_json(content_type):
            raise MalformedEventError(f"unsupported content-type {content_type[:60]!r}", event_type=event_type)
        time_raw = get("ce_time")
        version_raw = get("ce_schemaversion")
        extra: dict[str, Any] = {}
        if time_raw is not None:
            extra["time"] = dt.datetime.fromisoformat(time_raw.decode())
        return Event(
            id=found["ce_id"].decode(),
            source=found["ce_source"].decode(),
            type=found["ce_type"].decode(),
            specversion=specversion,
            data=json.loads(value.decode()) if value else None,
            datacontenttype=content_type,
            subject=_text(get("ce_subject")),
            tenantid=_text(get("ce_tenantid")),
            workspaceid=_text(get("ce_workspaceid")),
            userid=_text(get("ce_userid")),
            traceid=_text(get("ce_traceid")),
            traceparent=_text(get("ce_traceparent")),
            schemaversion=1 if version_raw is None else int(version_raw),
            **extra,
        )
    except MalformedEventError:
        raise
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise MalformedEventError(f"{type(exc).__name__}: {str(exc)[:200]}", event_type=event_type) from exc

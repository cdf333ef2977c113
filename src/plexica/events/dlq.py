"""Dead letters: events a handler kept failing on, with everything needed to understand and replay them.

On Kafka a dead letter is a record on the dead-letter topic: the original envelope headers and
payload, plus ``dlq_*`` headers for where it came from and why it failed, keyed by its id. A record
with that key and no value dismisses it (a tombstone, so a compacted topic forgets it).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from typing import Any, Final

import attrs

from plexica.events.envelope import Headers, MalformedEventError, decode, encode
from plexica_sdk.converter import unstructure
from plexica_sdk.types import Event

__all__ = [
    "REPLAY_PLUGIN",
    "REPLAY_SUBSCRIPTION",
    "DeadLetter",
    "describe",
    "describe_error",
    "from_record",
    "to_record",
]

#: Headers marking a replayed record: only this plugin's subscription of that name receives it, so
#: the other consumer groups reading the original topic do not see the event twice.
REPLAY_PLUGIN: Final = "plexica_replay_plugin"
REPLAY_SUBSCRIPTION: Final = "plexica_replay_subscription"

_PREFIX: Final = "dlq_"
_MAX_ERROR: Final = 2000


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _new_id() -> str:
    return str(uuid.uuid4())


def describe_error(exc: BaseException) -> str:
    """``"{ExceptionType}: {message}"``, truncated: what a dead letter records about a failure."""
    return f"{type(exc).__name__}: {exc}"[:_MAX_ERROR]


@attrs.frozen(kw_only=True)
class DeadLetter:
    """An event a subscription failed on ``attempts`` times.

    ``topic``, ``partition``, ``offset`` and ``key`` locate the original record (partition and
    offset are ``None`` on the in-process bus); ``headers`` are its envelope headers.
    """

    event: Event
    topic: str
    partition: int | None
    offset: int | None
    key: str | None
    headers: Headers
    error: str
    attempts: int
    plugin: str
    subscription: str
    id: str = attrs.field(factory=_new_id)
    failed_at: dt.datetime = attrs.field(factory=_utcnow)


def _optional_int(value: bytes | None) -> int | None:
    return None if value is None else int(value)


def to_record(letter: DeadLetter) -> tuple[bytes, bytes, list[tuple[str, bytes]]]:
    """The key, value and headers of the dead-letter record for ``letter``."""
    value, _ = encode(letter.event)
    headers = [(name, raw) for name, raw in letter.headers if not name.startswith(_PREFIX)]
    fields = {
        "id": letter.id,
        "topic": letter.topic,
        "partition": None if letter.partition is None else str(letter.partition),
        "offset": None if letter.offset is None else str(letter.offset),
        "key": letter.key,
        "error": letter.error,
        "attempts": str(letter.attempts),
        "plugin": letter.plugin,
        "subscription": letter.subscription,
        "failed_at": letter.failed_at.isoformat(),
    }
    headers.extend((_PREFIX + name, text.encode()) for name, text in fields.items() if text is not None)
    return letter.id.encode(), value, headers


def from_record(value: bytes | None, headers: Iterable[tuple[str, bytes]]) -> DeadLetter | None:
    """Decode a dead-letter record; ``None`` for a dismissal tombstone.

    Raises:
        MalformedEventError: the record is neither a dead letter written by :func:`to_record` nor a tombstone.
    """
    if value is None:
        return None
    original = tuple((name, raw) for name, raw in headers if not name.startswith(_PREFIX))
    found = {name[len(_PREFIX) :]: raw for name, raw in headers if name.startswith(_PREFIX)}
    try:
        text = {name: raw.decode() for name, raw in found.items()}
        return DeadLetter(
            id=text["id"],
            event=decode(value, original),
            topic=text["topic"],
            partition=_optional_int(found.get("partition")),
            offset=_optional_int(found.get("offset")),
            key=text.get("key"),
            headers=original,
            error=text["error"],
            attempts=int(text["attempts"]),
            plugin=text["plugin"],
            subscription=text["subscription"],
            failed_at=dt.datetime.fromisoformat(text["failed_at"]),
        )
    except KeyError as exc:
        raise MalformedEventError(f"dead letter without header {_PREFIX}{exc.args[0]}") from exc
    except ValueError as exc:
        raise MalformedEventError(f"bad dead letter: {type(exc).__name__}") from exc


def describe(letter: DeadLetter, *, full: bool = False) -> dict[str, Any]:
    """A dead letter as JSON-ready data (the admin API and CLI): a summary, or with ``full`` the event and headers.

    Header values are shown as text (undecodable bytes replaced); the event's data is shown as it is.
    """
    summary: dict[str, Any] = {
        "id": letter.id,
        "event_id": letter.event.id,
        "event_type": letter.event.type,
        "tenant_id": letter.event.tenantid,
        "plugin": letter.plugin,
        "subscription": letter.subscription,
        "topic": letter.topic,
        "partition": letter.partition,
        "offset": letter.offset,
        "key": letter.key,
        "attempts": letter.attempts,
        "error": letter.error,
        "failed_at": letter.failed_at.isoformat(),
    }
    if full:
        summary["event"] = unstructure(letter.event)
        summary["headers"] = [[name, raw.decode(errors="replace")] for name, raw in letter.headers]
    return summary

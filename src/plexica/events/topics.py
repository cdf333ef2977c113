"""Topic naming: which topic an event goes to, which topics a consumer group reads, and back.

Two layouts (``EventSettings.topology``): ``per_tenant`` puts each tenant's events on
``{tenant_slug}.{event_type}`` (isolation, per-tenant retention and deletion); ``shared`` puts every
tenant on ``{event_type}``, keyed by tenant id, for fleets where thousands of topics are too many.
Events without a tenant go to ``global.{event_type}`` in both. Pure: no IO.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Final, Literal, NamedTuple

import attrs

from plexica.events.envelope import check_event_type
from plexica_sdk.errors import EventError
from plexica_sdk.types import Event

__all__ = ["GLOBAL", "ParsedTopic", "Topics", "check_subscription_type", "type_matches"]

#: Prefix of topics carrying events without a tenant; tenancy must reserve it as a slug.
GLOBAL: Final = "global"
_SLUG = r"[a-z][a-z0-9-]*"


class ParsedTopic(NamedTuple):
    """What a topic name says: the tenant (per-tenant topics only), the event type, and whether it is global."""

    tenant_slug: str | None
    event_type: str
    is_global: bool


def check_subscription_type(pattern: str) -> str:
    """Return ``pattern`` if it is an event type or a prefix ending in ``.*`` (``notes.*``, ``notes.note.*``).

    Raises:
        EventError: the pattern is neither.
    """
    if pattern.endswith(".*"):
        prefix = pattern[:-2]
        # Pad the prefix to three segments so the type check applies to what is there.
        padding = max(0, 3 - prefix.count(".") - 1)
        check_event_type(prefix + ".x" * padding)
    else:
        check_event_type(pattern)
    return pattern


def type_matches(pattern: str, event_type: str) -> bool:
    """Whether a subscription ``pattern`` (an event type, or a prefix ending in ``.*``) covers ``event_type``."""
    if pattern.endswith(".*"):
        return event_type.startswith(pattern[:-1])
    return pattern == event_type


def _type_regex(pattern: str) -> str:
    if pattern.endswith(".*"):
        return re.escape(pattern[:-1]) + r"[a-z0-9.-]+"
    return re.escape(pattern)


@attrs.frozen
class Topics:
    """The topic layout of one deployment.

    Args:
        topology: ``per_tenant`` or ``shared``.
        dead_letter: the dead-letter topic's name.
    """

    topology: Literal["per_tenant", "shared"] = "per_tenant"
    dead_letter: str = "dead-letter-queue"

    @property
    def needs_slug(self) -> bool:
        """Whether a tenant event's topic depends on its tenant's slug."""
        return self.topology == "per_tenant"

    def topic_for(self, event_type: str, tenant_slug: str | None = None, *, global_event: bool = False) -> str:
        """The topic of an event of ``event_type``.

        Args:
            event_type: the event's type.
            tenant_slug: the tenant's slug; required for tenant events in the per-tenant layout.
            global_event: the event belongs to no tenant.

        Raises:
            EventError: a per-tenant topic was asked for without a slug.
        """
        if global_event:
            return f"{GLOBAL}.{event_type}"
        if self.topology == "shared":
            return event_type
        if not tenant_slug:
            raise EventError(f"a tenant slug is needed for the topic of {event_type!r}", event_type=event_type)
        return f"{tenant_slug}.{event_type}"

    def default_key(self, event: Event) -> str | None:
        """The record key when the publisher gives none.

        Shared topics are keyed by tenant id so a tenant's events stay ordered; per-tenant topics by
        the subject, so one entity's events stay ordered while a tenant still spreads over partitions.
        """
        if self.topology == "shared":
            return event.tenantid if event.tenantid is not None else event.subject
        return event.subject

    def pattern(self, subscription_types: Iterable[str]) -> str:
        """The regex a consumer group subscribes with to receive ``subscription_types`` for every tenant.

        Raises:
            EventError: no types were given, or one is not a valid subscription type.
        """
        alternatives = sorted({_type_regex(check_subscription_type(t)) for t in subscription_types})
        if not alternatives:
            raise EventError("a consumer needs at least one subscription")
        types = "|".join(alternatives)
        if self.topology == "shared":
            return rf"^(?:{GLOBAL}\.)?(?:{types})$"
        return rf"^{_SLUG}\.(?:{types})$"

    def parse(self, topic: str) -> ParsedTopic:
        """Split a topic written by :meth:`topic_for` back into tenant slug and event type.

        Raises:
            EventError: ``topic`` is not an event topic of this layout.
        """
        head, _, rest = topic.partition(".")
        if head == GLOBAL and rest.count(".") >= 2:
            return ParsedTopic(None, rest, True)
        if self.topology == "shared":
            if topic.count(".") >= 2:
                return ParsedTopic(None, topic, False)
        elif rest.count(".") >= 2:
            return ParsedTopic(head, rest, False)
        raise EventError(f"{topic[:200]!r} is not an event topic")

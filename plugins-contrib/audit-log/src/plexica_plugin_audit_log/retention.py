"""Retention: entries older than the tenant's ``retention_days`` are purged.

The purge runs by itself: each recorded event may trigger it, at most once per
``purge_interval_seconds`` per tenant (a cache counter with that TTL is the throttle), so a tenant
that has events is purged without any scheduler. ``POST /purge`` runs it on demand (a cron job, or
an admin after lowering the retention).
"""

from __future__ import annotations

import datetime as dt
import logging

from plexica_plugin_audit_log import repository
from plexica_sdk import Host

__all__ = ["maybe_purge", "purge_now"]

log = logging.getLogger(__name__)

_THROTTLE_KEY = "purge-due"


async def purge_now(host: Host) -> tuple[int, dt.datetime]:
    """Purge the current tenant's entries older than its retention; return how many and the cut-off."""
    days = int((await host.config())["retention_days"])
    before = dt.datetime.now(dt.UTC) - dt.timedelta(days=days)
    async with host.session() as session:
        deleted = await repository.purge(session, before)
    if deleted:
        log.info("purged %d audit entries of tenant %s older than %s", deleted, host.tenant.slug, before.isoformat())
    return deleted, before


async def maybe_purge(host: Host) -> int | None:
    """Purge unless this tenant was purged less than ``purge_interval_seconds`` ago; ``None``: not due.

    A failure is logged and swallowed: the event that triggered it is already recorded, and the
    next due purge tries again.
    """
    interval = float((await host.config())["purge_interval_seconds"])
    # Keyed by the interval too: a tenant that shortens it gets the new window at once.
    if await host.cache.incr(f"{_THROTTLE_KEY}:{interval:g}", ttl=interval) != 1:
        return None
    try:
        deleted, _before = await purge_now(host)
    except Exception:
        log.exception("audit retention purge of tenant %s failed", host.tenant.slug)
        return None
    return deleted

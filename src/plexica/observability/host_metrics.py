"""Connecting a host's services to its :class:`~plexica.observability.metrics.Metrics`.

The composition root calls :func:`watch_host` once; everything here reads state the services
already keep (a count query, the outbox store, the bus's dead letters and consumers, plain
counters), at scrape time and behind the metrics' refresh interval, so no request pays for it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from plexica.events.bus import EventBus
    from plexica.events.outbox import Outbox, OutboxRelay
    from plexica.observability.metrics import Metrics
    from plexica.permissions.cache import PermissionCache

__all__ = ["ACTIVE_TENANTS", "watch_host"]

#: The refresher of ``active_tenants``: invalidate it after a tenant's status changes.
ACTIVE_TENANTS = "active_tenants"


def watch_host(
    metrics: Metrics,
    *,
    count_active_tenants: Callable[[], Awaitable[int]],
    bus: EventBus,
    outbox: Outbox,
    relay: OutboxRelay,
    permission_cache: PermissionCache,
    plugins: int,
    cache_fallbacks: Callable[[], float] | None = None,
) -> None:
    """Register the host's scrape-time sources on ``metrics``."""
    metrics.active_plugins.set(plugins)

    async def active_tenants() -> None:
        metrics.active_tenants.set(await count_active_tenants())

    async def outbox_lag() -> None:
        oldest = await outbox.store.oldest_unsent()
        age = 0.0 if oldest is None else (dt.datetime.now(dt.UTC) - oldest).total_seconds()
        metrics.outbox_lag.set(max(age, 0.0))

    async def dead_letters() -> None:
        waiting = Counter(letter.plugin for letter in await bus.dlq_list(limit=1_000_000))
        for plugin in {*waiting, *_labelled(metrics)}:
            metrics.dlq_size.labels(plugin).set(waiting.get(plugin, 0))

    async def consumer_lag() -> None:
        lag_of = getattr(bus, "consumer_lag", None)  # Kafka only: the memory bus has no offsets
        if lag_of is not None:
            for plugin, lag in (await lag_of()).items():
                metrics.consumer_lag.labels(plugin).set(lag)

    metrics.refresh_with(ACTIVE_TENANTS, active_tenants)
    metrics.refresh_with("outbox_lag", outbox_lag)
    metrics.refresh_with("dlq_size", dead_letters, ttl=max(metrics.refresh_seconds, 30.0))
    metrics.refresh_with("consumer_lag", consumer_lag, ttl=0.0)  # local offsets: cheap, always current
    metrics.count_from("outbox_relayed_total", "Outbox rows the relay published", lambda: relay.published)
    metrics.count_from(
        "permission_cache_hits_total", "Permission lookups answered by the cache", lambda: permission_cache.hits
    )
    metrics.count_from(
        "permission_cache_misses_total",
        "Permission lookups the cache could not answer (missing or stale)",
        lambda: permission_cache.misses,
    )
    if cache_fallbacks is not None:
        metrics.count_from(
            "cache_fallbacks_total",
            "Host cache operations answered without the shared cache (it was down: reads went to the database)",
            cache_fallbacks,
        )


def _labelled(metrics: Metrics) -> set[str]:
    """Plugins ``dlq_size`` already has a series for: a drained queue must go back to 0."""
    return {sample.labels["plugin"] for family in metrics.dlq_size.collect() for sample in family.samples}

"""The embedded implementation of :class:`plexica_sdk.protocols.Host`: a plugin's handle on the host.

One handle per (plugin, tenant context); creating it costs nothing, and every method acts for
that plugin in that tenant only. The handle depends on :class:`HostServices`, a bundle of narrow
typed interfaces (open a tenant session, publish, record a processed event, authorize, the
cache, the object view, the config reader), never on the platform that built them: everything a
handle can do is listed there, which is also what the remote adapter has to carry.

``session()`` is the one method that is not a value-typed call: embedded, it is a SQLAlchemy
``AsyncSession`` on the host's own engine, bound to the tenant's schema through
``schema_translate_map``, committed on success and rolled back on error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol, final

import attrs

from plexica.cache.scoped import PrefixedCache
from plexica_sdk.errors import PermissionDeniedError
from plexica_sdk.protocols import Cache, PluginObjects
from plexica_sdk.types import Decision, Event, TenantContext

__all__ = ["Authorizer", "ConfigReader", "EmbeddedHost", "EventPublisher", "HostServices", "ProcessedLog"]


class EventPublisher(Protocol):
    """Validates and publishes a plugin's event for a tenant (through the outbox with ``session``)."""

    async def publish(
        self,
        plugin: str,
        event_type: str,
        data: Any,
        ctx: TenantContext | None,
        *,
        subject: str | None = None,
        session: Any = None,
    ) -> Event: ...


class ProcessedLog(Protocol):
    """Records, in the handler's transaction, that a plugin handled an event in a tenant."""

    async def mark_processed(self, plugin: str, event: Event, ctx: TenantContext, session: Any) -> bool: ...


class Authorizer(Protocol):
    """Decides for the context's user (RBAC, then ABAC)."""

    async def authorize(
        self, ctx: TenantContext, permission: str, resource: Mapping[str, Any] | None = None
    ) -> Decision: ...


class ConfigReader(Protocol):
    """Reads a plugin's validated per-tenant configuration."""

    async def get(self, ctx: TenantContext, plugin: str) -> Mapping[str, Any]: ...


@attrs.frozen(kw_only=True)
class HostServices:
    """Everything an embedded handle may use; the composition root builds one per host."""

    sessions: Callable[[str], AbstractAsyncContextManager[Any]]
    publisher: EventPublisher
    processed: ProcessedLog
    authorizer: Authorizer
    cache: Cache
    objects: Callable[[str, TenantContext], PluginObjects]
    config: ConfigReader


@final
class EmbeddedHost:
    """A plugin's host handle in the host's own process."""

    __slots__ = ("_ctx", "_plugin", "_services")

    def __init__(self, services: HostServices, plugin: str, ctx: TenantContext) -> None:
        self._services = services
        self._plugin = plugin
        self._ctx = ctx

    @property
    def plugin(self) -> str:
        return self._plugin

    @property
    def tenant(self) -> TenantContext:
        return self._ctx

    def session(self) -> AbstractAsyncContextManager[Any]:
        return self._services.sessions(self._ctx.schema)

    async def publish(self, event_type: str, data: Any, *, subject: str | None = None, session: Any = None) -> Event:
        return await self._services.publisher.publish(
            self._plugin, event_type, data, self._ctx, subject=subject, session=session
        )

    async def mark_processed(self, event: Event, *, session: Any) -> bool:
        return await self._services.processed.mark_processed(self._plugin, event, self._ctx, session)

    async def authorize(self, permission: str, resource: Mapping[str, Any] | None = None) -> Decision:
        return await self._services.authorizer.authorize(self._ctx, permission, resource)

    async def require(self, permission: str, resource: Mapping[str, Any] | None = None) -> None:
        decision = await self.authorize(permission, resource)
        if not decision.allowed:
            raise PermissionDeniedError(permission, decision.reason)

    @property
    def cache(self) -> Cache:
        return PrefixedCache(self._services.cache, f"{self._ctx.cache_prefix}plugin:{self._plugin}:")

    @property
    def objects(self) -> PluginObjects:
        return self._services.objects(self._plugin, self._ctx)

    async def config(self) -> Mapping[str, Any]:
        """This plugin's validated configuration in this tenant, read through the cache."""
        return await self._services.config.get(self._ctx, self._plugin)

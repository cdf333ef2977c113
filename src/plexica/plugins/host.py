"""The embedded implementation of :class:`plexica_sdk.protocols.Host`: a plugin's handle on the host.

One handle per (plugin, tenant context); creating it costs nothing, and every method acts for
that plugin in that tenant only.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any, final

from plexica.cache.scoped import PrefixedCache
from plexica_sdk.errors import PermissionDeniedError
from plexica_sdk.protocols import Cache, ObjectStore
from plexica_sdk.types import Decision, Event, TenantContext

if TYPE_CHECKING:
    from plexica.platform import Platform

__all__ = ["EmbeddedHost"]


@final
class EmbeddedHost:
    """A plugin's host handle in the host's own process."""

    def __init__(self, platform: Platform, plugin: str, ctx: TenantContext) -> None:
        self._platform = platform
        self._plugin = plugin
        self._ctx = ctx

    @property
    def plugin(self) -> str:
        return self._plugin

    @property
    def tenant(self) -> TenantContext:
        return self._ctx

    def session(self) -> AbstractAsyncContextManager[Any]:
        return self._platform.db.tenant_session(self._ctx.schema)

    async def publish(self, event_type: str, data: Any, *, subject: str | None = None, session: Any = None) -> Event:
        return await self._platform.publish(self._plugin, event_type, data, self._ctx, subject=subject, session=session)

    async def mark_processed(self, event: Event, *, session: Any) -> bool:
        return await self._platform.mark_processed(self._plugin, event, self._ctx, session)

    async def authorize(self, permission: str, resource: Mapping[str, Any] | None = None) -> Decision:
        return await self._platform.authorize(self._ctx, permission, resource)

    async def require(self, permission: str, resource: Mapping[str, Any] | None = None) -> None:
        decision = await self.authorize(permission, resource)
        if not decision.allowed:
            raise PermissionDeniedError(permission, decision.reason)

    @property
    def cache(self) -> Cache:
        return PrefixedCache(self._platform.cache, f"{self._ctx.cache_prefix}plugin:{self._plugin}:")

    @property
    def objects(self) -> ObjectStore:
        return self._platform.objects

    async def config(self) -> Mapping[str, Any]:
        """This plugin's validated configuration in this tenant, read through the cache."""
        return await self._platform.plugin_config.get(self._ctx, self._plugin)

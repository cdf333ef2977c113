"""The cached tenant registry: what every request and event delivery asks first.

``tenant:{<slug>}:config`` holds the tenant's :class:`~plexica_sdk.types.TenantInfo` (5 min at L2,
seconds at L1) and ``tenant-id:{<id>}`` the slug of a tenant id (immutable, so it never needs
invalidating). A warm lookup reads no database at all. :class:`~plexica.tenancy.service.TenantService`
calls :meth:`TenantDirectory.invalidate` after every committed change, which reaches every host
process through the layered cache's invalidation channel.
"""

from __future__ import annotations

from typing import Final, final

from plexica.cache.layered import LayeredCache
from plexica.db.engine import Database
from plexica.tenancy.naming import cache_prefix, validate_slug
from plexica.tenancy.repository import TenantRepository
from plexica_sdk.errors import TenantNotFoundError
from plexica_sdk.types import TenantInfo

__all__ = ["TENANT_CONFIG_TTL", "TenantDirectory"]

#: Seconds a tenant's registry entry lives at L2 (the seed's "tenant config, 5 min").
TENANT_CONFIG_TTL: Final = 300.0
_ID_TTL: Final = 24 * 3600.0


def config_key(slug: str) -> str:
    """``tenant:{<slug>}:config``: the tenant's registry entry."""
    return f"{cache_prefix(slug)}config"


@final
class TenantDirectory:
    """Tenants by slug and by id, through L1 → L2 → the registry, with single-flight loads.

    Args:
        cache: the layered cache (its L2 is the shared cache).
        db: the database holding the ``core`` registry.
        ttl: seconds an entry lives at L2.
    """

    def __init__(self, cache: LayeredCache, db: Database, *, ttl: float = TENANT_CONFIG_TTL) -> None:
        self.cache = cache
        self.db = db
        self.ttl = ttl
        self._repo = TenantRepository()

    async def get(self, slug: str) -> TenantInfo:
        """Return the tenant ``slug`` unless it is deleted.

        Raises:
            InvalidTenantSlugError: the slug is malformed (nothing is looked up).
            TenantNotFoundError: no such tenant, or it is deleted.
        """
        validate_slug(slug)

        async def load() -> TenantInfo | None:
            try:
                async with self.db.core_connection() as conn:
                    return await self._repo.get(conn, slug)
            except TenantNotFoundError:
                return None

        tenant = await self.cache.get(config_key(slug), TenantInfo, load, ttl=self.ttl)
        if tenant is not None and tenant.status == "provisioning":
            # Transient, and possibly another process's (``plexica tenants create`` beside a serving
            # host with the in-process cache, which no invalidation reaches): never kept, so the
            # tenant is served as soon as its provisioning commits.
            await self.cache.invalidate(config_key(slug))
        if tenant is None:
            raise TenantNotFoundError(slug)
        return tenant

    async def get_by_id(self, tenant_id: str) -> TenantInfo:
        """Return the tenant with id ``tenant_id`` unless it is deleted.

        Raises:
            TenantNotFoundError: no such tenant, or it is deleted (its slug may be reused since).
        """

        async def load() -> bytes | None:
            try:
                async with self.db.core_connection() as conn:
                    return (await self._repo.get_by_id(conn, tenant_id)).slug.encode()
            except TenantNotFoundError:
                return None

        # Its own namespace (``tenant-id:``): whatever an id holds, it cannot name a tenant's keys.
        slug = await self.cache.get_bytes(f"tenant-id:{{{tenant_id}}}", load, ttl=_ID_TTL)
        if slug is None:
            raise TenantNotFoundError(tenant_id)
        tenant = await self.get(slug.decode())
        if tenant.id != tenant_id:  # deleted, and the slug taken by a newer tenant
            raise TenantNotFoundError(tenant_id)
        return tenant

    async def invalidate(self, slug: str) -> None:
        """Drop the tenant's entry in every process; call after a committed change."""
        await self.cache.invalidate(config_key(slug))

"""Bring one tenant's schema to head: the tenant base stream, then each installed plugin's stream."""

from __future__ import annotations

from collections.abc import Sequence
from typing import final

from plexica.db.engine import Database
from plexica.db.metadata import CORE_SCHEMA
from plexica.db.migrations import CORE_STREAM, TENANT_STREAM, MigrationStream, plugin_stream, upgrade
from plexica.plugins.manager import PluginManager

__all__ = ["TenantMigrator"]


@final
class TenantMigrator:
    """Runs migration streams; each stream of each schema runs in its own transaction."""

    def __init__(self, db: Database, plugins: PluginManager) -> None:
        self.db = db
        self.plugins = plugins

    def plugin_stream(self, plugin: str) -> MigrationStream | None:
        loaded = self.plugins.get(plugin)
        if loaded is None or loaded.tenant_migrations is None:
            return None
        return plugin_stream(plugin, loaded.tenant_migrations)

    async def migrate_core(self) -> str | None:
        async with self.db.core_connection() as conn:
            return await conn.run_sync(upgrade, CORE_STREAM, CORE_SCHEMA)

    async def migrate_base(self, schema: str) -> str | None:
        async with self.db.tenant_connection(schema) as conn:
            return await conn.run_sync(upgrade, TENANT_STREAM, schema)

    async def migrate_plugin(self, schema: str, plugin: str, revision: str = "head") -> str | None:
        stream = self.plugin_stream(plugin)
        if stream is None:
            return None
        async with self.db.tenant_connection(schema) as conn:
            return await conn.run_sync(upgrade, stream, schema, revision)

    async def migrate_tenant(self, schema: str, plugins: Sequence[str]) -> None:
        await self.migrate_base(schema)
        for plugin in plugins:
            await self.migrate_plugin(schema, plugin)

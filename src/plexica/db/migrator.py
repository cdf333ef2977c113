"""Run migration streams on schemas and keep the ledger in step.

All the streams migrated for one schema in one call share one transaction: a failure anywhere
rolls the whole schema back to where it was, and the ledger records the failure (after the
rollback) so ``plexica migrate status`` can show it and a re-run retries it. A success is recorded
in the same transaction on PostgreSQL, right after it on SQLite (see :mod:`plexica.db.ledger`).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from typing import final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.schema import DropTable

from plexica.db.engine import Database
from plexica.db.ledger import forget, record_failure, record_success
from plexica.db.metadata import CORE_SCHEMA
from plexica.db.migrations import (
    CORE_STREAM,
    TENANT_STREAM,
    MigrationStream,
    Transition,
    alembic_turn,
    apply,
    current_revision,
    downgrade,
    plugin_stream,
    upgrade,
)
from plexica.plugins.manager import PluginManager
from plexica.tenancy.naming import check_identifier
from plexica_sdk.errors import BackendUnavailableError, PlexicaError

__all__ = ["MigrationError", "TenantMigrator", "error_reason"]

#: Serializes ``core`` migrations between processes starting at once (PostgreSQL advisory lock).
_CORE_LOCK_KEY = 0x706C6578  # "plex"


class MigrationError(PlexicaError):
    """A stream failed in a schema; everything the attempt did there was rolled back."""

    def __init__(self, schema: str, stream: str, target: str | None, reason: str) -> None:
        super().__init__(f"migrating {stream} in {schema} to {target or 'base'} failed: {reason}")
        self.schema = schema
        self.stream = stream
        self.target = target
        self.reason = reason


def error_reason(exc: BaseException) -> str:
    """One line saying what failed: the exception's type and its first line (no SQL, no parameters)."""
    # A database error's first line says what failed; the rest is SQL and parameters.
    text = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


@final
class TenantMigrator:
    """Migrates ``core`` and tenant schemas, one transaction per schema, ledger included."""

    def __init__(self, db: Database, plugins: PluginManager) -> None:
        self.db = db
        self.plugins = plugins

    # ----------------------------------------------------------------- streams

    def plugin_stream(self, plugin: str) -> MigrationStream | None:
        """The stream of ``plugin``'s tenant tables (None: unknown plugin, or it has no tables)."""
        loaded = self.plugins.get(plugin)
        if loaded is None or loaded.tenant_migrations is None:
            return None
        return plugin_stream(plugin, loaded.tenant_migrations)

    def streams_for(self, plugins: Iterable[str]) -> list[MigrationStream]:
        """The tenant base stream, then the stream of each of ``plugins`` that has tables."""
        return [TENANT_STREAM, *filter(None, map(self.plugin_stream, plugins))]

    # -------------------------------------------------------------- migrating

    async def migrate_core(self) -> str | None:
        """Bring ``core`` to head (one process at a time on PostgreSQL) and note it in the ledger."""
        async with self.db.core_connection() as conn:
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_CORE_LOCK_KEY)))
            async with alembic_turn():
                revision = await conn.run_sync(upgrade, CORE_STREAM, CORE_SCHEMA)
            await record_success(conn, CORE_SCHEMA, {CORE_STREAM.name: revision}, tenant_id=None, duration_ms=0)
        return revision

    async def migrate(
        self, schema: str, targets: Sequence[tuple[MigrationStream, str]], *, tenant_id: str | None
    ) -> dict[str, Transition]:
        """Upgrade ``schema`` to each ``(stream, revision)`` in one transaction; record the result.

        Returns:
            ``{stream name: where the schema was and is now}``.

        Raises:
            MigrationError: a stream failed; the schema was rolled back and the failure recorded.
            BackendUnavailableError: the database stopped answering (nothing is recorded).
        """
        check_identifier(schema)
        started = time.perf_counter()
        done: dict[str, Transition] = {}
        stream, target = targets[0] if targets else (TENANT_STREAM, "head")
        same_transaction = self.db.dialect == "postgresql"  # SQLite: core is another file
        try:
            async with self.db.tenant_connection(schema) as conn:
                async with alembic_turn():
                    for stream, target in targets:
                        done[stream.name] = await conn.run_sync(apply, stream, schema, target)
                if same_transaction:  # the ledger commits with the schema change itself
                    await self._record(conn, schema, done, tenant_id, started)
        except BackendUnavailableError:
            raise
        except Exception as exc:
            reason = error_reason(exc)
            async with self.db.core_connection() as conn:
                await record_failure(
                    conn,
                    schema,
                    stream.name,
                    tenant_id=tenant_id,
                    target=target,
                    error=reason,
                    duration_ms=_ms(started),
                )
            raise MigrationError(schema, stream.name, target, reason) from exc
        if not same_transaction:
            async with self.db.core_connection() as conn:
                await self._record(conn, schema, done, tenant_id, started)
        return done

    @staticmethod
    async def _record(
        conn: AsyncConnection, schema: str, done: dict[str, Transition], tenant_id: str | None, started: float
    ) -> None:
        revisions = {name: transition.after for name, transition in done.items()}
        await record_success(conn, schema, revisions, tenant_id=tenant_id, duration_ms=_ms(started))

    async def remove(
        self, schema: str, stream: MigrationStream, *, tenant_id: str | None, revision: str = "base"
    ) -> str | None:
        """Downgrade ``stream`` in ``schema`` to ``revision``; at base its version table goes too.

        The ledger row is dropped first: were the process to die after the downgrade commits, a
        stale row would claim tables that no longer exist.

        Raises:
            MigrationError: the downgrade failed and was rolled back.
        """
        check_identifier(schema)
        started = time.perf_counter()
        async with self.db.core_connection() as conn:
            await forget(conn, schema, stream.name)
        try:
            async with self.db.tenant_connection(schema) as conn:
                async with alembic_turn():
                    now = await conn.run_sync(downgrade, stream, schema, revision)
                if now is None:
                    version_table = sa.Table(stream.version_table, sa.MetaData(), schema=schema)
                    await conn.execute(DropTable(version_table, if_exists=True))
        except BackendUnavailableError:
            raise
        except Exception as exc:
            raise MigrationError(schema, stream.name, revision, error_reason(exc)) from exc
        if now is not None:
            async with self.db.core_connection() as conn:
                await record_success(conn, schema, {stream.name: now}, tenant_id=tenant_id, duration_ms=_ms(started))
        return now

    async def current(self, schema: str, stream: MigrationStream) -> str | None:
        """The revision ``schema`` is at for ``stream``, read from its version table (slow path)."""
        async with self.db.tenant_connection(schema) as conn, alembic_turn():
            return await conn.run_sync(current_revision, stream, schema)


def _ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)

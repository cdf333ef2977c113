"""Fast provisioning: new tenant schemas are cloned from a template at head, not migrated.

Replaying a migration chain costs an Alembic run per stream (loading scripts, reading version
tables, one round trip per step); a new tenant only needs the end result. The template is built
once per process and per set of stream heads (its *fingerprint*):

* PostgreSQL: the chains run once in a scratch schema, inside a transaction that is rolled back,
  while every DDL and DML statement sent to the server is captured (:mod:`plexica.db.capture`).
  A new tenant replays the statements under its own schema name in one transaction, the
  parameterless ones as one script in one round trip. Nothing of the build outlives it: no
  template schema to keep in step, no catalog bloat, no lock.
* SQLite: the chains build a template database file; a new tenant's file is a copy of it, made
  with SQLite's backup API and moved into place atomically.

Either way the tenant's ledger rows are written at the template's revisions. On PostgreSQL,
:meth:`TemplateProvisioner.refill` can also keep *warm spares* (see :mod:`plexica.db.spares`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import secrets
import time
from collections.abc import Callable, Sequence
from typing import Any, final

import attrs
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection

from plexica.db.capture import READS, Rollback, rename, run_script, script_batches
from plexica.db.engine import Database, SqliteDatabase
from plexica.db.fleet_lock import FleetLock
from plexica.db.ledger import record_success
from plexica.db.migrations import MigrationStream, alembic_turn, upgrade
from plexica.db.spares import SPARE_PREFIX, add_spare, list_spares, remove_spare, take_spare
from plexica.tenancy.naming import check_identifier, quote_identifier
from plexica_sdk.errors import BackendUnavailableError

__all__ = ["TEMPLATE_PREFIX", "SchemaTemplate", "TemplateProvisioner", "fingerprint"]

logger = logging.getLogger(__name__)

#: Template schemas (and SQLite files) start with this; it can never be a tenant's ``tenant_*``.
TEMPLATE_PREFIX = "plexica_template"
_BUILT = re.compile(rf"^{TEMPLATE_PREFIX}_[0-9a-f]{{16}}$")


@attrs.frozen
class SchemaTemplate:
    """A schema at the heads of some streams, ready to be cloned."""

    fingerprint: str
    revisions: dict[str, str | None]
    #: The schema the template lives in (SQLite) or was captured in (PostgreSQL).
    schema: str
    #: PostgreSQL: the captured SQL in order; a batch is a script (no parameters) or one statement.
    batches: tuple[tuple[str, Any], ...] = ()


#: Captures kept per process (one per set of stream heads: a few at most, in tests).
_KEEP = 8
_captured: dict[str, SchemaTemplate] = {}


def fingerprint(streams: Sequence[MigrationStream]) -> str:
    """Identifies the end state of ``streams``: their names, heads and script locations."""
    digest = hashlib.sha256()
    for stream in streams:
        digest.update(f"{stream.name}={stream.head}@{stream.script_location}\n".encode())
    return digest.hexdigest()[:16]


@final
class TemplateProvisioner:
    """Builds templates on first use and clones them into new tenant schemas."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._templates: dict[str, SchemaTemplate] = {}
        self._lock = asyncio.Lock()

    async def template(self, streams: Sequence[MigrationStream]) -> SchemaTemplate:
        """The template at the heads of ``streams``, built if this process has none yet.

        PostgreSQL captures depend only on the streams, so they are shared by every database the
        process talks to; a SQLite template is a file in this database's directory.
        """
        key = fingerprint(streams)
        cache = self._templates if isinstance(self.db, SqliteDatabase) else _captured
        found = cache.get(key)
        if found is not None:
            return found
        async with self._lock:
            found = cache.get(key)
            if found is None:
                if isinstance(self.db, SqliteDatabase):
                    found = await self._build_sqlite(key, streams)
                else:
                    found = await self._capture(key, streams)
                cache[key] = found
                while len(cache) > _KEEP:  # older fingerprints are of no use any more
                    cache.pop(next(iter(cache)))
        return found

    async def provision(
        self, schema: str, streams: Sequence[MigrationStream], *, tenant_id: str | None
    ) -> dict[str, str | None]:
        """Create ``schema`` at the heads of ``streams``, and its ledger rows.

        On PostgreSQL a warm spare of the same fingerprint is renamed when one is left, else the
        template is replayed; either way the schema, its tables and its ledger rows commit
        together. ``schema`` must not exist yet, or be empty.

        Returns:
            ``{stream name: revision}`` now in place.
        """
        check_identifier(schema)
        key = fingerprint(streams)
        started = time.perf_counter()
        if isinstance(self.db, SqliteDatabase):
            template = await self.template(streams)
            await self.db.copy_schema(template.schema, schema)
            async with self.db.core_connection() as conn:
                await self._record(conn, schema, template.revisions, tenant_id, started)
            return dict(template.revisions)
        revisions = {stream.name: stream.head for stream in streams}
        async with self.db.core_connection() as conn:
            exists = await conn.scalar(text("SELECT 1 FROM pg_namespace WHERE nspname = :name"), {"name": schema})
            spare = None if exists else await take_spare(conn, key)
            if spare is not None:
                await conn.execute(text(f"ALTER SCHEMA {quote_identifier(spare)} RENAME TO {quote_identifier(schema)}"))
                await self._record(conn, schema, revisions, tenant_id, started)
                return revisions
        template = await self.template(streams)
        async with self.db.core_connection() as conn:
            await self.replay_into(conn, template, schema)
            await self._record(conn, schema, template.revisions, tenant_id, started)
        return dict(template.revisions)

    @staticmethod
    async def replay_into(conn: AsyncConnection, template: SchemaTemplate, schema: str) -> None:
        """Create ``schema`` and its tables from a PostgreSQL ``template`` on ``conn`` (no ledger rows)."""
        await conn.execute(text(f"CREATE SCHEMA IF NOT EXISTS {quote_identifier(schema)}"))
        await run_script(conn, rename(template.batches, template.schema, schema))

    async def refill(self, streams: Sequence[MigrationStream], count: int | None = None) -> int:
        """Keep ``count`` warm spares at the heads of ``streams`` (PostgreSQL; SQLite copies a file anyway).

        Spares of another fingerprint are dropped. ``count`` None keeps the pool's current size.

        Returns:
            How many spares were created.
        """
        if isinstance(self.db, SqliteDatabase):
            return 0
        key = fingerprint(streams)
        async with self.db.core_connection() as conn:
            spares = await list_spares(conn)
        target = len(spares) if count is None else count
        fresh = [name for name, each in spares.items() if each == key]
        for name in [name for name, each in spares.items() if each != key] + fresh[target:]:
            async with self.db.core_connection() as conn:
                if await remove_spare(conn, name):
                    await conn.execute(text(f"DROP SCHEMA IF EXISTS {quote_identifier(name)} CASCADE"))
        template = await self.template(streams)
        created = max(0, target - len(fresh))
        for _ in range(created):
            name = f"{SPARE_PREFIX}_{secrets.token_hex(6)}"
            async with self.db.core_connection() as conn:
                await self.replay_into(conn, template, name)
                await add_spare(conn, name, key)
        return created

    async def keep_spares(
        self, streams: Callable[[], Sequence[MigrationStream]], count: int, *, interval: float = 5.0
    ) -> None:
        """Refill the spare pool every ``interval`` seconds, forever: run it in the host's task group.

        Each cycle only tries the fleet lock and skips when it is held: by a ``plexica migrate``
        (which refills itself when done, at heads this host may not have yet) or by another host's
        refill (one filler at a time keeps the pool at ``count``, not ``count`` per host).
        """
        lock = FleetLock(self.db, "spares")
        while True:
            try:
                async with lock.try_hold() as held:
                    if held:
                        await self.refill(streams(), count)
                    else:
                        logger.debug("fleet lock held elsewhere; spare refill skipped this cycle")
            except BackendUnavailableError as exc:
                logger.warning("cannot refill spare schemas", extra={"error": str(exc)})
            await asyncio.sleep(interval)

    @staticmethod
    async def _record(
        conn: AsyncConnection, schema: str, revisions: dict[str, str | None], tenant_id: str | None, started: float
    ) -> None:
        duration_ms = round((time.perf_counter() - started) * 1000)
        await record_success(conn, schema, revisions, tenant_id=tenant_id, duration_ms=duration_ms)

    async def _capture(self, key: str, streams: Sequence[MigrationStream]) -> SchemaTemplate:
        schema = f"{TEMPLATE_PREFIX}_{secrets.token_hex(6)}"
        captured: list[tuple[str, Any]] = []
        revisions: dict[str, str | None] = {}

        def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if not statement.lstrip().lower().startswith(READS):
                captured.append((statement, parameters))

        try:
            async with self.db.tenant_connection(schema) as conn:
                await conn.execute(text(f"CREATE SCHEMA {quote_identifier(schema)}"))
                event.listen(conn.sync_connection, "before_cursor_execute", capture)
                try:
                    async with alembic_turn():
                        for stream in streams:
                            revisions[stream.name] = await conn.run_sync(upgrade, stream, schema, "head")
                finally:
                    event.remove(conn.sync_connection, "before_cursor_execute", capture)
                raise Rollback
        except Rollback:
            pass
        return SchemaTemplate(key, revisions, schema, script_batches(captured))

    async def _build_sqlite(self, key: str, streams: Sequence[MigrationStream]) -> SchemaTemplate:
        assert isinstance(self.db, SqliteDatabase)
        schema = f"{TEMPLATE_PREFIX}_{key}"
        revisions = {stream.name: stream.head for stream in streams}
        if not await self.db.schema_exists(schema):
            # Built under another name and moved into place, so no process ever copies half a build.
            build = f"{schema}_{secrets.token_hex(4)}"
            async with self.db.tenant_connection(build) as conn, alembic_turn():
                for stream in streams:
                    revisions[stream.name] = await conn.run_sync(upgrade, stream, build, "head")
            await self.db.copy_schema(build, schema)
            await self.db.drop_schema(build)
        for stale in self.db.directory.glob(f"{TEMPLATE_PREFIX}_*.db"):
            if _BUILT.match(stale.stem) and stale.stem != schema:  # in-progress builds have a suffix
                await self.db.drop_schema(stale.stem)
        return SchemaTemplate(key, revisions, schema)

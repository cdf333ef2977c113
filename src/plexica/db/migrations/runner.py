"""Run an Alembic stream on one connection, in one schema, without an ``env.py``.

Tenant and plugin streams declare schema-less tables; the connection they run on carries
``schema_translate_map={None: schema}``, and the stream's version table lives in that schema.
The caller owns the transaction: on PostgreSQL (and on SQLite, which we run with explicit
``BEGIN``) a failing revision rolls back with everything else.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
from alembic.config import Config
from alembic.runtime.environment import EnvironmentContext
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection

from plexica.db.metadata import CORE_SCHEMA
from plexica_sdk.errors import ValidationError

__all__ = [
    "CORE_STREAM",
    "TENANT_STREAM",
    "MigrationStream",
    "Transition",
    "alembic_turn",
    "apply",
    "current_revision",
    "downgrade",
    "head_revision",
    "plugin_stream",
    "upgrade",
]

_HERE = Path(__file__).parent

# Loading a ScriptDirectory imports every revision file: far too slow to repeat per tenant, so
# each location's is kept until a file under it changes (a plugin upgraded in place).
_scripts: dict[str, tuple[tuple[tuple[str, int], ...], ScriptDirectory]] = {}
_scripts_lock = threading.Lock()

# Alembic's ``op`` and ``context`` are module-global proxies, installed for the duration of a
# run. Runs on async connections suspend at every statement, so two interleaved runs would swap
# each other's proxies, and one tenant's DDL could reach another tenant's connection. Hence one
# run at a time per event loop; the rest of a fleet migration (commits, ledger) still overlaps.
_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def alembic_turn() -> AsyncIterator[None]:
    """Hold the event loop's Alembic lock: wrap every ``run_sync`` of this module's functions in it."""
    loop = asyncio.get_running_loop()
    lock = _turns.get(loop)
    if lock is None:
        lock = _turns[loop] = asyncio.Lock()
    async with lock:
        yield


def _signature(location: str) -> tuple[tuple[str, int], ...]:
    versions = Path(location) / "versions"
    try:
        entries = sorted(os.scandir(versions), key=lambda entry: entry.name)
    except FileNotFoundError:
        return ()
    return tuple((e.name, e.stat().st_mtime_ns) for e in entries if e.name.endswith(".py"))


@attrs.frozen
class MigrationStream:
    """One chain of revisions and the version table that tracks it."""

    name: str
    script_location: str
    version_table: str = "alembic_version"

    def config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", self.script_location)
        return config

    def script(self) -> ScriptDirectory:
        signature = _signature(self.script_location)
        with _scripts_lock:
            cached = _scripts.get(self.script_location)
            if cached is None or cached[0] != signature:
                cached = _scripts[self.script_location] = (signature, ScriptDirectory.from_config(self.config()))
        return cached[1]

    @property
    def head(self) -> str | None:
        """The stream's single head revision (None: the stream has no revisions)."""
        return self.script().get_current_head()

    def resolve(self, revision: str) -> str | None:
        """The full id of ``revision`` (``"head"``, ``"base"``, an id or a unique prefix of one).

        Raises:
            ValidationError: the stream has no such revision.
        """
        if revision == "base":
            return None
        try:
            script = self.script().get_revision(revision)
        except CommandError as exc:
            raise ValidationError(f"{self.name}: no revision {revision!r}", field="revision") from exc
        return script.revision if script is not None else None

    def is_ancestor(self, older: str | None, newer: str | None) -> bool:
        """Whether ``older`` comes before (or is) ``newer`` in the chain; ``None`` is the base."""
        if older is None or older == newer:
            return True
        if newer is None:
            return False
        return any(s.revision == older for s in self.script().iterate_revisions(newer, "base"))


CORE_STREAM = MigrationStream("core", str(_HERE / "core"))
TENANT_STREAM = MigrationStream("tenant", str(_HERE / "tenant"))


def plugin_stream(plugin: str, script_location: str) -> MigrationStream:
    """The stream of a plugin's tenant tables; its version table is named after the plugin."""
    return MigrationStream(f"plugin:{plugin}", script_location, f"alembic_version_{plugin.replace('-', '_')}")


def head_revision(stream: MigrationStream) -> str | None:
    return stream.head


def _version_schema(stream: MigrationStream, schema: str) -> str:
    return CORE_SCHEMA if stream.name == CORE_STREAM.name else schema


def current_revision(connection: Connection, stream: MigrationStream, schema: str) -> str | None:
    """The revision the schema is at for this stream (None: never migrated)."""
    context = MigrationContext.configure(
        connection,
        opts={"version_table": stream.version_table, "version_table_schema": _version_schema(stream, schema)},
    )
    return context.get_current_revision()


@attrs.frozen
class Transition:
    """Where one run of a stream took a schema: ``None`` is the base."""

    before: str | None
    after: str | None


def apply(
    connection: Connection, stream: MigrationStream, schema: str, revision: str, *, up: bool = True
) -> Transition:
    """Upgrade (or downgrade) ``schema`` to ``revision`` of ``stream`` on ``connection``.

    Raises:
        ValidationError: ``revision`` does not exist, or lies behind (ahead, for a downgrade) the
            schema's current revision.
    """
    config = stream.config()
    script = stream.script()
    target = stream.resolve(revision)
    before: list[str | None] = [None]

    def steps(current: Any, _context: Any) -> Any:
        before[0] = current[0] if current else None
        try:
            return script._upgrade_revs(revision, current) if up else script._downgrade_revs(revision, current)
        except CommandError as exc:
            raise ValidationError(f"{stream.name}: {exc}", field="revision") from exc

    if stream.name != CORE_STREAM.name:
        connection = connection.execution_options(schema_translate_map={None: schema})
    with EnvironmentContext(config, script, fn=steps, destination_rev=revision) as env:
        env.configure(
            connection=connection,
            version_table=stream.version_table,
            version_table_schema=_version_schema(stream, schema),
        )
        env.run_migrations()
    return Transition(before[0], target)


def upgrade(connection: Connection, stream: MigrationStream, schema: str, revision: str = "head") -> str | None:
    """Upgrade ``schema`` to ``revision`` of ``stream``; return the revision now in place (see :func:`apply`)."""
    return apply(connection, stream, schema, revision).after


def downgrade(connection: Connection, stream: MigrationStream, schema: str, revision: str = "base") -> str | None:
    """Downgrade ``schema`` to ``revision`` (default: drop everything the stream created)."""
    return apply(connection, stream, schema, revision, up=False).after

"""Run an Alembic stream on one connection, in one schema, without an ``env.py``.

Tenant and plugin streams declare schema-less tables; the connection they run on carries
``schema_translate_map={None: schema}``, and the stream's version table lives in that schema.
The caller owns the transaction: on PostgreSQL (and on SQLite, which we run with explicit
``BEGIN``) a failing revision rolls back with everything else.
"""

from __future__ import annotations

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
    "current_revision",
    "head_revision",
    "plugin_stream",
    "upgrade",
]

_HERE = Path(__file__).parent


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
        return ScriptDirectory.from_config(self.config())


CORE_STREAM = MigrationStream("core", str(_HERE / "core"))
TENANT_STREAM = MigrationStream("tenant", str(_HERE / "tenant"))


def plugin_stream(plugin: str, script_location: str) -> MigrationStream:
    """The stream of a plugin's tenant tables; its version table is named after the plugin."""
    return MigrationStream(f"plugin:{plugin}", script_location, f"alembic_version_{plugin.replace('-', '_')}")


def head_revision(stream: MigrationStream) -> str | None:
    return stream.script().get_current_head()


def current_revision(connection: Connection, stream: MigrationStream, schema: str) -> str | None:
    """The revision the schema is at for this stream (None: never migrated)."""
    context = MigrationContext.configure(
        connection, opts={"version_table": stream.version_table, "version_table_schema": schema}
    )
    return context.get_current_revision()


def upgrade(connection: Connection, stream: MigrationStream, schema: str, revision: str = "head") -> str | None:
    """Upgrade ``schema`` to ``revision`` of ``stream`` on ``connection``; return the new revision.

    Raises:
        ValidationError: ``revision`` does not exist in the stream.
    """
    config = stream.config()
    script = ScriptDirectory.from_config(config)
    try:
        script.get_revision(revision)
    except CommandError as exc:
        raise ValidationError(f"{stream.name}: no revision {revision!r}", field="revision") from exc

    def do_upgrade(current: Any, _context: Any) -> Any:
        return script._upgrade_revs(revision, current)

    if stream.name != "core":
        connection = connection.execution_options(schema_translate_map={None: schema})
    with EnvironmentContext(config, script, fn=do_upgrade, destination_rev=revision) as env:
        env.configure(
            connection=connection,
            version_table=stream.version_table,
            version_table_schema=schema if stream.name != "core" else CORE_SCHEMA,
        )
        env.run_migrations()
    return current_revision(connection, stream, schema)

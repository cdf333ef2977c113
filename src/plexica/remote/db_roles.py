"""A PostgreSQL role per remote plugin, reaching only its own tables where it is installed.

A remote plugin's ``host.session()`` is a connection of its own (``plexica_sdk.remote.session``),
as role ``plexica_<database digest>_<plugin>``, never the host's user. In each tenant schema where
the plugin is installed, on install and on every upgrade, the role gets exactly:

* ``USAGE`` on the schema, and ``SELECT, INSERT, UPDATE, DELETE`` on the plugin's own tables
  (and ``USAGE, SELECT`` on their sequences). The plugin's tables are those its migration stream
  creates, found by running the stream (after the tenant base) in a scratch schema inside a
  transaction that is rolled back, once per process and revision.
* ``EXECUTE`` on two functions created in that schema for it alone (``SECURITY DEFINER``, owned by
  the host, ``search_path`` pinned, ``EXECUTE`` revoked from ``PUBLIC``): one writes an outbox row
  to ``core.outbox`` for this tenant, one of the plugin's declared event types and its own source
  (the host validated the payload when it built the row); one records a processed event under the
  plugin's name. That is all a transactional ``publish`` and ``mark_processed`` need, so the
  role holds nothing in ``core`` and nothing of another plugin.

Uninstalling drops the functions and revokes everything in that schema. The role itself is
``NOLOGIN`` until ``plexica remote credentials create`` gives it a password (its SCRAM verifier,
computed here, so the secret never reaches the server) and ``LOGIN``; ``revoke`` takes both away
and ends its sessions. The digest of the database name in the role's name keeps two databases of
one cluster (staging and production) from sharing a role, since roles are cluster-wide.

SQLite has no roles: there a remote plugin gets no database, and ``host.session()`` is refused.
Identifiers are validated and quoted; values go as bind parameters, except the few literals a
function body must hold (tenant id, plugin, source, event types), each checked against a strict
pattern first. The host's database user needs ``CREATEROLE``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Final, final

import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from plexica.db.capture import Rollback
from plexica.db.migrations import TENANT_STREAM, MigrationStream, alembic_turn, upgrade
from plexica.tenancy.naming import check_identifier, quote_identifier
from plexica_sdk.errors import ValidationError
from plexica_sdk.remote.host_api import bounded_identifier, outbox_function, processed_function
from plexica_sdk.types import TenantContext

if TYPE_CHECKING:
    from plexica.db.engine import Database

__all__ = ["PluginRoles", "scram_verifier"]

_LITERAL: Final = re.compile(r"^[A-Za-z0-9_./:*-]{1,255}\Z")
_SCRAM: Final = re.compile(r"^SCRAM-SHA-256\$[0-9]+:[A-Za-z0-9+/=]+\$[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+\Z")
_SHARDS: Final = 32  # plexica.events.models.SHARDS; core_0004 fixes it
_SCRATCH_PREFIX: Final = "plexica_roles_scratch"
#: Tables found per (stream, script location, revision), shared by every database of the process.
_tables_of: dict[tuple[str, str, str | None], tuple[str, ...]] = {}


def scram_verifier(password: str, *, iterations: int = 4096) -> str:
    """The SCRAM-SHA-256 verifier PostgreSQL stores for ``password`` (RFC 5802, RFC 7677).

    ``ALTER ROLE ... PASSWORD '<verifier>'`` sets the password without the server ever seeing it.
    The password must be ASCII (SASLprep leaves it unchanged); service credentials are.
    """
    if not password.isascii():
        raise ValidationError("a role password must be ASCII", field="password")
    salt = secrets.token_bytes(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    stored_key = hashlib.sha256(client_key).digest()
    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def _literal(value: str) -> str:
    """``value`` as a SQL string literal, if it matches the strict pattern of what we embed."""
    if not _LITERAL.match(value):
        raise ValidationError(f"refusing to embed {value[:60]!r} in a function body", field="literal")
    return f"'{value}'"


def _quote_name(name: str) -> str:
    """A name read from the catalog, double-quoted (it may hold what a plain identifier cannot)."""
    return '"' + name.replace('"', '""') + '"'


@final
class PluginRoles:
    """Creates, grants, revokes and logs in the database roles of remote plugins (PostgreSQL only).

    Args:
        db: the host's PostgreSQL database.
        stream_of: a plugin's migration stream (None: it has no tables).
        is_remote: whether a plugin runs remotely; only those get grants on install.
        event_types: the event types a plugin declared.
        source_of: the CloudEvents ``source`` of a plugin's events.
    """

    def __init__(
        self,
        db: Database,
        *,
        stream_of: Callable[[str], MigrationStream | None],
        is_remote: Callable[[str], bool],
        event_types: Callable[[str], Sequence[str]],
        source_of: Callable[[str], str],
    ) -> None:
        if db.dialect != "postgresql":
            raise ValidationError("plugin roles need PostgreSQL", field="database")
        self._db = db
        self._stream_of = stream_of
        self._is_remote = is_remote
        self._event_types = event_types
        self._source_of = source_of
        self._database: str | None = None

    # ----------------------------------------------------------- the install path

    async def on_plugin_installed(self, ctx: TenantContext, plugin: str) -> None:
        """After an install or upgrade in ``ctx``'s tenant: (re)grant the plugin's role there.

        A remote plugin always has one; another plugin only once its credentials were made
        (moving out of process), so that its installs in new tenants are granted too.
        """
        if self._is_remote(plugin) or await self._role_exists(await self.role_name(plugin)):
            await self.grant(ctx, plugin)

    async def _role_exists(self, role: str) -> bool:
        async with self._db.core_connection() as conn:
            found = await conn.scalar(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role})
        return found is not None

    async def on_plugin_uninstalled(self, ctx: TenantContext, plugin: str) -> None:
        """Before an uninstall in ``ctx``'s tenant: revoke whatever the plugin's role holds there."""
        await self.revoke(ctx, plugin)

    # ------------------------------------------------------------------- the role

    async def role_name(self, plugin: str) -> str:
        """The role of ``plugin`` in this database."""
        if self._database is None:
            async with self._db.core_connection() as conn:
                self._database = str(await conn.scalar(sa.text("SELECT current_database()")))
        digest = hashlib.sha256(self._database.encode()).hexdigest()[:8]
        return check_identifier(bounded_identifier(f"plexica_{digest}_", plugin.replace("-", "_")))

    async def _ensure_role(self, conn: AsyncConnection, role: str) -> None:
        exists = await conn.scalar(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role})
        if exists is None:
            try:
                async with conn.begin_nested():  # another host may create it at the same moment
                    await conn.execute(
                        sa.text(
                            f"CREATE ROLE {quote_identifier(role)} NOLOGIN NOSUPERUSER NOINHERIT NOCREATEDB "
                            "NOCREATEROLE NOREPLICATION NOBYPASSRLS"
                        )
                    )
            except DBAPIError:
                exists = await conn.scalar(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role})
                if exists is None:
                    raise
        database = self._database
        assert database is not None
        await conn.execute(sa.text(f"GRANT CONNECT ON DATABASE {_quote_name(database)} TO {quote_identifier(role)}"))

    async def set_login(self, plugin: str, password: str | None) -> str:
        """Let ``plugin``'s role log in with ``password``, or (None) never again; returns the role.

        Without a password its open sessions are ended too (where the host's user may signal them).
        """
        role = await self.role_name(plugin)
        quoted = quote_identifier(role)
        async with self._db.core_connection() as conn:
            await self._ensure_role(conn, role)
            if password is None:
                await conn.execute(sa.text(f"ALTER ROLE {quoted} NOLOGIN PASSWORD NULL"))
            else:
                verifier = scram_verifier(password)
                assert _SCRAM.match(verifier)  # only base64 and separators: safe as a literal
                # Driver SQL: the verifier's colons are no bind parameters.
                await conn.exec_driver_sql(f"ALTER ROLE {quoted} LOGIN PASSWORD '{verifier}'")
        if password is None:
            try:
                async with self._db.core_connection() as conn:
                    await conn.execute(
                        sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = :role"),
                        {"role": role},
                    )
            except DBAPIError:  # not allowed to signal them: they end with their connections
                pass
        return role

    # -------------------------------------------------------------------- grants

    async def grant(self, ctx: TenantContext, plugin: str) -> None:
        """Give ``plugin``'s role exactly its own tables and its two functions in ``ctx``'s schema."""
        role = await self.role_name(plugin)
        schema = check_identifier(ctx.schema)
        tables = await self._tables_in(schema, plugin)
        q_role, q_schema = quote_identifier(role), quote_identifier(schema)
        async with self._db.core_connection() as conn:
            await self._ensure_role(conn, role)
            await conn.execute(sa.text(f"GRANT USAGE ON SCHEMA {q_schema} TO {q_role}"))
            await conn.execute(sa.text(f"REVOKE ALL ON ALL TABLES IN SCHEMA {q_schema} FROM {q_role}"))
            await conn.execute(sa.text(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {q_schema} FROM {q_role}"))
            if tables:
                names = ", ".join(f"{q_schema}.{_quote_name(table)}" for table in tables)
                await conn.execute(sa.text(f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLE {names} TO {q_role}"))
                sequences = await self._sequences(conn, schema, tables)
                if sequences:
                    owned = ", ".join(f"{q_schema}.{_quote_name(sequence)}" for sequence in sequences)
                    await conn.execute(sa.text(f"GRANT USAGE, SELECT ON SEQUENCE {owned} TO {q_role}"))
            for signature, body in self._functions(ctx, plugin):
                await conn.exec_driver_sql(body)  # a function body is no place for bind parameters
                await conn.execute(sa.text(f"REVOKE ALL ON FUNCTION {signature} FROM PUBLIC"))
                await conn.execute(sa.text(f"GRANT EXECUTE ON FUNCTION {signature} TO {q_role}"))

    async def revoke(self, ctx: TenantContext, plugin: str) -> None:
        """Take everything ``plugin``'s role holds in ``ctx``'s schema (nothing to do without a role)."""
        role = await self.role_name(plugin)
        schema = check_identifier(ctx.schema)
        q_role, q_schema = quote_identifier(role), quote_identifier(schema)
        async with self._db.core_connection() as conn:
            for signature, _ in self._functions(ctx, plugin):
                await conn.execute(sa.text(f"DROP FUNCTION IF EXISTS {signature}"))
            if await conn.scalar(sa.text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}) is None:
                return
            if await conn.scalar(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": schema}):
                await conn.execute(sa.text(f"REVOKE ALL ON ALL TABLES IN SCHEMA {q_schema} FROM {q_role}"))
                await conn.execute(sa.text(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {q_schema} FROM {q_role}"))
                await conn.execute(sa.text(f"REVOKE ALL ON SCHEMA {q_schema} FROM {q_role}"))

    def _functions(self, ctx: TenantContext, plugin: str) -> list[tuple[str, str]]:
        """(signature, CREATE statement) of the plugin's outbox and processed-event functions in ``ctx``'s schema."""
        schema = quote_identifier(check_identifier(ctx.schema))
        outbox = f"{schema}.{quote_identifier(outbox_function(plugin))}"
        processed = f"{schema}.{quote_identifier(processed_function(plugin))}"
        tenant, name, source = _literal(ctx.tenant_id), _literal(plugin), _literal(self._source_of(plugin))
        types = ", ".join(_literal(event_type) for event_type in self._event_types(plugin))
        header = "LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $plexica$"
        outbox_body = f"""CREATE OR REPLACE FUNCTION {outbox}(
    p_event_id text, p_event_type text, p_key text, p_shard integer, p_envelope text
) RETURNS void {header}
DECLARE
    envelope jsonb := p_envelope::jsonb;
BEGIN
    IF NOT (p_event_type = ANY (ARRAY[{types}]::text[])) THEN
        RAISE EXCEPTION 'plugin % does not publish %', {name}, p_event_type USING ERRCODE = '42501';
    END IF;
    IF envelope->>'id' IS DISTINCT FROM p_event_id OR envelope->>'type' IS DISTINCT FROM p_event_type
        OR envelope->>'tenantid' IS DISTINCT FROM {tenant} OR envelope->>'source' IS DISTINCT FROM {source}
        OR p_shard < 0 OR p_shard >= {_SHARDS} THEN
        RAISE EXCEPTION 'the outbox row is not one of plugin % in this tenant', {name} USING ERRCODE = '42501';
    END IF;
    INSERT INTO core.outbox (event_id, tenant_id, event_type, key, shard, envelope, created_at, attempts)
    VALUES (p_event_id, {tenant}, p_event_type, p_key, p_shard, p_envelope, now(), 0);
END
$plexica$"""  # noqa: S608 - identifiers quoted, literals checked by _literal
        processed_body = f"""CREATE OR REPLACE FUNCTION {processed}(p_event_id text) RETURNS boolean {header}
BEGIN
    INSERT INTO {schema}.processed_events (plugin, event_id, processed_at)
    VALUES ({name}, p_event_id, now()) ON CONFLICT DO NOTHING;
    RETURN FOUND;
END
$plexica$"""  # noqa: S608 - identifiers quoted, literals checked by _literal
        return [(f"{outbox}(text, text, text, integer, text)", outbox_body), (f"{processed}(text)", processed_body)]

    # ------------------------------------------------------------ the plugin's tables

    async def _tables_in(self, schema: str, plugin: str) -> tuple[str, ...]:
        """The plugin's tables that exist in ``schema``, at the revision ``schema`` is at."""
        stream = self._stream_of(plugin)
        if stream is None:
            return ()
        async with self._db.core_connection() as conn:
            present = set(await _relations(conn, schema))
            revision = None
            if stream.version_table in present:
                version_table = f"{quote_identifier(schema)}.{_quote_name(stream.version_table)}"
                revision = await conn.scalar(sa.text(f"SELECT version_num FROM {version_table}"))  # noqa: S608
        key = (stream.name, stream.script_location, revision)
        found = _tables_of.get(key)
        if found is None:
            found = _tables_of[key] = await self._stream_tables(stream, revision)
        return tuple(table for table in found if table in present)

    async def _stream_tables(self, stream: MigrationStream, revision: str | None) -> tuple[str, ...]:
        """What ``stream`` up to ``revision`` creates after the tenant base, in a scratch schema rolled back."""
        if revision is None:
            return ()
        scratch = f"{_SCRATCH_PREFIX}_{secrets.token_hex(6)}"
        found: tuple[str, ...] = ()
        try:
            async with self._db.tenant_connection(scratch) as conn:
                await conn.execute(sa.text(f"CREATE SCHEMA {quote_identifier(scratch)}"))
                async with alembic_turn():
                    await conn.run_sync(upgrade, TENANT_STREAM, scratch, "head")
                    before = set(await _relations(conn, scratch))
                    await conn.run_sync(upgrade, stream, scratch, revision)
                after = await _relations(conn, scratch)
                found = tuple(sorted(set(after) - before - {stream.version_table}))
                raise Rollback
        except Rollback:
            pass
        return found

    @staticmethod
    async def _sequences(conn: AsyncConnection, schema: str, tables: Sequence[str]) -> list[str]:
        """Sequences owned by (serial or identity columns of) ``tables`` in ``schema``."""
        result = await conn.execute(
            sa.text(
                "SELECT s.relname FROM pg_class s "
                "JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass "
                "JOIN pg_class t ON t.oid = d.refobjid "
                "JOIN pg_namespace n ON n.oid = t.relnamespace "
                "WHERE s.relkind = 'S' AND n.nspname = :schema AND t.relname = ANY(:tables)"
            ),
            {"schema": schema, "tables": list(tables)},
        )
        return sorted({row[0] for row in result})


async def _relations(conn: AsyncConnection, schema: str) -> list[str]:
    """Tables, views and partitioned tables of ``schema``."""
    result = await conn.execute(
        sa.text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = :schema AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
        ),
        {"schema": schema},
    )
    return [row[0] for row in result]

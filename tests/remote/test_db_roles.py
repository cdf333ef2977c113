"""A remote plugin's PostgreSQL role reaches its own tables where it is installed, and nothing else.

Real PostgreSQL: the host installs the plugins, then the test connects **as the plugin's role**
and tries what a remote plugin could try.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import AsyncIterator
from pathlib import Path

import attrs
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from plexica.platform import Platform
from plexica.remote.db_roles import PluginRoles, scram_verifier
from plexica_sdk.types import TenantContext
from tests.plexica.db.support import ItemsPlugin, fresh_postgres_database, make_platform_settings, write_migrations
from tests.remote.callback_support import PROBE_REVISIONS, ProbePlugin, remote_mode

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]


@attrs.frozen
class Setup:
    platform: Platform
    url: str
    acme: TenantContext
    globex: TenantContext


@pytest.fixture
async def setup(postgres_url: str, tmp_path: Path, anyio_backend: str) -> AsyncIterator[Setup]:
    probe = ProbePlugin(write_migrations(tmp_path / "probe", 2, PROBE_REVISIONS))
    items = ItemsPlugin(write_migrations(tmp_path / "items", 1))
    async with fresh_postgres_database(postgres_url) as url:
        platform = Platform(make_platform_settings(tmp_path / "data", url), plugins=[probe, items])
        remote_mode(platform, "probe")
        async with platform:
            contexts = {}
            for slug in ("acme", "globex"):
                tenant = await platform.tenants.provision(slug)  # every plugin, probe granted in both
                contexts[slug] = TenantContext(tenant_id=tenant.id, slug=slug, schema=tenant.schema)
                await platform.tenants.uninstall_plugin(slug, "probe")
            await platform.tenants.install_plugin("acme", "probe", revision="probe_0001")
            yield Setup(platform, url, contexts["acme"], contexts["globex"])


@pytest.fixture
async def as_probe(setup: Setup) -> AsyncIterator[AsyncEngine]:
    roles = setup.platform.db_roles
    assert roles is not None
    role = await roles.set_login("probe", secrets.token_urlsafe(32))
    engine = create_async_engine(
        make_url(setup.url).set(username=role), poolclass=NullPool, isolation_level="AUTOCOMMIT"
    )
    yield engine
    await engine.dispose()


async def _denied(engine: AsyncEngine, statement: str) -> None:
    with pytest.raises(DBAPIError) as caught:
        async with engine.connect() as conn:
            await conn.execute(sa.text(statement))
    assert getattr(caught.value.orig, "sqlstate", None) == "42501", caught.value  # insufficient_privilege


async def test_the_role_reaches_its_own_tables_in_its_tenants_only(setup: Setup, as_probe: AsyncEngine) -> None:
    async with as_probe.connect() as conn:
        await conn.execute(sa.text("INSERT INTO tenant_acme.probe_notes (title) VALUES ('one'), ('two')"))
        await conn.execute(sa.text("UPDATE tenant_acme.probe_notes SET title = 'uno' WHERE title = 'one'"))
        await conn.execute(sa.text("DELETE FROM tenant_acme.probe_notes WHERE title = 'two'"))
        titles = (await conn.execute(sa.text("SELECT title FROM tenant_acme.probe_notes"))).scalars().all()
    assert titles == ["uno"]
    for statement in (
        "SELECT * FROM tenant_acme.items",  # another plugin's table, same tenant
        "INSERT INTO tenant_acme.items (id, code) VALUES ('x', 'y')",
        "SELECT * FROM tenant_acme.users",  # the tenant's own tables
        "SELECT * FROM tenant_acme.processed_events",
        "INSERT INTO tenant_acme.processed_events (plugin, event_id, processed_at) VALUES ('items', 'e', now())",
        "SELECT * FROM core.tenants",  # nothing in core
        "SELECT * FROM core.outbox",
        "INSERT INTO core.outbox (event_id, event_type, shard, envelope, created_at) VALUES ('e', 't', 0, '{}', now())",
        "SELECT * FROM tenant_globex.items",  # a tenant where probe is not installed
        "CREATE TABLE tenant_acme.mine (id int)",  # no DDL
        "DROP TABLE tenant_acme.probe_notes",
    ):
        await _denied(as_probe, statement)


async def test_its_functions_write_only_its_own_outbox_and_processed_rows(setup: Setup, as_probe: AsyncEngine) -> None:
    platform = setup.platform
    async with as_probe.connect() as conn:
        first = await conn.scalar(sa.text("SELECT tenant_acme.plexica_processed_probe('event-1')"))
        again = await conn.scalar(sa.text("SELECT tenant_acme.plexica_processed_probe('event-1')"))
    assert (first, again) == (True, False)
    async with platform.db.core_connection() as conn:
        rows = (await conn.execute(sa.text("SELECT plugin, event_id FROM tenant_acme.processed_events"))).all()
    assert [tuple(row) for row in rows] == [("probe", "event-1")]

    event, row = platform.prepare_event("probe", "probe.item.created", {"title": "t"}, setup.acme, None)
    call = "SELECT tenant_acme.plexica_outbox_probe(:event_id, :event_type, :key, :shard, :envelope)"
    async with as_probe.connect() as conn:
        await conn.execute(
            sa.text(call), {name: row[name] for name in ("event_id", "event_type", "key", "shard", "envelope")}
        )
    async with platform.db.core_connection() as conn:
        tenant_id = await conn.scalar(
            sa.text("SELECT tenant_id FROM core.outbox WHERE event_id = :id"), {"id": event.id}
        )
    assert tenant_id == setup.acme.tenant_id
    # The function writes nothing but a row of probe's own, for this tenant.
    _, globex_row = platform.prepare_event("probe", "probe.item.created", {"title": "t"}, setup.globex, None)
    forged = [
        {**row, "event_id": "other"},  # the envelope says another id
        {**globex_row},  # an event of another tenant
        {**row, "event_type": "items.item.created"},  # not one of probe's types
        {**row, "shard": 99},
    ]
    for arguments in forged:
        with pytest.raises(DBAPIError) as caught:
            async with as_probe.connect() as conn:
                await conn.execute(
                    sa.text(call),
                    {name: arguments[name] for name in ("event_id", "event_type", "key", "shard", "envelope")},
                )
        assert getattr(caught.value.orig, "sqlstate", None) == "42501"
    await _denied(as_probe, "SELECT tenant_globex.plexica_processed_probe('e')")


async def test_upgrades_grant_new_tables_and_uninstall_takes_everything(setup: Setup, as_probe: AsyncEngine) -> None:
    platform = setup.platform
    await _denied(as_probe, "SELECT * FROM tenant_acme.alembic_version_probe")  # not even its version table
    await platform.tenants.upgrade_plugin("acme", "probe")
    async with as_probe.connect() as conn:
        await conn.execute(sa.text("INSERT INTO tenant_acme.probe_tags (tag) VALUES ('new')"))
    await platform.tenants.uninstall_plugin("acme", "probe", keep_data=True)  # its tables stay, its access goes
    for statement in (
        "SELECT * FROM tenant_acme.probe_notes",
        "SELECT * FROM tenant_acme.probe_tags",
        "SELECT tenant_acme.plexica_processed_probe('e')",
    ):
        await _denied(as_probe, statement)
    async with platform.db.core_connection() as conn:
        functions = await conn.scalar(sa.text("SELECT count(*) FROM pg_proc WHERE proname LIKE 'plexica_%probe'"))
    assert functions == 0
    # Revoked: the role cannot even log in.
    roles = platform.db_roles
    assert roles is not None
    await roles.set_login("probe", None)
    with pytest.raises(DBAPIError):
        async with as_probe.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))


async def test_the_password_is_stored_as_a_scram_verifier_of_the_secret(setup: Setup) -> None:
    roles = setup.platform.db_roles
    assert isinstance(roles, PluginRoles)
    secret = secrets.token_urlsafe(32)
    role = await roles.set_login("probe", secret)
    async with setup.platform.db.core_connection() as conn:
        stored = await conn.scalar(sa.text("SELECT rolpassword FROM pg_authid WHERE rolname = :r"), {"r": role})
        can_login = await conn.scalar(sa.text("SELECT rolcanlogin FROM pg_roles WHERE rolname = :r"), {"r": role})
    assert can_login is True and isinstance(stored, str)
    scheme, rest = stored.split("$", 1)
    iterations_salt, keys = rest.split("$")
    iterations, salt = iterations_salt.split(":")
    stored_key, _server_key = keys.split(":")
    salted = hashlib.pbkdf2_hmac("sha256", secret.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert scheme == "SCRAM-SHA-256" and hashlib.sha256(client_key).digest() == base64.b64decode(stored_key)
    assert scram_verifier(secret) != scram_verifier(secret)  # salted: never the same twice
    assert role.startswith("plexica_") and role.endswith("_probe") and len(role) <= 63

